package engine

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestLatencyBucket(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {time.Nanosecond, 0}, {16 * time.Microsecond, 0}, {16*time.Microsecond + 1, 1},
		{32 * time.Microsecond, 1}, {time.Millisecond, 6}, {LatencyBuckets[latencyBuckets-2], latencyBuckets - 2},
		{LatencyBuckets[latencyBuckets-2] + 1, latencyBuckets - 1}, {time.Hour, latencyBuckets - 1},
	} {
		if got := latencyBucket(int64(c.d)); got != c.want {
			t.Errorf("latencyBucket(%v) = %d, want %d", c.d, got, c.want)
		}
		if c.want < latencyBuckets-1 && c.d > LatencyBuckets[c.want] {
			t.Errorf("%v is beyond its bucket's bound %v", c.d, LatencyBuckets[c.want])
		}
	}
}

// With MeasureLatency, one own message in 64 is timed from Send to its
// own delivery, whichever goroutine sent it; without, nothing is.
func TestLatencyHistogram(t *testing.T) {
	cfg := DefaultConfig()
	cl := newCluster(t, 3, cfg, func(i int, c *Config) { c.MeasureLatency = i != 2 })
	const each = 64 * 50
	var wg sync.WaitGroup
	for s, o := range []Ordering{Total, FIFO | Safe, FIFO} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range each {
				if err := cl.send(context.Background(), s, n, 64, o); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cl.waitDelivered(3*each, 30*time.Second)
	cl.verify()
	for i, g := range cl.groups {
		want := uint64(each / 64)
		if i == 2 {
			want = 0
		}
		waitFor(t, 5*time.Second, func() bool { return g.Stats().Latency.Count == want }, "latency samples")
		l := g.Stats().Latency
		var n uint64
		for _, b := range l.Buckets {
			n += b
		}
		if n != want || (want > 0) != (l.Sum > 0) {
			t.Errorf("member %d: %d samples in buckets, %d counted, sum %v", i, n, l.Count, l.Sum)
		}
		if want > 0 && l.Buckets[latencyBuckets-1] > 0 {
			t.Errorf("member %d: %d samples slower than %v", i, l.Buckets[latencyBuckets-1], LatencyBuckets[latencyBuckets-2])
		}
		t.Logf("member %d: %d samples, mean %v", i, l.Count, l.Sum/time.Duration(max(l.Count, 1)))
	}
}
