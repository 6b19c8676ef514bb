package bench

import (
	"time"
	_ "unsafe" // for go:linkname
)

// Send times carried in messages, and the receive times they are
// compared with for one-way latency, are read from the system's
// monotonic clock: one vDSO call (22 ns on the reference machine) where
// time.Now makes two (44 ns). At saturation a member reads the clock for
// every message it sends and every one it delivers, and with time.Now
// that was 28-39% of a member's CPU, taken from the engine and the
// baseline alike. CLOCK_MONOTONIC is one clock for every process of the
// machine, so a stamp from one member and a reading in another compare.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// stampNow reads the monotonic clock, in ns.
func stampNow() int64 { return nanotime() }

// stampOf converts a wall-clock time into the monotonic clock, to within
// the moment between the two readings: measured windows are set in
// wall-clock time, which the coordinator and its children share.
func stampOf(t time.Time) int64 {
	return t.UnixNano() - time.Now().UnixNano() + nanotime()
}
