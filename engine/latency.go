package engine

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds of Stats.Latency's buckets: powers
// of two from 16 µs to about 1 s; a last bucket takes what is slower.
var LatencyBuckets = func() []time.Duration {
	b := make([]time.Duration, latencyBuckets-1)
	for i := range b {
		b[i] = latencyFirst << i
	}
	return b
}()

const (
	latencyFirst   = 16 * time.Microsecond
	latencyBuckets = 18
	// latencyEvery: one own message in 64 is timed (two clock readings),
	// so the histogram costs next to nothing even at millions of
	// messages per second, and still gets thousands of samples per
	// second at full speed.
	latencyEvery = 64
	latencySlots = 512 // timed messages in flight, at most: a default window (32768 messages) of them
)

// Latency is a histogram of this member's own messages' time from Send
// (the moment the message entered the send window) to this member's own
// delivery of it, sampled one message in 64. Since a member delivers its
// own messages only once their ordering allows (a Total message once
// ordered, a Safe one once every member holds it), this is the group's
// delivery latency as its senders see it. Buckets[i] counts samples of
// at most LatencyBuckets[i] (the last one: slower); Sum is their total.
type Latency struct {
	Buckets [latencyBuckets]uint64
	Count   uint64
	Sum     time.Duration
}

// latencySampler times one own message in latencyEvery. Own messages
// are delivered in the order they entered the window, so the n-th message
// accepted is the n-th own delivery: no identifier needs to travel.
type latencySampler struct {
	accepted  uint64 // own messages in the window so far: under the Sender's lock
	delivered uint64 // own messages delivered: the delivery goroutine's
	slots     [latencySlots]struct{ n, at atomic.Int64 }
	buckets   [latencyBuckets]atomic.Uint64
	count     atomic.Uint64
	sum       atomic.Int64
}

// accept counts one own message entering the window; the Sender's lock
// held.
func (s *latencySampler) accept() {
	s.accepted++
	if s.accepted%latencyEvery == 0 {
		slot := &s.slots[s.accepted/latencyEvery%latencySlots]
		slot.at.Store(nanotime())
		slot.n.Store(int64(s.accepted))
	}
}

// delivered counts one own delivery, on the delivery goroutine.
func (s *latencySampler) deliver() {
	s.delivered++
	if s.delivered%latencyEvery != 0 {
		return
	}
	slot := &s.slots[s.delivered/latencyEvery%latencySlots]
	n := int64(s.delivered)
	at := slot.at.Load()
	if slot.n.Load() != n || slot.at.Load() != at {
		return // overwritten: more than latencySlots samples in flight
	}
	d := nanotime() - at
	s.count.Add(1)
	s.sum.Add(d)
	s.buckets[latencyBucket(d)].Add(1)
}

// latencyBucket is the index of the first bucket whose bound d ns is
// within.
func latencyBucket(d int64) int {
	for i := range latencyBuckets - 1 {
		if d <= int64(latencyFirst)<<i {
			return i
		}
	}
	return latencyBuckets - 1
}

func (s *latencySampler) read() Latency {
	l := Latency{Count: s.count.Load(), Sum: time.Duration(s.sum.Load())}
	for i := range l.Buckets {
		l.Buckets[i] = s.buckets[i].Load()
	}
	return l
}

// clockBase anchors nanotime: time.Since reads the monotonic clock.
var clockBase = time.Now()

func nanotime() int64 { return int64(time.Since(clockBase)) }
