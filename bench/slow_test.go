package bench

import (
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The delay is spent, in either mode: n deliveries take at least n times
// the delay (less the sleep mode's bounded credit).
func TestSlowDelivery(t *testing.T) {
	for _, mode := range DelayModes {
		var s slowDelivery
		if err := s.setMode(mode); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for i := 0; i < 100; i++ {
			s.deliver() // no delay set: free
		}
		const n, d = 500, 20 * time.Microsecond
		s.delayNs.Store(d.Nanoseconds())
		for i := 0; i < n; i++ {
			s.deliver()
		}
		if took := time.Since(start); took < n*d-sleepQuantum {
			t.Errorf("%s: %d deliveries of %v took %v", mode, n, d, took)
		}
	}
	var s slowDelivery
	if err := s.setMode("nap"); err == nil {
		t.Error("mode nap accepted")
	}
}

// takeInterval hands over each interval's latencies and starts afresh.
func TestRecorderIntervals(t *testing.T) {
	r := newRecorder()
	now := time.Now()
	r.window(stampOf(now.Add(-time.Minute)), stampOf(now.Add(time.Minute)))
	payload := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for i := 0; i < 3; i++ {
		r.deliver(payload) // sent at the clock's first ns: clamped to the histogram's top
	}
	for _, want := range []int64{3, 0} {
		s, err := r.takeInterval()
		if err != nil {
			t.Fatal(err)
		}
		h, err := hdrhistogram.Decode([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if h.TotalCount() != want {
			t.Errorf("interval holds %d, want %d", h.TotalCount(), want)
		}
	}
	if r.delivered.Load() != 3 {
		t.Errorf("delivered %d", r.delivered.Load())
	}
}
