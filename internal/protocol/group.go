package protocol

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"

	"github.com/cohort-vs/cohort/flush"
	"github.com/cohort-vs/cohort/internal/detector"
	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

// Errors a group reports to its application.
var (
	// ErrRemoved: the other members installed a view without this member
	// (it was suspected, perhaps falsely). It must not deliver or send
	// under its old identity again; it may rejoin as a new incarnation.
	ErrRemoved = errors.New("removed from the group")
	// ErrEvicted: the view without this member removed it for being too
	// slow (the slow-member policy evict). It wraps ErrRemoved.
	ErrEvicted = fmt.Errorf("evicted from the group as too slow: %w", ErrRemoved)
	// ErrLeft: this member left the group gracefully.
	ErrLeft = errors.New("left the group")
	// ErrJoinBlocked: the group this process was joining said, for
	// BlockTicks, that it is blocked (no majority of its view reachable):
	// no view can take a joiner until that changes.
	ErrJoinBlocked = errors.New("the group is blocked (no majority of its view reachable): cannot join")
	// ErrJoinFull: the group this process was joining has as many
	// members as its MaxMembers allows.
	ErrJoinFull = errors.New("the group is full (its views are at MaxMembers): cannot join")
)

// GroupConfig describes one process's membership of one group.
type GroupConfig struct {
	Group uint64        // group id (wire.GroupID of the name)
	Self  wire.MemberID // this process's identity
	Seeds []netip.AddrPort
	// MaxMembers bounds the views this process takes part in: joins
	// beyond it are refused, and a view announced larger is not
	// believed. 0: MaxMembers.
	MaxMembers int

	// Limits of every view's Member (Group, Epoch, Self and Members are
	// filled in per view).
	Member Config

	DiscoverTicks int // how long a new process listens for an existing group before forming one
	RetryTicks    int // resend interval of unanswered control messages
	SilentTicks   int // silence before a member is probed
	ProbeTicks    int // silence while probed before it is suspected
	RoundTicks    int // how long a view-change round waits for answers before suspecting the silent
	BlockTicks    int // no view for this long while changing views: the group is blocked

	// Slow-member policy. EvictTicks 0 (block): flow control waits for
	// the slowest member, however slow. Otherwise (evict) a member that
	// trails the member furthest ahead by at least EvictLag of this
	// member's flow-control window (see Member.Lag) long enough to reach
	// a lag score of EvictTicks (see tickEvict) is removed from the view,
	// unless that would leave the view without a majority.
	EvictLag   float64
	EvictTicks int

	// Quorum is the rule a view change needs (flush.Quorum; the zero
	// value is the majority), and QuorumStableTicks how long a view must
	// have been stable for QuorumLastManStanding to break a tie.
	Quorum            flush.Quorum
	QuorumStableTicks int

	// Liveness, when set, is the process's watch over its peers, shared
	// by all its groups (package liveness): the group then sends no
	// heartbeats and suspects no member on its own; its driver tells it
	// (PeerSuspected, PeerHeard, PeerRestarted). An idle group is then
	// silent. Self's incarnation must then be at least its process's
	// boot, and grow across restarts.
	Liveness Liveness
}

// Liveness is what a group asks of a process-wide watch over its peers.
type Liveness interface {
	// HeardWithin reports whether the process at addr was heard from in
	// the last ticks ticks.
	HeardWithin(addr netip.AddrPort, ticks int64) bool
	// Boot is the run of the process at addr as last heard (0: unknown):
	// its members of earlier runs have incarnations below it.
	Boot(addr netip.AddrPort) uint64
	// Heard notes traffic of a view member: a sign of life of its process.
	Heard(addr netip.AddrPort)
}

// heardFrom notes a sign of life of view member r, for the process's
// watch too.
func (g *Group) heardFrom(r int) {
	g.det.Heard(r)
	if g.cfg.Liveness != nil {
		g.cfg.Liveness.Heard(g.view.Members[r].Addr)
	}
}

// View is a group view as the protocol sees it.
type View struct {
	Founder wire.MemberID // who formed this instance of the group
	Epoch   uint64
	Members []wire.MemberID
	Self    int   // this member's rank
	Joined  []int // ranks new in this view
	Left    []wire.MemberID
	Failed  []wire.MemberID
	Evicted []wire.MemberID // removed by the slow-member policy
	// Restoring are the members of this view still taking the group's
	// state, as the view change agreed (wire.Proposal.Restoring): the
	// same at every member.
	Restoring []wire.MemberID
}

// Event is something the application must learn in order with its
// deliveries: a new view, or the end of its membership.
type Event struct {
	View *View
	Err  error // ErrRemoved or ErrLeft: membership ended
	// Redirect, with ErrRemoved, is a member of the instance of the group
	// that this one merged into: rejoin through it.
	Redirect netip.AddrPort
}

type groupState uint8

const (
	discovering groupState = iota
	joining
	member
	ended
)

