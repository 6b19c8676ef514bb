package liveness

import (
	"net/netip"
	"testing"

	"github.com/cohort-vs/cohort/internal/wire"
)

var (
	a = netip.MustParseAddrPort("10.0.0.1:1")
	b = netip.MustParseAddrPort("10.0.0.2:1")
	c = netip.MustParseAddrPort("10.0.0.3:1")
)

var cfg = Config{HeartbeatTicks: 10, SilentTicks: 50, ProbeTicks: 30, Helpers: 2}

// net runs processes that each watch the others, and delivers what they
// send at once unless cut.
type net struct {
	procs    map[netip.AddrPort]*Liveness
	cut      map[[2]netip.AddrPort]bool // directed links that lose everything
	sent     map[netip.AddrPort]int     // datagrams each sent
	suspects map[netip.AddrPort][]netip.AddrPort
}

func newNet(addrs ...netip.AddrPort) *net {
	n := &net{procs: map[netip.AddrPort]*Liveness{}, cut: map[[2]netip.AddrPort]bool{}, sent: map[netip.AddrPort]int{}, suspects: map[netip.AddrPort][]netip.AddrPort{}}
	for _, x := range addrs {
		l := New(cfg)
		for _, y := range addrs {
			if y != x {
				l.Watch(y)
			}
		}
		n.procs[x] = l
	}
	return n
}

func (n *net) deliver(from netip.AddrPort, msgs []Message) {
	queue := append([]Message(nil), msgs...)
	froms := make([]netip.AddrPort, len(queue))
	for i := range froms {
		froms[i] = from
	}
	for len(queue) > 0 {
		m, f := queue[0], froms[0]
		queue, froms = queue[1:], froms[1:]
		n.sent[f]++
		to := n.procs[m.To]
		if to == nil || n.cut[[2]netip.AddrPort{f, m.To}] {
			continue
		}
		to.Heard(f)
		for _, r := range to.Receive(f, m.Liveness) {
			queue, froms = append(queue, r), append(froms, m.To)
		}
	}
}

func (n *net) tick(ticks int) {
	for range ticks {
		for _, x := range []netip.AddrPort{a, b, c} {
			l := n.procs[x]
			if l == nil {
				continue
			}
			msgs, sus := l.Tick(nil)
			n.suspects[x] = append(n.suspects[x], sus...)
			n.deliver(x, msgs)
		}
	}
}

// Idle, each process sends each peer one heartbeat per HeartbeatTicks
// and suspects no one.
func TestIdleHeartbeats(t *testing.T) {
	n := newNet(a, b, c)
	n.tick(1000)
	for _, x := range []netip.AddrPort{a, b, c} {
		if got, want := n.sent[x], 2*1000/int(cfg.HeartbeatTicks); got != want {
			t.Errorf("%v sent %d datagrams in 1000 ticks, want %d (one per peer per heartbeat interval)", x, got, want)
		}
		if len(n.suspects[x]) > 0 {
			t.Errorf("%v suspected %v", x, n.suspects[x])
		}
	}
}

// A process sent other traffic sends no heartbeat.
func TestNoHeartbeatWhileSending(t *testing.T) {
	l := New(cfg)
	l.Watch(b)
	for range 100 {
		l.Sent(b)
		l.Heard(b)
		if msgs, _ := l.Tick(nil); len(msgs) > 0 {
			t.Fatalf("sent %v to a peer it was sending to anyway", msgs)
		}
	}
}

// A crashed peer is probed, then suspected once, within SilentTicks +
// ProbeTicks; heard again, it is no longer suspected, and Heard says so.
func TestCrashSuspectedAndHeardAgain(t *testing.T) {
	n := newNet(a, b, c)
	n.tick(100)
	crashed := n.procs[c]
	delete(n.procs, c)
	n.tick(int(cfg.SilentTicks + cfg.ProbeTicks + cfg.HeartbeatTicks))
	for _, x := range []netip.AddrPort{a, b} {
		if s := n.suspects[x]; len(s) != 1 || s[0] != c {
			t.Fatalf("%v suspected %v, want [%v]", x, s, c)
		}
		if !n.procs[x].Suspected(c) {
			t.Fatalf("%v does not hold %v suspected", x, c)
		}
	}
	n.tick(200)
	if len(n.suspects[a]) != 1 {
		t.Fatalf("suspected again: %v", n.suspects[a])
	}
	n.procs[c] = crashed
	if !n.procs[a].Heard(c) || n.procs[a].Suspected(c) || n.procs[a].Stats().Refuted != 1 {
		t.Fatal("a suspected peer heard again is not refuted")
	}
}

// A peer that one process cannot reach directly, but another can, is
// not suspected: the indirect probe's relayed ack counts.
func TestIndirectProbeSavesPeer(t *testing.T) {
	n := newNet(a, b, c)
	n.cut[[2]netip.AddrPort{c, a}] = true // a hears nothing from c directly
	n.cut[[2]netip.AddrPort{a, c}] = true
	n.tick(1000)
	if len(n.suspects[a]) > 0 {
		t.Fatalf("a suspected %v though b reaches c", n.suspects[a])
	}
	if n.procs[a].Stats().ProbesSent == 0 {
		t.Fatal("a never probed c")
	}
}

// Probe requests are taken only from peers and about peers.
func TestProbeRequestsFromStrangersIgnored(t *testing.T) {
	l := New(cfg)
	l.Watch(b)
	stranger := netip.MustParseAddrPort("10.9.9.9:9")
	if out := l.Receive(stranger, wire.Liveness{Kind: wire.LivePingReq, Nonce: 1, Target: b}); len(out) != 0 {
		t.Fatalf("a stranger made it send %v", out)
	}
	if out := l.Receive(b, wire.Liveness{Kind: wire.LivePingReq, Nonce: 1, Target: stranger}); len(out) != 0 {
		t.Fatalf("a peer made it send %v to a stranger", out)
	}
	if out := l.Receive(stranger, wire.Liveness{Kind: wire.LivePing, Nonce: 7}); len(out) != 1 || out[0].Kind != wire.LiveAck || out[0].Nonce != 7 {
		t.Fatalf("ping answered with %v", out)
	}
}

// A peer is watched while any group has it; the last Unwatch forgets it.
func TestWatchCounts(t *testing.T) {
	l := New(cfg)
	l.Watch(b)
	l.Watch(b)
	l.Unwatch(b)
	if !l.Watched(b) {
		t.Fatal("forgotten while a group still has it")
	}
	l.Unwatch(b)
	if l.Watched(b) {
		t.Fatal("still watched with no group")
	}
	if msgs, _ := l.Tick(nil); len(msgs) != 0 {
		t.Fatalf("sent %v with no peers", msgs)
	}
}
