package protocol

import (
	"net/netip"
	"slices"

	"github.com/cohort-vs/cohort/flush"
	"github.com/cohort-vs/cohort/internal/detector"
	"github.com/cohort-vs/cohort/internal/wire"
)

// Discovery and joining.

func (g *Group) discover() {
	g.discoverStart = g.now
	for _, s := range g.cfg.Seeds {
		if s != g.cfg.Self.Addr {
			g.sendControl(s, &wire.Control{Kind: wire.CtlDiscover})
		}
	}
}

// tickDiscover forms a singleton view once discovery has heard of no
// group, if this process has the lowest address among those starting.
func (g *Group) tickDiscover() {
	if g.now-g.discoverStart < int64(g.cfg.DiscoverTicks) {
		if (g.now-g.discoverStart)%int64(g.cfg.RetryTicks) == 0 {
			for _, s := range g.cfg.Seeds {
				if s != g.cfg.Self.Addr {
					g.sendControl(s, &wire.Control{Kind: wire.CtlDiscover})
				}
			}
		}
		return
	}
	for a, t := range g.peersSeen {
		// A lower address heard recently forms the group (or already has):
		// keep asking, and join it when it answers. Only when it has been
		// silent for three discovery periods may it be taken as gone.
		if addrLess(a, g.cfg.Self.Addr) && g.now-t < 3*int64(g.cfg.DiscoverTicks) {
			g.discover()
			return
		}
	}
	g.installView(&wire.Proposal{Epoch: 1, Founder: g.cfg.Self, Members: []wire.MemberID{g.cfg.Self}}, nil)
}

// Merging. Two instances of one group can exist: a process that could not
// reach the group (a partition, heavy loss) formed its own. A coordinator
// keeps asking the seeds outside its view; when it meets another instance,
// the smaller one (fewer members; on a tie, the later founder address)
// dissolves, and its members rejoin the other as new incarnations. Its
// members end as if removed: view synchrony holds within each instance,
// and the state of the surviving instance wins.

func (g *Group) tickMerge() {
	if g.now-g.lastMerge < int64(8*g.cfg.DiscoverTicks) {
		return
	}
	g.lastMerge = g.now
	if g.cfg.Liveness != nil && g.seedsInView() {
		// Every seed is a member: no other instance is there to meet. A
		// process that restarted at a member's address is found by the
		// shared watch (PeerRestarted), and one that formed an instance
		// of its own asks its seeds, this member among them (meet
		// answers it).
		return
	}
	g.askSeeds()
}

// seedsInView reports whether every seed address is a member's.
func (g *Group) seedsInView() bool {
	for _, s := range g.cfg.Seeds {
		if !slices.ContainsFunc(g.view.Members, func(m wire.MemberID) bool { return m.Addr == s }) {
			return false
		}
	}
	return true
}

// askSeeds sends Discover to every seed: answers describe the instances
// there (see meet).
func (g *Group) askSeeds() {
	// Every seed, members of this view's addresses too: a process there
	// may have restarted into another instance.
	for _, s := range g.cfg.Seeds {
		if s != g.cfg.Self.Addr {
			g.sendControl(s, &wire.Control{Kind: wire.CtlDiscover})
		}
	}
}

// instanceLess orders instances by which one stays when they meet: the
// larger, then the one founded at the lower address, then by the lower
// incarnation.
func instanceLess(a, b *wire.Proposal) bool {
	if len(a.Members) != len(b.Members) {
		return len(a.Members) > len(b.Members)
	}
	if c := a.Founder.Addr.Compare(b.Founder.Addr); c != 0 {
		return c < 0
	}
	return a.Founder.Incarnation < b.Founder.Incarnation
}

