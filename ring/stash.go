package ring

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrFull means the stash has no room for the message until stable messages
// are released: the sender must wait (flow control).
var ErrFull = errors.New("ring: stash full")

// ErrTooLarge means a single message is larger than the whole arena.
var ErrTooLarge = errors.New("ring: message larger than the stash")

// Stash is a sender's store of its own messages, in sequence order, from
// Append until Release. Appends may come from many goroutines (they are
// serialized by a mutex); everything else is for one consumer goroutine,
// the protocol loop, which reads what was appended without locking:
// entries below Head never change until the consumer releases them.
//
// Memory comes on demand: slots and arena grow (doubling) as messages are
// appended, up to the sizes the stash was made with, and Trim gives them
// back once it is empty. A producer grows them into a new store, with
// every held message copied at the same offsets; the consumer reads the
// store after Head, so it finds every message it may ask for.
type Stash struct {
	mu sync.Mutex // serializes producers

	store    atomic.Pointer[stashStore]
	capSlots uint64 // largest number of slots (a power of two)
	// The arena's sizes are firstArena<<k up to maxArena: offsets taken
	// modulo one size keep a message contiguous modulo the next.
	firstArena, maxArena uint64
	budget               *Budget
	taken                int64 // bytes of budget held (producers' lock)

	// The flow-control window, within the capacity: a message's first
	// piece is taken only within it (see Append).
	windowSlots uint64
	windowBytes uint64

	head atomic.Uint64 // last appended sequence number (0: none)
	tail atomic.Uint64 // last released sequence number

	// Producer-side arena cursor; consumer-side free cursor.
	writeOff uint64 // total bytes ever reserved (monotonic)
	freeOff  atomic.Uint64
	Reserved uint64 // bytes wasted by wrap-around, for stats

	// count, when set, counts what the stash holds (arena space, wrap
	// waste included) together with other stashes: Append adds, Release
	// subtracts (see ShareCount).
	count *atomic.Int64
}

type stashStore struct {
	slots []stashSlot
	mask  uint64
	arena []byte
}

type stashSlot struct {
	start  uint64 // monotonic arena offset of the payload
	end    uint64 // monotonic arena offset after the payload (and any skip)
	length uint32
	total  uint32 // whole message size for a first fragment
	flags  uint8
	// The last retransmission (see resentRecently), in the slot's
	// padding: the slot stays 32 bytes.
	resentTo uint16
	resentAt uint32
}

// NewStash makes a stash for at most slots messages and arenaBytes bytes of
// payload in flight (both allocated as needed). slots is rounded up to a
// power of two, arenaBytes up to a multiple of the arena's first size.
func NewStash(slots, arenaBytes int) *Stash {
	n := uint64(1)
	for n < uint64(slots) {
		n <<= 1
	}
	first := uint64(arenaBytes)
	for first >= 2*minArena {
		first = (first + 1) / 2
	}
	maxArena := first
	for maxArena < uint64(arenaBytes) {
		maxArena *= 2
	}
	s := &Stash{capSlots: n, firstArena: first, maxArena: maxArena, windowSlots: n, windowBytes: maxArena}
	s.store.Store(&stashStore{})
	return s
}

// SetBudget makes the stash's growth draw on b. Call before use.
func (s *Stash) SetBudget(b *Budget) { s.budget = b }

const stashSlotBytes = 32

// grow makes a store with room for held+1 slots and, after writeOff, n
// bytes (more than the current store holds); false if the budget refuses.
// Producers' lock held.
func (s *Stash) grow(st *stashStore, held, n uint64) (*stashStore, bool) {
	slots := max(uint64(len(st.slots)), min(minSlots, s.capSlots))
	for slots < held+1 {
		slots *= 2
	}
	size := max(uint64(len(st.arena)), s.firstArena)
	for size < s.maxArena && !fits(s.writeOff, s.freeOff.Load(), n, size) {
		size *= 2
	}
	more := int64(slots-uint64(len(st.slots)))*stashSlotBytes + int64(size-uint64(len(st.arena)))
	if !s.budget.take(more, held == 0) {
		return st, false
	}
	s.taken += more
	ns := &stashStore{slots: make([]stashSlot, slots), mask: slots - 1, arena: make([]byte, size)}
	for q := s.tail.Load() + 1; q <= s.head.Load(); q++ {
		// Field by field: the consumer may be noting a retransmission in
		// the old slot meanwhile (that note is lost, which only means a
		// repair may be sent twice).
		o := &st.slots[q&st.mask]
		ns.slots[q&ns.mask] = stashSlot{start: o.start, end: o.end, length: o.length, total: o.total, flags: o.flags}
		p, np := o.start%uint64(len(st.arena)), o.start%size
		copy(ns.arena[np:np+uint64(o.length)], st.arena[p:p+uint64(o.length)])
	}
	s.store.Store(ns)
	return ns, true
}

// fits reports whether n bytes can go after writeOff in an arena of size
// bytes whose live bytes start at freeOff.
func fits(writeOff, freeOff, n, size uint64) bool {
	start := writeOff
	if pos := start % size; pos+n > size {
		start += size - pos
	}
	return start+n-freeOff <= size
}

// Trim gives the stash's memory back if it holds nothing. Consumer only.
func (s *Stash) Trim() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head.Load() != s.tail.Load() || s.taken == 0 {
		return
	}
	s.budget.give(s.taken)
	s.taken = 0
	s.store.Store(&stashStore{})
}

// ShareCount has c count what the stash holds, from now on, with what
// other stashes sharing c hold (an engine bounds the sum over its
// groups): what it holds now moves from the counter it had to c; nil
// stops counting. Consumer side (it runs with Release, not with it).
func (s *Stash) ShareCount(c *atomic.Int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == s.count {
		return
	}
	held := int64(s.writeOff - s.freeOff.Load())
	if s.count != nil {
		s.count.Add(-held)
	}
	if c != nil {
		c.Add(held)
	}
	s.count = c
}

