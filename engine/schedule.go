package engine

import (
	"sync"
	"sync/atomic"
)

// Which groups the protocol loop works on. An engine may hold thousands
// of groups, most of them idle at any time: the loop must cost what the
// busy ones need, not what all of them would. So it keeps two lists
// (protoMu held):
//
//   - active groups are ticked every tick; a group leaves the list once
//     it has nothing timed to do (quiet: protocol Group.Idle, nothing
//     queued between it and the application). Quiet groups are ticked
//     together every idleTickEvery, each n ticks in one step
//     (protocol Group.TickN), and caught up before anything reaches
//     them: a datagram, the application (a poke), the shared watch.
//   - dirty groups are serviced (their output written, their deliveries
//     queued) at the end of the loop's turn: those that received,
//     ticked or were poked in it.
//
// Goroutines other than the protocol loop (a Send, the delivery
// goroutine) cannot take protoMu to mark a group: they poke it, which
// queues it for the loop under pokeMu.
type schedule struct {
	ticks         int64 // the engine's clock, in ticks
	lastIdleTick  int64 // when quiet groups were last ticked
	idleTickEvery int64
	active        []*Group
	activeNow     atomic.Int64 // len(active) at the last tick, for Stats
	dirty         []*Group

	pokeMu sync.Mutex
	poked  []*Group
	spare  []*Group // the other list of pokes
}

// quietEvery is how often, in ticks, an active group is asked whether
// it went quiet.
const quietEvery = 8

// poke asks the protocol loop to service g soon: the application sent,
// consumed, or asked for something. Any goroutine.
func (g *Group) poke() {
	// A plain load first: a sender poking each message finds g poked
	// already most of the time, and a compare-and-swap costs a locked
	// instruction even when it fails.
	if !g.poked.Load() && g.poked.CompareAndSwap(false, true) {
		s := &g.e.sched
		s.pokeMu.Lock()
		s.poked = append(s.poked, g)
		s.pokeMu.Unlock()
	}
	g.e.poke()
}

// touch makes g active and dirty, its clock caught up with the engine's,
// before anything reaches it; protoMu held.
func (e *Engine) touch(g *Group) {
	s := &e.sched
	if g.tickedAt < 0 {
		g.tickedAt = s.ticks // new: its clock starts now
	}
	if !g.active {
		if n := s.ticks - g.tickedAt; n > 0 {
			g.tick(n)
		}
		g.active = true
		s.active = append(s.active, g)
	}
	e.markDirty(g)
}

func (e *Engine) markDirty(g *Group) {
	if !g.dirty {
		g.dirty = true
		e.sched.dirty = append(e.sched.dirty, g)
	}
}

// tickGroups moves the clock n ticks on: active groups are ticked, those
// gone quiet leave the active list, and every idleTickEvery the quiet
// ones are ticked in one step each; protoMu held.
func (e *Engine) tickGroups(n int64) {
	s := &e.sched
	s.ticks += n
	kept := s.active[:0]
	for _, g := range s.active {
		if g.unlisted.Load() {
			g.active = false
			continue
		}
		g.tick(n)
		e.markDirty(g)
		// Whether it went quiet is asked every quietEvery ticks, not at
		// every tick: at 1,000 busy groups the question cost 8% of a
		// receiver's CPU, and a group that stays active a few ticks
		// longer costs little.
		if s.ticks-g.quietAsked >= quietEvery {
			g.quietAsked = s.ticks
			if g.quiet() {
				g.active = false
				g.retireDelivery()
				continue
			}
		}
		kept = append(kept, g)
	}
	clear(s.active[len(kept):])
	s.active = kept
	defer func() { s.activeNow.Store(int64(len(s.active))) }() // for Stats
	if s.ticks-s.lastIdleTick < s.idleTickEvery {
		return
	}
	s.lastIdleTick = s.ticks
	for _, g := range *e.groupList.Load() {
		if !g.active && g.tickedAt >= 0 {
			g.tick(s.ticks - g.tickedAt)
			e.markDirty(g)
			if !g.quiet() {
				g.active = true
				s.active = append(s.active, g)
			}
		}
	}
}

// service runs the protocol of every group that needs it: poked, or
// marked dirty in this turn; protoMu held.
func (e *Engine) service() {
	s := &e.sched
	s.pokeMu.Lock()
	// Two lists in turn, so that pokes allocate nothing.
	poked := s.poked
	s.poked = s.spare[:0]
	s.pokeMu.Unlock()
	for _, g := range poked {
		g.poked.Store(false)
		if !g.unlisted.Load() {
			e.touch(g)
		}
	}
	clear(poked)
	s.spare = poked
	// Index, not range: should servicing mark another group dirty, it is
	// serviced in this turn too.
	for i := 0; i < len(s.dirty); i++ {
		g := s.dirty[i]
		g.dirty = false
		if !g.unlisted.Load() {
			g.service()
		}
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	e.endRound()
}

// quiet reports whether g may be ticked coarsely: its protocol is idle,
// and nothing waits between it and the application; protoMu held.
func (g *Group) quiet() bool {
	return g.proto.Idle() && g.backlogLen.Load() == 0 && !g.holding && !g.leave.Load() &&
		g.queue.Popped() == g.consumed && g.queue.Len() == 0 &&
		g.recv == nil && len(g.sends) == 0 && !g.xferPending.Load()
}