// meet handles another instance's view p, heard from addr, as a member
// of this one. A blocked instance (no majority of its view left) always
// gives way to a live one: its view's size is only a memory.
func (g *Group) meet(addr netip.AddrPort, p *wire.Proposal, otherBlocked bool) {
	mine := g.install
	if p.Founder == mine.Founder {
		g.meetPrimary(addr, p)
		return
	}
	if !g.isCoordinator() {
		return
	}
	stays := !instanceLess(p, mine)
	if blocked := g.stuck(); blocked != otherBlocked {
		stays = !blocked
	}
	if stays {
		// This instance stays. The other may have no seed outside its
		// view to find us by: tell it.
		g.sendControl(addr, &wire.Control{Kind: wire.CtlHere, Proposal: mine})
		return
	}
	if !g.witnessed(addr, p) {
		return
	}
	// Dissolve, naming the instance that stays (Target), so that the
	// members rejoin it rather than find each other again.
	// The members need the notice to go on (one left alone in a view of
	// two can make no other): it is a farewell.
	g.redirect = addr
	notice := &wire.Control{Kind: wire.CtlNotMember, Target: wire.MemberID{Addr: addr}}
	for r, m := range g.view.Members {
		if r != g.view.Self {
			g.sendNotice(m.Addr, m.Incarnation, notice)
		}
	}
	g.sayFarewell(notice, g.view.Epoch, g.view.Members, g.removed)
}

// meetPrimary handles a newer view p of this member's own instance,
// heard from addr. A member blocked for BlockTicks whose instance went on
// without it (a later view that does not name it) was removed: it gives
// way, as if told so, and may rejoin there. Its own view's other members
// may all be gone (crashed, restarted as new incarnations), leaving no
// one who could tell it. A forged view could end a blocked member only,
// and only one described by a seed or by two of its members.
func (g *Group) meetPrimary(addr netip.AddrPort, p *wire.Proposal) {
	if p.Epoch <= g.view.Epoch || flush.Index(p.Members, g.cfg.Self) >= 0 ||
		g.Blocked() < int64(g.cfg.BlockTicks) || !g.witnessed(addr, p) {
		return
	}
	g.redirect = addr
	g.removed()
}

// witnessed reports whether another instance p, heard from addr, is
// known well enough to dissolve into: addr is one of this group's seeds
// (configured, so trusted as much as the configuration), or two of p's
// members at different addresses have described it. Otherwise it asks
// another member of p, so that a real instance confirms itself at once;
// a process making up an instance from its one address never can.
func (g *Group) witnessed(addr netip.AddrPort, p *wire.Proposal) bool {
	if slices.Contains(g.cfg.Seeds, addr) {
		return true
	}
	w := g.witnesses[p.Founder]
	if w.IsValid() && w != addr {
		return true
	}
	if len(g.witnesses) >= maxWitnesses {
		clear(g.witnesses)
	}
	g.witnesses[p.Founder] = addr
	for _, m := range p.Members {
		if m.Addr != addr && m.Addr != g.cfg.Self.Addr {
			g.sendControl(m.Addr, &wire.Control{Kind: wire.CtlDiscover})
			break
		}
	}
	return false
}

func addrLess(a, b netip.AddrPort) bool { return a.Compare(b) < 0 }

func (g *Group) sendJoin() {
	g.lastJoin = g.now
	if g.contact.IsValid() {
		g.sendControl(g.contact, &wire.Control{Kind: wire.CtlJoin, Target: g.cfg.Self})
		return
	}
	for _, s := range g.cfg.Seeds {
		if s != g.cfg.Self.Addr {
			g.sendControl(s, &wire.Control{Kind: wire.CtlJoin, Target: g.cfg.Self})
		}
	}
}

// The coordinator's side.

