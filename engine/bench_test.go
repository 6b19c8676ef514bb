package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/seal"
)

// BenchmarkGroup measures one sender multicasting to a group of engines in
// this process over loopback UDP. msgs/s is the rate at which the slowest
// member delivered. Whole-group figures with one process per member come
// from vsbench.
func BenchmarkGroup(b *testing.B) {
	for _, size := range []int{64, 1024} {
		for _, members := range []int{2, 3} {
			b.Run(fmt.Sprintf("members=%d/size=%d", members, size), func(b *testing.B) {
				benchGroup(b, members, size, FIFO, nil)
			})
		}
	}
}

// BenchmarkOrdering compares the orderings, 3 members, 64 bytes, sent by
// the last member (not the sequencer, so total order takes the records'
// round trip).
func BenchmarkOrdering(b *testing.B) {
	for _, o := range []Ordering{FIFO, Causal, Total, FIFO | Safe, Total | Safe} {
		b.Run(o.String(), func(b *testing.B) { benchGroup(b, 3, 64, o, nil) })
	}
}

// BenchmarkKeyed compares the keyed engine (every datagram sealed and
// opened) with the keyless one, 3 members, FIFO; allocs/op is per
// message.
func BenchmarkKeyed(b *testing.B) {
	key := make([]byte, seal.KeySize)
	for _, size := range []int{64, 1024} {
		for _, keyed := range []bool{false, true} {
			b.Run(fmt.Sprintf("size=%d/keyed=%v", size, keyed), func(b *testing.B) {
				var keys func() *seal.Keyring
				if keyed {
					keys = func() *seal.Keyring {
						r, err := seal.NewKeyring(key)
						if err != nil {
							b.Fatal(err)
						}
						return r
					}
				}
				benchGroup(b, 3, size, FIFO, keys)
			})
		}
	}
}

// benchGroup runs the benchmark; keys, when set, makes each member's
// keyring.
func benchGroup(b *testing.B, members, size int, order Ordering, keys func() *seal.Keyring) {
	cfg := DefaultConfig()
	var engines []*Engine
	var addrs []string
	for i := 0; i < members; i++ {
		if keys != nil {
			cfg.Keys = keys()
		}
		e, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		engines = append(engines, e)
		addrs = append(addrs, e.Addr().String())
	}
	counts := make([]atomic.Int64, members)
	var groups []*Group
	for i, e := range engines {
		i := i
		g, err := e.Join(context.Background(), "bench", addrs, Handlers{Deliver: func(Message) { counts[i].Add(1) }})
		if err != nil {
			b.Fatal(err)
		}
		groups = append(groups, g)
	}
	for _, g := range groups {
		for len(g.View().Members) != members {
			time.Sleep(time.Millisecond)
		}
	}
	payload := make([]byte, size)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := groups[members-1].Send(ctx, order, payload); err != nil {
			b.Fatal(err)
		}
	}
	for i := range counts {
		for counts[i].Load() < int64(b.N) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	elapsed := time.Since(start)
	time.Sleep(3 * cfg.TickInterval) // let the group's stats refresh
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	var rtx uint64
	for _, g := range groups {
		rtx += g.Stats().Retransmits
	}
	b.ReportMetric(float64(rtx), "retransmits")
	for i, g := range groups {
		st := g.Stats()
		b.Logf("member %d: noroom %d beyond %d dup %d naks %d kernel drops %d", i, st.NoRoom, st.BeyondWindow, st.Duplicates, st.NAKsSent, engines[i].Stats().Socket.KernelDrops)
	}
}
