package ring

import "sync/atomic"

// SPSC is a bounded single-producer, single-consumer queue. The producer
// and consumer never share a cache line of indices; neither locks.
type SPSC[T any] struct {
	slots []T
	mask  uint64
	_     [56]byte
	head  atomic.Uint64 // next slot the producer writes
	_     [56]byte
	tail  atomic.Uint64 // next slot the consumer reads
	_     [56]byte
}

// NewSPSC makes a queue of at least capacity slots (a power of two).
func NewSPSC[T any](capacity int) *SPSC[T] {
	n := uint64(1)
	for n < uint64(capacity) {
		n <<= 1
	}
	return &SPSC[T]{slots: make([]T, n), mask: n - 1}
}

// Push appends v; false when the queue is full. Producer only.
func (q *SPSC[T]) Push(v T) bool {
	h := q.head.Load()
	if h-q.tail.Load() == uint64(len(q.slots)) {
		return false
	}
	q.slots[h&q.mask] = v
	q.head.Store(h + 1)
	return true
}

// Peek returns the oldest element without removing it. Consumer only.
func (q *SPSC[T]) Peek() (*T, bool) {
	t := q.tail.Load()
	if t == q.head.Load() {
		return nil, false
	}
	return &q.slots[t&q.mask], true
}

// Pop removes the oldest element. Consumer only, after a successful Peek.
func (q *SPSC[T]) Pop() {
	t := q.tail.Load()
	var zero T
	q.slots[t&q.mask] = zero
	q.tail.Store(t + 1)
}

// Popped is the number of elements ever removed: a progress counter the
// producer can read.
func (q *SPSC[T]) Popped() uint64 { return q.tail.Load() }

// Len is the number of elements queued.
func (q *SPSC[T]) Len() int { return int(q.head.Load() - q.tail.Load()) }