func (g *Group) tickCoordinator() {
	if g.round == nil {
		// Also when nothing changes but a member (or this one) is frozen
		// by a round that was abandoned: a new view releases it.
		if !g.changes.Empty() || g.changeRequested || g.mem.Frozen() {
			g.startRound()
		}
		return
	}
	r := g.round
	if r.proposal == nil {
		g.proposeIfReady()
		if g.round != r || r.proposal != nil {
			return
		}
	}
	if g.now-r.start >= int64(g.cfg.RoundTicks) {
		// Members that did not answer in a whole round are taken as failed,
		// and the change starts over with a higher ballot.
		for rank := range g.view.Members {
			if rank != g.view.Self && !g.answered(r, rank) {
				g.det.Suspect(rank)
				g.changes.Failed[g.view.Members[rank]] = true
			}
		}
		g.startRound()
		return
	}
	if g.now-r.lastSend >= int64(g.cfg.RetryTicks) {
		g.resend()
	}
}

// answered reports whether rank has answered the round's current phase.
func (g *Group) answered(r *round, rank int) bool {
	if m := g.view.Members[rank]; g.changes.Failed[m] || g.changes.Evicted[m] {
		return true // not waited for
	}
	if r.proposal == nil {
		return r.promises[rank] != nil
	}
	return r.promises[rank] == nil || r.flushed[rank]
}

// participants are the ranks a round waits for.
func (g *Group) participants() []int {
	var ps []int
	for rank, m := range g.view.Members {
		if !g.changes.Failed[m] && !g.changes.Evicted[m] {
			ps = append(ps, rank)
		}
	}
	return ps
}

func (g *Group) startRound() {
	g.maxRound = max(g.maxRound, g.promised.Round) + 1
	n := len(g.view.Members)
	g.round = &round{
		ballot:   wire.Ballot{Round: g.maxRound, Rank: uint16(g.view.Self)},
		start:    g.now,
		promises: make([]*wire.Control, n),
		flushed:  make([]bool, n),
	}
	g.stats.Rounds++
	if g.blockedSince < 0 {
		g.blockedSince = g.now
	}
	g.resend()
	// The coordinator promises to itself.
	g.onPrepare(g.cfg.Self.Addr, &wire.Control{Kind: wire.CtlPrepare, From: g.cfg.Self, Epoch: g.view.Epoch, Ballot: g.round.ballot})
}

// resend sends the round's current phase to whoever has not answered.
// Prepare goes to every member of the view, the suspected too: one that
// answers is alive after all (a partition healed) and takes part.
func (g *Group) resend() {
	r := g.round
	r.lastSend = g.now
	for rank := range g.view.Members {
		if rank == g.view.Self {
			continue
		}
		addr := g.view.Members[rank].Addr
		if r.proposal == nil {
			if r.promises[rank] == nil {
				g.sendControl(addr, &wire.Control{Kind: wire.CtlPrepare, Ballot: r.ballot})
			}
		} else if !g.answered(r, rank) {
			g.sendControl(addr, &wire.Control{Kind: wire.CtlPropose, Ballot: r.ballot, Proposal: r.proposal})
		}
	}
}

func (g *Group) onPromise(c *wire.Control) {
	r := g.round
	if g.state != member || r == nil || c.Ballot != r.ballot || r.proposal != nil {
		return
	}
	rank := flush.Index(g.view.Members, c.From)
	if rank < 0 {
		return
	}
	if c.Installed && c.Proposal != nil && g.validNext(c.Proposal) {
		// Some member already installed the next view: it is the outcome,
		// whatever this round would have chosen.
		r.proposal, r.installed = c.Proposal, true
		g.finishRound()
		return
	}
	if len(c.Report) != g.mem.Origins() || c.Proposal != nil && !g.validNext(c.Proposal) {
		return
	}
	if g.changes.Evicted[c.From] {
		if g.evictionsKeepMajority() {
			return // an evicted member takes no part, even if it answers
		}
		// Members failed since it was evicted: without it there is no
		// majority left, so it stays after all.
		delete(g.changes.Evicted, c.From)
	}
	r.promises[rank] = c
	delete(g.changes.Failed, c.From) // it answers: not failed after all
	g.proposeIfReady()
}

