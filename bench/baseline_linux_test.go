package bench

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

// The baseline sends a batch grouped by peer, as the engine does, so
// that each peer's run of fragments leaves as GSO messages: packed
// fragment by fragment, to each peer in turn, no two neighbours would
// share an address.
func TestBaselineGSORuns(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	tx, err := udp.Listen(lo, udp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	var peers []netip.AddrPort
	var recs []*recorder
	var malformed atomic.Uint64
	for range 2 {
		rx, err := udp.Listen(lo, udp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		rec.window(0, time.Now().Add(time.Hour).UnixNano())
		done := make(chan struct{})
		go func() {
			defer close(done)
			receiveBaseline(rx, rec, &malformed)
		}()
		defer func() { rx.Close(); <-done }()
		peers, recs = append(peers, rx.LocalAddr()), append(recs, rec)
	}
	s := &baselineSender{conn: tx, peers: peers, size: 20000, flags: wire.OrderFIFO, rate: 2000, own: newRecorder()}
	start := time.Now()
	s.run(start, start.Add(100*time.Millisecond))
	sent := s.sent.Load()
	for _, rec := range recs {
		deadline := time.Now().Add(5 * time.Second)
		for rec.delivered.Load() < sent && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := rec.delivered.Load(); got != sent || sent == 0 {
			t.Errorf("a peer received %d of %d messages", got, sent)
		}
	}
	if st := tx.Stats(); st.GSODatagrams < st.DatagramsWritten/2 {
		t.Errorf("%d of %d datagrams went as GSO segments; want most", st.GSODatagrams, st.DatagramsWritten)
	}
}
