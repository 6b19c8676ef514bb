package engine

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Windows take memory while traffic needs it and give it back once the
// group has been idle a moment: a burst of 20,000 messages leaves no
// window memory behind.
func TestWindowsGiveMemoryBack(t *testing.T) {
	cl := newCluster(t, 3, DefaultConfig(), nil)
	if m := cl.engines[0].Stats().WindowMemory; m > 64<<10 {
		t.Fatalf("an idle group holds %d bytes of windows", m)
	}
	const each = 20000
	for n := range each {
		if err := cl.send(context.Background(), 0, n, 200, FIFO); err != nil {
			t.Fatal(err)
		}
	}
	cl.waitDelivered(each, 30*time.Second)
	cl.verify()
	waitFor(t, 10*time.Second, func() bool {
		for _, e := range cl.engines {
			if e.Stats().WindowMemory != 0 {
				return false
			}
		}
		return true
	}, "every engine's window memory given back")
}

// Several groups flat out under a budget that holds a fraction of what
// their windows would take: they slow down but deliver everything, in
// order.
func TestMemoryBudgetAcrossGroups(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WindowBytes, cfg.WindowMessages = 256<<10, 4096
	cfg.MemoryBudget = 4 * int64(cfg.WindowBytes) // the least New accepts; 4 groups x 3 windows want more
	const groups, each = 4, 3000
	var engines []*Engine
	var seeds []string
	for range 3 {
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		engines = append(engines, e)
		seeds = append(seeds, e.Addr().String())
	}
	var mu sync.Mutex
	next := map[string]int{} // per group and member: the next message expected
	var all []*Group
	for gi := range groups {
		for ei, e := range engines {
			key := fmt.Sprint(gi, "/", ei)
			g, err := e.Join(context.Background(), fmt.Sprint("budget", gi), seeds, Handlers{Deliver: func(m Message) {
				mu.Lock()
				defer mu.Unlock()
				if n := int(m.Payload[0]) | int(m.Payload[1])<<8; n != next[key] || len(m.Payload) != 1000 {
					t.Errorf("group %d member %d: message %d (%d bytes), want %d", gi, ei, n, len(m.Payload), next[key])
				}
				next[key]++
			}})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, g)
		}
	}
	waitFullView(t, all[:3])
	for gi := range groups {
		waitFullView(t, all[3*gi:3*gi+3])
	}
	var wg sync.WaitGroup
	// A stall fails the test with what each group and engine held.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for gi := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 1000)
			for n := range each {
				p[0], p[1] = byte(n), byte(n>>8)
				if err := all[3*gi].Send(ctx, FIFO, p); err != nil {
					t.Errorf("group %d: message %d: %v", gi, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		for i, g := range all {
			s := g.Stats()
			t.Logf("group %d member %d: view %d, send window %d, delivered %d, no room %d, beyond window %d, NAKs %d/%d, retransmits %d",
				i/3, i%3, len(g.View().Members), s.SendWindow, s.Delivered, s.NoRoom, s.BeyondWindow, s.NAKsSent, s.NAKsReceived, s.Retransmits)
		}
		for i, e := range engines {
			t.Logf("engine %d: window memory %d of %d", i, e.Stats().WindowMemory, cfg.MemoryBudget)
		}
		t.FailNow()
	}
	waitFor(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range next {
			if n < each {
				return false
			}
		}
		return len(next) == 3*groups
	}, "every group's messages at every member")
}

// BenchmarkIdleGroups joins 3 engines to many groups (COHORT_IDLE_GROUPS,
// default 200) and reports what an idle group costs a process: heap,
// datagrams per second (the groups' own, and all the engines send per
// peer) and CPU.
func BenchmarkIdleGroups(b *testing.B) {
	groups := 200
	if n, err := strconv.Atoi(os.Getenv("COHORT_IDLE_GROUPS")); err == nil && n > 0 {
		groups = n
	}
	var engines []*Engine
	var seeds []string
	for range 3 {
		e, err := New(DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		engines = append(engines, e)
		seeds = append(seeds, e.Addr().String())
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	all := make([]*Group, 3*groups)
	var wg sync.WaitGroup
	for i := range groups {
		if i%100 == 0 {
			wg.Wait() // in waves: this measures idle groups, not a storm of joins
		}
		for j, e := range engines {
			wg.Add(1)
			go func() { // each Join waits for its first view
				defer wg.Done()
				g, err := e.Join(context.Background(), fmt.Sprint("idle", i), seeds, Handlers{Deliver: func(Message) {}})
				if err != nil {
					b.Error(err)
					return
				}
				all[3*i+j] = g
			}()
		}
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	waitFor(b, 60*time.Second, func() bool {
		for _, g := range all {
			if len(g.View().Members) != 3 {
				return false
			}
		}
		return true
	}, "every group's view")
	time.Sleep(2 * time.Second) // views settle; windows trimmed
	sent := func() (n uint64) {
		for _, g := range all {
			s := g.Stats()
			n += s.DatagramsSent + s.ControlSent
		}
		return n
	}
	socket := func() (n uint64) {
		for _, e := range engines {
			n += e.Stats().Socket.DatagramsWritten
		}
		return n
	}
	b.ResetTimer()
	start, dgStart, cpuStart, t0 := sent(), socket(), cpuTime(), time.Now()
	for range b.N {
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(t0).Seconds()
	rate := float64(sent()-start) / elapsed
	b.StopTimer()
	b.ReportMetric(float64(heap()-before)/float64(3*groups)/1024, "KiB/group")
	b.ReportMetric(rate/float64(3*groups), "datagrams/s/group")
	// Each engine's peers are the 2 others: what all three send, per peer.
	b.ReportMetric(float64(socket()-dgStart)/elapsed/6, "datagrams/s/peer")
	b.ReportMetric((cpuTime()-cpuStart).Seconds()/elapsed/float64(3*groups)*1e6, "CPU-µs/s/group")
	b.ReportMetric(0, "ns/op")
}