// Group is the protocol of one process in one named group, across views.
// Like Member it is a deterministic state machine.
type Group struct {
	cfg    GroupConfig
	state  groupState
	sender *Sender
	now    int64

	view    View
	install *wire.Proposal // the proposal that made the current view
	mem     *Member
	det     *detector.Detector

	// Discovery: processes starting at the same time answer each other;
	// the lowest address among them forms the group.
	discoverStart int64
	lastMerge     int64                    // tick of the last merge probe (tickMerge)
	peersSeen     map[netip.AddrPort]int64 // starting processes heard, and when
	contact       netip.AddrPort           // a member to send Join to
	lastJoin      int64
	// contactBlockedSince: tick since which every answer from the
	// group has said it is blocked; -1: the last one did not.
	contactBlockedSince int64

	// holdOthers: the driver asks to hold back reports of others'
	// messages consumed (HoldOthers).
	holdOthers bool
	// restoring: this member joined and has not told the protocol it has
	// the group's state yet (Restored); its promises say so. restored:
	// it has, for good (this membership restores once).
	restoring, restored bool
	// rxSize is the size of the datagram being received: answers to it
	// that may go to a non-member are no larger (answer).
	rxSize int

	leaving   bool
	lastLeave int64
	// farewell, when set, is a last word this member must get through
	// before its membership ends (see farewell in viewchange.go).
	farewell *farewell
	redirect netip.AddrPort // where to rejoin after a merge dissolved this instance
	// witnesses: per instance met that this one would dissolve into, the
	// address that first described it (see witnessed).
	witnesses map[wire.MemberID]netip.AddrPort

	// Participant side of a view change.
	promised wire.Ballot
	accepted *wire.Proposal
	flushTo  netip.AddrPort // where to send Flushed
	flushed  bool
	report   []uint64
	// pendingInstall is an install that arrived before this member had
	// consumed its cut.
	pendingInstall *wire.Proposal

	// retired is the previous view's member, kept after an install to
	// answer the NAKs of a member of the new view that has not filled its
	// cut yet (in the old view's numbering, it can get the messages from
	// nowhere else); dropped once every member of the new view has been
	// heard from in it.
	retired      *Member
	retiredEpoch uint64
	heardInView  []bool // members of the view heard from in it
	installedAt  int64  // tick at which this view was installed
	// The previous view's number and members, to know a member of this
	// view that still speaks from it.
	prevEpoch   uint64
	prevMembers []wire.MemberID
	gone        map[netip.AddrPort]uint64 // per address, the highest incarnation that left the views (noteGone)

	// Coordinator side.
	changes flush.Changes
	// changeRequested: a member asked for a view change with nothing to
	// change, to release it from an abandoned round.
	changeRequested bool
	lastChangeReq   int64
	round           *round
	maxRound        uint64

	blockedSince int64 // tick at which the current view change began; -1: none

	// Slow-member eviction: per rank, its lag score in ticks (up one each
	// tick it lags beyond EvictLag, down lagForgive each tick it does
	// not), and whether it was evicted.
	lagTicks []int64
	evicted  []bool
	lags     []float64 // scratch for Member.Lags

	// Output.
	out     []udp.Datagram
	ctlBufs [][]byte
	events  []Event
	ready   Ready
	// What the application holds, oldest first: runs of events and of
	// the member's deliveries, so that Consumed reaches the right one.
	held   []heldRun
	endErr error
	// Rate limits, per address: the view queries this member sends, and
	// its answers (installs, views) to what others say.
	queried   map[netip.AddrPort]int64
	answersTo map[netip.AddrPort]int64
	probeSeq  uint64
	probeFor  map[uint64]relay // indirect probes being relayed, by the nonce of this member's probe
	// probeNonce: per rank of the view, the nonce of the last probe this
	// member sent it; a relayed answer must name it.
	probeNonce []uint64
	stats      GroupStats
	past       Stats // traffic counters of the views before this one
}

// GroupStats are membership counters.
type GroupStats struct {
	Views       uint64 // views installed
	ViewChanges uint64 // view changes this member coordinated
	Rounds      uint64 // ballot rounds started
	Suspicions  uint64
	Evictions   uint64 // members this one suspected for lagging (slow-member policy evict)
	// SuspicionsRefuted: suspicions from other members that this one,
	// coordinating, ignored because it had just heard from the suspect.
	SuspicionsRefuted uint64
	ControlSent       uint64
	ControlDropped    uint64 // control messages that failed to decode or were out of place
	// ControlRefused: control messages from a process not allowed to
	// send them (not a member of the view they concern, a process
	// speaking for another), or whose view does not fit this member's.
	ControlRefused uint64
	// InstallsResent: installs sent again to members of the view still
	// speaking from an older one (they missed it).
	InstallsResent uint64
	// OtherInstance: membership messages and group traffic of another
	// instance of the group (a restarted group, or another deployment
	// that uses the same name): only discovery, joins and merges cross
	// instances.
	OtherInstance uint64
	// AnswersWithheld: answers to possible non-members not sent because
	// they were larger than the question (see answer).
	AnswersWithheld uint64
	// JoinsRefused: joins that would make the view larger than
	// GroupConfig.MaxMembers.
	JoinsRefused uint64
}

// relay is an indirect probe this member makes for another: who asked,
// under which nonce, about which member.
type relay struct {
	to     netip.AddrPort
	nonce  uint64
	target wire.MemberID
}

type heldRun struct {
	events bool
	n      int
}

// round is a view change this member coordinates.
type round struct {
	ballot    wire.Ballot
	start     int64
	lastSend  int64
	promises  []*wire.Control // by rank
	proposal  *wire.Proposal
	flushed   []bool
	installed bool // adopting a view some member already installed
}

// NewGroup starts a process's membership of a group: it will discover
// the group through the seeds, then join it or form it.
func NewGroup(cfg GroupConfig) (*Group, error) {
	if !cfg.Self.Addr.IsValid() {
		return nil, errors.New("protocol: group member needs an address")
	}
	if cfg.DiscoverTicks < 1 || cfg.RetryTicks < 1 || cfg.SilentTicks < 1 || cfg.ProbeTicks < 1 || cfg.RoundTicks < 1 || cfg.BlockTicks < 1 {
		return nil, errors.New("protocol: group timings must be at least one tick")
	}
	if cfg.EvictTicks < 0 || (cfg.EvictTicks > 0 && !(cfg.EvictLag > 0 && cfg.EvictLag <= 1)) {
		return nil, errors.New("protocol: EvictTicks must be 0 (block) or positive with EvictLag in (0, 1]")
	}
	probe := cfg.Member
	probe.Members, probe.Self = []netip.AddrPort{cfg.Self.Addr}, 0
	if err := probe.Validate(); err != nil {
		return nil, err
	}
	g := &Group{
		cfg:                 cfg,
		sender:              newSender(&probe),
		peersSeen:           map[netip.AddrPort]int64{},
		queried:             map[netip.AddrPort]int64{},
		answersTo:           map[netip.AddrPort]int64{},
		witnesses:           map[wire.MemberID]netip.AddrPort{},
		probeFor:            map[uint64]relay{},
		blockedSince:        -1,
		contactBlockedSince: -1,
		changes:             flush.Changes{Leavers: map[wire.MemberID]bool{}, Failed: map[wire.MemberID]bool{}, Evicted: map[wire.MemberID]bool{}},
	}
	g.discover()
	return g, nil
}

// Sender is where the application appends messages; it lives across views.
func (g *Group) Sender() *Sender { return g.sender }

// Seeds are the addresses this process discovers the group through.
func (g *Group) Seeds() []netip.AddrPort { return g.cfg.Seeds }

// View is the current view (Epoch 0 before the first).
func (g *Group) View() View { return g.view }

// Member is the current view's member, or nil.
func (g *Group) Member() *Member { return g.mem }

// Ended reports why membership ended, or nil while it lasts.
func (g *Group) Ended() error { return g.endErr }

// InView reports whether this process is in a view.
func (g *Group) InView() bool { return g.state == member }

// stuck: a view change has been under way for a whole round, as when
// this member is cut off from its view's majority.
func (g *Group) stuck() bool { return g.Blocked() > int64(g.cfg.RoundTicks) }

// Blocked reports how many ticks a view change has been under way, or 0.
func (g *Group) Blocked() int64 {
	if g.blockedSince < 0 {
		return 0
	}
	return g.now - g.blockedSince
}

