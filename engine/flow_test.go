package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/udp/memnet"
)

// A member whose handler is stuck holds back the group's senders through
// flow control, within the configured bounds, while the engine keeps
// serving its other groups. Releasing the handler delivers everything.
func TestSlowHandlerPushesBack(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WindowMessages, cfg.DeliveryQueue = 64, 16
	engines, addrs := newEngines(t, 3, cfg)
	gate := make(chan struct{})
	var slowCount, fastCount, otherCount atomic.Int64
	var slow, other []*Group
	for i, e := range engines {
		i := i
		g, err := e.Join(context.Background(), "slow", addrs, Handlers{Deliver: func(m Message) {
			if i == 1 {
				<-gate
				slowCount.Add(1)
			} else if i == 2 {
				fastCount.Add(1)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		slow = append(slow, g)
		g2, err := e.Join(context.Background(), "other", addrs, Handlers{Deliver: func(m Message) {
			if i == 1 {
				otherCount.Add(1)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		other = append(other, g2)
	}
	waitFullView(t, slow)
	waitFullView(t, other)

	// Send until flow control stops the sender.
	payload := make([]byte, 32)
	sent := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := slow[0].Send(ctx, FIFO, payload)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if sent > 10*cfg.WindowMessages {
			t.Fatalf("sent %d messages past a stuck member with a window of %d", sent, cfg.WindowMessages)
		}
	}
	if sent < cfg.WindowMessages {
		t.Fatalf("sender blocked after %d messages, below its window of %d", sent, cfg.WindowMessages)
	}
	if n := slow[0].sender.Pending(); n > cfg.WindowMessages {
		t.Fatalf("%d messages held by the sender, window %d", n, cfg.WindowMessages)
	}

	// The same engines still carry another group, to the stuck member too.
	for n := 0; n < 1000; n++ {
		if err := other[0].Send(context.Background(), FIFO, payload); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() bool { return otherCount.Load() == 1000 }, "the other group's deliveries")

	close(gate)
	for n := 0; n < 500; n++ {
		if err := slow[0].Send(context.Background(), FIFO, payload); err != nil {
			t.Fatal(err)
		}
	}
	want := int64(sent + 500)
	waitFor(t, 10*time.Second, func() bool { return slowCount.Load() == want && fastCount.Load() == want }, "deliveries after the handler resumed")
}

// With 5% of datagrams lost on every link of an in-memory network, every
// message arrives exactly once and in FIFO order, through retransmission.
func TestLossyNetwork(t *testing.T) {
	net := memnet.New(42)
	t.Cleanup(func() { net.Close() }) // after the engines' own cleanups
	net.SetDefault(memnet.Faults{Drop: 0.05})
	cfg := DefaultConfig()
	i := 0
	cl := newCluster(t, 3, cfg, func(_ int, c *Config) {
		i++
		conn, err := net.Listen(netip.MustParseAddrPort("10.1.0." + string(rune('0'+i)) + ":5000"))
		if err != nil {
			t.Fatal(err)
		}
		c.Conn = conn
	})
	const each = 2000
	for n := 1; n <= each; n++ {
		for s := range cl.groups {
			size := 16 + n%100
			if n%400 == 0 {
				size = 30_000 // fragmented
			}
			if err := cl.send(context.Background(), s, n, size, FIFO); err != nil {
				t.Fatal(err)
			}
		}
	}
	cl.waitDelivered(3*each, 60*time.Second)
	cl.verify()
	var rtx uint64
	for _, g := range cl.groups {
		waitFor(t, 5*time.Second, func() bool { return g.Stats().Delivered >= 3*each }, "stats refresh")
		rtx += g.Stats().Retransmits
	}
	if rtx == 0 {
		t.Fatal("no retransmissions on a lossy network")
	}
	t.Logf("retransmitted %d messages; network: %+v", rtx, net.Stats())
}

// The hot path (Send, bundling, the socket, receive, delivery) allocates
// nothing per message in steady state, whatever the ordering.
func TestHotPathAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, o := range []Ordering{FIFO, Causal, Total, Total | Safe} {
		t.Run(o.String(), func(t *testing.T) { testHotPathAllocs(t, o) })
	}
}

func testHotPathAllocs(t *testing.T, order Ordering) {
	cfg := DefaultConfig()
	// The handler signals the round trip's last delivery on a channel:
	// AllocsPerRun runs with GOMAXPROCS=1, where a spinning waiter would
	// starve the network poller.
	var delivered, target atomic.Int64
	arrived := make(chan struct{}, 1)
	engines, addrs := newEngines(t, 2, cfg)
	var groups []*Group
	for i, e := range engines {
		i := i
		g, err := e.Join(context.Background(), "alloc", addrs, Handlers{Deliver: func(m Message) {
			if i == 1 && delivered.Add(1) == target.Load() {
				// Both members send, so that the sequencer (rank 0) orders
				// the other's messages and causal timestamps are not empty.
				arrived <- struct{}{}
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	waitFullView(t, groups)
	payload := make([]byte, 64)
	ctx := context.Background()
	roundTrip := func() {
		target.Add(10)
		for k := 0; k < 10; k++ {
			if err := groups[1-k%2].Send(ctx, order, payload); err != nil {
				panic(err)
			}
		}
		<-arrived
	}
	for i := 0; i < 2000; i++ { // warm up: windows, buffers, goroutines
		roundTrip()
	}
	allocs := testing.AllocsPerRun(2000, roundTrip)
	if allocs != 0 {
		t.Fatalf("%.2f allocations per 10 messages", allocs)
	}
}

// newEngines starts n engines with cfg, closed when the test ends, and
// returns them with their addresses.
func newEngines(t testing.TB, n int, cfg Config) ([]*Engine, []string) {
	t.Helper()
	var engines []*Engine
	var addrs []string
	for i := 0; i < n; i++ {
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		engines = append(engines, e)
		addrs = append(addrs, e.Addr().String())
	}
	return engines, addrs
}

func waitFor(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Under SlowMemberEvict a member whose handler is stuck is removed once it
// has held the sender's window for EvictAfter, and the others go on at
// their own pace; under the default (block) the same member holds them
// back (TestSlowHandlerPushesBack).
func TestSlowMemberEvicted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WindowMessages, cfg.DeliveryQueue = 256, 16
	cfg.SlowMember, cfg.EvictAfter = SlowMemberEvict, 200*time.Millisecond
	engines, addrs := newEngines(t, 4, cfg)
	gate := make(chan struct{})
	released := false
	defer func() {
		if !released {
			close(gate)
		}
	}()
	ended := make(chan error, 1)
	var groups []*Group
	for i, e := range engines {
		h := Handlers{Deliver: func(Message) {}}
		if i == 3 {
			h.Deliver = func(Message) { <-gate }
			h.Ended = func(err error) { ended <- err }
		}
		g, err := e.Join(context.Background(), "evict", addrs, h)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	waitFullView(t, groups)
	slowID := groups[3].View().Members[groups[3].View().Self]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent atomic.Int64
	done := make(chan error, 1)
	go func() {
		payload := make([]byte, 32)
		for ctx.Err() == nil {
			if err := groups[0].Send(ctx, FIFO, payload); err != nil {
				done <- err
				return
			}
			sent.Add(1)
		}
		done <- nil
	}()
	waitFor(t, 10*time.Second, func() bool {
		for _, g := range groups[:3] {
			v := g.View()
			if len(v.Members) != 3 || slices.Contains(v.Members, slowID) {
				return false
			}
		}
		return true
	}, "a view without the stuck member")
	if n := groups[0].Stats().Evictions; n != 1 {
		t.Errorf("sender's Evictions = %d, want 1", n)
	}
	for i, g := range groups[:3] {
		if v := g.View(); !slices.Equal(v.Evicted, []MemberID{slowID}) || len(v.Failed) != 0 {
			t.Errorf("member %d's view: evicted %v, failed %v; want evicted [%v] only", i, v.Evicted, v.Failed, slowID)
		}
	}
	// The sender now runs far past the window the stuck member held.
	from := sent.Load()
	waitFor(t, 10*time.Second, func() bool { return sent.Load() > from+int64(20*cfg.WindowMessages) }, "the sender to go on")
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	released = true
	close(gate)
	select {
	case err := <-ended:
		if !errors.Is(err, ErrEvicted) || !errors.Is(err, ErrRemoved) {
			t.Fatalf("the evicted member ended with %v, want ErrEvicted (an ErrRemoved)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the evicted member never learned it was removed")
	}
}

// A member too slow for the group, evicted and rejoining by itself
// (Rejoin), waits longer before each new try: RejoinBackoff, then twice
// that, and so on, so the group is not made to change views every
// second. Its Stats count the evictions and rejoins across incarnations.
func TestRejoinBacksOff(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SlowMember, cfg.EvictAfter = SlowMemberEvict, 100*time.Millisecond
	cfg.WindowMessages = 256
	cfg.Rejoin, cfg.RejoinBackoff, cfg.RejoinBackoffMax = true, 150*time.Millisecond, 400*time.Millisecond
	engines, addrs := newEngines(t, 4, cfg)
	var mu sync.Mutex
	var removedAt, rejoinedAt []time.Time
	var evicted []bool
	var latest *Group
	var groups []*Group
	for i, e := range engines {
		h := Handlers{Deliver: func(Message) {}}
		if i == 3 {
			h.Deliver = func(Message) { time.Sleep(200 * time.Microsecond) }
			h.Ended = func(err error) {
				mu.Lock()
				removedAt = append(removedAt, time.Now())
				evicted = append(evicted, errors.Is(err, ErrEvicted))
				mu.Unlock()
			}
			h.Rejoined = func(g *Group) {
				mu.Lock()
				rejoinedAt = append(rejoinedAt, time.Now())
				latest = g
				mu.Unlock()
			}
		}
		g, err := e.Join(context.Background(), "rejoin", addrs, h)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	waitFullView(t, groups)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		payload := make([]byte, 32)
		for ctx.Err() == nil {
			sctx, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
			groups[0].Send(sctx, FIFO, payload) // held back while the slow member is in
			scancel()
		}
	}()
	defer func() { cancel(); <-done }()
	const cycles = 4
	waitFor(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(rejoinedAt) >= cycles
	}, fmt.Sprintf("%d evictions and rejoins", cycles))
	mu.Lock()
	// Each rejoin after an eviction waits RejoinBackoff at least, and the
	// waits grow: some wait at least twice that. (A loaded machine may
	// also get the slow member suspected rather than evicted; it then
	// rejoins at once.)
	longest, evictions := time.Duration(0), 0
	for k := 0; k < cycles; k++ {
		gap := rejoinedAt[k].Sub(removedAt[k])
		longest = max(longest, gap)
		if evicted[k] {
			evictions++
			if gap < cfg.RejoinBackoff {
				t.Errorf("rejoin %d came %v after its eviction, want at least %v", k+1, gap, cfg.RejoinBackoff)
			}
		}
	}
	mu.Unlock()
	if evictions == 0 {
		t.Fatal("the slow member was never evicted")
	}
	if longest < 2*cfg.RejoinBackoff {
		t.Errorf("the longest wait before a rejoin was %v, want at least %v after removals in a row", longest, 2*cfg.RejoinBackoff)
	}
	// The newest incarnation's stats count every rejoin and eviction so
	// far (it may be evicted again meanwhile: at least these).
	waitFor(t, 5*time.Second, func() bool {
		mu.Lock()
		g := latest
		mu.Unlock()
		s := g.Stats()
		return s.Rejoins >= cycles && s.TimesEvicted >= uint64(evictions)
	}, "the rejoined member's stats to count the evictions and rejoins")
}
