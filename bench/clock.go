package bench

import (
	"time"
	_ "unsafe" // for go:linkname
)

// Send times carried in messages, and the receive times they are
// compared with for one-way latency, are read from the system's
// monotonic clock: one vDSO call (22 ns on the reference machine) where
// time.Now makes two (44 ns). CLOCK_MONOTONIC is one clock for every
// process of the machine, so a stamp from one member and a reading in
// another compare. Even so, reading it for every message sent and every
// one delivered took up to a sixth of an engine member's CPU at
// saturation and over a third of a baseline receiver's: only a sample of
// the messages is stamped and timed (sampleEvery).
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// clock stamps and times the sample: nanotime, which tests replace to
// count its reads.
var clock = nanotime

// stampNow reads the monotonic clock, in ns. It is never 0, the stamp of
// a message that carries none.
func stampNow() int64 { return clock() }

// stampOf converts a wall-clock time into the monotonic clock, to within
// the moment between the two readings: measured windows are set in
// wall-clock time, which the coordinator and its children share.
func stampOf(t time.Time) int64 {
	return t.UnixNano() - time.Now().UnixNano() + nanotime()
}

// The latency sample. The figures it is chosen by were measured with 64 B
// messages on 2 cores, where 3 members carry 1-5M msgs/s.
const (
	// sampleTarget is the samples per second per sender that a paced
	// sender aims at: with the default 5 s window a member records
	// 50,000 of each sender's messages, enough for p99.9 to rest on 50.
	sampleTarget = 10_000
	// peakSampleEvery is K at an unlimited rate, whose actual rate is
	// unknown when sending starts: 1-5M msgs/s leave 15,000-80,000
	// samples per second, and the clock's share of an engine member's
	// CPU falls from 7-16% to under 0.5% (a baseline receiver's, at
	// 12M msgs/s, from over a third to 2-3%).
	peakSampleEvery = 64
	// stampAllSize is the size from which every message is stamped: a
	// member delivers at most a few hundred thousand of them a second,
	// and two clock reads are a few percent of what each costs it.
	stampAllSize = 4096
)

// sampleEvery is K for a sender offering rate msgs/s (0: unlimited) of
// size bytes: it stamps every Kth message it sends with its send time,
// and only those are timed where they are delivered; the others carry
// stamp 0 and cost no clock read at either end. Every message is
// stamped at low paced rates (below 2*sampleTarget msgs/s) and from
// stampAllSize up; paced, K grows with the rate to keep about
// sampleTarget samples a second. The same K holds for the engine and the
// baseline, so their latencies come from the same share of messages.
func sampleEvery(rate float64, size int) int {
	switch {
	case size >= stampAllSize:
		return 1
	case rate <= 0:
		return peakSampleEvery
	}
	return int(min(max(1, rate/sampleTarget), peakSampleEvery))
}

// sampler picks the messages a sender stamps: those whose sequence
// number (1, 2, ... in the phase) is a multiple of K. A countdown rather
// than seq%K: no division per message.
type sampler struct{ every, left int }

func newSampler(every int) sampler {
	every = max(1, every)
	return sampler{every: every, left: every}
}

// next reports whether the sender's next message is one to stamp.
func (s *sampler) next() bool {
	s.left--
	if s.left > 0 {
		return false
	}
	s.left = s.every
	return true
}