// NetworkState is how many entries this group keeps that the network
// can make: processes heard starting, addresses asked and answered,
// indirect probes being relayed, joiners waiting, other instances met.
// Each has its own bound; tests check their sum against it.
func (g *Group) NetworkState() int {
	return len(g.peersSeen) + len(g.queried) + len(g.answersTo) + len(g.probeFor) + len(g.changes.Joiners) + len(g.witnesses)
}

// MaxNetworkState bounds NetworkState.
const MaxNetworkState = maxStarting + 2*maxQueried + maxRelays + maxJoiners + maxWitnesses

// Stats returns the membership counters.
func (g *Group) Stats() GroupStats { return g.stats }

// Restored tells the protocol that this member has the group's state (or
// needs none): its promises stop listing it as restoring.
func (g *Group) Restored() { g.restoring, g.restored = false, true }

// SetSeeds replaces the seeds (the driver resolves host names again).
func (g *Group) SetSeeds(seeds []netip.AddrPort) { g.cfg.Seeds = slices.Clone(seeds) }

// Discovering reports whether this process is still looking for its
// group or joining it.
func (g *Group) Discovering() bool { return g.state == discovering || g.state == joining }

// MaxLag is how far the slowest member trails the one furthest ahead in
// consuming this member's own messages, as a share of the window (see
// Member.Lags): 1 means it holds the window full on its own.
func (g *Group) MaxLag() float64 {
	if g.state != member {
		return 0
	}
	g.lags = g.mem.Lags(g.lags)
	worst := 0.0
	for r, l := range g.lags {
		if r != g.view.Self {
			worst = max(worst, l)
		}
	}
	return worst
}

// Traffic returns the multicast counters of every view so far.
func (g *Group) Traffic() Stats {
	t := g.past
	if g.retired != nil {
		t.add(g.retired.Stats())
	}
	if g.mem != nil {
		t.add(g.mem.Stats())
	}
	return t
}

// Leave asks to leave the group gracefully: the member stays until a view
// without it is installed, so its last messages are delivered everywhere.
func (g *Group) Leave() {
	if g.state == ended || g.leaving {
		return
	}
	g.leaving = true
	if g.state != member {
		g.end(ErrLeft)
		return
	}
	g.requestLeave()
}

func (g *Group) requestLeave() {
	g.lastLeave = g.now
	if g.isCoordinator() {
		g.changes.Leavers[g.cfg.Self] = true
		return
	}
	g.sendControl(g.coordinatorAddr(), &wire.Control{Kind: wire.CtlLeave, Target: g.cfg.Self})
}

func (g *Group) end(err error) {
	if g.state == ended {
		return
	}
	g.state, g.endErr = ended, err
	g.events = append(g.events, Event{Err: err, Redirect: g.redirect})
	g.blockedSince = -1
}

// Tick advances the group's clock by one tick.
func (g *Group) Tick() {
	g.now++
	switch g.state {
	case discovering:
		g.tickDiscover()
	case joining:
		if g.contactBlockedSince >= 0 && g.now-g.contactBlockedSince >= int64(g.cfg.BlockTicks) {
			// A joiner whose group is blocked would wait for good.
			g.end(ErrJoinBlocked)
			return
		}
		if g.now-g.lastJoin >= int64(g.cfg.RetryTicks) {
			g.sendJoin()
		}
	case member:
		if g.farewell != nil {
			g.tickFarewell()
			return
		}
		g.mem.Tick()
		g.tickDetector()
		g.tickEvict()
		if g.leaving && g.now-g.lastLeave >= int64(g.cfg.RetryTicks) {
			g.requestLeave()
		}
		if g.isCoordinator() {
			g.tickCoordinator()
			g.tickMerge()
		} else {
			g.round = nil // another member coordinates now
			if g.mem.Frozen() && g.Blocked() > int64(g.cfg.RoundTicks) && g.now-g.lastChangeReq >= int64(g.cfg.RetryTicks) {
				g.lastChangeReq = g.now
				g.sendControl(g.coordinatorAddr(), &wire.Control{Kind: wire.CtlChange})
			}
			if g.Blocked() >= int64(g.cfg.BlockTicks) && g.now%int64(8*g.cfg.DiscoverTicks) == 0 {
				g.askSeeds() // has the instance gone on without us? (meetPrimary)
			}
		}
		g.maybeFlushed()
	}
}

// Idle reports whether the group has nothing timed to do: a member of a
// settled view (no change under way or asked for, not leaving), whose
// process watches its peers (GroupConfig.Liveness), with an idle Member.
// Until a datagram arrives, the application acts or the watch reports,
// its ticks only age its clock: the caller may then tick it coarsely
// (TickN), for the merge probe and the trimming of its memory.
func (g *Group) Idle() bool {
	return g.state == member && g.cfg.Liveness != nil && g.farewell == nil && !g.leaving &&
		g.round == nil && g.accepted == nil && g.pendingInstall == nil && !g.changeRequested &&
		g.changes.Empty() && g.mem.Idle()
}

// TickN moves the clock n ticks on in one step and does what came due:
// as n calls of Tick for an Idle group, whose timers all compare with
// the clock. A group that is not idle is ticked n times.
func (g *Group) TickN(n int64) {
	if n > 1 && g.Idle() {
		g.now += n - 1
		g.mem.Skip(n - 1)
		g.det.Skip(n - 1)
		n = 1
	}
	for ; n > 0; n-- {
		g.Tick()
	}
}

// Consumed reports that the application is done with its oldest n
// deliveries and events.
func (g *Group) Consumed(n int) {
	g.applyHold()
	for n > 0 && len(g.held) > 0 {
		h := &g.held[0]
		k := min(n, h.n)
		if !h.events && g.mem != nil {
			g.mem.Consumed(k)
		}
		n -= k
		if h.n -= k; h.n == 0 {
			// Runs are few: shift rather than reslice, so the array is
			// reused and the hot path allocates nothing.
			g.held = g.held[:copy(g.held, g.held[1:])]
		}
	}
	if g.state == member {
		g.maybeFlushed()
	}
}

// HoldOthers asks the member to hold back its reports of other senders'
// messages consumed (Member.HoldOthers), except while a view change is
// under way: its install waits for the cut to be consumed.
func (g *Group) HoldOthers(hold bool) {
	g.holdOthers = hold
	g.applyHold()
}

func (g *Group) applyHold() {
	if g.mem != nil {
		g.mem.HoldOthers(g.holdOthers && g.accepted == nil && g.pendingInstall == nil)
	}
}

// Ready collects what the group has to send and deliver. Events come
// before the deliveries of the view they open.
func (g *Group) Ready() Ready {
	rd := Ready{}
	var retransmits []udp.Datagram
	g.applyHold() // a view change may have begun
	if g.state == member {
		rd = g.mem.Ready()
		if g.retired != nil {
			retransmits = g.retired.Ready().Datagrams
		}
	}
	g.ready = rd
	if len(g.out) > 0 || len(retransmits) > 0 {
		g.ready.Datagrams = append(append(g.out, rd.Datagrams...), retransmits...)
	}
	return g.ready
}

