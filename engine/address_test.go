package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Three engines bound to the wildcard address, each advertising its
// loopback address, find each other through seeds given as host names
// (localhost) and form one group that delivers.
func TestWildcardBindAdvertiseAndHostnameSeeds(t *testing.T) {
	var engines []*Engine
	for i := 0; i < 3; i++ {
		cfg := DefaultConfig()
		cfg.ListenAddr, cfg.AdvertiseAddr, cfg.Keys = "0.0.0.0:0", "127.0.0.1", testKeyring(t, 1)
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		if a := e.Addr(); a.Addr().String() != "127.0.0.1" || a.Port() == 0 {
			t.Fatalf("advertised %s, want 127.0.0.1 and the bound port", a)
		}
		engines = append(engines, e)
	}
	var seeds []string
	for _, e := range engines {
		seeds = append(seeds, fmt.Sprintf("localhost:%d", e.Addr().Port()))
	}
	var groups []*Group
	got := make(chan int, 3)
	for i, e := range engines {
		i := i
		g, err := e.Join(context.Background(), "wild", seeds, Handlers{Deliver: func(Message) { got <- i }})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	waitFullView(t, groups)
	if err := groups[2].Send(context.Background(), FIFO, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	timeout := time.After(10 * time.Second)
	for len(seen) < 3 {
		select {
		case i := <-got:
			seen[i] = true
		case <-timeout:
			t.Fatalf("delivered at %v only", seen)
		}
	}
}

// Addresses that cannot work fail fast, saying what to fix.
func TestAddressErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdvertiseAddr = "0.0.0.0:7000"
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "AdvertiseAddr") {
		t.Fatalf("an unspecified AdvertiseAddr: %v", err)
	}
	e, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, seed := range []string{"no-port", "localhost:notaport", "no-such-host.invalid:7000"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := e.Join(ctx, "bad-seeds", []string{seed}, Handlers{Deliver: func(Message) {}})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "seed 0") {
			t.Fatalf("seed %q: %v, want an error naming the seed", seed, err)
		}
	}
}

// Shutdown leaves every group with nothing lost: the others deliver every
// message the leaver sent, in every group, then a view without it.
func TestShutdownLosesNothing(t *testing.T) {
	engines, addrs := newEngines(t, 3, DefaultConfig())
	names := []string{"one", "two"}
	counts := make([][3]atomic.Int64, len(names))
	var groups [][]*Group
	for k, name := range names {
		var gs []*Group
		for i, e := range engines {
			i := i
			g, err := e.Join(context.Background(), name, addrs, Handlers{Deliver: func(m Message) {
				if m.Sender.Addr == engines[0].Addr() {
					counts[k][i].Add(1)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			gs = append(gs, g)
		}
		waitFullView(t, gs)
		groups = append(groups, gs)
	}
	const n = 20000
	payload := make([]byte, 200)
	for k := range names {
		for j := 0; j < n; j++ {
			if err := groups[k][0].Send(context.Background(), FIFO, payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := engines[0].Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for k, name := range names {
		waitFor(t, 10*time.Second, func() bool {
			return len(groups[k][1].View().Members) == 2 && len(groups[k][2].View().Members) == 2
		}, "a view without the leaver in "+name)
		for i := 1; i < 3; i++ {
			if got := counts[k][i].Load(); got != n {
				t.Fatalf("group %s, member %d delivered %d of the leaver's %d messages", name, i, got, n)
			}
		}
	}
	if _, err := engines[0].Join(context.Background(), "after", nil, Handlers{Deliver: func(Message) {}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Shutdown: %v, want ErrClosed", err)
	}
}

// Each preset is valid as it is, and a group forms and delivers with it
// (on loopback here).
func TestPresets(t *testing.T) {
	for name, cfg := range map[string]Config{"local": DefaultLocalConfig(), "lan": DefaultLANConfig(), "wan": DefaultWANConfig()} {
		t.Run(name, func(t *testing.T) {
			if err := cfg.validate(); err != nil {
				t.Fatal(err)
			}
			cfg.DiscoverTimeout = 100 * time.Millisecond // the test's, not the preset's
			cl := newCluster(t, 3, cfg, nil)
			for n := 0; n < 300; n++ {
				if err := cl.send(context.Background(), n%3, n, 100+n*20, FIFO); err != nil {
					t.Fatal(err)
				}
			}
			cl.waitDelivered(300, 20*time.Second)
			cl.verify()
		})
	}
}

// A seed's host name is resolved again while discovering: a joiner whose
// seed name pointed nowhere at first finds the group once the name
// points at its member, before it would form a group of its own.
func TestSeedNamesResolvedAgain(t *testing.T) {
	cfg := DefaultConfig()
	member, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	g0, err := member.Join(context.Background(), "moving", nil, Handlers{Deliver: func(Message) {}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DiscoverTimeout = 3 * time.Second
	joiner, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer joiner.Close()
	var lookups atomic.Int32
	joiner.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		if host != "seed.test" {
			return nil, fmt.Errorf("unknown host %q", host)
		}
		if lookups.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.254")}, nil // nobody there yet
		}
		return []netip.Addr{member.Addr().Addr()}, nil
	}
	start := time.Now()
	g1, err := joiner.Join(context.Background(), "moving", []string{fmt.Sprintf("seed.test:%d", member.Addr().Port())}, Handlers{Deliver: func(Message) {}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(g1.View().Members); n != 2 {
		t.Fatalf("the joiner's first view has %d members after %v (lookups %d): it did not find the group", n, time.Since(start), lookups.Load())
	}
	waitFullView(t, []*Group{g0, g1})
}
