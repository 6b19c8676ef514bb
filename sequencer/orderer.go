package sequencer

// Orderer delivers messages in global order at one member: a message is
// next when its order record has arrived and its data is available. It
// keeps the records it has seen, sorted and disjoint, from the release
// point (see Release) on: those ahead of delivery may arrive out of order
// or duplicated.
// It is not safe for concurrent use.
type Orderer struct {
	avail     []uint64 // per sender: data contiguous up to
	delivered []uint64 // per sender: highest sequence number delivered
	next      uint64   // next global number to deliver
	set       []Record // set[lo:hi], sorted by Global, disjoint; grows up to capacity
	capacity  int
	lo, hi    int
	cur       int    // index in set of the record being delivered
	gapAt     uint64 // global number last counted in stats.Gap
	stats     OrdererStats
}

// OrdererStats counts what AddRecords refused.
type OrdererStats struct {
	Duplicate uint64 // records already known or already delivered
	Invalid   uint64 // malformed records or records out of range
	Conflict  uint64 // records that contradict a known one (a bug or forgery)
	Full      uint64 // records dropped because the set was full
	Gap       uint64 // global numbers at which delivery stopped because the record does not follow its sender's last delivered message
}

// NewOrderer returns an orderer for senders ranks that keeps at most
// capacity records. Delivery starts at global number 1 and at sequence 1
// of every sender; use Resume to start elsewhere.
func NewOrderer(senders, capacity int) *Orderer {
	if capacity < 1 {
		capacity = 1
	}
	// The set starts small and doubles as records come: an idle group's
	// orderer holds next to nothing.
	return &Orderer{avail: make([]uint64, senders), delivered: make([]uint64, senders), next: 1, set: make([]Record, min(capacity, 16)), capacity: capacity}
}

// Resume restarts delivery at nextGlobal, with delivered[s] the highest
// sequence number of sender s already delivered, and forgets every record.
// Data availability is kept.
func (o *Orderer) Resume(delivered []uint64, nextGlobal uint64) {
	copy(o.delivered, delivered)
	o.next = nextGlobal
	o.lo, o.hi, o.cur = 0, 0, 0
}

// Stats returns the counters.
func (o *Orderer) Stats() OrdererStats { return o.stats }

// NextGlobal is the global number of the next message to deliver.
func (o *Orderer) NextGlobal() uint64 { return o.next }

// Delivered is the highest sequence number of sender delivered.
func (o *Orderer) Delivered(sender int) uint64 { return o.delivered[sender] }

// Full reports whether the record set is full: later records will be
// dropped until deliveries and Release make room (an earlier record evicts
// the latest one not yet started, so delivery never deadlocks on a set
// filled with records from its future). The caller should stop
// observing (at the sequencer) or NAK later.
func (o *Orderer) Full() bool { return o.hi-o.lo == o.capacity }

// Available reports that sender's total-order messages are held
// contiguously up to upTo.
func (o *Orderer) Available(sender int, upTo uint64) {
	if sender >= 0 && sender < len(o.avail) && upTo > o.avail[sender] {
		o.avail[sender] = upTo
	}
}

// AddRecords adds order records, in any order, duplicates allowed. It
// returns how many were new and kept; the others are counted in Stats.
func (o *Orderer) AddRecords(recs []Record) int {
	added := 0
	for _, r := range recs {
		if o.add(r) {
			added++
		}
	}
	return added
}

func (o *Orderer) add(r Record) bool {
	if !r.valid(len(o.avail)) {
		o.stats.Invalid++
		return false
	}
	if r.End() <= o.next && (o.hi == o.lo || r.Global < o.set[o.lo].Global) {
		o.stats.Duplicate++ // delivered and released (or before Resume)
		return false
	}
	// Fast path: the next record in global order, the usual case.
	i := o.hi
	if o.hi > o.lo && r.Global < o.set[o.hi-1].End() {
		i = o.search(r.Global)
		if i < o.hi && o.set[i].Global == r.Global {
			if o.set[i] == r {
				o.stats.Duplicate++
			} else {
				o.stats.Conflict++
			}
			return false
		}
	}
	if (i > o.lo && o.set[i-1].End() > r.Global) || (i < o.hi && r.End() > o.set[i].Global) {
		o.stats.Conflict++
		return false
	}
	if o.hi-o.lo == len(o.set) && len(o.set) < o.capacity {
		set := make([]Record, min(2*len(o.set), o.capacity))
		o.hi = copy(set, o.set[o.lo:o.hi])
		i -= o.lo
		o.cur -= o.lo
		o.set, o.lo = set, 0
	}
	if o.hi-o.lo == len(o.set) {
		o.stats.Full++
		// Make room for an earlier record by dropping the latest, not yet
		// started one (it will be sent again): the record delivery waits
		// for must always find room.
		if i == o.hi || o.set[o.hi-1].Global <= o.next {
			return false
		}
		o.hi--
	}
	if o.hi == len(o.set) {
		n := copy(o.set, o.set[o.lo:o.hi])
		i -= o.lo
		o.cur -= o.lo
		o.lo, o.hi = 0, n
	}
	copy(o.set[i+1:o.hi+1], o.set[i:o.hi])
	o.set[i] = r
	o.hi++
	if i < o.cur {
		o.cur++
	}
	return true
}

// search returns the first index in set[lo:hi] whose Global is >= g.
func (o *Orderer) search(g uint64) int {
	a, b := o.lo, o.hi
	for a < b {
		m := int(uint(a+b) >> 1)
		if o.set[m].Global < g {
			a = m + 1
		} else {
			b = m
		}
	}
	return a
}

// Next returns the next message to deliver in global order and counts it
// delivered, or ok false if its record or its data is missing.
func (o *Orderer) Next() (sender int, seq uint64, global uint64, ok bool) {
	sender, seq, global, ok = o.Peek()
	if ok {
		o.delivered[sender] = seq
		o.next++
	}
	return sender, seq, global, ok
}

// Peek returns what Next would return, without delivering it.
func (o *Orderer) Peek() (sender int, seq uint64, global uint64, ok bool) {
	for o.cur < o.hi && o.set[o.cur].End() <= o.next {
		o.cur++
	}
	if o.cur == o.hi {
		return 0, 0, 0, false
	}
	r := &o.set[o.cur]
	if r.Global > o.next {
		return 0, 0, 0, false
	}
	seq = r.First + (o.next - r.Global)
	if seq != o.delivered[r.Sender]+1 {
		// Not this sender's next message: the sequencer broke FIFO. Stop
		// rather than deliver out of order.
		if o.gapAt != o.next { // count each stop once, however often it is asked
			o.gapAt = o.next
			o.stats.Gap++
		}
		return 0, 0, 0, false
	}
	if o.avail[r.Sender] < seq {
		return 0, 0, 0, false
	}
	return r.Sender, seq, o.next, true
}

// Room is how many more records the set can take without dropping any.
func (o *Orderer) Room() int { return o.capacity - (o.hi - o.lo) }

// Release forgets the records wholly below global number stable (delivered
// everywhere, so no view change will need them). Records not yet delivered
// here are kept.
func (o *Orderer) Release(stable uint64) {
	stable = min(stable, o.next)
	for o.lo < o.hi && o.set[o.lo].End() <= stable {
		o.lo++
	}
	if o.cur < o.lo {
		o.cur = o.lo
	}
	if o.lo == o.hi {
		o.lo, o.hi, o.cur = 0, 0, 0
	}
}