// proposeIfReady moves the round to its second phase once every member
// not taken as failed has promised and they are a majority. Checked at
// every promise and every tick: a member suspected after all the others
// promised is no longer waited for.
func (g *Group) proposeIfReady() {
	r := g.round
	for _, p := range g.participants() {
		if r.promises[p] == nil {
			return
		}
	}
	if !g.hasQuorum(func(rank int) bool { return r.promises[rank] != nil }) {
		return // no quorum: wait, retrying, for the others or a heal
	}
	r.proposal = flush.Choose(r.ballot, g.view.Epoch, g.view.Members, r.promises, &g.changes)
	r.proposal.Founder = g.install.Founder
	g.stats.ViewChanges++
	g.resend()
	g.onPropose(g.cfg.Self.Addr, &wire.Control{Kind: wire.CtlPropose, From: g.cfg.Self, Epoch: g.view.Epoch, Ballot: r.ballot, Proposal: r.proposal})
}

func (g *Group) onFlushed(c *wire.Control) {
	r := g.round
	if g.state != member || r == nil || r.proposal == nil || c.Ballot != r.ballot {
		return
	}
	if rank := flush.Index(g.view.Members, c.From); rank >= 0 {
		r.flushed[rank] = true
	}
	for rank, p := range r.promises {
		if p != nil && !r.flushed[rank] {
			return
		}
	}
	g.finishRound()
}

// finishRound installs the round's proposal everywhere: every member of
// the old view that took part (so leavers and the wrongly suspected learn
// their fate) and every joiner.
func (g *Group) finishRound() {
	r := g.round
	p := r.proposal
	sent := map[netip.AddrPort]bool{g.cfg.Self.Addr: true}
	send := func(m wire.MemberID) {
		if !sent[m.Addr] {
			sent[m.Addr] = true
			g.sendControl(m.Addr, &wire.Control{Kind: wire.CtlInstall, Proposal: p})
		}
	}
	for _, m := range p.Members {
		send(m)
	}
	for _, rank := range g.participants() {
		send(g.view.Members[rank])
	}
	for _, m := range p.Evicted {
		send(m) // so that it learns why
	}
	if flush.Index(p.Members, g.cfg.Self) < 0 && len(p.Members) > 0 {
		// A leaving coordinator: the install it just sent may be lost,
		// and once it is gone no one can repeat it (the others promised
		// this outcome and cannot make another without it).
		g.sayFarewell(&wire.Control{Kind: wire.CtlInstall, Proposal: p}, p.Epoch, p.Members, func() { g.onInstall(p) })
		return
	}
	g.onInstall(p)
}

// farewell is a last word that only this member can say, and that the
// others need in order to go on: the install of the view a leaving
// coordinator made without itself, or the notice that an instance
// dissolves into another. Control messages are not reliable, so the
// member stays (doing nothing else) and repeats it every retry interval
// until each addressee confirms (CtlInstalled naming epoch), or for two
// round timeouts (an addressee that crashed never confirms); then done
// ends its membership.
type farewell struct {
	notice *wire.Control
	epoch  uint64
	wait   map[netip.AddrPort]uint64 // addressees not yet confirmed, and their incarnations
	since  int64
	done   func()
}

func (g *Group) sayFarewell(notice *wire.Control, epoch uint64, to []wire.MemberID, done func()) {
	f := &farewell{notice: notice, epoch: epoch, wait: map[netip.AddrPort]uint64{}, since: g.now, done: done}
	for _, m := range to {
		if m != g.cfg.Self {
			f.wait[m.Addr] = m.Incarnation
		}
	}
	if len(f.wait) == 0 {
		done()
		return
	}
	g.farewell = f
}

func (g *Group) tickFarewell() {
	f := g.farewell
	if len(f.wait) > 0 && g.now-f.since < 2*int64(g.cfg.RoundTicks) {
		if (g.now-f.since)%int64(g.cfg.RetryTicks) == 0 {
			for addr, inc := range f.wait {
				g.sendNotice(addr, inc, f.notice)
			}
		}
		return
	}
	g.farewell = nil
	f.done()
}

