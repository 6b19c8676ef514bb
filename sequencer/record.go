package sequencer

// Record assigns global sequence numbers Global..Global+Count-1 to the
// messages First..First+Count-1 of Sender, in that order.
type Record struct {
	Global uint64 // global sequence number of message First
	Sender int    // sender's rank in the view
	First  uint64 // first per-sender sequence number (from 1)
	Count  uint64 // number of messages (at least 1)
}

// End is the global number just past the record.
func (r Record) End() uint64 { return r.Global + r.Count }

// Last is the last per-sender sequence number the record covers.
func (r Record) Last() uint64 { return r.First + r.Count - 1 }

// valid reports whether r is well formed: non-empty, numbers from 1, no
// overflow.
func (r Record) valid(senders int) bool {
	return r.Count > 0 && r.Global > 0 && r.First > 0 && r.Sender >= 0 &&
		(senders <= 0 || r.Sender < senders) &&
		r.Global+r.Count > r.Global && r.First+r.Count > r.First
}
