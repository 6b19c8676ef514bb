package transfer

// Sender is the donor's side of one transfer to one joiner.
type Sender struct {
	id     uint64
	data   []byte
	chunk  int
	window uint64
	rto    int64
	abort  uint8 // flags of an abort chunk; 0: not aborted

	acked   uint64 // the joiner has every byte before this
	limit   uint64 // the joiner has room up to this offset
	next    uint64 // next offset to send
	emptyTx bool   // a zero-length state: its one chunk was sent
	retx    bool   // resend the chunk at acked first
	dups    int
	gotAck  bool
	done    bool

	now       int64
	progress  int64 // tick of the last progress (or of the last timeout)
	lastHeard int64

	Retransmits uint64 // chunks sent again (timeouts and fast retransmits)
}

// NewSender starts a transfer of data (the whole state) in chunks of at
// most chunk bytes, keeping at most window bytes unacknowledged, going
// back after rto ticks without progress. With abort set it sends one
// chunk telling the joiner that no state will come, and with none set
// too, that this is because the donor keeps none.
func NewSender(id uint64, data []byte, chunk, window, rto int, abort, none bool) *Sender {
	var fl uint8
	if abort || none {
		data = nil
		fl = FlagAbort
		if none {
			fl |= FlagNone
		}
	}
	return &Sender{id: id, data: data, chunk: max(1, chunk), window: uint64(max(chunk, window)),
		rto: int64(max(1, rto)), abort: fl, limit: uint64(max(chunk, window))}
}

// ID is the transfer's id.
func (s *Sender) ID() uint64 { return s.id }

// Done reports whether the joiner acknowledged the whole state.
func (s *Sender) Done() bool { return s.done }

// Silent is how many ticks passed since the joiner was last heard (or the
// transfer started).
func (s *Sender) Silent() int64 { return s.now - s.lastHeard }

// Tick advances the sender's clock: without progress for a timeout, it
// goes back to the last acknowledged offset.
func (s *Sender) Tick() {
	s.now++
	if s.done {
		return
	}
	inFlight := s.next > s.acked || (len(s.data) == 0 && s.emptyTx)
	if inFlight && s.now-s.progress >= s.rto {
		s.next = s.acked
		s.emptyTx = false
		s.progress = s.now
	}
}

// OnAck handles the joiner's cumulative acknowledgement.
func (s *Sender) OnAck(next, limit uint64) {
	s.lastHeard = s.now
	total := uint64(len(s.data))
	if next > total {
		return // not ours
	}
	s.gotAck = true
	if limit > s.limit {
		s.limit = limit
		s.progress = s.now
	}
	switch {
	case next > s.acked:
		s.acked = next
		s.dups = 0
		s.progress = s.now
		if s.next < s.acked {
			s.next = s.acked
		}
	case next == s.acked && s.next > s.acked:
		if s.dups++; s.dups == 3 {
			s.retx = true
		}
	}
	if s.acked == total {
		s.done = true
	}
}

// Next returns the next chunk to send now, if the window allows one. The
// data aliases the state.
func (s *Sender) Next() (off, total uint64, flags uint8, data []byte, ok bool) {
	total = uint64(len(s.data))
	flags = s.abort
	if s.done {
		return 0, 0, 0, nil, false
	}
	if total == 0 {
		if s.emptyTx {
			return 0, 0, 0, nil, false
		}
		s.emptyTx = true
		return 0, 0, flags, nil, true
	}
	if s.retx {
		s.retx = false
		s.Retransmits++
		return s.acked, total, flags, s.data[s.acked:min(total, s.acked+uint64(s.chunk))], true
	}
	end := min(total, s.acked+s.window, s.limit)
	if s.next >= end {
		return 0, 0, 0, nil, false
	}
	n := min(uint64(s.chunk), total-s.next)
	off = s.next
	s.next += n
	return off, total, flags, s.data[off : off+n], true
}

