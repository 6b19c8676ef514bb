package engine

import (
	"context"
	"testing"
	"time"
)

// DisableGSO reaches the socket: that member sends its runs of datagrams
// one by one, while the other hands the kernel GSO messages.
func TestDisableGSO(t *testing.T) {
	cl := newCluster(t, 2, DefaultConfig(), func(i int, c *Config) { c.DisableGSO = i == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 2000
	for k := 1; k <= n; k++ {
		for i := range 2 {
			if err := cl.send(ctx, i, k, 1000, FIFO); err != nil {
				t.Fatal(err)
			}
		}
	}
	cl.waitDelivered(2*n, 20*time.Second)
	cl.verify()
	off, on := cl.engines[0].Stats().Socket, cl.engines[1].Stats().Socket
	if off.GSODatagrams != 0 {
		t.Errorf("with DisableGSO, %d of %d datagrams went as GSO segments", off.GSODatagrams, off.DatagramsWritten)
	}
	if on.GSODatagrams == 0 {
		t.Errorf("by default no datagram of %d went as a GSO segment (the kernel takes UDP_SEGMENT on loopback)", on.DatagramsWritten)
	}
}

// A multicast's copies leave grouped by member, so that each member's
// run of datagrams goes as GSO messages: the protocol copies datagram by
// datagram (A, B, A, B, ...), which alone would leave no run to any one.
func TestMulticastInGSORuns(t *testing.T) {
	cl := newCluster(t, 3, DefaultConfig(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Bursts of messages that one round sends together: the protocol
	// loop waits for the lock while they enter the window, so runs form
	// however slowly the sender goes (under -race it sends about one
	// message per round otherwise, and a run of one is no GSO message).
	const n, burst = 5000, 20
	e := cl.engines[0]
	for k := 1; k <= n; k += burst {
		e.protoMu.Lock()
		for i := k; i < k+burst; i++ {
			if err := cl.send(ctx, 0, i, 1000, FIFO); err != nil {
				e.protoMu.Unlock()
				t.Fatal(err)
			}
		}
		e.protoMu.Unlock()
	}
	cl.waitDelivered(n, 20*time.Second)
	cl.verify()
	st := cl.engines[0].Stats().Socket
	if st.GSODatagrams < st.DatagramsWritten/2 {
		t.Errorf("the sender sent %d of its %d datagrams as GSO segments; want most", st.GSODatagrams, st.DatagramsWritten)
	}
}
