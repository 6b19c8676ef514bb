package engine

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/seal"
	"github.com/cohort-vs/cohort/udp/memnet"
)

func testKeyring(t *testing.T, b byte) *seal.Keyring {
	t.Helper()
	r, err := seal.NewKeyring(bytes.Repeat([]byte{b}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A keyed group (each member its own keyring holding the same key) forms,
// and delivers every ordering, large messages included, with the
// guarantees checked; nothing is refused between its members.
func TestKeyedGroup(t *testing.T) {
	cl := newCluster(t, 3, DefaultConfig(), func(i int, c *Config) { c.Keys = testKeyring(t, 1) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const each = 300
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range cl.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < each; n++ {
				size, o := 64, []Ordering{FIFO, Causal, Total, Total | Safe}[n%4]
				if n%50 == 0 {
					size = 200 << 10 // fragmented
				}
				if err := cl.send(ctx, i, n, size, o); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cl.waitDelivered(3*each, 20*time.Second)
	cl.verify()
	for i, e := range cl.engines {
		if s := e.Stats(); s.AuthFailed+s.Replayed+s.Unauthenticated+s.SealFailed != 0 {
			t.Errorf("engine %d refused its own group's datagrams: %+v", i, s)
		}
	}
}

// A process without the key gets no answer at all, whatever it sends; a
// keyless engine, or one with another key, that names the group's
// members as seeds does not find the group (it forms its own), and the
// group goes on untouched.
func TestKeylessProcessGetsNoAnswer(t *testing.T) {
	cl := newCluster(t, 2, DefaultConfig(), func(i int, c *Config) { c.Keys = testKeyring(t, 1) })
	v := cl.groups[0].View()
	members := toWire(v.Members)
	o := newOutsider(t)
	kinds := []*wire.Control{
		{Kind: wire.CtlDiscover},
		{Kind: wire.CtlJoin, Target: o.id},
		{Kind: wire.CtlViewQuery},
		{Kind: wire.CtlSuspect, Target: members[1]},
	}
	sent := 0
	for _, m := range members {
		for _, c := range kinds {
			c.From = o.id
			o.send(m.Addr, "test", v.Epoch, c)
			sent++
		}
	}
	// And a datagram sealed under another key.
	other := testKeyring(t, 2)
	plain := wire.AppendControl(nil, wire.Header{Sender: wire.NoRank, Group: wire.GroupID("test")}, &wire.Control{Kind: wire.CtlDiscover, From: o.id})
	sealed, err := seal.NewSealer(other).Seal(nil, other.Primary(), other.Primary().GroupID("test"), 0, plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.conn.WriteToUDPAddrPort(sealed, members[0].Addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		var unauth, failed uint64
		for _, e := range cl.engines {
			s := e.Stats()
			unauth, failed = unauth+s.Unauthenticated, failed+s.AuthFailed
		}
		return unauth == uint64(sent) && failed == 1
	}, "every datagram refused")
	// Answers go out in the round that takes the question in: by now
	// any would be on the socket.
	o.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := o.conn.ReadFromUDPAddrPort(make([]byte, 65536)); err == nil {
		t.Fatalf("the outsider got a %d-byte answer", n)
	}

	// Engines without the key, or with another, looking for the group.
	seeds := []string{members[0].Addr.String(), members[1].Addr.String()}
	for _, keys := range []*seal.Keyring{nil, testKeyring(t, 3)} {
		cfg := DefaultConfig()
		cfg.Keys = keys
		cfg.DiscoverTimeout = 100 * time.Millisecond
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		g, err := e.Join(ctx, "test", append(seeds, e.Addr().String()), Handlers{Deliver: func(Message) {}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := len(g.View().Members); got != 1 {
			t.Fatalf("keys %v: joined a view of %d members", keys != nil, got)
		}
	}
	for i, g := range cl.groups {
		if got := g.View(); got.Epoch != v.Epoch || len(got.Members) != 2 {
			t.Fatalf("member %d: view %d of %d members, want the untouched view %d", i, got.Epoch, len(got.Members), v.Epoch)
		}
	}
}

// A real session's datagrams, captured on the path, then replayed at the
// live keyed group: as they were, with spoofed member source addresses,
// to other members, bit-flipped and truncated. None is taken: each is
// counted as a replay or an authentication failure; the group delivers
// exactly what its members sent, checked, and changes no view.
func TestKeyedReplayRefused(t *testing.T) {
	net := memnet.New(11)
	t.Cleanup(func() { net.Close() })
	var addrs []netip.AddrPort
	cl := newCluster(t, 3, DefaultConfig(), func(i int, c *Config) {
		addr := netip.MustParseAddrPort(fmt.Sprintf("10.3.0.%d:5000", i+1))
		conn, err := net.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Conn, c.Keys = conn, testKeyring(t, 1)
		addrs = append(addrs, addr)
	})
	epoch := cl.groups[0].View().Epoch
	type captured struct {
		from, to netip.AddrPort
		b        []byte
	}
	var mu sync.Mutex
	var capture []captured
	net.SetTap(func(from, to netip.AddrPort, b []byte) {
		mu.Lock()
		capture = append(capture, captured{from, to, bytes.Clone(b)})
		mu.Unlock()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := 0
	send := func(count int) {
		for k := 0; k < count; k++ {
			i := n % 3
			size := 100
			if n%40 == 0 {
				size = 30 << 10
			}
			if err := cl.send(ctx, i, n, size, []Ordering{FIFO, Total, Causal | Safe}[n%3]); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	send(600)
	cl.waitDelivered(n, 10*time.Second)
	net.SetTap(nil)
	mu.Lock()
	got := capture
	mu.Unlock()
	if len(got) < 100 {
		t.Fatalf("captured only %d datagrams", len(got))
	}
	refused := func() (total uint64) {
		for _, e := range cl.engines {
			s := e.Stats()
			total += s.Replayed + s.AuthFailed + s.Unauthenticated + s.Malformed
		}
		return total
	}
	before := refused()
	injected := 0
	inject := func(from, to netip.AddrPort, b []byte) {
		if err := net.Inject(from, to, b); err != nil {
			t.Fatal(err)
		}
		// A bundle's datagrams are refused one by one; a bundle that
		// does not split, as a whole (malformed).
		if inner, err := wire.SplitBundle(b, nil); wire.IsBundle(b) && err == nil {
			injected += len(inner)
		} else {
			injected++
		}
	}
	for i, c := range got {
		other := addrs[(indexOf(addrs, c.to)+1+i%2)%3]
		inject(c.from, c.to, c.b)  // as it was
		inject(other, c.to, c.b)   // from another member's address
		inject(c.from, other, c.b) // to another member
		flipped := bytes.Clone(c.b)
		flipped[(i*7)%len(flipped)] ^= 1 << (i % 8)
		inject(c.from, c.to, flipped)
		inject(c.from, c.to, c.b[:(i*13)%len(c.b)])
		if i%50 == 0 {
			send(3) // the group goes on meanwhile
		}
	}
	waitFor(t, 10*time.Second, func() bool { return refused()-before == uint64(injected) }, fmt.Sprintf("%d injected datagrams refused", injected))
	send(60)
	cl.waitDelivered(n, 10*time.Second)
	cl.verify()
	cl.mu.Lock()
	for i, c := range cl.count {
		if c != n {
			t.Errorf("member %d delivered %d messages, %d were sent", i, c, n)
		}
	}
	cl.mu.Unlock()
	for i, g := range cl.groups {
		if v := g.View(); v.Epoch != epoch || len(v.Members) != 3 {
			t.Fatalf("member %d: view %d of %d members after the replays, want view %d of 3", i, v.Epoch, len(v.Members), epoch)
		}
	}
	var replays, failed uint64
	for _, e := range cl.engines {
		s := e.Stats()
		replays, failed = replays+s.Replayed, failed+s.AuthFailed
	}
	t.Logf("captured %d datagrams; injected %d: %d refused as replays, %d as failing authentication", len(got), injected, replays, failed)
}

func indexOf(as []netip.AddrPort, a netip.AddrPort) int {
	for i, x := range as {
		if x == a {
			return i
		}
	}
	return -1
}

// The key rotates while a member sends flat out: install the new key
// everywhere, use it everywhere, remove the old one everywhere, one
// member at a time. Nothing is lost, nobody is suspected, no view changes.
func TestKeyRotationUnderLoad(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, seal.KeySize), bytes.Repeat([]byte{2}, seal.KeySize)
	var rings []*seal.Keyring
	cl := newCluster(t, 3, DefaultConfig(), func(i int, c *Config) {
		r, err := seal.NewKeyring(oldKey)
		if err != nil {
			t.Fatal(err)
		}
		rings = append(rings, r)
		c.Keys = r
	})
	epoch := cl.groups[0].View().Epoch
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sent atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := cl.send(ctx, n%2, n, 200, FIFO); err != nil {
				done <- err
				return
			}
			sent.Add(1)
		}
	}()
	step := func(what string, f func(r *seal.Keyring) error) {
		for i, r := range rings {
			// Let traffic flow under each intermediate state.
			at := sent.Load()
			waitFor(t, 10*time.Second, func() bool { return sent.Load() > at+2000 }, "traffic before "+what)
			if err := f(r); err != nil {
				t.Fatalf("%s at member %d: %v", what, i, err)
			}
		}
	}
	step("install", func(r *seal.Keyring) error { return r.Install(newKey) })
	step("use", func(r *seal.Keyring) error { return r.Use(newKey) })
	step("remove", func(r *seal.Keyring) error { return r.Remove(oldKey) })
	at := sent.Load()
	waitFor(t, 10*time.Second, func() bool { return sent.Load() > at+2000 }, "traffic after the rotation")
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cl.waitDelivered(int(sent.Load()), 20*time.Second)
	cl.verify()
	for i, g := range cl.groups {
		v, s := g.View(), g.Stats()
		if v.Epoch != epoch || s.Suspicions != 0 {
			t.Fatalf("member %d: view %d (want %d), %d suspicions", i, v.Epoch, epoch, s.Suspicions)
		}
	}
	for i, e := range cl.engines {
		if s := e.Stats(); s.AuthFailed+s.Replayed != 0 {
			t.Errorf("engine %d refused %d datagrams during the rotation", i, s.AuthFailed+s.Replayed)
		}
	}
	t.Logf("%d messages sent and delivered across the rotation", sent.Load())
}

// An address that is not loopback without a key is refused at New, with
// what to do; Insecure allows it; a key makes it safe.
func TestOpenNetworkNeedsKey(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ListenAddr = "0.0.0.0:0"
	err := cfg.validate()
	if err == nil || !strings.Contains(err.Error(), "Keys") || !strings.Contains(err.Error(), "Insecure") {
		t.Fatalf("validate: %v, want a refusal naming Keys and Insecure", err)
	}
	cfg.Insecure = true
	if err := cfg.validate(); err != nil {
		t.Fatalf("Insecure: %v", err)
	}
	cfg.Insecure, cfg.Keys = false, testKeyring(t, 1)
	if err := cfg.validate(); err != nil {
		t.Fatalf("with Keys: %v", err)
	}
	cfg.MaxDatagram = 520
	if err := cfg.validate(); err == nil {
		t.Fatal("took a MaxDatagram that leaves under 512 bytes once sealed")
	}
}
