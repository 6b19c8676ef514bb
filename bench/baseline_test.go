package bench

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

// The baseline sends messages larger than a datagram in fragments, and a
// receiver counts each such message once, with its send time, when all of
// its fragments arrived.
func TestBaselineFragments(t *testing.T) {
	for _, size := range []int{100, baselineFragment, baselineFragment + 1, 20000, 65536} {
		lo := netip.MustParseAddrPort("127.0.0.1:0")
		rx, err := udp.Listen(lo, udp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := udp.Listen(lo, udp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		rec.window(0, time.Now().Add(time.Hour).UnixNano())
		var malformed atomic.Uint64
		done := make(chan struct{})
		go func() {
			defer close(done)
			receiveBaseline(rx, rec, &malformed)
		}()
		own := newRecorder()
		s := &baselineSender{conn: tx, peers: []netip.AddrPort{rx.LocalAddr()}, size: size,
			flags: wire.OrderFIFO, rate: 2000, own: own}
		start := time.Now()
		s.run(start, start.Add(100*time.Millisecond))
		sent := s.sent.Load()
		// Loopback at 2,000 msgs/s loses nothing; wait for the last ones.
		deadline := time.Now().Add(5 * time.Second)
		for rec.delivered.Load() < sent && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		rx.Close()
		tx.Close()
		<-done

		wantFrags := uint64(1)
		if size > baselineFragment {
			wantFrags = uint64((size + baselineFragment - 1) / baselineFragment)
		}
		switch {
		case sent < 50:
			t.Errorf("size %d: sent %d messages in 100ms at 2,000/s", size, sent)
		case rec.delivered.Load() != sent:
			t.Errorf("size %d: sent %d, received %d", size, sent, rec.delivered.Load())
		case own.delivered.Load() != sent:
			t.Errorf("size %d: sent %d, own deliveries %d", size, sent, own.delivered.Load())
		case wantFrags > 1 && s.datagrams.Load() != sent*wantFrags:
			t.Errorf("size %d: %d datagrams for %d messages, want %d each", size, s.datagrams.Load(), sent, wantFrags)
		case malformed.Load() != 0 || s.writeErrors.Load() != 0:
			t.Errorf("size %d: %d malformed, %d write errors", size, malformed.Load(), s.writeErrors.Load())
		}
		if n := rec.hist.TotalCount(); n != int64(sent) || rec.hist.Max() > 5_000_000 {
			t.Errorf("size %d: %d latencies recorded (max %d µs) for %d messages", size, n, rec.hist.Max(), sent)
		}
	}
}

func TestReassembly(t *testing.T) {
	const first, mid, last = wire.FlagFrag | wire.FlagFragFirst, wire.FlagFrag, wire.FlagFrag | wire.FlagFragLast
	stamp := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	var r reassembly
	// Complete, in order.
	if r.add(1, first, 25, stamp) || r.add(2, mid, 25, stamp) || !r.add(3, last, 25, make([]byte, 5)) {
		t.Fatal("complete message not counted once, at its last fragment")
	}
	if r.stamp != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Errorf("stamp %v", r.stamp)
	}
	// A middle fragment lost: not counted, and the next message is.
	if r.add(4, first, 25, stamp) || r.add(6, last, 25, stamp[:5]) {
		t.Error("message with a lost fragment counted")
	}
	if r.add(7, first, 20, stamp) || !r.add(8, last, 20, stamp) {
		t.Error("message after a lost one not counted")
	}
	// The first fragment lost.
	if r.add(10, last, 20, stamp) {
		t.Error("message without its first fragment counted")
	}
	// The sizes do not add up.
	if r.add(11, first, 30, stamp) || r.add(12, last, 30, stamp) {
		t.Error("short message counted")
	}
}