// farewellControl counts confirmations, and repeats the notice to an
// addressee that has not confirmed and says anything else.
func (g *Group) farewellControl(from netip.AddrPort, c *wire.Control) {
	f := g.farewell
	switch {
	case c.Kind == wire.CtlInstalled:
		if c.Epoch == f.epoch {
			delete(f.wait, from)
			if len(f.wait) == 0 {
				g.farewell = nil
				f.done()
			}
		}
	default:
		if inc, ok := f.wait[from]; ok {
			g.sendNotice(from, inc, f.notice)
		}
	}
}

// sendNotice sends a farewell's notice to the member at addr: a
// NotMember names the incarnation it is for (in Nonce), so that a copy
// replayed later cannot end a new incarnation at that address.
func (g *Group) sendNotice(addr netip.AddrPort, inc uint64, notice *wire.Control) {
	if notice.Kind == wire.CtlNotMember {
		n := *notice
		n.Nonce = inc
		notice = &n
	}
	g.sendControl(addr, notice)
}

// confirmInstall tells a departing coordinator (the sender of an install
// it is not in) that this member has installed that view.
func (g *Group) confirmInstall(from netip.AddrPort, p *wire.Proposal) {
	if g.state != member || g.view.Epoch < p.Epoch {
		return
	}
	for _, m := range p.Members {
		if m.Addr == from {
			return
		}
	}
	g.sendControl(from, &wire.Control{Kind: wire.CtlInstalled, Epoch: p.Epoch})
}

// The participant's side.

func (g *Group) onPrepare(from netip.AddrPort, c *wire.Control) {
	if g.state != member {
		return
	}
	if c.Epoch < g.view.Epoch {
		// The coordinator missed our install: tell it the outcome.
		if flush.Index(g.view.Members, c.From) >= 0 || (g.install != nil && c.Epoch+1 == g.view.Epoch) {
			g.sendControl(from, &wire.Control{Kind: wire.CtlPromise, Epoch: c.Epoch, Ballot: c.Ballot, Installed: true, Proposal: g.install})
		}
		return
	}
	if c.Epoch != g.view.Epoch || flush.Index(g.view.Members, c.From) < 0 || c.Ballot.Less(g.promised) {
		return
	}
	g.maxRound = max(g.maxRound, c.Ballot.Round)
	if g.promised.Less(c.Ballot) || !g.mem.Frozen() {
		g.promised = c.Ballot
		g.report = g.mem.Freeze(g.report)
		if g.blockedSince < 0 {
			g.blockedSince = g.now
		}
	}
	promise := &wire.Control{Kind: wire.CtlPromise, Ballot: c.Ballot, Report: slices.Clone(g.report), Proposal: g.accepted, Restoring: g.restoring}
	if from == g.cfg.Self.Addr {
		promise.From = g.cfg.Self
		g.onPromise(promise)
		return
	}
	g.sendControl(from, promise)
}

func (g *Group) onPropose(from netip.AddrPort, c *wire.Control) {
	p := c.Proposal
	if g.state != member || p == nil || c.Epoch != g.view.Epoch || !g.validNext(p) ||
		flush.Index(g.view.Members, c.From) < 0 || c.Ballot.Less(g.promised) {
		return
	}
	if !g.mem.Frozen() {
		g.report = g.mem.Freeze(g.report)
	}
	g.promised = c.Ballot
	if g.accepted == nil || g.accepted.Ballot != p.Ballot {
		g.accept(p)
	}
	g.flushTo, g.flushed = from, false
	g.maybeFlushed()
}

// accept takes p as this view's outcome: deliver up to its cut.
func (g *Group) accept(p *wire.Proposal) {
	if g.accepted != nil && sameOutcome(g.accepted, p) {
		g.accepted = p // a later round adopted it: answer under its ballot
		return
	}
	g.accepted = p
	holders := make([]int, len(p.Holders))
	for i, h := range p.Holders {
		holders[i] = int(h)
	}
	g.mem.SetCut(p.Cut, holders)
}

