package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// largeRuns is how many times the real-socket large-message experiment
// runs: COHORT_LARGE_RUNS, default 3.
func largeRuns(t *testing.T) int {
	if s := os.Getenv("COHORT_LARGE_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("COHORT_LARGE_RUNS=%q: want a positive count", s)
		}
		return n
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
