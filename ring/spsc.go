package ring

import "sync/atomic"

// SPSC is a bounded single-producer, single-consumer queue. The producer
// and consumer never share a cache line of indices; neither locks.
//
// Its elements live in segments of spscSegment, linked in order and
// taken as the queue fills: an empty queue holds one segment, whatever
// its capacity. The consumer hands each segment it is done with back to
// the producer (one is kept spare), so a steady flow allocates nothing.
type SPSC[T any] struct {
	capacity uint64
	_        [56]byte
	head     atomic.Uint64   // elements ever pushed
	prodSeg  *spscSegment[T] // the segment the producer writes (producer only)
	_        [48]byte
	tail     atomic.Uint64   // elements ever popped
	consSeg  *spscSegment[T] // the segment the consumer reads (consumer only)
	consBase uint64          // the element number consSeg starts at
	_        [40]byte
	spare    atomic.Pointer[spscSegment[T]]
}

const spscSegmentLen = 64

type spscSegment[T any] struct {
	items [spscSegmentLen]T
	next  atomic.Pointer[spscSegment[T]]
}

// NewSPSC makes a queue of capacity elements.
func NewSPSC[T any](capacity int) *SPSC[T] {
	s := new(spscSegment[T])
	return &SPSC[T]{capacity: uint64(max(capacity, 1)), prodSeg: s, consSeg: s}
}

// Push appends v; false when the queue is full. Producer only.
func (q *SPSC[T]) Push(v T) bool {
	h := q.head.Load()
	if h-q.tail.Load() == q.capacity {
		return false
	}
	i := h % spscSegmentLen
	if i == 0 && h != 0 {
		s := q.spare.Swap(nil)
		if s == nil {
			s = new(spscSegment[T])
		}
		q.prodSeg.next.Store(s) // before head: the consumer finds it
		q.prodSeg = s
	}
	q.prodSeg.items[i] = v
	q.head.Store(h + 1)
	return true
}

// Peek returns the oldest element without removing it. Consumer only.
func (q *SPSC[T]) Peek() (*T, bool) {
	t := q.tail.Load()
	if t == q.head.Load() {
		return nil, false
	}
	if t-q.consBase == spscSegmentLen {
		done := q.consSeg
		q.consSeg, q.consBase = done.next.Load(), t
		done.next.Store(nil)
		q.spare.Store(done) // the producer is past it
	}
	return &q.consSeg.items[t-q.consBase], true
}

// Pop removes the oldest element. Consumer only, after a successful Peek.
func (q *SPSC[T]) Pop() {
	t := q.tail.Load()
	var zero T
	q.consSeg.items[t-q.consBase] = zero
	q.tail.Store(t + 1)
}

// Popped is the number of elements ever removed: a progress counter the
// producer can read.
func (q *SPSC[T]) Popped() uint64 { return q.tail.Load() }

// Len is the number of elements queued.
func (q *SPSC[T]) Len() int { return int(q.head.Load() - q.tail.Load()) }