// sameOutcome: an adopted proposal keeps everything but its ballot.
func sameOutcome(a, b *wire.Proposal) bool {
	return a.Epoch == b.Epoch && a.Founder == b.Founder && slices.Equal(a.Members, b.Members) && slices.Equal(a.Cut, b.Cut)
}

// maybeFlushed answers Flushed once the accepted cut is held, and
// installs a view whose install was waiting for that.
func (g *Group) maybeFlushed() {
	if g.accepted == nil {
		return
	}
	if p := g.pendingInstall; p != nil {
		if g.mem.CutConsumed() {
			g.pendingInstall = nil
			g.installView(p, g.accepted)
		}
		return
	}
	// Holding the cut is enough to answer: safe messages of the cut may
	// wait for the outcome to be final (the install) to be delivered.
	if g.flushed || !g.flushTo.IsValid() || !g.mem.CutHeld() {
		return
	}
	g.flushed = true
	f := &wire.Control{Kind: wire.CtlFlushed, From: g.cfg.Self, Epoch: g.view.Epoch, Ballot: g.accepted.Ballot}
	if g.flushTo == g.cfg.Self.Addr {
		g.onFlushed(f)
		return
	}
	g.sendControl(g.flushTo, f)
}

func (g *Group) onInstall(p *wire.Proposal) {
	switch g.state {
	case joining, discovering:
		if flush.Index(p.Members, g.cfg.Self) >= 0 {
			g.installView(p, nil)
		}
		return
	case ended:
		return
	}
	if p.Epoch != g.view.Epoch+1 || p.Founder != g.install.Founder {
		return // not this instance's next view
	}
	if flush.Index(p.Members, g.cfg.Self) < 0 {
		// A view without this member: it was removed, or it left.
		if !g.leaving && flush.Index(p.Evicted, g.cfg.Self) >= 0 {
			g.end(ErrEvicted)
			return
		}
		g.removed()
		return
	}
	// A member of the new view promised in the round that computed its
	// cut, so it has delivered nothing beyond it; if the install is the
	// first it hears of the outcome (its Propose was lost, or a later
	// round adopted it while this member was thought failed), it takes
	// the cut now. Either way it delivers up to the cut, then installs.
	if !g.mem.Frozen() {
		g.report = g.mem.Freeze(g.report)
	}
	if g.accepted == nil || !sameOutcome(g.accepted, p) {
		g.accept(p)
		g.flushed = false
	}
	g.mem.Finalize()
	if !g.mem.CutConsumed() {
		g.pendingInstall = p
		return
	}
	g.installView(p, g.accepted)
}

