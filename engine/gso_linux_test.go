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
