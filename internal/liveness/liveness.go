// Package liveness watches a process's peer processes once, whatever the
// number of groups it shares with each: a peer is heard from through any
// datagram it sends, for any group; when nothing else went to a peer
// lately a heartbeat does; a peer silent too long is probed, directly and
// through other peers (SWIM's indirect probe), and suspected only if
// nothing is heard while probing. A suspected peer is suspected in every
// group it is in (the driver tells them all), and heard again, it is
// watched afresh.
//
// Liveness messages carry the sender's boot: a process that restarts at
// the same address has a larger one, and its members' incarnations are
// at least its boot (the driver's rule). A peer seen with a new boot has
// restarted: its older incarnations are gone, whatever else is heard
// from the address. So that a peer learns this at once, a process greets
// every peer it starts to watch.
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
	digest    uint64 // XOR of the tokens of the views that have it (see Watch)
	mismatch  int    // its heartbeats in a row whose digest differed from this one's
	nudged    int64  // when its groups were last nudged
	lastBeat  int64  // the last heartbeat sent to it
	boot      uint64 // its boot, as its liveness messages say (0: not heard yet)
	refs      int    // groups that have it in their view
	lastHeard int64
	lastSent  int64
	probing   int64 // tick a probe round started; -1: not probing
	probed    int64
	greeted   int64 // the last ping asking for its run
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
	cfg     Config
	boot    uint64
	now     int64
	peers   map[netip.AddrPort]*peer
	heard   *peer   // the peer Heard found last: a bundle's datagrams all come from one
	order   []*peer // the peers in the order they were first watched: deterministic iteration
	next    int     // rotates the choice of helpers
	nonce   uint64
	relays  map[uint64]relay // by the nonce of this process's own ping to the target
	out     []Message
	changes []Change // since the last Changes
	taken   []Change // the last Changes' result
	stats   Stats
}

// Stats count what the peers' liveness cost and found.
type Stats struct {
	HeartbeatsSent uint64
	ProbesSent     uint64 // pings and probe requests
	Suspicions     uint64
	Refuted        uint64 // suspected peers heard again
	Restarts       uint64 // peers seen with a new boot
	Nudges         uint64 // peers whose views differed from this process's for a while
}

// New makes a watcher with no peers, for a process whose boot is boot
// (not 0).
func New(cfg Config, boot uint64) *Liveness {
	return &Liveness{cfg: cfg, boot: boot, peers: map[netip.AddrPort]*peer{}, relays: map[uint64]relay{}}
}

// Boot is addr's boot as last heard (0: unknown).
func (l *Liveness) Boot(addr netip.AddrPort) uint64 {
	if p := l.peers[addr]; p != nil {
		return p.boot
	}
	return 0
}

// Now is the current tick.
func (l *Liveness) Now() int64 { return l.now }

// Stats returns the counters.
func (l *Liveness) Stats() Stats { return l.stats }

// Watch counts one more group that has addr in its view: from the first,
// addr is watched (as if just heard from). token names that view (see
// ViewToken): heartbeats carry the XOR of the tokens of the views this
// process shares with the peer, and a peer whose digest stays different
// has a view this one does not (it missed an install, or its removal,
// with its group idle): its groups are nudged (a Change) to speak to it.
func (l *Liveness) Watch(addr netip.AddrPort, token uint64) {
	if p := l.peers[addr]; p != nil {
		p.refs++
		p.digest ^= token
		return
	}
	// A greeting (a ping, whose answer names its run) goes at the next
	// tick.
	p := &peer{addr: addr, refs: 1, digest: token, lastHeard: l.now, lastSent: l.now, lastBeat: l.now, greeted: l.now - l.cfg.HeartbeatTicks, probing: -1}
	l.peers[addr] = p
	l.order = append(l.order, p)
}

// Unwatch counts one group fewer that has addr in its view (the view
// token named); at none addr is forgotten.
func (l *Liveness) Unwatch(addr netip.AddrPort, token uint64) {
	p := l.peers[addr]
	if p == nil {
		return
	}
	p.digest ^= token
	if p.refs--; p.refs > 0 {
		return
	}
	delete(l.peers, addr)
	if l.heard == p {
		l.heard = nil
	}
	for i, q := range l.order {
		if q == p {
			l.order = append(l.order[:i], l.order[i+1:]...)
			break
		}
	}
}

// Watched reports whether addr is watched.
func (l *Liveness) Watched(addr netip.AddrPort) bool { return l.peers[addr] != nil }

