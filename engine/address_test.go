package engine

import (
	"context"
	"fmt"
	"strings"
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