// Events returns the events to hand to the application before the
// deliveries of the last Ready; each counts as one delivery for Consumed.
func (g *Group) Events() []Event { return g.events }

// Advance acknowledges the last Ready and Events.
func (g *Group) Advance() {
	g.hold(true, len(g.events))
	g.hold(false, len(g.ready.Deliveries))
	// Cleared, not only cut: a group that goes idle must not keep its
	// last control messages (a padded Discover is a whole datagram).
	clear(g.events)
	g.events = g.events[:0]
	clear(g.out)
	g.out = g.out[:0]
	clear(g.ctlBufs)
	g.ctlBufs = g.ctlBufs[:0]
	if g.state == member {
		g.mem.Advance()
		if g.retired != nil {
			g.retired.Advance()
		}
	}
}

func (g *Group) hold(events bool, n int) {
	if n == 0 {
		return
	}
	if k := len(g.held); k > 0 && g.held[k-1].events == events {
		g.held[k-1].n += n
		return
	}
	g.held = append(g.held, heldRun{events: events, n: n})
}

// sendControl queues one control message to addr.
func (g *Group) sendControl(addr netip.AddrPort, c *wire.Control) { g.sendControlMax(addr, c, 0) }

// answer queues c to addr, a process that may be no member, in answer to
// the datagram being received: only if it is no larger (a member never
// amplifies what a non-member sends it; questions that expect a large
// answer are padded, see pad).
func (g *Group) answer(addr netip.AddrPort, c *wire.Control) { g.sendControlMax(addr, c, g.rxSize) }

// notice queues a short notice (who are you; you are no member) to a
// process that speaks from a view this member is not in: it may be larger
// than what prompted it (a heartbeat can be smaller than any control
// message, and a member left behind learns its fate only this way), but
// never larger than maxNotice, and only once per retry interval per
// address (the callers' limit).
func (g *Group) notice(addr netip.AddrPort, c *wire.Control) {
	g.sendControlMax(addr, c, max(g.rxSize, maxNotice))
}

// sendControlMax queues c to addr if it encodes to at most max bytes
// (0: any size that fits a datagram).
func (g *Group) sendControlMax(addr netip.AddrPort, c *wire.Control, max int) {
	if !addr.IsValid() {
		return
	}
	switch {
	case c.Kind == wire.CtlDiscover:
		// A Here describes the view: it may take a whole datagram.
		c.Pad = g.cfg.Member.MaxDatagram
	case c.Kind == wire.CtlJoin && c.Target == g.cfg.Self:
		// Room for the short Here that says the group is blocked.
		c.Pad = min(joinPad, g.cfg.Member.MaxDatagram)
	}
	c.From = g.cfg.Self
	if c.Epoch == 0 {
		c.Epoch = g.view.Epoch
	}
	rank := uint16(wire.NoRank)
	if g.state == member {
		rank = uint16(g.view.Self)
	}
	b := wire.AppendControl(make([]byte, 0, 256), wire.Header{Sender: rank, Group: g.cfg.Group, Instance: g.instance(), Epoch: g.view.Epoch}, c)
	if len(b) > g.cfg.Member.MaxDatagram {
		g.stats.ControlDropped++ // a view too large for a datagram: see MaxMembers
		return
	}
	if max > 0 && len(b) > max {
		g.stats.AnswersWithheld++
		return
	}
	g.ctlBufs = append(g.ctlBufs, b)
	g.out = append(g.out, udp.Datagram{Buf: b, N: len(b), Addr: addr})
	g.stats.ControlSent++
}

// Receive processes one datagram from addr.
func (g *Group) Receive(from netip.AddrPort, b []byte) {
	g.rxSize = len(b)
	h, err := wire.ParseHeader(b)
	if err != nil || h.Group != g.cfg.Group {
		g.stats.ControlDropped++
		return
	}
	if h.Type == wire.TypeControl {
		c, err := wire.ParseControl(b[wire.HeaderSize:])
		if err != nil || c.From.Addr != from {
			g.stats.ControlDropped++
			return
		}
		if g.state == member && h.Instance != g.instance() && !crossesInstances(c.Kind) {
			g.stats.OtherInstance++
			return
		}
		// A member speaking from this view is alive in it; one speaking
		// from an older view missed the install, for a while (lateMember).
		if c.Epoch == g.view.Epoch {
			g.heard(c.From)
		} else if g.state == member && c.Epoch < g.view.Epoch {
			if r := flush.Index(g.view.Members, c.From); r >= 0 {
				g.lateMember(r)
			}
		}
		if g.cfg.Liveness != nil {
			g.replaced(c.From)
		}
		g.control(from, h, c)
		return
	}
	if g.state != member {
		if g.state == joining || g.state == discovering {
			g.query(from)
		}
		return
	}
	if h.Instance != g.instance() {
		// Another instance's traffic is never taken in; its sender may be
		// one this process should know of (its instance went on, or
		// dissolved into that one): ask what it is in.
		g.stats.OtherInstance++
		g.query(from)
		return
	}
	switch {
	case h.Epoch == g.view.Epoch:
		if int(h.Sender) < len(g.view.Members) && g.view.Members[h.Sender].Addr == from {
			g.heardFrom(int(h.Sender))
			g.heardIn(int(h.Sender))
		}
		g.mem.Receive(from, b)
	case g.retired != nil && h.Epoch == g.retiredEpoch:
		g.retired.Receive(from, b) // a member still filling its cut
		g.staleTraffic(from, h)
	case h.Epoch > g.view.Epoch:
		g.query(from) // we missed an install
	default:
		g.staleTraffic(from, h)
	}
}

// instance is the id of the group instance this process is a member of
// (every datagram it sends carries it), 0 outside one.
func (g *Group) instance() uint64 {
	if g.state != member {
		return 0
	}
	return g.mem.cfg.Instance
}

// crossesInstances reports whether a control message kind may come from
// a process of another instance of the group, or of none: discovery,
// joins, merges and the answers about them. The rest concern a view of
// this instance.
func crossesInstances(kind uint8) bool {
	switch kind {
	case wire.CtlDiscover, wire.CtlHere, wire.CtlJoin, wire.CtlNotMember, wire.CtlInstalled, wire.CtlViewQuery:
		return true
	}
	return false
}

// staleTraffic takes in group traffic of an older view from addr: a
// member of this view that missed its install (the previous view's
// member of that rank, at that address, is in this one), or a process
// this view left behind, which is told what became of it.
func (g *Group) staleTraffic(addr netip.AddrPort, h wire.Header) {
	if h.Epoch == g.prevEpoch && int(h.Sender) < len(g.prevMembers) && g.prevMembers[h.Sender].Addr == addr {
		if r := flush.Index(g.view.Members, g.prevMembers[h.Sender]); r >= 0 {
			g.lateMember(r)
			return
		}
	}
	g.cutOff(addr)
	g.answerStale(addr)
}

