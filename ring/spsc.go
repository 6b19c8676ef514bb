package ring

import "sync/atomic"

// SPSC is a bounded single-producer, single-consumer queue. The producer
// and consumer never share a cache line of indices; neither locks.
//
// Its elements live in segments of spscSegment, linked in order and
// taken as the queue fills: an empty queue holds one segment, whatever
// its capacity. The consumer hands each segment it is done with back to
// the producer through a small ring of spares (spscSpares of them), so a
// steady flow allocates nothing even when the consumer runs many segments
// behind; a segment that finds the ring full is left to the collector.
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
	// Spare segments, returned by the consumer and taken by the producer:
	// an SPSC ring of its own, flowing the other way.
	spares    [spscSpares]atomic.Pointer[spscSegment[T]]
	sparesIn  atomic.Uint64 // segments ever returned (consumer only writes)
	_         [56]byte
	sparesOut atomic.Uint64 // segments ever taken (producer only writes)
}

const (
	spscSegmentLen = 64
	// spscSpares bounds the segments a queue keeps for reuse (about 4 KiB
	// each for the engine's deliveries): enough for the engine's default
	// delivery queue (4,096 + 64 elements) to cycle without allocating,
	// which is worth about a tenth of its throughput; Trim gives them back.
	spscSpares = 66
)

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
		s := q.takeSpare()
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
		q.returnSpare(done) // the producer is past it
	}
	return &q.consSeg.items[t-q.consBase], true
}

// takeSpare returns a segment the consumer is done with, or nil. Producer only.
func (q *SPSC[T]) takeSpare() *spscSegment[T] {
	out := q.sparesOut.Load()
	if out == q.sparesIn.Load() {
		return nil
	}
	slot := &q.spares[out%spscSpares]
	s := slot.Load()
	slot.Store(nil)
	q.sparesOut.Store(out + 1)
	return s
}

// Trim lets the collector have the spare segments, so a queue that was
// deep once does not keep its depth's memory while idle: its owner calls
// it now and then (the engine, once a second). Producer only.
func (q *SPSC[T]) Trim() {
	for q.takeSpare() != nil {
	}
}

// returnSpare offers a finished segment to the producer; when the spares
// are full it is dropped. Consumer only.
func (q *SPSC[T]) returnSpare(s *spscSegment[T]) {
	in := q.sparesIn.Load()
	if in-q.sparesOut.Load() == spscSpares {
		return
	}
	q.spares[in%spscSpares].Store(s)
	q.sparesIn.Store(in + 1)
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