// Heard records a sign of life from addr: traffic of a view this process
// shares with it, as a group found it (not a datagram a process at that
// address sends to join: a restarted process does). A peer suspected
// until now is heard again: a Change says so (see Changes).
func (l *Liveness) Heard(addr netip.AddrPort) {
	p := l.heard
	if p == nil || p.addr != addr {
		if p = l.peers[addr]; p == nil {
			return
		}
		l.heard = p
	}
	p.lastHeard, p.probing = l.now, -1
	if p.suspected {
		p.suspected = false
		l.stats.Refuted++
		l.changes = append(l.changes, Change{Addr: addr, Boot: p.boot})
	}
}

// Changes returns the changes of peers found since the last call (valid
// until the next call): the driver tells every group.
func (l *Liveness) Changes() []Change {
	c := l.changes
	l.changes, l.taken = l.taken[:0], c
	return c
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

// Change is news of a peer that its groups must hear: it was heard
// again after a suspicion, or it restarted (a new boot: its incarnations
// below Boot are gone), or (Nudge) its views and this process's differ:
// each group that has it should speak to it once.
type Change struct {
	Addr      netip.AddrPort
	Boot      uint64
	Restarted bool
	Nudge     bool
}

// ViewToken names a view of a group for the digests: the group, its
// instance and the view's number, mixed.
func ViewToken(group, instance, epoch uint64) uint64 {
	x := group ^ instance*0x9e3779b97f4a7c15 ^ epoch*0xbf58476d1ce4e5b9
	x ^= x >> 31
	x *= 0x94d049bb133111eb
	return x ^ x>>29
}

// nudgeAfter: heartbeats in a row whose digest differs before the groups
// are nudged (a view change under way differs for a moment).
const nudgeAfter = 3

// Receive takes a liveness message from addr and returns what to send in
// answer (valid until the next call). A restart or a suspected peer heard
// again is a Change (see Changes).
func (l *Liveness) Receive(from netip.AddrPort, m wire.Liveness) []Message {
	l.out = l.out[:0]
	if !l.heardRun(from, m.Boot) {
		return l.out // from a run of that address that is over
	}
	switch m.Kind {
	case wire.LiveHeartbeat:
		if l.peers[from] == nil && m.Nonce != 0 {
			// It has this process in a view this process is not in (it
			// missed its removal, say): an empty digest tells it so. An
			// empty digest is never answered: two processes that do not
			// watch each other would answer each other for good.
			l.send(from, wire.Liveness{Kind: wire.LiveHeartbeat})
		}
		if p := l.peers[from]; p != nil {
			if m.Nonce == p.digest {
				p.mismatch = 0
			} else if p.mismatch++; p.mismatch >= nudgeAfter && l.now-p.nudged >= l.cfg.SilentTicks {
				p.mismatch, p.nudged = 0, l.now
				l.stats.Nudges++
				l.changes = append(l.changes, Change{Addr: from, Boot: p.boot, Nudge: true})
			}
		}
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
			// A helper relays the target's answer: the target is alive,
			// in the run its ack named.
			if l.peers[from] != nil {
				l.heardRun(m.Target, m.TargetBoot)
			}
		} else if r, ok := l.relays[m.Nonce]; ok && r.target == from {
			delete(l.relays, m.Nonce)
			l.send(r.requester, wire.Liveness{Kind: wire.LiveAck, Nonce: r.nonce, Target: from, TargetBoot: m.Boot})
		}
	}
	return l.out
}

// heardRun notes a liveness message of addr's run boot: a new run is a
// restart (a Change); one of a run that is over counts for nothing
// (false).
func (l *Liveness) heardRun(addr netip.AddrPort, boot uint64) bool {
	p := l.peers[addr]
	if p == nil {
		return true
	}
	if boot < p.boot {
		return false
	}
	if boot > p.boot && p.boot != 0 {
		l.stats.Restarts++
		l.changes = append(l.changes, Change{Addr: addr, Boot: boot, Restarted: true})
	}
	p.boot = boot
	l.Heard(addr)
	return true
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
		switch {
		case p.boot == 0 && l.now-p.greeted >= l.cfg.HeartbeatTicks:
			// Until its run is known, whatever else goes to it: its
			// answer names its run, so that a restart is recognized.
			p.greeted = l.now
			l.send(p.addr, wire.Liveness{Kind: wire.LivePing})
			l.stats.HeartbeatsSent++
		case l.now-p.lastSent >= l.cfg.HeartbeatTicks || l.now-p.lastBeat >= l.cfg.SilentTicks:
			// Suspected peers too: heard again (a partition heals), they
			// are watched afresh, and they must hear this one to do the
			// same. And at least once per silence window whatever else
			// goes to it: the digest travels only here.
			p.lastBeat = l.now
			l.send(p.addr, wire.Liveness{Kind: wire.LiveHeartbeat, Nonce: p.digest})
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
	m.Boot = l.boot
	l.out = append(l.out, Message{To: to, Liveness: m})
	if p := l.peers[to]; p != nil {
		p.lastSent = l.now
	}
}
