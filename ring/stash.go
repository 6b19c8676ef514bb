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
type Stash struct {
	mu sync.Mutex // serializes producers

	slots []stashSlot
	mask  uint64
	arena []byte

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
// payload in flight. slots is rounded up to a power of two.
func NewStash(slots, arenaBytes int) *Stash {
	n := uint64(1)
	for n < uint64(slots) {
		n <<= 1
	}
	return &Stash{slots: make([]stashSlot, n), mask: n - 1, arena: make([]byte, arenaBytes), windowSlots: n, windowBytes: uint64(arenaBytes)}
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
	size := uint64(len(s.arena))
	if n > size {
		return 0, ErrTooLarge
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.head.Load() + 1
	held := seq - 1 - s.tail.Load()
	if held >= uint64(len(s.slots)) || (first && (held >= s.windowSlots || s.writeOff-s.freeOff.Load()+n > s.windowBytes)) {
		return 0, ErrFull
	}
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
	copy(s.arena[p:p+n], payload)
	s.slots[seq&s.mask] = stashSlot{start: start, end: end, length: uint32(n), total: uint32(total), flags: flags}
	s.Reserved += start - s.writeOff
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
	sl := &s.slots[seq&s.mask]
	p := sl.start % uint64(len(s.arena))
	return sl.flags, int(sl.total), s.arena[p : p+uint64(sl.length) : p+uint64(sl.length)], true
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
	s.freeOff.Store(s.slots[seq&s.mask].end)
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
	start := s.freeOff.Load()
	if from > s.tail.Load() {
		start = s.slots[from&s.mask].end
	}
	return int(s.slots[to&s.mask].end - start)
}

// Resent reports whether message seq was sent again to member to at a
// tick after now-linger (see resentMark). Consumer only.
func (s *Stash) Resent(seq uint64, to int, now, linger int64) bool {
	if seq <= s.tail.Load() || seq > s.head.Load() {
		return false
	}
	sl := &s.slots[seq&s.mask]
	return resentRecently(sl.resentTo, sl.resentAt, to, now, linger)
}

// NoteResent records that message seq was sent again to member to at
// tick now. Consumer only.
func (s *Stash) NoteResent(seq uint64, to int, now int64) {
	if seq > s.tail.Load() && seq <= s.head.Load() {
		sl := &s.slots[seq&s.mask]
		sl.resentTo, sl.resentAt = uint16(to), uint32(now)+1
	}
}

// Len is the number of messages held.
func (s *Stash) Len() int { return int(s.head.Load() - s.tail.Load()) }

// Cap is the number of message slots.
func (s *Stash) Cap() int { return len(s.slots) }

// ArenaBytes is the payload capacity.
func (s *Stash) ArenaBytes() int { return len(s.arena) }

// BytesHeld is the arena space in use, wrap-around waste included.
func (s *Stash) BytesHeld() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.writeOff - s.freeOff.Load())
}
