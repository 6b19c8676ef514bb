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
	for i, x := range addrs {
		l := New(cfg, uint64(i+1)*1000)
		for _, y := range addrs {
			if y != x {
				l.Watch(y, 0)
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
	n.tick(100) // greetings: runs are learned
	clear(n.sent)
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

// A process sending other traffic to a peer sends it a heartbeat only
// once per silence window (for the digest), not every heartbeat interval.
func TestFewHeartbeatsWhileSending(t *testing.T) {
	l := New(cfg, 1)
	l.Watch(b, 0)
	l.Receive(b, wire.Liveness{Kind: wire.LiveHeartbeat, Boot: 9}) // its run is known: no greeting
	beats := 0
	for range 10 * cfg.SilentTicks {
		l.Sent(b)
		l.Heard(b)
		msgs, _ := l.Tick(nil)
		beats += len(msgs)
	}
	if beats != 10 {
		t.Fatalf("%d heartbeats in 10 silence windows of traffic, want 10", beats)
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
	n.procs[a].Changes()
	n.procs[a].Heard(c)
	if ch := n.procs[a].Changes(); len(ch) != 1 || ch[0].Addr != c || ch[0].Restarted || n.procs[a].Suspected(c) || n.procs[a].Stats().Refuted != 1 {
		t.Fatalf("a suspected peer heard again is not refuted: %v", ch)
	}
}

// A peer that restarts at the same address is known by its new boot: the
// change says so once, and messages of its former run count for nothing.
func TestRestartSeen(t *testing.T) {
	l := New(cfg, 1)
	l.Watch(b, 0)
	if l.Receive(b, wire.Liveness{Kind: wire.LiveHeartbeat, Boot: 100}); len(l.Changes()) != 0 {
		t.Fatal("a change at the first message")
	}
	l.Receive(b, wire.Liveness{Kind: wire.LiveHeartbeat, Boot: 200})
	if ch := l.Changes(); len(ch) != 1 || !ch[0].Restarted || ch[0].Boot != 200 || l.Boot(b) != 200 {
		t.Fatalf("restart: %v (boot %d)", ch, l.Boot(b))
	}
	for range cfg.SilentTicks + cfg.ProbeTicks + 1 {
		l.Tick(nil)
	}
	if !l.Suspected(b) {
		t.Fatal("not suspected after silence")
	}
	if out := l.Receive(b, wire.Liveness{Kind: wire.LivePing, Boot: 100}); len(out)+len(l.Changes()) != 0 || !l.Suspected(b) {
		t.Fatalf("a message of the former run counted: %v", out)
	}
	l.Receive(b, wire.Liveness{Kind: wire.LiveHeartbeat, Boot: 200})
	if ch := l.Changes(); len(ch) != 1 || ch[0].Restarted || l.Suspected(b) {
		t.Fatalf("heard again: %v", ch)
	}
}

// Two processes whose shared views differ (one missed an install while
// the group was idle) are told to nudge their groups, once per silence
// window at most; in step, never.
func TestDigestNudges(t *testing.T) {
	n := newNet(a, b)
	n.tick(200)
	for _, x := range []netip.AddrPort{a, b} {
		if ch := n.procs[x].Changes(); len(ch) != 0 {
			t.Fatalf("%v: changes in step: %v", x, ch)
		}
	}
	// a moves to view 2 of a group; b stays in view 1.
	n.procs[a].Unwatch(b, 0)
	n.procs[a].Watch(b, ViewToken(1, 1, 2))
	n.procs[b].Unwatch(a, 0)
	n.procs[b].Watch(a, ViewToken(1, 1, 1))
	var nudges int
	for range 10 * cfg.SilentTicks {
		n.tick(1)
		for _, c := range n.procs[b].Changes() {
			if !c.Nudge || c.Addr != a {
				t.Fatalf("change %v", c)
			}
			nudges++
		}
	}
	if nudges < 5 || nudges > 10 {
		t.Fatalf("%d nudges in 10 silence windows, want one per window at most and some", nudges)
	}
}

// A process that has a peer in a view the peer has left hears an empty
// digest from it, and nudges its groups.
func TestHeartbeatFromStrangerAnswered(t *testing.T) {
	n := newNet(a, b)
	n.tick(100)
	n.procs[a].Unwatch(b, 0)
	n.procs[a].Watch(b, ViewToken(1, 1, 1))
	n.procs[b].Unwatch(a, 0) // b left the only view they shared; a missed it
	nudged := false
	for range 5 * cfg.SilentTicks {
		n.tick(1)
		for _, c := range n.procs[a].Changes() {
			nudged = nudged || c.Nudge && c.Addr == b
		}
	}
	if !nudged {
		t.Fatal("a was never nudged about b")
	}
}

// Two processes that watch each other no longer never answer each
// other's empty digests: a heartbeat of each, duplicated, once made them
// exchange heartbeats without end.
func TestEmptyDigestNotAnswered(t *testing.T) {
	l := New(cfg, 1)
	if out := l.Receive(b, wire.Liveness{Kind: wire.LiveHeartbeat, Boot: 1}); len(out) != 0 {
		t.Fatalf("an empty digest from a stranger was answered: %v", out)
	}
	out := l.Receive(b, wire.Liveness{Kind: wire.LiveHeartbeat, Boot: 1, Nonce: 42})
	if len(out) != 1 || out[0].Kind != wire.LiveHeartbeat || out[0].Nonce != 0 {
		t.Fatalf("a digest from a stranger: answered %v, want one empty digest", out)
	}
}