// Receiver is the joiner's side of one transfer.
type Receiver struct {
	id     uint64
	buffer uint64 // bytes it takes beyond what the application consumed
	rto    int64

	total     uint64
	haveTotal bool
	next      uint64            // every byte before it has arrived
	ooo       map[uint64][]byte // chunks past a gap, by offset
	oooBytes  uint64
	consumed  uint64
	out       [][]byte
	aborted   bool
	none      bool

	now       int64
	ackDue    bool
	lastAck   int64
	announced uint64 // limit in the last ack sent

	Duplicates uint64 // chunks received that were not needed
}

// NewReceiver waits for transfer id, buffering up to buffer bytes not yet
// consumed, sending a keepalive Ack every rto ticks until complete.
func NewReceiver(id uint64, buffer, rto int) *Receiver {
	return &Receiver{id: id, buffer: uint64(max(1, buffer)), rto: int64(max(1, rto)), ooo: map[uint64][]byte{}}
}

// ID is the transfer's id.
func (r *Receiver) ID() uint64 { return r.id }

func (r *Receiver) limit() uint64 { return r.consumed + r.buffer }

// Complete reports whether the whole state has arrived.
func (r *Receiver) Complete() bool { return r.haveTotal && r.next == r.total }

// Aborted reports whether the donor said no state will come.
func (r *Receiver) Aborted() bool { return r.aborted }

// None reports whether the donor said it keeps no state (with Aborted).
func (r *Receiver) None() bool { return r.none }

// OnChunk handles a chunk. data is copied if kept.
func (r *Receiver) OnChunk(off, total uint64, flags uint8, data []byte) {
	r.ackDue = true
	if flags&FlagAbort != 0 {
		r.aborted = true
		r.none = flags&FlagNone != 0
		r.haveTotal, r.total = true, r.next
		return
	}
	if r.aborted || (r.haveTotal && total != r.total) {
		return
	}
	r.haveTotal, r.total = true, total
	end := off + uint64(len(data))
	switch {
	case end <= r.next || off >= r.limit() || end > total:
		if len(data) > 0 {
			r.Duplicates++
		}
		return
	case off <= r.next:
		r.out = append(r.out, append([]byte(nil), data[r.next-off:]...))
		r.next = end
	default:
		if _, ok := r.ooo[off]; ok || r.oooBytes+uint64(len(data)) > r.buffer {
			// Kept chunks never exceed the buffer, whatever offsets
			// damaged or forged chunks name.
			r.Duplicates++
			return
		}
		r.ooo[off] = append([]byte(nil), data...)
		r.oooBytes += uint64(len(data))
		return
	}
	// Pull in kept chunks that now follow on (the donor's chunks are
	// aligned, so they start exactly where the data so far ends).
	for {
		d, ok := r.ooo[r.next]
		if !ok {
			return
		}
		delete(r.ooo, r.next)
		r.oooBytes -= uint64(len(d))
		r.out = append(r.out, d)
		r.next += uint64(len(d))
	}
}

// Take returns the state bytes that arrived in order since the last call.
func (r *Receiver) Take() [][]byte {
	out := r.out
	r.out = nil
	return out
}

// Consumed tells the receiver the application has consumed n bytes in
// all; the room freed is announced to the donor.
func (r *Receiver) Consumed(n uint64) {
	if n <= r.consumed {
		return
	}
	r.consumed = n
	if r.limit()-r.announced >= r.buffer/4 {
		r.ackDue = true
	}
}

// Tick advances the receiver's clock.
func (r *Receiver) Tick() {
	r.now++
	if !r.Complete() && r.now-r.lastAck >= r.rto {
		r.ackDue = true
	}
}

// Ack returns the acknowledgement to send now, if one is due.
func (r *Receiver) Ack() (next, limit uint64, ok bool) {
	if !r.ackDue {
		return 0, 0, false
	}
	r.ackDue = false
	r.lastAck = r.now
	r.announced = r.limit()
	return r.next, r.announced, true
}