// cutOff: the member of this view at addr still speaks from an older
// view, BlockTicks after the install, and has never spoken in this one.
// It missed an install it cannot get again (a view it skipped: only the
// next view's install is taken), so it will never speak in this view.
// The group's own detector would find its silence; the shared watch
// (GroupConfig.Liveness) hears its process and never would: it is
// suspected here, and rejoins once removed.
func (g *Group) cutOff(addr netip.AddrPort) {
	if g.cfg.Liveness == nil || g.now-g.installedAt <= int64(g.cfg.BlockTicks) {
		return
	}
	for r, m := range g.view.Members {
		if m.Addr == addr && r != g.view.Self && !g.heardInView[r] && !g.det.Suspected(r) {
			g.det.Suspect(r)
			g.suspect(r)
		}
	}
}

// lateMember: rank r of this view still speaks from an older one. It
// missed the install (lost, or still on its way), or is consuming the
// last of its cut: it is alive and reachable, so it gets the install
// again at once (once per retry interval), and while it has not spoken
// in this view yet, for up to BlockTicks after the install, its old
// view's datagrams count as signs of life: the failure detector does not
// suspect it for a silence in this view that only the lost install
// caused. Past BlockTicks it is treated as cut off (a coordinator stuck
// in an older view cannot act for this one), and suspected as usual.
// Once it has spoken in this view, its old view's datagrams are only
// late ones (its retired member answering repairs).
func (g *Group) lateMember(r int) {
	if r == g.view.Self || g.heardInView[r] {
		return // it installed: this is a late datagram of its old view
	}
	if g.now-g.installedAt <= int64(g.cfg.BlockTicks) {
		g.heardFrom(r)
	}
	m := g.view.Members[r]
	g.cutOff(m.Addr)
	if g.answerLimit(m.Addr) {
		g.sendControl(m.Addr, &wire.Control{Kind: wire.CtlInstall, Proposal: g.install})
		g.stats.InstallsResent++
	}
}

// heard notes any control message from a view member as a sign of life.
func (g *Group) heard(id wire.MemberID) {
	if g.state == member {
		if r := flush.Index(g.view.Members, id); r >= 0 {
			g.heardFrom(r)
			g.heardIn(r)
		}
	}
}

// heardIn notes that rank r spoke in the current view: once every member
// has, none still needs the previous view's messages.
func (g *Group) heardIn(r int) {
	if g.heardInView[r] {
		return
	}
	g.heardInView[r] = true
	if g.retired == nil {
		return
	}
	for _, h := range g.heardInView {
		if !h {
			return
		}
	}
	g.dropRetired()
}

// dropRetired lets the previous view's member go, keeping its counters
// (it answers NAKs until then).
func (g *Group) dropRetired() {
	if g.retired != nil {
		g.past.add(g.retired.Stats())
		g.retired = nil
	}
}

// query asks addr for its view, at most once per retry interval.
func (g *Group) query(addr netip.AddrPort) {
	if g.limit(g.queried, addr) {
		g.sendControl(addr, &wire.Control{Kind: wire.CtlViewQuery})
	}
}

// answerStale tells a process in an older view what became of it: it is
// asked who it is first (answerQuery with no identity).
func (g *Group) answerStale(addr netip.AddrPort) {
	if g.limit(g.queried, addr) {
		g.answerQuery(addr, wire.MemberID{})
	}
}

// answerLimit allows one answer to addr per retry interval: anyone can
// make this member answer, and answers are often larger than questions.
func (g *Group) answerLimit(addr netip.AddrPort) bool { return g.limit(g.answersTo, addr) }

// limit allows one message to addr per retry interval, by the record
// sent. Any address can send us datagrams, so the record is bounded:
// past maxQueried entries it starts afresh.
func (g *Group) limit(sent map[netip.AddrPort]int64, addr netip.AddrPort) bool {
	if t, ok := sent[addr]; ok && g.now-t < int64(g.cfg.RetryTicks) {
		return false
	}
	if len(sent) >= maxQueried {
		clear(sent)
	}
	sent[addr] = g.now
	return true
}

const (
	// joinPad pads a process's own Join: room for the answer that its
	// contact is blocked.
	joinPad     = 512
	maxNotice   = 128
	maxQueried  = 4096
	maxStarting = 256
	maxRelays   = 1024
	// maxWitnesses bounds the other instances remembered (witnessed).
	maxWitnesses = 16
	// maxJoiners bounds the joins one view change takes; the others are
	// asked to retry (they do, every RetryTicks) and join the next one.
	maxJoiners = 64
)

// sawStarting notes a process starting at the same time, heard at addr.
// Only a lower address matters (it forms the group), and the memory is
// bounded: past maxStarting, the one heard longest ago is forgotten.
func (g *Group) sawStarting(addr netip.AddrPort) {
	if !addrLess(addr, g.cfg.Self.Addr) {
		return
	}
	if _, ok := g.peersSeen[addr]; !ok && len(g.peersSeen) >= maxStarting {
		oldest, at := netip.AddrPort{}, int64(math.MaxInt64)
		for a, t := range g.peersSeen {
			if t < at {
				oldest, at = a, t
			}
		}
		delete(g.peersSeen, oldest)
	}
	g.peersSeen[addr] = g.now
}

// answerQuery tells who (at addr) what this member's view makes of it: its
// view, if who is in it; else that it is not a member. who is matched by
// incarnation too: a process restarted at a member's address is not
// that member. Without an identity (a data datagram), it is asked.
func (g *Group) answerQuery(addr netip.AddrPort, who wire.MemberID) {
	if g.state != member {
		return
	}
	if !who.Addr.IsValid() {
		g.notice(addr, &wire.Control{Kind: wire.CtlViewQuery})
		return
	}
	if flush.Index(g.view.Members, who) >= 0 || flush.Index(g.install.Evicted, who) >= 0 {
		// A member of the view gets the install it missed; one this view
		// evicted, too, so that it learns why it is out. An install is
		// larger than a question: once per retry interval.
		if g.answerLimit(addr) {
			g.sendControl(addr, &wire.Control{Kind: wire.CtlInstall, Proposal: g.install})
		}
		return
	}
	g.notice(addr, &wire.Control{Kind: wire.CtlNotMember, Nonce: who.Incarnation})
}

