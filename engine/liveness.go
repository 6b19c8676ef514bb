package engine

import (
	"net/netip"
	"slices"

	"github.com/cohort-vs/cohort/internal/liveness"
	"github.com/cohort-vs/cohort/internal/protocol"
	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

// The engine watches each peer process once for all its groups (package
// liveness): any datagram from a peer is a sign of life, a peer that was
// sent nothing lately gets one heartbeat for every group it shares with
// this one, and a suspicion is handed to every group the peer is in.
// Groups send no heartbeats of their own, so an idle group is silent.
// Everything here runs under protoMu.

// newLiveness makes the watch of an engine whose run is boot: every
// incarnation it hands out is above it, and a restart gets a larger one
// (see nextIncarnation).
func newLiveness(c *Config, boot uint64) *liveness.Liveness {
	silent := int64(c.ticks(c.SuspectTimeout))
	return liveness.New(liveness.Config{
		// Several heartbeats per silence window: a few lost datagrams must
		// not look like a crash.
		HeartbeatTicks: max(1, silent/5),
		SilentTicks:    silent,
		ProbeTicks:     int64(c.ticks(c.ProbeTimeout)),
		Helpers:        2,
	}, boot)
}

// watchView makes the engine watch the members of g's new view (and stop
// watching those of its previous one).
func (e *Engine) watchView(g *Group, v *protocol.View) {
	e.unwatchAll(g)
	g.watchToken = liveness.ViewToken(g.id, wire.InstanceID(v.Founder), v.Epoch)
	for r, m := range v.Members {
		if m.Addr != e.addr {
			e.live.Watch(m.Addr, g.watchToken)
			g.watched = append(g.watched, m.Addr)
			if e.live.Suspected(m.Addr) && !slices.Contains(v.Joined, r) {
				// A member kept from the last view whose process is still
				// suspected: the view's own detector would have found the
				// silence again; tell it. (Not a joiner: its process may
				// not have been heard from yet.)
				g.proto.PeerSuspected(m.Addr)
			}
		}
	}
}

// unwatchAll drops g's interest in its members: its membership ended.
func (e *Engine) unwatchAll(g *Group) {
	for _, a := range g.watched {
		e.live.Unwatch(a, g.watchToken)
	}
	g.watched = g.watched[:0]
}

// peersChanged tells every group what the watch found since the last
// call: peers heard again, peers restarted. Groups report signs of life
// to the watch themselves (protocol.Liveness.Heard): only traffic of a
// view counts, so a process restarted at a peer's address, joining, does
// not keep the peer's former incarnations alive.
func (e *Engine) peersChanged() {
	for _, c := range e.live.Changes() {
		e.peerChanged(c)
	}
}

// peerChanged tells every group that a peer was heard again, or
// restarted.
func (e *Engine) peerChanged(c liveness.Change) {
	for _, g := range *e.groupList.Load() {
		if !slices.Contains(g.watched, c.Addr) {
			continue // not in its view: nothing to tell it
		}
		e.touch(g)
		switch {
		case c.Nudge:
			g.proto.PeerNudged(c.Addr)
		case c.Restarted:
			g.proto.PeerRestarted(c.Addr, c.Boot)
		default:
			g.proto.PeerHeard(c.Addr, c.Boot)
		}
	}
}

// tickLiveness advances the watch one tick: heartbeats and probes go
// out, and each peer newly suspected is suspected in every group.
func (e *Engine) tickLiveness() {
	msgs, suspects := e.live.Tick(e.suspects[:0])
	e.suspects = suspects
	e.sendLiveness(msgs)
	for _, a := range suspects {
		for _, g := range *e.groupList.Load() {
			if slices.Contains(g.watched, a) {
				e.touch(g)
				g.proto.PeerSuspected(a)
			}
		}
	}
	e.liveStats.Store(new(e.live.Stats()))
}

// receiveLiveness takes a liveness datagram and answers it.
func (e *Engine) receiveLiveness(from netip.AddrPort, b []byte) {
	l, err := wire.ParseLiveness(b)
	if err != nil {
		e.malformed.Add(1)
		return
	}
	e.sendLiveness(e.live.Receive(from, l))
}

func (e *Engine) sendLiveness(msgs []liveness.Message) {
	if len(msgs) == 0 {
		return
	}
	e.liveBuf = e.liveBuf[:0]
	for _, m := range msgs {
		e.liveBuf = wire.AppendLiveness(e.liveBuf, m.Liveness)
	}
	ds := e.liveDs[:0]
	for i, m := range msgs {
		b := e.liveBuf[i*wire.LivenessSize : (i+1)*wire.LivenessSize]
		ds = append(ds, udp.Datagram{Buf: b, N: len(b), Addr: m.To})
	}
	e.liveDs = ds
	e.write(ds)
}
