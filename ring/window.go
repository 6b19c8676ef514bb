package ring

// Window is a receiver's store of one sender's messages, indexed by
// sequence number, from arrival (in any order) until release. It is owned
// by one goroutine.
//
// Payloads are copied into an arena in arrival order and freed in sequence
// order; the arena reclaims space from its oldest allocation, so a message
// that arrived late (a retransmission) delays reclamation only while it is
// the oldest one held.
//
// Memory comes on demand: a new window holds nothing, its slots and arena
// grow (doubling) as messages arrive, up to the sizes it was made with,
// and Trim gives them back once it is empty.
type Window struct {
	slots      []windowSlot // a power of two, at most capSlots; nil until needed
	mask       uint64
	capSlots   uint64 // the window's span in sequence numbers (Limit)
	base       uint64 // every sequence number <= base is released
	contiguous uint64 // every sequence number <= contiguous is held or released
	highest    uint64 // highest sequence number held

	arena     []byte
	maxArena  int
	budget    *Budget
	taken     int64   // bytes of budget held: arena and records
	allocs    []alloc // allocation records in allocation order (a ring), as many as slots
	allocMask uint64
	allocHead uint64 // next record to use (monotonic)
	allocTail uint64 // oldest live record (monotonic)
	writeOff  uint64 // monotonic arena offset of the next allocation
	freeOff   uint64 // monotonic arena offset below which space is free
	held      int    // messages held

	// Displaced counts messages dropped to make room for the message
	// that fills the first gap (see Put).
	Displaced uint64

	// overflow holds gap fillers that found no room in the arena even
	// after displacing (see Put), by sequence number; at most
	// len(arena) bytes of them. Allocated the first time it is needed.
	overflow      map[uint64][]byte
	overflowBytes int
	// Overflowed counts gap fillers stored there.
	Overflowed uint64
}

// inOverflow marks a slot whose payload is in the overflow map.
const inOverflow = ^uint64(0)

type windowSlot struct {
	seq    uint64 // 0: empty
	alloc  uint64 // allocation record number
	start  uint64
	length uint32
	total  uint32
	flags  uint8
	mark   uint8 // caller-owned bits (delivered, consumed, ...)
	// The last retransmission of the message (see resentRecently); laid
	// out in the slot's padding, so the slot stays 40 bytes.
	resentTo uint16
	resentAt uint32
}

// resentRecently reports whether a message last sent again to member rto
// at tick rat-1 (rat 0: never; ticks kept modulo 2^32) went to member to
// less than linger ticks before now. A sender that is asked again for a
// message it sent again a moment ago skips it, since the repair is still
// on its way: a requester asks each tick at most, and one that asks
// while a large repair streams in would otherwise get it twice.
func resentRecently(rto uint16, rat uint32, to int, now, linger int64) bool {
	return rat != 0 && int(rto) == to && uint32(now)+1-rat < uint32(linger)
}

// Resent reports whether held message seq was sent again to member to at
// a tick after now-linger.
func (w *Window) Resent(seq uint64, to int, now, linger int64) bool {
	if !w.Has(seq) {
		return false
	}
	sl := &w.slots[seq&w.mask]
	return resentRecently(sl.resentTo, sl.resentAt, to, now, linger)
}

// NoteResent records that held message seq was sent again to member to
// at tick now.
func (w *Window) NoteResent(seq uint64, to int, now int64) {
	if w.Has(seq) {
		sl := &w.slots[seq&w.mask]
		sl.resentTo, sl.resentAt = uint16(to), uint32(now)+1
	}
}

type alloc struct {
	end uint64
	seq uint64 // the message stored there; 0 once freed (sequence numbers start at 1)
}

// PutResult says what Put did with a message.
type PutResult uint8

const (
	Stored    PutResult = iota // new message, stored
	Duplicate                  // already held or released
	Beyond                     // beyond the window: not stored
	NoRoom                     // the arena is full: not stored
)

// NewWindow makes a window of slots sequence numbers (rounded up to a
// power of two) and arenaBytes bytes of payload, allocated as needed.
func NewWindow(slots, arenaBytes int) *Window {
	n := uint64(1)
	for n < uint64(slots) {
		n <<= 1
	}
	return &Window{capSlots: n, maxArena: arenaBytes}
}

// SetBudget makes the window's growth draw on b. Call before use.
func (w *Window) SetBudget(b *Budget) { w.budget = b }

// Smallest allocations of a growing store: 64 slots, 16 KiB of arena
// (or all of a smaller one).
const (
	minSlots = 64
	minArena = 16 << 10
)

const (
	windowSlotBytes = 40
	allocBytes      = 16
)

