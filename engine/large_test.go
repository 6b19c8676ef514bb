package engine

import (
	"bytes"
	"context"
	"fmt"
	"github.com/cohort-vs/cohort/udp/memnet"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// largeRuns is how many times the real-socket large-message experiment
// runs: COHORT_LARGE_RUNS, default 3 (1 with -short).
func largeRuns(t *testing.T) int {
	if s := os.Getenv("COHORT_LARGE_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("COHORT_LARGE_RUNS=%q: want a positive count", s)
		}
		return n
	}
	if testing.Short() {
		return 1
	}
	return 3
}

// Three messages of MaxMessageSize (16 MiB, four times the window) sent
// back to back by one of 3 engines on loopback reach every member intact:
// the sender sends a message larger than its window only as fast as the
// members consume its pieces, so no receiver is sent more than it can
// hold, and what the kernel drops is repaired. (They used to stall the
// group: receivers refused everything past a gap, asked for it all
// again, and the sender sent it all again, forever.)
func TestMaxSizeMessagesOnLoopback(t *testing.T) {
	runs := largeRuns(t)
	for run := 1; run <= runs; run++ {
		t.Run(fmt.Sprintf("run%d", run), func(t *testing.T) { sendMaxSizeMessages(t) })
	}
}

func sendMaxSizeMessages(t *testing.T) {
	cfg := DefaultConfig()
	const count = 3
	engines, addrs := newEngines(t, 3, cfg)
	var mu sync.Mutex
	got := make([][]int, len(engines)) // sizes delivered, per member
	bad := 0
	var groups []*Group
	for i, e := range engines {
		i := i
		g, err := e.Join(context.Background(), "large", addrs, Handlers{Deliver: func(m Message) {
			ok := bytes.Equal(m.Payload, largePayload(len(got[i]), len(m.Payload)))
			mu.Lock()
			got[i] = append(got[i], len(m.Payload))
			if !ok {
				bad++
			}
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	waitFullView(t, groups)
	var msgs [][]byte
	for k := 0; k < count; k++ {
		msgs = append(msgs, largePayload(k, cfg.MaxMessageSize))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	for k, msg := range msgs {
		if err := groups[0].Send(ctx, FIFO, msg); err != nil {
			t.Fatalf("send %d: %v", k, err)
		}
	}
	waitFor(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if len(g) < count {
				return false
			}
		}
		return true
	}, "every member to deliver the three messages")
	took := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d deliveries with a damaged payload", bad)
	}
	for i, g := range got {
		if len(g) != count {
			t.Fatalf("member %d delivered %d messages, want %d", i, len(g), count)
		}
	}
	var lines []string
	for i, g := range groups {
		s := g.Stats()
		lines = append(lines, fmt.Sprintf("m%d: retransmitted %d msgs (%d B), skipped %d, NAKs sent %d, no room %d, displaced %d",
			i, s.Retransmits, s.RetransmitBytes, s.RetransmitsSkipped, s.NAKsSent, s.NoRoom, s.Displaced))
	}
	t.Logf("%d x %d MiB delivered to 3 members in %v (%.0f MB/s); %v", count, cfg.MaxMessageSize>>20, took.Round(time.Millisecond),
		float64(count*cfg.MaxMessageSize)/took.Seconds()/1e6, lines)
}

// largePayload is message k of a size: bytes that differ by message and
// by offset, so a piece out of place shows.
func largePayload(k, size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i>>13) ^ byte(i) ^ byte(k*37)
	}
	return p
}

// Messages of every size up to MaxMessageSize, one at a time and flat
// out, over an in-memory network that loses 1% or 5% of the sender's
// datagrams and reorders some: every member delivers every message
// intact, and the repairs stay proportional to the loss.
func TestLargeMessagesUnderLoss(t *testing.T) {
	sizes := []int{1 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20}
	losses := []float64{0.01, 0.05}
	if testing.Short() { // the race detector's run
		sizes, losses = []int{1 << 10, 1 << 20, 16 << 20}, []float64{0.05}
	}
	for _, loss := range losses {
		for _, flat := range []bool{false, true} {
			for _, size := range sizes {
				mode := "singly"
				if flat {
					mode = "flat-out"
				}
				t.Run(fmt.Sprintf("loss%.0f%%/%s/%dKiB", loss*100, mode, size>>10), func(t *testing.T) {
					lossyLargeRun(t, loss, flat, size)
				})
			}
		}
	}
}

