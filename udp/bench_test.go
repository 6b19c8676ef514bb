package udp

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLoopback pushes datagrams through the loopback device in
// batches of 64, one op per datagram, with a reader goroutine draining the
// receiving socket. The writer keeps no more in flight than half the
// receive buffer holds, so the figure is delivered throughput, not the
// rate at which the kernel can drop; msgs/s counts datagrams received.
func BenchmarkLoopback(b *testing.B) {
	for _, size := range []int{64, 8 << 10} {
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/%dB", im.name, size), func(b *testing.B) {
				benchLoopback(b, im.opts, size)
			})
		}
	}
}

func benchLoopback(b *testing.B, opts Options, size int) {
	const batch = 64
	tx := listenT(b, "127.0.0.1:0", opts)
	rx := listenT(b, "127.0.0.1:0", opts)

	// The kernel charges each datagram its allocation (up to twice the
	// payload, rounded to a power of two) plus about 1 KiB of bookkeeping
	// against the receive buffer; stay well below that.
	window := rx.Stats().RecvBufferBytes / 2 / (2*size + 1024)
	window = max(batch, min(window, 4096))

	var received atomic.Int64
	progress := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		in := makeDatagrams(batch, size+64)
		for {
			k, err := rx.ReadBatch(in)
			if err != nil {
				return
			}
			received.Add(int64(k))
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	})

	out := makeDatagrams(batch, size)
	fillPayloads(out, size, rx.LocalAddr())
	lost := 0 // datagrams given up on after the reader stalled
	// settle waits until at most limit datagrams are unaccounted for; after
	// a quiet spell the rest are taken as dropped by the kernel.
	settle := func(sent, limit int) {
		quiet := time.NewTimer(200 * time.Millisecond)
		defer quiet.Stop()
		for sent-lost-int(received.Load()) > limit {
			select {
			case <-progress:
				quiet.Reset(200 * time.Millisecond)
			case <-quiet.C:
				lost = sent - int(received.Load())
			}
		}
	}

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		k := min(batch, b.N-sent)
		settle(sent, window-k)
		if n, err := tx.WriteBatch(out[:k]); err != nil {
			b.Fatalf("WriteBatch = %d, %v", n, err)
		}
		sent += k
	}
	settle(sent, 0)
	elapsed := time.Since(start)
	b.StopTimer()

	rx.Close()
	wg.Wait()
	b.ReportMetric(float64(received.Load())/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(100*float64(lost)/float64(sent), "lost-%")
}