// installView makes p the current view. accepted is the proposal through
// which this member flushed its previous view (nil for a first view).
func (g *Group) installView(p *wire.Proposal, accepted *wire.Proposal) {
	prev := g.view
	self := flush.Index(p.Members, g.cfg.Self)
	g.dropRetired()
	if g.mem != nil {
		g.mem.HoldOthers(false) // its reports go out before it retires
	}
	if g.mem != nil && accepted != nil {
		g.mem.Retire(g.mem.MessageBoundary(accepted.Cut[prev.Self]))
		g.retired, g.retiredEpoch = g.mem, prev.Epoch
	} else if g.mem != nil {
		g.past.add(g.mem.Stats())
	}
	cfg := g.cfg.Member
	cfg.Group, cfg.Instance, cfg.Epoch, cfg.Self = g.cfg.Group, wire.InstanceID(p.Founder), p.Epoch, self
	if cfg.Sequencer >= len(p.Members) {
		cfg.Sequencer = 0 // a smaller view: the coordinator orders
	}
	switch {
	case g.cfg.Liveness != nil:
		cfg.HeartbeatTicks = -1 // the process's heartbeats stand for the group's
	case cfg.HeartbeatTicks <= 0:
		// Several heartbeats per silence window: a few lost datagrams must
		// not look like a crash.
		cfg.HeartbeatTicks = max(1, g.cfg.SilentTicks/5)
	}
	cfg.Members = make([]netip.AddrPort, len(p.Members))
	for i, m := range p.Members {
		cfg.Members[i] = m.Addr
	}
	mem, err := NewWithSender(cfg, g.sender)
	if err != nil {
		g.end(err) // cannot happen with a validated config
		return
	}
	g.mem = mem
	g.det = detector.New(detector.Config{SilentTicks: int64(g.cfg.SilentTicks), ProbeTicks: int64(g.cfg.ProbeTicks), Helpers: 2}, len(p.Members), self, g.now)
	g.lagTicks, g.evicted = nil, nil // ranks change meaning: measure lag afresh
	v := View{Founder: p.Founder, Epoch: p.Epoch, Members: slices.Clone(p.Members), Self: self}
	for _, m := range p.Restoring {
		if flush.Index(p.Members, m) >= 0 {
			v.Restoring = append(v.Restoring, m)
		}
	}
	if flush.Index(v.Restoring, g.cfg.Self) >= 0 && !g.restored {
		g.restoring = true // a joiner, or a member still restoring
	}
	for r, m := range p.Members {
		if flush.Index(prev.Members, m) < 0 {
			v.Joined = append(v.Joined, r)
		}
	}
	for pr, m := range prev.Members {
		if flush.Index(p.Members, m) < 0 {
			if pr < len(g.heardInView) && g.heardInView[pr] {
				// It had installed that view (it spoke in it): a join
				// of it now is a copy. One that never spoke may be a
				// joiner that never learned it was in, and asks again.
				g.noteGone(m)
			}
			// The reasons are the agreed proposal's, the same everywhere.
			if flush.Index(p.Left, m) >= 0 {
				v.Left = append(v.Left, m)
			} else if flush.Index(p.Evicted, m) >= 0 {
				v.Evicted = append(v.Evicted, m)
			} else {
				v.Failed = append(v.Failed, m)
			}
		}
	}
	g.prevEpoch, g.prevMembers = prev.Epoch, prev.Members
	g.view, g.install, g.state = v, p, member
	g.probeNonce = nil // ranks change meaning
	g.heardInView = make([]bool, len(p.Members))
	g.heardInView[self] = true
	g.installedAt = g.now
	g.accepted, g.pendingInstall, g.flushed, g.promised, g.flushTo = nil, nil, false, wire.Ballot{}, netip.AddrPort{}
	g.round, g.blockedSince, g.changeRequested = nil, -1, false
	g.stats.Views++
	// Changes that this view carried out are done; the rest wait.
	g.changes.Joiners = slices.DeleteFunc(g.changes.Joiners, func(j wire.MemberID) bool { return flush.Index(p.Members, j) >= 0 })
	for m := range g.changes.Leavers {
		if flush.Index(p.Members, m) < 0 {
			delete(g.changes.Leavers, m)
		}
	}
	for m := range g.changes.Failed {
		if flush.Index(p.Members, m) < 0 {
			delete(g.changes.Failed, m)
		}
	}
	for m := range g.changes.Evicted {
		if flush.Index(p.Members, m) < 0 {
			delete(g.changes.Evicted, m)
		}
	}
	g.events = append(g.events, Event{View: &v})
	if g.leaving {
		g.requestLeave()
	}
}

// hasQuorum reports whether the ranks present may install the next view
// under the group's quorum policy.
func (g *Group) hasQuorum(present func(rank int) bool) bool {
	stable := g.now-g.installedAt >= int64(g.cfg.QuorumStableTicks)
	return flush.HasQuorum(g.cfg.Quorum, len(g.view.Members), present, stable)
}
