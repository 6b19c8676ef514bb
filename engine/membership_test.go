package engine

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/udp/memnet"
)

// members starts n engines (on net when not nil) that join one group and
// waits until all see the full view. Views each member saw are recorded.
type members struct {
	engines []*Engine
	groups  []*Group
	mu      sync.Mutex
	views   [][]View
	ended   []error
}

func startMembers(t *testing.T, n int, net *memnet.Network, edit func(*Config)) *members {
	t.Helper()
	return startMembersDeliver(t, n, net, edit, func(int) func(Message) { return func(Message) {} })
}

// startMembersWith starts n members on loopback whose deliveries go to
// deliver(i).
func startMembersWith(t *testing.T, n int, deliver func(i int) func(Message)) *members {
	t.Helper()
	return startMembersDeliver(t, n, nil, nil, deliver)
}

func startMembersDeliver(t *testing.T, n int, net *memnet.Network, edit func(*Config), deliver func(i int) func(Message)) *members {
	t.Helper()
	ms := &members{views: make([][]View, n), ended: make([]error, n)}
	var seeds []string
	for i := 0; i < n; i++ {
		cfg := DefaultConfig()
		if net != nil {
			conn, err := net.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, 0, byte(i + 1)}), 7000))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Conn = conn
		}
		if edit != nil {
			edit(&cfg)
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		ms.engines = append(ms.engines, e)
		seeds = append(seeds, e.Addr().String())
	}
	for i, e := range ms.engines {
		i := i
		g, err := e.Join(context.Background(), "members", seeds, Handlers{
			Deliver: deliver(i),
			View: func(v View) {
				ms.mu.Lock()
				ms.views[i] = append(ms.views[i], v)
				ms.mu.Unlock()
			},
			Ended: func(err error) {
				ms.mu.Lock()
				ms.ended[i] = err
				ms.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ms.groups = append(ms.groups, g)
	}
	waitFullView(t, ms.groups)
	return ms
}

func (ms *members) lastView(i int) View {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if len(ms.views[i]) == 0 {
		return View{}
	}
	return ms.views[i][len(ms.views[i])-1]
}

func (ms *members) endedWith(i int) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.ended[i]
}

// A member that stops without a word is detected, and the survivors
// install a view without it within a second.
func TestCrashDetected(t *testing.T) {
	ms := startMembers(t, 3, nil, nil)
	crashed := ms.engines[2].Addr()
	start := time.Now()
	ms.engines[2].Close() // like kill -9: no leave, no more datagrams
	waitFor(t, 5*time.Second, func() bool {
		for i := 0; i < 2; i++ {
			if len(ms.lastView(i).Members) != 2 {
				return false
			}
		}
		return true
	}, "a view without the crashed member")
	took := time.Since(start)
	v := ms.lastView(0)
	if len(v.Failed) != 1 || v.Failed[0].Addr != crashed {
		t.Fatalf("view %+v does not name %v as failed", v, crashed)
	}
	// The defaults aim at 1 s (300 ms of silence, 150 ms of probes, a
	// round); a loaded test machine may stretch it, so only a gross miss
	// fails here.
	t.Logf("crash to new view: %v", took)
	if took > 3*time.Second {
		t.Errorf("new view after %v", took)
	}
}

// A member that leaves is told so, and the others see it leave.
func TestLeave(t *testing.T) {
	ms := startMembers(t, 3, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ms.groups[1].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ms.endedWith(1); !errors.Is(err, ErrLeft) {
		t.Fatalf("Ended got %v, want ErrLeft", err)
	}
	if err := ms.groups[1].Send(ctx, FIFO, []byte("x")); !errors.Is(err, ErrLeft) {
		t.Fatalf("Send after Leave: %v", err)
	}
	waitFor(t, 5*time.Second, func() bool { return len(ms.lastView(0).Members) == 2 }, "a view without the leaver")
	if v := ms.lastView(0); len(v.Left) != 1 || v.Left[0].Addr != ms.engines[1].Addr() {
		t.Fatalf("view %+v does not show the leave", v)
	}
}

// A member cut off from the majority blocks (Send fails with ErrBlocked
// after BlockTimeout) and installs no view of its own; the majority goes
// on without it. After the partition heals it learns it was removed, and
// with Rejoin it comes back as a new incarnation.
func TestMinorityBlocksThenRejoins(t *testing.T) {
	net := memnet.New(7)
	t.Cleanup(func() { net.Close() })
	ms := startMembers(t, 3, net, func(c *Config) {
		c.BlockTimeout = time.Second
		c.Rejoin = true
	})
	a, b, c := ms.engines[0].Addr(), ms.engines[1].Addr(), ms.engines[2].Addr()
	net.Partition([]netip.AddrPort{a, b}, []netip.AddrPort{c})
	waitFor(t, 5*time.Second, func() bool {
		return len(ms.lastView(0).Members) == 2 && len(ms.lastView(1).Members) == 2
	}, "the majority's view")
	waitFor(t, 5*time.Second, func() bool {
		return errors.Is(ms.groups[2].Send(context.Background(), FIFO, []byte("x")), ErrBlocked)
	}, "the minority to block")
	if n := len(ms.lastView(2).Members); n != 3 {
		t.Fatalf("the minority installed a view of %d", n)
	}
	net.Heal()
	waitFor(t, 10*time.Second, func() bool { return errors.Is(ms.endedWith(2), ErrRemoved) }, "the minority to learn it was removed")
	waitFor(t, 10*time.Second, func() bool { return len(ms.lastView(0).Members) == 3 }, "the rejoin")
	v := ms.lastView(0)
	if len(v.Joined) != 1 || v.Joined[0].Addr != c || v.Joined[0].Incarnation == ms.groups[2].View().Members[2].Incarnation {
		t.Fatalf("view after the rejoin: %+v", v)
	}
}

// Flush returns only once every member holds what this one sent: while
// one member is cut off it must not return, and once the link heals it
// does.
func TestFlush(t *testing.T) {
	net := memnet.New(11)
	t.Cleanup(func() { net.Close() })
	ms := startMembers(t, 3, net, nil)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := ms.groups[0].Send(ctx, FIFO, []byte("before")); err != nil {
			t.Fatal(err)
		}
	}
	if err := ms.groups[0].Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Cut member 2 off from the sender only (it still hears member 1, so
	// it is not removed quickly), and send more.
	a, c := ms.engines[0].Addr(), ms.engines[2].Addr()
	net.SetLink(a, c, memnet.Faults{Drop: 1})
	for i := 0; i < 100; i++ {
		if err := ms.groups[0].Send(ctx, FIFO, []byte("after")); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := ms.groups[0].Flush(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush returned %v while a member could not hold the messages", err)
	}
	net.SetLink(a, c, memnet.Faults{})
	long, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	if err := ms.groups[0].Flush(long); err != nil {
		t.Fatal(err)
	}
	if len(ms.groups[0].View().Members) == 3 {
		// Healed within the detector's patience: member 2 got the messages
		// by retransmission, not by a view change.
		if st := ms.groups[2].Stats(); st.MessagesReceived < 200 {
			t.Fatalf("flushed, but member 2 received only %d messages", st.MessagesReceived)
		}
	}
}

// A member crashes while every member sends as fast as it can: the
// survivors install a view without it and go on delivering in it.
func TestCrashUnderFullLoad(t *testing.T) {
	var delivered [4]atomic.Int64
	ms := startMembersWith(t, 4, func(i int) func(Message) {
		return func(Message) { delivered[i].Add(1) }
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 64)
			for ctx.Err() == nil {
				if err := ms.groups[i].Send(ctx, FIFO, p); err != nil && ctx.Err() == nil {
					t.Errorf("send: %v", err)
					return
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(300 * time.Millisecond) // full windows everywhere
	ms.engines[3].Close()
	waitFor(t, 5*time.Second, func() bool {
		for i := 0; i < 3; i++ {
			if len(ms.lastView(i).Members) != 3 {
				return false
			}
		}
		return true
	}, "a view without the crashed member")
	var at [3]int64
	for i := range at {
		at[i] = delivered[i].Load()
	}
	waitFor(t, 5*time.Second, func() bool {
		for i := range at {
			if delivered[i].Load() < at[i]+10000 {
				return false
			}
		}
		return true
	}, "deliveries in the new view")
}

// A process joining a group that is blocked (a group of two whose other
// member crashed) gets an error wrapping ErrBlocked once the group has
// said so for BlockTimeout, instead of waiting for good.
func TestJoinBlockedGroupFails(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BlockTimeout = 300 * time.Millisecond
	engines, addrs := newEngines(t, 3, cfg)
	var groups []*Group
	for _, e := range engines[:2] {
		g, err := e.Join(context.Background(), "blocked", addrs[:2], Handlers{Deliver: func(Message) {}})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	waitFullView(t, groups)
	engines[1].Close()
	waitFor(t, 10*time.Second, func() bool { return groups[0].blocked.Load() }, "the survivor to block")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := engines[2].Join(ctx, "blocked", addrs[:1], Handlers{Deliver: func(Message) {}})
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("Join through a blocked group: %v, want an error wrapping ErrBlocked", err)
	}
	t.Logf("Join failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// A group at its MaxMembers turns a joiner away at once with ErrFull.
func TestJoinFullGroupFails(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxMembers = 2
	engines, addrs := newEngines(t, 3, cfg)
	var groups []*Group
	for _, e := range engines[:2] {
		g, err := e.Join(context.Background(), "full", addrs[:2], Handlers{Deliver: func(Message) {}})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	waitFullView(t, groups)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := engines[2].Join(ctx, "full", addrs[:2], Handlers{Deliver: func(Message) {}}); !errors.Is(err, ErrFull) {
		t.Fatalf("Join of a full group: %v, want an error wrapping ErrFull", err)
	}
	if v := groups[0].View(); len(v.Members) != 2 {
		t.Fatalf("the view has %d members", len(v.Members))
	}
}

// A group of 2 under QuorumTieBreaker outlives the crash of its younger
// member: the oldest goes on alone and keeps sending and delivering.
// Under QuorumMajority the same crash blocks it (the documented limit).
func TestTieBreakerPairSurvives(t *testing.T) {
	for _, q := range []Quorum{QuorumTieBreaker, QuorumMajority} {
		t.Run(q.String(), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Quorum = q
			cfg.BlockTimeout = 2 * time.Second
			engines, addrs := newEngines(t, 2, cfg)
			var groups []*Group
			var got atomic.Int64
			for _, e := range engines {
				g, err := e.Join(context.Background(), "pair", addrs, Handlers{Deliver: func(Message) { got.Add(1) }})
				if err != nil {
					t.Fatal(err)
				}
				groups = append(groups, g)
			}
			waitFullView(t, groups)
			oldest := 0
			if groups[0].View().Self != 0 {
				oldest = 1
			}
			engines[1-oldest].Close() // the younger crashes
			g := groups[oldest]
			if q == QuorumMajority {
				waitFor(t, 10*time.Second, func() bool { return g.blocked.Load() }, "the survivor to block")
				return
			}
			waitFor(t, 10*time.Second, func() bool { return len(g.View().Members) == 1 }, "a view of the survivor alone")
			before := got.Load()
			if err := g.Send(context.Background(), FIFO, []byte("still here")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, func() bool { return got.Load() > before }, "its own message delivered")
		})
	}
}
