package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// EngineWindowBytes holds a sender back across groups: with one member
// not consuming (its handlers blocked), a sender
// spreading 1 KiB messages over 19 groups stops after about one engine
// window in all (each group's own window would let it send 19 times
// that); a handler at the sender that sends to another group meanwhile
// does not wait (it would wait on deliveries of its own); once the
// member consumes again, everything arrives.
func TestEngineWindowAcrossGroups(t *testing.T) {
	const (
		groups = 20
		size   = 1024
		window = 256 << 10
	)
	cfg := DefaultConfig()
	cfg.WindowBytes, cfg.EngineWindowBytes = window, window
	gate := make(chan struct{})
	var delivered atomic.Int64
	replied := make(chan time.Duration, 1)
	var all [][]*Group // read by a handler once set
	_, all = sharedGroupsWith(t, cfg, groups, "cross", func(k, i int) func(Message) {
		switch {
		case k == 1:
			return func(Message) { <-gate; delivered.Add(1) } // does not consume
		case k == 0 && i == 0:
			return func(m Message) {
				delivered.Add(1)
				if string(m.Payload[:5]) == "reply" {
					start := time.Now()
					if err := all[1][0].Send(context.Background(), FIFO, make([]byte, size)); err != nil {
						t.Error(err)
					}
					replied <- time.Since(start)
				}
			}
		}
		return func(Message) { delivered.Add(1) }
	})
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()

	// Groups 1 to 19 in turn until a Send waits past a deadline.
	sent := 0
	msg := make([]byte, size)
	for blocked := false; !blocked; {
		for i := 1; i < groups && !blocked; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			err := all[i][0].Send(ctx, FIFO, msg)
			cancel()
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				blocked = true
			case err != nil:
				t.Fatal(err)
			default:
				sent++
			}
			if sent > groups*window/size/2 {
				t.Fatalf("%d messages of %d B sent to %d groups with a member not consuming: no limit across groups", sent, size, groups-1)
			}
		}
	}
	// One engine window, and the first message of each group (a group
	// that holds nothing may always start one).
	if limit := window/size + groups; sent > limit {
		t.Fatalf("%d messages of %d B sent before waiting; want at most %d", sent, size, limit)
	}
	t.Logf("%d messages of %d B sent to %d groups before waiting (engine window %d B)", sent, size, groups-1, window)

	// Group 0 holds nothing: its message goes, and its handler at the
	// sender replies in group 1 without waiting.
	reply := append([]byte("reply"), make([]byte, size-5)...)
	if err := all[0][0].Send(context.Background(), FIFO, reply); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-replied:
		t.Logf("the handler's Send to another group returned in %v", d)
	case <-time.After(5 * time.Second):
		t.Fatal("a handler's Send to another group waited on the engine window")
	}

	close(gate)
	want := int64(3 * (sent + 2))
	waitFor(t, 20*time.Second, func() bool { return delivered.Load() == want }, fmt.Sprintf("%d deliveries", want))
}
