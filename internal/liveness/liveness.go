// Package liveness watches a process's peer processes once, whatever the
// number of groups it shares with each: a peer is heard from through any
// datagram it sends, for any group; when nothing else went to a peer
// lately a heartbeat does; a peer silent too long is probed, directly and
// through other peers (SWIM's indirect probe), and suspected only if
// nothing is heard while probing. A suspected peer is suspected in every
// group it is in (the driver tells them all), and heard again, it is
// watched afresh.
//
// It is a pure state machine over logical ticks, like the protocol: the
// driver reports what it heard and sent, calls Tick once per tick and
// sends what Tick and Receive return. Ticks are not advanced across a
// stall of the driver's own process, so a process does not blame its
// peers for the silence its own stall caused.
package liveness

import (
	"net/netip"

	"github.com/cohort-vs/cohort/internal/wire"
)

// Config sets the timing, in ticks.
type Config struct {
	// HeartbeatTicks: a peer that was sent nothing for this long gets a
	// heartbeat.
	HeartbeatTicks int64
	// SilentTicks: a peer silent this long is probed; ProbeTicks of
	// further silence while probing, and it is suspected.
	SilentTicks int64
	ProbeTicks  int64
	// Helpers: peers asked to probe a silent one on this process's
	// behalf.
	Helpers int
}

// Message is one liveness datagram to send.
type Message struct {
	To netip.AddrPort
	wire.Liveness
}

// MaxRelays bounds the indirect probes a process makes for others at
// once: a flood of probe requests costs a bounded table.
const MaxRelays = 1024

type peer struct {
	addr      netip.AddrPort
	refs      int // groups that have it in their view
	lastHeard int64
	lastSent  int64
	probing   int64 // tick a probe round started; -1: not probing
	probed    int64
	suspected bool
}

type relay struct {
	requester netip.AddrPort
	nonce     uint64 // the requester's
	target    netip.AddrPort
	at        int64
}

// Liveness watches the peers of one process.
type Liveness struct {
	cfg    Config
	now    int64
	peers  map[netip.AddrPort]*peer
	order  []*peer // the peers in the order they were first watched: deterministic iteration
	next   int     // rotates the choice of helpers
	nonce  uint64
	relays map[uint64]relay // by the nonce of this process's own ping to the target
	out    []Message
	stats  Stats
}

// Stats count what the peers' liveness cost and found.
type Stats struct {
	HeartbeatsSent uint64
	ProbesSent     uint64 // pings and probe requests
	Suspicions     uint64
	Refuted        uint64 // suspected peers heard again
}

// New makes a watcher with no peers.
func New(cfg Config) *Liveness {
	return &Liveness{cfg: cfg, peers: map[netip.AddrPort]*peer{}, relays: map[uint64]relay{}}
}

// Now is the current tick.
func (l *Liveness) Now() int64 { return l.now }

// Stats returns the counters.
func (l *Liveness) Stats() Stats { return l.stats }

// Watch counts one more group that has addr in its view: from the first,
// addr is watched (as if just heard from).
func (l *Liveness) Watch(addr netip.AddrPort) {
	if p := l.peers[addr]; p != nil {
		p.refs++
		return
	}
	p := &peer{addr: addr, refs: 1, lastHeard: l.now, lastSent: l.now, probing: -1}
	l.peers[addr] = p
	l.order = append(l.order, p)
}

// Unwatch counts one group fewer that has addr in its view; at none addr
// is forgotten.
func (l *Liveness) Unwatch(addr netip.AddrPort) {
	p := l.peers[addr]
	if p == nil {
		return
	}
	if p.refs--; p.refs > 0 {
		return
	}
	delete(l.peers, addr)
	for i, q := range l.order {
		if q == p {
			l.order = append(l.order[:i], l.order[i+1:]...)
			break
		}
	}
}

// Watched reports whether addr is watched.
func (l *Liveness) Watched(addr netip.AddrPort) bool { return l.peers[addr] != nil }

// Heard records a sign of life from addr: any datagram it sent that this
// process took. It reports whether addr was suspected until now.
func (l *Liveness) Heard(addr netip.AddrPort) (refuted bool) {
	p := l.peers[addr]
	if p == nil {
		return false
	}
	p.lastHeard, p.probing = l.now, -1
	if p.suspected {
		p.suspected = false
		l.stats.Refuted++
		return true
	}
	return false
}