// growSlots makes room for sequence numbers up to base+need, within
// capSlots; false if the budget refuses (it does not when force).
func (w *Window) growSlots(need uint64, force bool) bool {
	n := max(uint64(len(w.slots)), min(minSlots, w.capSlots))
	for n < need {
		n <<= 1
	}
	n = min(n, w.capSlots)
	if n <= uint64(len(w.slots)) {
		return true
	}
	more := int64(n-uint64(len(w.slots))) * (windowSlotBytes + allocBytes)
	if !w.budget.take(more, force || w.held == 0) {
		return false
	}
	w.taken += more
	slots := make([]windowSlot, n)
	for i := range w.slots {
		if sl := &w.slots[i]; sl.seq != 0 {
			slots[sl.seq&(n-1)] = *sl
		}
	}
	allocs := make([]alloc, n)
	for a := w.allocTail; a < w.allocHead; a++ {
		allocs[a&(n-1)] = w.allocs[a&w.allocMask]
	}
	w.slots, w.mask, w.allocs, w.allocMask = slots, n-1, allocs, n-1
	return true
}

// growArena makes the arena large enough for n more bytes after the live
// ones, laid out again from its start; false if it cannot (at its largest,
// or the budget refuses). Payloads handed out before stay valid: the old
// arena is left as it was.
func (w *Window) growArena(n int) bool {
	live := w.writeOff - w.freeOff
	need := live + uint64(n)
	if need > uint64(w.maxArena) || len(w.arena) == w.maxArena {
		return false
	}
	size := max(2*len(w.arena), min(minArena, w.maxArena))
	for uint64(size) < need {
		size *= 2
	}
	size = min(size, w.maxArena)
	if !w.budget.take(int64(size-len(w.arena)), w.held == 0) {
		return false
	}
	w.taken += int64(size - len(w.arena))
	arena := make([]byte, size)
	off := uint64(0)
	for a := w.allocTail; a < w.allocHead; a++ {
		rec := &w.allocs[a&w.allocMask]
		if rec.seq != 0 {
			if sl := &w.slots[rec.seq&w.mask]; sl.seq == rec.seq && sl.alloc == a {
				p := sl.start % uint64(len(w.arena))
				copy(arena[off:], w.arena[p:p+uint64(sl.length)])
				sl.start = off
				off += uint64(sl.length)
			}
		}
		rec.end = off
	}
	w.arena, w.writeOff, w.freeOff = arena, off, 0
	return true
}

// Trim gives the window's memory back if it holds nothing.
func (w *Window) Trim() {
	if w.held != 0 || w.slots == nil {
		return
	}
	w.budget.give(w.taken)
	w.taken = 0
	w.slots, w.allocs, w.arena, w.mask, w.allocMask = nil, nil, nil, 0, 0
	w.allocHead, w.allocTail, w.writeOff, w.freeOff = 0, 0, 0, 0
}

// Bytes is the memory the window holds now.
func (w *Window) Bytes() int {
	return len(w.arena) + len(w.slots)*(windowSlotBytes+allocBytes)
}

// Base is the last released sequence number.
func (w *Window) Base() uint64 { return w.base }

// Contiguous is the highest sequence number below which nothing is missing.
func (w *Window) Contiguous() uint64 { return w.contiguous }

// Highest is the highest sequence number ever stored.
func (w *Window) Highest() uint64 { return w.highest }

// Held is the number of messages held.
func (w *Window) Held() int { return w.held }

// Limit is the highest sequence number the window can hold now.
func (w *Window) Limit() uint64 { return w.base + w.capSlots }

// Has reports whether seq is held.
func (w *Window) Has(seq uint64) bool {
	return seq > w.base && seq <= w.base+uint64(len(w.slots)) && w.slots[seq&w.mask].seq == seq
}

// Put copies a message into the window.
func (w *Window) Put(seq uint64, flags uint8, total int, payload []byte) PutResult {
	if seq <= w.base || w.Has(seq) {
		return Duplicate
	}
	if seq > w.Limit() {
		return Beyond
	}
	// The message that fills the first gap always gets a slot (and, below,
	// room in the arena or beside it): everything above it waits for it.
	gapFiller := seq == w.contiguous+1
	if seq > w.base+uint64(len(w.slots)) && !w.growSlots(seq-w.base, gapFiller) {
		return NoRoom
	}
	start, end, ok := w.room(len(payload))
	if !ok && w.growArena(len(payload)) {
		start, end, ok = w.room(len(payload))
	}
	for !ok && gapFiller && w.displaceNewest() { // rare: see displaceNewest
		start, end, ok = w.room(len(payload))
	}
	if !ok && gapFiller && w.overflowBytes+len(payload) <= w.maxArena {
		// What is left in the arena lies below the gap and waits to be
		// released: by members' statuses this member may have missed (a
		// member that crashed since never sends them again), and, in a
		// view change, only once this member has filled its cut, with
		// this very message. Keep it outside the arena.
		if w.overflow == nil {
			w.overflow = map[uint64][]byte{}
		}
		w.overflow[seq] = append([]byte(nil), payload...)
		w.overflowBytes += len(payload)
		w.Overflowed++
		w.store(seq, windowSlot{seq: seq, alloc: inOverflow, length: uint32(len(payload)), total: uint32(total), flags: flags})
		return Stored
	}
	if !ok {
		return NoRoom
	}
	n := uint64(len(payload))
	p := start % uint64(len(w.arena))
	copy(w.arena[p:p+n], payload)
	a := w.allocHead
	w.allocHead++
	w.allocs[a&w.allocMask] = alloc{end: end, seq: seq}
	w.writeOff = end
	w.store(seq, windowSlot{seq: seq, alloc: a, start: start, length: uint32(n), total: uint32(total), flags: flags})
	return Stored
}