// maxRepairRatio bounds the payload bytes sent again against the bytes of
// the sender's datagrams the network lost. Each lost datagram is sent
// again once, and again for each repair lost in turn (1/(1-loss)); the
// rest is the slack of a repair asked for again while still on its way.
const maxRepairRatio = 2.0

func lossyLargeRun(t *testing.T, loss float64, flat bool, size int) {
	net := memnet.New(int64(size) ^ int64(loss*1000))
	t.Cleanup(func() { net.Close() }) // after the engines' own cleanups
	cfg := DefaultConfig()
	// This test is about repairs, not failure detection: a process the
	// machine starves for a second (CI runs other packages beside it,
	// the race detector slows it) must not be removed from the group.
	cfg.SuspectTimeout, cfg.ProbeTimeout = 5*time.Second, time.Second
	var engines []*Engine
	var addrs []netip.AddrPort
	for i := 0; i < 3; i++ {
		addr := netip.MustParseAddrPort(fmt.Sprintf("10.2.0.%d:5000", i+1))
		conn, err := net.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.Conn = conn
		e, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		engines = append(engines, e)
		addrs = append(addrs, addr)
	}
	count := 1
	if flat {
		count = min(200, max(3, (48<<20)/size))
	} else {
		count = min(20, max(3, (16<<20)/size))
	}
	var mu sync.Mutex
	got := make([]int, len(engines))
	bad := 0
	var groups []*Group
	seeds := []string{addrs[0].String(), addrs[1].String(), addrs[2].String()}
	for i, e := range engines {
		i := i
		g, err := e.Join(context.Background(), "lossy-large", seeds, Handlers{Deliver: func(m Message) {
			mu.Lock()
			defer mu.Unlock()
			if !bytes.Equal(m.Payload, largePayload(got[i], size)) {
				bad++
			}
			got[i]++
		}})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	waitFullView(t, groups)
	// Only the sender's datagrams are lost: what is lost is then what
	// has to be sent again.
	for _, to := range addrs[1:] {
		net.SetLink(addrs[0], to, memnet.Faults{Drop: loss, Reorder: 0.05})
	}
	delivered := func(want int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, n := range got {
				if n < want {
					return false
				}
			}
			return true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for k := 0; k < count; k++ {
		if err := groups[0].Send(ctx, FIFO, largePayload(k, size)); err != nil {
			t.Fatalf("send %d: %v", k, err)
		}
		if !flat {
			waitLarge(t, groups, delivered(k+1), fmt.Sprintf("message %d everywhere", k))
		}
	}
	waitLarge(t, groups, delivered(count), "every message everywhere")
	mu.Lock()
	if bad != 0 {
		t.Fatalf("%d deliveries with a damaged payload", bad)
	}
	mu.Unlock()
	var s Stats
	waitFor(t, 5*time.Second, func() bool {
		s = groups[0].Stats()
		return s.Delivered >= uint64(count)
	}, "the sender's stats")
	var rtxBytes, noRoom, displaced uint64
	for _, g := range groups {
		gs := g.Stats()
		rtxBytes += gs.RetransmitBytes
		noRoom, displaced = noRoom+gs.NoRoom, displaced+gs.Displaced // the receivers'
	}
	ns := net.Stats()
	ratio := float64(rtxBytes) / float64(max(ns.LostBytes, 1))
	t.Logf("%d x %d B: lost %d datagrams (%d B), resent %d B (%.2fx), skipped %d, NAKs received %d, no room %d, displaced %d",
		count, size, ns.Dropped+ns.Overflowed, ns.LostBytes, rtxBytes, ratio, s.RetransmitsSkipped, s.NAKsReceived, noRoom, displaced)
	if ns.LostBytes > 0 && ratio > maxRepairRatio {
		t.Fatalf("resent %d B for %d B lost: %.2fx, bound %.1fx", rtxBytes, ns.LostBytes, ratio, maxRepairRatio)
	}
}

// waitLarge waits for cond and, if it times out, reports every member's
// counters, so that a stall in CI says where it stood.
func waitLarge(t *testing.T, groups []*Group, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for i, g := range groups {
				t.Logf("member %d: view %v\nstats %+v", i, g.View(), g.Stats())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