// Sent records that a datagram went to addr: no heartbeat is due soon.
func (l *Liveness) Sent(addr netip.AddrPort) {
	if p := l.peers[addr]; p != nil {
		p.lastSent = l.now
	}
}

// HeardWithin reports whether addr was heard from in the last ticks
// ticks.
func (l *Liveness) HeardWithin(addr netip.AddrPort, ticks int64) bool {
	p := l.peers[addr]
	return p != nil && l.now-p.lastHeard < ticks
}

// Suspected reports whether addr is suspected.
func (l *Liveness) Suspected(addr netip.AddrPort) bool {
	p := l.peers[addr]
	return p != nil && p.suspected
}

// Receive takes a liveness message from addr (already counted as heard)
// and returns what to send in answer, valid until the next call.
func (l *Liveness) Receive(from netip.AddrPort, m wire.Liveness) []Message {
	l.out = l.out[:0]
	switch m.Kind {
	case wire.LivePing:
		l.send(from, wire.Liveness{Kind: wire.LiveAck, Nonce: m.Nonce})
	case wire.LivePingReq:
		// Only for peers, about peers: no one else can make this process
		// send to an address of its choosing.
		if len(l.relays) < MaxRelays && m.Target != from && l.peers[from] != nil && l.peers[m.Target] != nil {
			l.nonce++
			l.relays[l.nonce] = relay{requester: from, nonce: m.Nonce, target: m.Target, at: l.now}
			l.send(m.Target, wire.Liveness{Kind: wire.LivePing, Nonce: l.nonce})
		}
	case wire.LiveAck:
		if m.Target.IsValid() {
			// A helper relays the target's answer: the target is alive.
			l.Heard(m.Target)
		} else if r, ok := l.relays[m.Nonce]; ok && r.target == from {
			delete(l.relays, m.Nonce)
			l.send(r.requester, wire.Liveness{Kind: wire.LiveAck, Nonce: r.nonce, Target: from})
		}
	}
	return l.out
}

// Tick advances the clock one tick. It returns the liveness messages to
// send and the peers newly suspected, valid until the next call.
func (l *Liveness) Tick(suspects []netip.AddrPort) ([]Message, []netip.AddrPort) {
	l.now++
	l.out = l.out[:0]
	for _, p := range l.order {
		switch {
		case p.suspected:
		case p.probing >= 0 && l.now-p.probing >= l.cfg.ProbeTicks:
			p.suspected = true
			l.stats.Suspicions++
			suspects = append(suspects, p.addr)
		case p.probing < 0 && l.now-p.lastHeard >= l.cfg.SilentTicks,
			p.probing >= 0 && l.now-p.probed >= max(1, l.cfg.ProbeTicks/3):
			// Probe again within the window: one lost probe or answer
			// must not condemn a peer.
			if p.probing < 0 {
				p.probing = l.now
			}
			p.probed = l.now
			l.probe(p)
		}
		// Suspected peers too: heard again (a partition heals), they are
		// watched afresh, and they must hear this one to do the same.
		if l.now-p.lastSent >= l.cfg.HeartbeatTicks {
			l.send(p.addr, wire.Liveness{Kind: wire.LiveHeartbeat})
			l.stats.HeartbeatsSent++
		}
	}
	for n, r := range l.relays {
		if l.now-r.at > l.cfg.ProbeTicks {
			delete(l.relays, n)
		}
	}
	return l.out, suspects
}

// probe pings p and asks up to Helpers other unsuspected peers to ping it.
func (l *Liveness) probe(p *peer) {
	l.nonce++
	l.send(p.addr, wire.Liveness{Kind: wire.LivePing, Nonce: l.nonce})
	l.stats.ProbesSent++
	asked := 0
	for i := 0; i < len(l.order) && asked < l.cfg.Helpers; i++ {
		h := l.order[(l.next+i)%len(l.order)]
		if h != p && !h.suspected && h.probing < 0 {
			l.send(h.addr, wire.Liveness{Kind: wire.LivePingReq, Nonce: l.nonce, Target: p.addr})
			l.stats.ProbesSent++
			asked++
		}
	}
	l.next++
}

func (l *Liveness) send(to netip.AddrPort, m wire.Liveness) {
	l.out = append(l.out, Message{To: to, Liveness: m})
	if p := l.peers[to]; p != nil {
		p.lastSent = l.now
	}
}
