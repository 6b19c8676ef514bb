package bench

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

func TestSampleEvery(t *testing.T) {
	for _, c := range []struct {
		rate float64
		size int
		want int
	}{
		{0, 64, peakSampleEvery},   // unlimited: the rate is unknown
		{0, 1024, peakSampleEvery}, // still a small message
		{0, stampAllSize, 1},       // large messages: every one
		{0, 16 << 20, 1},           //
		{1000, 64, 1},              // low paced rates: every message
		{19_999, 64, 1},            //
		{20_000, 64, 2},            //
		{100_000, 64, 10},          // 10,000 samples/s
		{300_000, 64, 30},          //
		{10_000_000, 64, 64},       // capped at the unlimited rate's K
		{100_000, stampAllSize, 1}, // large paced messages: every one
		{100_000, stampAllSize - 1, 10},
	} {
		if got := sampleEvery(c.rate, c.size); got != c.want {
			t.Errorf("sampleEvery(%v, %d) = %d, want %d", c.rate, c.size, got, c.want)
		}
	}
	// Paced, the sample holds sampleTarget to 2*sampleTarget messages a
	// second (every message below that), until K reaches its cap.
	for rate := 100.0; rate <= float64(peakSampleEvery*sampleTarget); rate *= 1.37 {
		k := sampleEvery(rate, 64)
		perSec := rate / float64(k)
		if k == 1 && rate >= 2*sampleTarget || k > 1 && (perSec < sampleTarget || perSec >= 2*sampleTarget) {
			t.Errorf("at %.0f msgs/s K=%d gives %.0f samples/s", rate, k, perSec)
		}
	}
}

// The sampler picks exactly the messages whose sequence number (from 1)
// is a multiple of K.
func TestSampler(t *testing.T) {
	for _, k := range []int{1, 2, 10, peakSampleEvery} {
		s := newSampler(k)
		for seq := 1; seq <= 1000; seq++ {
			if got, want := s.next(), seq%k == 0; got != want {
				t.Fatalf("K=%d: message %d picked %v, want %v", k, seq, got, want)
			}
		}
	}
	s := newSampler(0)
	if first, second := s.next(), s.next(); !first || !second {
		t.Error("K=0 does not pick every message")
	}
}

// countClock makes the sample's clock count its reads until the test
// ends.
func countClock(t *testing.T) *atomic.Int64 {
	var reads atomic.Int64
	clock = func() int64 { reads.Add(1); return nanotime() }
	t.Cleanup(func() { clock = nanotime })
	return &reads
}

// A message outside the sample is counted without reading the clock or
// allocating; one in it is timed.
func TestRecorderUnstamped(t *testing.T) {
	reads := countClock(t)
	r := newRecorder()
	now := time.Now()
	r.window(stampOf(now.Add(-time.Second)), stampOf(now.Add(time.Hour)))
	msg := make([]byte, 64)
	fillPayload(msg)
	if allocs := testing.AllocsPerRun(1000, func() { r.deliver(msg) }); allocs != 0 {
		t.Errorf("deliver of an unstamped message allocates %v times", allocs)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("%d clock reads for unstamped messages", n)
	}
	unstamped := r.delivered.Load() // AllocsPerRun's runs, and its warm-up
	binary.LittleEndian.PutUint64(msg, uint64(stampOf(now)))
	r.deliver(msg)
	if n := reads.Load(); n != 1 {
		t.Errorf("%d clock reads for one stamped message", n)
	}
	if d, n := r.delivered.Load(), r.hist.TotalCount(); unstamped < 1000 || d != unstamped+1 || n != 1 {
		t.Errorf("delivered %d (%d unstamped), recorded %d; want every one counted, 1 recorded", d, unstamped, n)
	}
}

// The baseline stamps every Kth message, reading the clock for those
// only, at either end; a receiver times exactly those.
func TestBaselineSample(t *testing.T) {
	const rate, size = 200_000, 64
	k := sampleEvery(rate, size)
	if k < 2 {
		t.Fatalf("K=%d at %d msgs/s: the test needs a sample", k, rate)
	}
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	rx, err := udp.Listen(lo, udp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := udp.Listen(lo, udp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	reads := countClock(t)
	rec := newRecorder()
	now := time.Now()
	rec.window(stampOf(now.Add(-time.Second)), stampOf(now.Add(time.Hour)))
	var malformed atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		receiveBaseline(rx, rec, &malformed)
	}()
	s := &baselineSender{conn: tx, peers: []netip.AddrPort{rx.LocalAddr()}, size: size,
		flags: wire.OrderFIFO, rate: rate, own: newRecorder()}
	start := time.Now()
	s.run(start, start.Add(100*time.Millisecond))
	sent := s.sent.Load()
	// 200,000 msgs/s is about 1,700 datagrams/s: loopback loses none.
	deadline := time.Now().Add(5 * time.Second)
	for rec.delivered.Load() < sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rx.Close()
	<-done
	stamped := int64(sent) / int64(k)
	switch {
	case sent < 5000:
		t.Fatalf("sent %d messages in 100ms at %d/s", sent, rate)
	case rec.delivered.Load() != sent:
		t.Fatalf("sent %d, received %d", sent, rec.delivered.Load())
	case rec.hist.TotalCount() != stamped:
		t.Errorf("%d latencies recorded for %d messages, K=%d: want %d", rec.hist.TotalCount(), sent, k, stamped)
	}
	// The sender reads the clock for each stamped message (and for the
	// one that found the window over), the receiver for each it timed.
	if n := reads.Load(); n < 2*stamped || n > 2*stamped+1 {
		t.Errorf("%d clock reads for %d messages, %d stamped", n, sent, stamped)
	}
}