func (g *Group) control(from netip.AddrPort, h wire.Header, c *wire.Control) {
	if g.farewell != nil {
		g.farewellControl(from, c)
		return
	}
	switch c.Kind {
	case wire.CtlDiscover:
		// Answered once per retry interval per address: anyone can ask,
		// and the answer is larger than the question.
		if g.state == member && g.answerLimit(from) {
			g.answer(from, &wire.Control{Kind: wire.CtlHere, Proposal: g.install, Blocked: g.stuck()})
		} else if g.state == discovering {
			g.sawStarting(from)
			g.answer(from, &wire.Control{Kind: wire.CtlHere})
		}
	case wire.CtlHere:
		// Another instance speaks for itself: its sender is one of its
		// members.
		if g.state == member && c.Proposal != nil && g.validMembers(c.Proposal.Members) && flush.Index(c.Proposal.Members, c.From) >= 0 {
			g.meet(from, c.Proposal, c.Blocked)
		}
		// A joiner asked the seeds: its contact is one of them, a member
		// of the view it describes.
		if g.state == discovering || g.state == joining {
			if c.Proposal != nil && g.validMembers(c.Proposal.Members) && flush.Index(c.Proposal.Members, c.From) >= 0 && slices.Contains(g.cfg.Seeds, from) {
				g.contact = from
				switch {
				case !c.Blocked:
					g.contactBlockedSince = -1
				case g.contactBlockedSince < 0:
					g.contactBlockedSince = g.now
				}
				if g.state == discovering {
					g.state = joining
					g.sendJoin()
				}
			} else {
				g.sawStarting(from)
			}
		}
	case wire.CtlJoin:
		// A process joins for itself; a member forwards another's join.
		if c.Target == c.From || g.inView(c.From) {
			if g.state == member && g.stuck() && c.Target == c.From && g.answerLimit(from) {
				// Tell the joiner that it waits on a blocked group: its
				// contact is in the view, all it needs to know.
				short := &wire.Proposal{Epoch: g.install.Epoch, Founder: g.install.Founder, Members: []wire.MemberID{g.cfg.Self}}
				g.answer(from, &wire.Control{Kind: wire.CtlHere, Proposal: short, Blocked: true})
			}
			if g.state == member && c.Target == c.From && flush.Index(g.view.Members, c.Target) < 0 &&
				len(g.view.Members) >= g.maxMembers() && g.answerLimit(from) {
				g.stats.JoinsRefused++
				g.answer(from, &wire.Control{Kind: wire.CtlFull, Target: c.Target})
				return
			}
			g.onJoin(c.Target)
		} else {
			g.stats.ControlRefused++
		}
	case wire.CtlFull:
		// Only the joiner's contact, a seed, may turn it away.
		if (g.state == joining || g.state == discovering) && c.Target == g.cfg.Self && slices.Contains(g.cfg.Seeds, from) {
			g.end(ErrJoinFull)
		}
	case wire.CtlLeave:
		// A member leaves for itself; a member forwards another's leave.
		if g.state == member && flush.Index(g.view.Members, c.Target) >= 0 && (c.Target == c.From || g.inView(c.From)) {
			g.forwardOr(c, func() { g.changes.Leavers[c.Target] = true })
		} else {
			g.stats.ControlRefused++
		}
	case wire.CtlSuspect, wire.CtlEvict:
		if !g.inView(c.From) {
			g.stats.ControlRefused++
		} else if c.Epoch == g.view.Epoch && flush.Index(g.view.Members, c.Target) >= 0 && c.Target != g.cfg.Self {
			accept := g.acceptSuspicion
			if c.Kind == wire.CtlEvict {
				accept = g.acceptEviction
			}
			g.forwardOr(c, func() { accept(c.Target) })
		}
	case wire.CtlChange:
		switch {
		case g.state != member || flush.Index(g.view.Members, c.From) < 0:
		case c.Epoch < g.view.Epoch:
			// It missed the install of a view it is in: send that, rather
			// than freeze the group again for a round it does not need.
			g.answerQuery(from, c.From)
		default:
			g.forwardOr(c, func() { g.changeRequested = true })
		}
	case wire.CtlPrepare:
		g.onPrepare(from, c)
	case wire.CtlPromise:
		g.onPromise(c)
	case wire.CtlPropose:
		g.onPropose(from, c)
	case wire.CtlFlushed:
		g.onFlushed(c)
	case wire.CtlInstall:
		// A member's next view comes from a member of its view; a joiner's
		// first, from a member of that view (or its leaving coordinator).
		p := c.Proposal
		switch {
		case p == nil:
			g.stats.ControlRefused++
		case g.state == member && p.Epoch == g.view.Epoch+1:
			if !g.inView(c.From) || !g.validNext(p) {
				g.stats.ControlRefused++
				return
			}
			g.onInstall(p)
		case g.state == joining || g.state == discovering:
			if !g.validFirst(p) || flush.Index(p.Members, c.From) < 0 && flush.Index(p.Left, c.From) < 0 {
				g.stats.ControlRefused++
				return
			}
			g.onInstall(p)
		}
		if p != nil {
			g.confirmInstall(from, p)
		}
	case wire.CtlProbe:
		g.sendControl(from, &wire.Control{Kind: wire.CtlProbeAck, Nonce: c.Nonce, Target: c.Target})
	case wire.CtlProbeReq:
		if !g.inView(c.From) {
			g.stats.ControlRefused++ // only a member may have us probe another
			return
		}
		g.probeSeq++
		nonce := g.probeSeq
		if len(g.probeFor) >= maxRelays {
			clear(g.probeFor) // a bound on relays in flight; lost ones are re-asked
		}
		g.probeFor[nonce] = relay{to: from, nonce: c.Nonce, target: c.Target}
		g.sendControl(c.Target.Addr, &wire.Control{Kind: wire.CtlProbe, Nonce: nonce, Target: g.cfg.Self})
	case wire.CtlProbeAck:
		// A direct ack counted as a sign of life on arrival. An ack naming
		// this member answers a probe it relayed: pass it to the asker,
		// if it comes from the member probed. An ack naming another
		// member is a relayed answer from it: taken from a member of the
		// view, answering this member's last probe of it.
		switch {
		case c.Target == g.cfg.Self:
			if rl, ok := g.probeFor[c.Nonce]; ok && rl.target == c.From {
				delete(g.probeFor, c.Nonce)
				g.sendControl(rl.to, &wire.Control{Kind: wire.CtlProbeAck, Target: c.From, Nonce: rl.nonce})
			}
		case g.inView(c.From):
			if r := flush.Index(g.view.Members, c.Target); r >= 0 && r < len(g.probeNonce) && c.Nonce != 0 && g.probeNonce[r] == c.Nonce {
				g.heard(c.Target)
			} else {
				g.stats.ControlRefused++
			}
		default:
			g.stats.ControlRefused++
		}
	case wire.CtlViewQuery:
		switch {
		case g.state == member && c.Epoch > g.view.Epoch:
			g.query(from) // the asker is in a newer view: what are we in it?
		default:
			g.answerQuery(from, c.From)
		}
	case wire.CtlNotMember:
		// Only a member of this member's own view, at least as new, may say so.
		// It names the incarnation it is for: a replayed copy must not end
		// a new incarnation at this address.
		if g.state == member && c.Epoch >= g.view.Epoch && flush.Index(g.view.Members, c.From) >= 0 && c.Nonce == g.cfg.Self.Incarnation {
			g.sendControl(from, &wire.Control{Kind: wire.CtlInstalled, Epoch: c.Epoch}) // the sender waits for it
			g.redirect = c.Target.Addr
			g.removed()
		}
	default:
		g.stats.ControlDropped++
	}
}