// store fills seq's slot and moves the marks.
func (w *Window) store(seq uint64, sl windowSlot) {
	w.slots[seq&w.mask] = sl
	w.held++
	if seq > w.highest {
		w.highest = seq
	}
	for w.contiguous+1 <= w.highest && w.Has(w.contiguous+1) {
		w.contiguous++
	}
}

// room finds where n bytes would go: contiguous arena space after the
// newest allocation.
func (w *Window) room(n int) (start, end uint64, ok bool) {
	if w.allocHead-w.allocTail == uint64(len(w.allocs)) && !w.growSlots(uint64(len(w.slots))+1, false) {
		return 0, 0, false
	}
	if len(w.arena) == 0 {
		return 0, 0, false
	}
	size := uint64(len(w.arena))
	start = w.writeOff
	if pos := start % size; pos+uint64(n) > size {
		start += size - pos
	}
	end = start + uint64(n)
	return start, end, end-w.freeOff <= size
}

// displaceNewest undoes the newest allocation if its message lies beyond
// the first gap (or was released already), and reports whether it did.
//
// The message that fills the first gap must always find room, or the
// window could never move again: everything above the gap waits for it,
// and nothing above it can be released first. Senders keep a receiver
// within its window (flow control), but arrival order decides where
// payloads sit in the arena, so a pattern of losses and repairs could
// still leave it without contiguous room. Messages beyond the gap are
// neither delivered nor released, so dropping them is safe: they are
// asked for again like any loss.
func (w *Window) displaceNewest() bool {
	if w.allocHead == w.allocTail {
		return false
	}
	a := w.allocHead - 1
	rec := w.allocs[a&w.allocMask]
	if rec.seq != 0 {
		sl := &w.slots[rec.seq&w.mask]
		if rec.seq <= w.contiguous+1 || sl.seq != rec.seq || sl.alloc != a {
			return false
		}
		sl.seq = 0
		w.held--
		w.Displaced++
	}
	w.allocHead = a
	if a == w.allocTail {
		w.writeOff = w.freeOff
	} else {
		w.writeOff = w.allocs[(a-1)&w.allocMask].end
	}
	return true
}

// Get returns a held message. The payload aliases the arena and is valid
// until the message is released.
func (w *Window) Get(seq uint64) (flags uint8, total int, payload []byte, ok bool) {
	if !w.Has(seq) {
		return 0, 0, nil, false
	}
	sl := &w.slots[seq&w.mask]
	if sl.alloc == inOverflow {
		b := w.overflow[seq]
		return sl.flags, int(sl.total), b[:len(b):len(b)], true
	}
	p := sl.start % uint64(len(w.arena))
	return sl.flags, int(sl.total), w.arena[p : p+uint64(sl.length) : p+uint64(sl.length)], true
}

// Mark returns the caller-owned bits of a held message (0 if not held).
func (w *Window) Mark(seq uint64) uint8 {
	if !w.Has(seq) {
		return 0
	}
	return w.slots[seq&w.mask].mark
}

// SetMark ors bits into the caller-owned bits of a held message.
func (w *Window) SetMark(seq uint64, bits uint8) {
	if w.Has(seq) {
		w.slots[seq&w.mask].mark |= bits
	}
}

// Release frees every held message up to and including seq, which must not
// exceed Contiguous (messages are released only once nothing below them is
// missing).
func (w *Window) Release(seq uint64) {
	if seq > w.contiguous {
		seq = w.contiguous
	}
	if w.held == 0 {
		if seq > w.base { // only after Skip: nothing is stored
			w.base = seq
		}
		return
	}
	for s := w.base + 1; s <= seq; s++ {
		sl := &w.slots[s&w.mask]
		if sl.seq == s {
			if sl.alloc == inOverflow {
				w.overflowBytes -= len(w.overflow[s])
				delete(w.overflow, s)
			} else {
				w.allocs[sl.alloc&w.allocMask].seq = 0
			}
			sl.seq = 0
			w.held--
		}
	}
	if seq > w.base {
		w.base = seq
	}
	for w.allocTail < w.allocHead && w.allocs[w.allocTail&w.allocMask].seq == 0 {
		w.freeOff = w.allocs[w.allocTail&w.allocMask].end
		w.allocTail++
	}
	if w.allocTail == w.allocHead {
		// Nothing is live: start the next allocation at the arena's start,
		// so that a large message does not wait for a wrap.
		size := uint64(len(w.arena))
		w.writeOff = (w.writeOff + size - 1) / size * size
		w.freeOff = w.writeOff
	}
}

// Skip moves an empty window forward so that its next expected sequence
// number is seq+1: used when a member starts receiving a sender mid-stream.
func (w *Window) Skip(seq uint64) {
	if w.held == 0 && seq > w.base {
		w.base, w.contiguous = seq, seq
		if w.highest < seq {
			w.highest = seq
		}
	}
}