// Bytes is the memory the stash holds now.
func (s *Stash) Bytes() int {
	st := s.store.Load()
	return len(st.arena) + len(st.slots)*stashSlotBytes
}

// SetWindow limits where a message may start: with fewer than slots
// messages and bytes payload bytes held. The rest of the capacity is for
// the later pieces of a message already started. Call before use.
func (s *Stash) SetWindow(slots, bytes int) {
	s.windowSlots, s.windowBytes = uint64(slots), uint64(bytes)
}

// Append copies payload into the stash under the next sequence number and
// returns it. first says that payload begins a message, which must then
// fit the window (SetWindow); a later piece of a message needs only room.
// It returns ErrFull when the payload does not fit until messages are
// released; the caller retries after Release.
func (s *Stash) Append(flags uint8, total int, payload []byte, first bool) (uint64, error) {
	n := uint64(len(payload))
	if n > s.maxArena {
		return 0, ErrTooLarge
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.head.Load() + 1
	held := seq - 1 - s.tail.Load()
	if held >= s.capSlots || (first && (held >= s.windowSlots || s.writeOff-s.freeOff.Load()+n > s.windowBytes)) {
		return 0, ErrFull
	}
	st := s.store.Load()
	if held >= uint64(len(st.slots)) || (len(st.arena) < int(s.maxArena) && !fits(s.writeOff, s.freeOff.Load(), n, uint64(len(st.arena)))) {
		var ok bool
		if st, ok = s.grow(st, held, n); !ok {
			return 0, ErrFull
		}
	}
	size := uint64(len(st.arena))
	start := s.writeOff
	// Payloads are contiguous in the arena: skip to the start when the
	// message would wrap.
	if pos := start % size; pos+n > size {
		start += size - pos
	}
	end := start + n
	if end-s.freeOff.Load() > size {
		return 0, ErrFull
	}
	p := start % size
	copy(st.arena[p:p+n], payload)
	st.slots[seq&st.mask] = stashSlot{start: start, end: end, length: uint32(n), total: uint32(total), flags: flags}
	s.Reserved += start - s.writeOff
	if s.count != nil {
		s.count.Add(int64(end - s.writeOff))
	}
	s.writeOff = end
	s.head.Store(seq) // publishes the slot to the consumer
	return seq, nil
}

// Head is the last appended sequence number.
func (s *Stash) Head() uint64 { return s.head.Load() }

// Tail is the last released sequence number.
func (s *Stash) Tail() uint64 { return s.tail.Load() }

// Get returns the message with sequence number seq, which must lie in
// (Tail, Head]. The payload aliases the arena and stays valid until seq is
// released. Consumer only.
func (s *Stash) Get(seq uint64) (flags uint8, total int, payload []byte, ok bool) {
	if seq <= s.tail.Load() || seq > s.head.Load() {
		return 0, 0, nil, false
	}
	st := s.store.Load() // after Head: it holds seq
	sl := &st.slots[seq&st.mask]
	p := sl.start % uint64(len(st.arena))
	return sl.flags, int(sl.total), st.arena[p : p+uint64(sl.length) : p+uint64(sl.length)], true
}

// Release frees every message up to and including seq. Consumer only.
func (s *Stash) Release(seq uint64) {
	tail := s.tail.Load()
	if head := s.head.Load(); seq > head {
		seq = head
	}
	if seq <= tail {
		return
	}
	st := s.store.Load()
	free := st.slots[seq&st.mask].end
	if s.count != nil {
		s.count.Add(-int64(free - s.freeOff.Load()))
	}
	s.freeOff.Store(free)
	s.tail.Store(seq)
}

// BytesBetween is the arena space held by the messages after from up to
// to (to at most Head), wrap-around waste included; from at or below Tail
// counts from the oldest message held. It does not read Head, which
// producers move meanwhile. Consumer only.
func (s *Stash) BytesBetween(from, to uint64) int {
	if to <= from || to <= s.tail.Load() {
		return 0
	}
	st := s.store.Load() // after the caller read to from Head
	start := s.freeOff.Load()
	if from > s.tail.Load() {
		start = st.slots[from&st.mask].end
	}
	return int(st.slots[to&st.mask].end - start)
}

// Resent reports whether message seq was sent again to member to at a
// tick after now-linger (see resentMark). Consumer only.
func (s *Stash) Resent(seq uint64, to int, now, linger int64) bool {
	if seq <= s.tail.Load() || seq > s.head.Load() {
		return false
	}
	st := s.store.Load()
	sl := &st.slots[seq&st.mask]
	return resentRecently(sl.resentTo, sl.resentAt, to, now, linger)
}

// NoteResent records that message seq was sent again to member to at
// tick now. Consumer only.
func (s *Stash) NoteResent(seq uint64, to int, now int64) {
	if seq > s.tail.Load() && seq <= s.head.Load() {
		st := s.store.Load()
		sl := &st.slots[seq&st.mask]
		sl.resentTo, sl.resentAt = uint16(to), uint32(now)+1
	}
}

// Len is the number of messages held.
func (s *Stash) Len() int { return int(s.head.Load() - s.tail.Load()) }

// Cap is the largest number of messages held.
func (s *Stash) Cap() int { return int(s.capSlots) }

// ArenaBytes is the largest payload capacity.
func (s *Stash) ArenaBytes() int { return int(s.maxArena) }

// BytesHeld is the arena space in use, wrap-around waste included.
func (s *Stash) BytesHeld() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.writeOff - s.freeOff.Load())
}