// forwardOr runs local at the coordinator, and forwards c to it elsewhere.
func (g *Group) forwardOr(c *wire.Control, local func()) {
	if g.isCoordinator() {
		local()
		return
	}
	cc := *c
	g.sendControl(g.coordinatorAddr(), &cc)
}

// noteGone remembers that incarnation m left this group's views: it never
// joins again (see onJoin). Per address, the highest; at most maxGone
// addresses (then it starts afresh: a forgotten one is refused only by
// the view's own checks).
func (g *Group) noteGone(m wire.MemberID) {
	if g.gone == nil || len(g.gone) >= maxGone && g.gone[m.Addr] == 0 {
		g.gone = map[netip.AddrPort]uint64{}
	}
	g.gone[m.Addr] = max(g.gone[m.Addr], m.Incarnation)
}

const maxGone = 1024

func (g *Group) onJoin(j wire.MemberID) {
	if g.state != member || !j.Addr.IsValid() {
		return
	}
	if r := flush.Index(g.view.Members, j); r >= 0 {
		// Already in: it missed the install.
		g.sendControl(j.Addr, &wire.Control{Kind: wire.CtlInstall, Proposal: g.install})
		return
	}
	if j.Incarnation <= g.gone[j.Addr] {
		// An incarnation this group removed (or that left): its join is
		// a copy replayed, or late; it may come back only as a new one.
		g.stats.ControlRefused++
		return
	}
	for _, m := range g.view.Members {
		if m.Addr == j.Addr && m.Incarnation > j.Incarnation {
			// An older incarnation than the member there: a join that
			// took long on the way, or a copy replayed; it must not
			// replace the live member.
			g.stats.ControlRefused++
			return
		}
	}
	g.forwardOr(&wire.Control{Kind: wire.CtlJoin, Target: j}, func() {
		// A process restarted at a member's address: the old incarnation
		// is gone, so the change need not wait for it.
		for _, m := range g.view.Members {
			if m.Addr == j.Addr && m != j {
				g.changes.Failed[m] = true
			}
		}
		if len(g.view.Members)+len(g.changes.Joiners) >= g.maxMembers() {
			g.stats.JoinsRefused++
			return
		}
		if !slices.Contains(g.changes.Joiners, j) && len(g.changes.Joiners) < maxJoiners {
			// A newer incarnation replaces an older one waiting to join.
			g.changes.Joiners = slices.DeleteFunc(g.changes.Joiners, func(x wire.MemberID) bool { return x.Addr == j.Addr })
			g.changes.Joiners = append(g.changes.Joiners, j)
		}
	})
}

// isCoordinator: this member is the oldest member of its view that it
// does not suspect.
func (g *Group) isCoordinator() bool {
	return g.state == member && g.coordinator() == g.view.Self
}

func (g *Group) coordinator() int {
	for r := range g.view.Members {
		if r == g.view.Self || !g.det.Suspected(r) {
			return r
		}
	}
	return g.view.Self
}

func (g *Group) coordinatorAddr() netip.AddrPort {
	return g.view.Members[g.coordinator()].Addr
}

func (g *Group) tickDetector() {
	if g.cfg.Liveness != nil {
		g.det.Advance() // the process watches: see PeerSuspected
		return
	}
	probes, suspects := g.det.Tick(nil, nil)
	for _, p := range probes {
		g.probeSeq++
		if len(g.probeNonce) != len(g.view.Members) {
			g.probeNonce = make([]uint64, len(g.view.Members))
		}
		g.probeNonce[p.Target] = g.probeSeq
		g.sendControl(g.view.Members[p.Target].Addr, &wire.Control{Kind: wire.CtlProbe, Nonce: g.probeSeq})
		for _, h := range p.Helpers {
			g.sendControl(g.view.Members[h].Addr, &wire.Control{Kind: wire.CtlProbeReq, Target: g.view.Members[p.Target], Nonce: g.probeSeq})
		}
	}
	for _, r := range suspects {
		g.suspect(r)
	}
}

// PeerSuspected tells the group (with GroupConfig.Liveness) that the
// process at addr is suspected: a member of the view there is suspected
// as if the group's own detector had found it silent.
func (g *Group) PeerSuspected(addr netip.AddrPort) {
	if g.state != member || g.farewell != nil {
		return
	}
	for r, m := range g.view.Members {
		if m.Addr == addr && r != g.view.Self && !g.det.Suspected(r) {
			g.det.Suspect(r)
			g.suspect(r)
		}
	}
}

// PeerHeard tells the group (with GroupConfig.Liveness) that the process
// at addr, suspected until now, was heard from again, in its run that
// began at boot: its members there of that run (incarnations from boot
// on; boot 0: unknown, any) are no longer suspected.
func (g *Group) PeerHeard(addr netip.AddrPort, boot uint64) {
	if g.state != member {
		return
	}
	for r, m := range g.view.Members {
		if m.Addr == addr && m.Incarnation >= boot {
			g.det.Heard(r)
		}
	}
}

// replaced: the process at id's address speaks as a later incarnation
// than the member of this view there, so that membership is over (it
// left or was removed, and joined again): the member is suspected at
// once. With shared liveness the process stays alive, and nothing else
// would show that one of its memberships ended.
func (g *Group) replaced(id wire.MemberID) {
	if g.state != member || g.farewell != nil {
		return
	}
	for r, m := range g.view.Members {
		if m.Addr == id.Addr && id.Incarnation > m.Incarnation && r != g.view.Self && !g.det.Suspected(r) {
			g.det.Suspect(r)
			g.suspect(r)
		}
	}
}

// PeerNudged tells the group (with GroupConfig.Liveness) that the process
// at addr and this one disagree on the views they share: if addr is in
// this member's view, it sends its status once, so that a member left
// behind (an install, or its removal, lost while the group was idle)
// hears of it, or is heard from.
func (g *Group) PeerNudged(addr netip.AddrPort) {
	if g.state != member || g.farewell != nil {
		return
	}
	for r, m := range g.view.Members {
		if m.Addr == addr && r != g.view.Self {
			g.mem.StatusNow()
			return
		}
	}
}

// PeerRestarted tells the group (with GroupConfig.Liveness) that the
// process at addr restarted: its members there of an earlier run
// (incarnations below boot) are gone, and suspected at once.
func (g *Group) PeerRestarted(addr netip.AddrPort, boot uint64) {
	if g.state != member || g.farewell != nil {
		return
	}
	for r, m := range g.view.Members {
		if m.Addr == addr && m.Incarnation < boot && r != g.view.Self && !g.det.Suspected(r) {
			g.det.Suspect(r)
			g.suspect(r)
		}
	}
}

func (g *Group) suspect(r int) {
	g.stats.Suspicions++
	id := g.view.Members[r]
	if g.isCoordinator() {
		g.changes.Failed[id] = true
		return
	}
	g.sendControl(g.coordinatorAddr(), &wire.Control{Kind: wire.CtlSuspect, Target: id})
}

// lagForgive is how many ticks of lag one tick of keeping up cancels: a
// member must lag more than 4/5 of the time to be evicted at all.
const lagForgive = 4

// tickEvict applies the evict policy: a member whose lag behind the
// others holds this member's send window back is evicted once its lag
// score reaches EvictTicks. A score rather than a run in a row also
// catches a member that stalls in bursts (paused, throttled by a CPU
// quota) and catches up briefly in between; forgiving four ticks of lag
// per tick of keeping up spares the member that is merely the busiest of
// a loaded group (on a crowded machine it lags often, not nearly
// always). Only senders see lag (it is measured on their own messages),
// and only while the view is stable.
func (g *Group) tickEvict() {
	if g.cfg.EvictTicks == 0 || g.mem.Frozen() {
		return
	}
	n := len(g.view.Members)
	if g.lagTicks == nil {
		g.lagTicks, g.evicted = make([]int64, n), make([]bool, n)
	}
	g.lags = g.mem.Lags(g.lags)
	for r := 0; r < n; r++ {
		if r == g.view.Self || g.evicted[r] {
			continue
		}
		if g.lags[r] < g.cfg.EvictLag {
			g.lagTicks[r] = max(0, g.lagTicks[r]-lagForgive)
			continue
		}
		g.lagTicks[r]++
		if g.lagTicks[r] >= int64(g.cfg.EvictTicks) && g.canEvict() {
			g.evict(r)
		}
	}
}

// evict asks for r's removal for being slow. Locally r is suspected too:
// when r is the coordinator and this member ranks next, it runs the view
// change without r itself (the coordinator never removes itself).
func (g *Group) evict(r int) {
	g.evicted[r] = true
	g.stats.Evictions++
	g.det.Suspect(r)
	id := g.view.Members[r]
	if g.isCoordinator() {
		g.acceptEviction(id)
		return
	}
	g.sendControl(g.coordinatorAddr(), &wire.Control{Kind: wire.CtlEvict, Target: id})
}

// acceptSuspicion, at the coordinator, takes another member's suspicion
// of id as a failure, unless the coordinator itself has heard from id
// within ProbeTicks: then id is alive and reachable, and the accuser is
// the one that cannot hear (a member losing most of what it receives
// suspects everyone in turn, and each view change would freeze the whole
// group). Such an accuser only lags; the slow-member policy deals with it.
// A crashed member is silent to the coordinator too long before any other
// member's probes give up on it, so real failures are not delayed.
func (g *Group) acceptSuspicion(id wire.MemberID) {
	if r := flush.Index(g.view.Members, id); r >= 0 && (g.det.HeardWithin(r, int64(g.cfg.ProbeTicks)) ||
		g.cfg.Liveness != nil && id.Incarnation >= g.cfg.Liveness.Boot(id.Addr) && g.cfg.Liveness.HeardWithin(id.Addr, int64(g.cfg.ProbeTicks))) {
		g.stats.SuspicionsRefuted++
		return
	}
	g.changes.Failed[id] = true
}

// acceptEviction, at the coordinator, removes id at the next view change
// unless the members neither failed nor evicted would then be fewer than
// a majority of the view: a slow member is still a member, and the group
// needs a majority to go on.
func (g *Group) acceptEviction(id wire.MemberID) {
	if g.changes.Evicted[id] {
		return
	}
	g.changes.Evicted[id] = true
	if !g.evictionsKeepMajority() {
		delete(g.changes.Evicted, id)
	}
}

// evictionsKeepMajority: the members of the view that are neither failed
// nor evicted are a majority of it.
func (g *Group) evictionsKeepMajority() bool {
	left := 0
	for _, m := range g.view.Members {
		if !g.changes.Failed[m] && !g.changes.Evicted[m] {
			left++
		}
	}
	return left >= flush.Majority(len(g.view.Members))
}

// canEvict: removing one more member leaves a majority of the view, so
// that the eviction cannot block the group.
func (g *Group) canEvict() bool {
	n := len(g.view.Members)
	left := n - 1
	for r := 0; r < n; r++ {
		if r != g.view.Self && g.det.Suspected(r) {
			left--
		}
	}
	return 2*left > n
}

func (g *Group) removed() {
	if g.leaving {
		g.end(ErrLeft)
	} else {
		g.end(ErrRemoved)
	}
}

// String describes the group's state for traces.
func (g *Group) String() string {
	s := [...]string{"discovering", "joining", "member", "ended"}[g.state]
	return fmt.Sprintf("%s epoch %d rank %d", s, g.view.Epoch, g.view.Self)
}

// FlushPoint marks what a member has sent and delivered at one moment.
type FlushPoint struct {
	epoch     uint64
	sent      uint64   // the Sender's last appended message (stash numbering)
	delivered []uint64 // per rank of the view, the last delivered sequence number
}

// FlushPoint marks this member's messages sent (appended) and delivered
// so far.
func (g *Group) FlushPoint() FlushPoint {
	p := FlushPoint{epoch: g.view.Epoch, sent: g.sender.stash.Head()}
	if g.mem != nil {
		for o := 0; o < g.mem.Ranks(); o++ {
			p.delivered = append(p.delivered, g.mem.Delivered(o))
		}
	}
	return p
}

// Flushed reports whether everything up to p is held by every member:
// this member's own messages have been released from its stash (every
// member has them), and what it delivered is held by all: by their
// reports in the same view, or by view synchrony once a view change has
// passed (the survivors all delivered it).
func (g *Group) Flushed(p FlushPoint) bool {
	if g.sender.stash.Tail() < p.sent {
		return false
	}
	if g.view.Epoch != p.epoch || g.mem == nil {
		return true
	}
	for o, d := range p.delivered {
		if o != g.view.Self && g.mem.Stable(o) < d {
			return false
		}
	}
	return true
}
