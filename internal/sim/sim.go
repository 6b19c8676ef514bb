// Package sim runs groups of protocol processes over a seeded, simulated
// network with crashes, restarts, joins, leaves and partitions, and checks
// the guarantees with package check. Time is virtual (microseconds); every
// random choice comes from one seeded source, so a run replays exactly
// from its seed.
package sim

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/cohort-vs/cohort/internal/check"
	"github.com/cohort-vs/cohort/internal/liveness"
	"github.com/cohort-vs/cohort/internal/protocol"
	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/seal"
)

// Options describe one simulation.
type Options struct {
	Seed     uint64
	Members  int // processes started together at the beginning
	Messages int // messages each process sends per incarnation, at most

	Loss      float64 // probability a datagram is lost
	Duplicate float64 // probability a datagram is delivered twice
	Reorder   float64 // probability a datagram is held back
	DelayMin  int64   // one-way delay bounds, µs
	DelayMax  int64

	SendGap     int64   // mean time between one member's sends, µs
	SlowConsume float64 // probability a delivery is consumed late
	LargeShare  float64 // share of messages larger than a datagram
	// HugeShare is the share of messages from half a flow-control window
	// up to MaxMessageSize (a quarter of them exactly that size).
	HugeShare float64
	// OrderMix picks the orderings sent: 0, every ordering in equal shares;
	// 1, mostly total; 2, mostly causal; a fifth of the messages safe in
	// each; 3, every ordering, half of them safe.
	OrderMix int

	// Faults, each at a random time in the fault window.
	Crashes int // a process crashes (and restarts later, as a new incarnation)
	// SequencerCrashes: the sequencer of the current view crashes (and
	// restarts later), whatever it was ordering at that moment.
	SequencerCrashes int
	Joins            int // a new process joins
	Leaves           int // a member leaves gracefully
	Partitions       int // the processes split in two for a while, then heal
	// SlowMembers: a process consumes its deliveries one by one, some
	// milliseconds apart, for a while (for the slow-member policy, set in
	// Protocol.EvictTicks and EvictLag).
	SlowMembers int
	// Adversary: an outsider replays, damages and makes up datagrams
	// through the fault window and the sending period (adversary.go).
	Adversary bool
	// Keyed: every datagram is sealed (package seal) under one key that
	// every process holds; the adversary holds it only with
	// AdversaryHasKey (an insider: its made-up messages are sealed).
	Keyed           bool
	AdversaryHasKey bool

	// Groups: every process is a member of this many groups at once (0
	// or 1: one, named "sim"; more: "sim", "sim1", ...), each checked on
	// its own. SharedLiveness: the processes watch each other once for
	// all their groups (package liveness), as the engine does: groups
	// send no heartbeats and suspect no one on their own.
	Groups         int
	SharedLiveness bool
	// IdleTicks: a group with nothing timed to do (protocol Group.Idle)
	// is ticked once every IdleTicks ticks, n ticks in one step
	// (TickN), and caught up before anything else reaches it, as the
	// engine does. 0 or 1: every tick.
	IdleTicks int64

	TickMicros  int64 // tick interval, µs
	FaultWindow int64 // faults happen in [0, FaultWindow), µs
	SendUntil   int64 // processes stop sending at this time, µs
	TimeLimit   int64 // virtual time limit, µs

	Protocol protocol.GroupConfig // limits and timings; identity and seeds are set per process

	Trace io.Writer // when set, every event is written here
}

// maxEvents bounds the events of one run.
const maxEvents = 20_000_000

// RandomOptions draws a fault mix from seed: 2 to 5 processes, loss 0-30%,
// duplication, reordering, delay, slow consumers, large messages, and
// crashes with restarts, joins, leaves and partitions.
func RandomOptions(seed uint64) Options {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	dmin := int64(20 + r.IntN(200))
	o := Options{
		Seed:             seed,
		Members:          2 + r.IntN(4),
		Messages:         30 + r.IntN(120),
		Loss:             r.Float64() * 0.30,
		Duplicate:        r.Float64() * 0.10,
		Reorder:          r.Float64() * 0.20,
		DelayMin:         dmin,
		DelayMax:         dmin + int64(r.IntN(3000)),
		SendGap:          int64(200 + r.IntN(3000)),
		SlowConsume:      r.Float64() * 0.2,
		LargeShare:       r.Float64() * 0.05,
		Crashes:          r.IntN(3),
		Joins:            r.IntN(3),
		Leaves:           r.IntN(2),
		Partitions:       r.IntN(2),
		SequencerCrashes: r.IntN(2),
		OrderMix:         r.IntN(4),
		TickMicros:       1000,
		FaultWindow:      1_500_000,
		SendUntil:        2_000_000,
		TimeLimit:        60_000_000,
		Protocol: protocol.GroupConfig{
			Member: protocol.Config{
				MaxDatagram:     1200,
				MaxMessageSize:  16 << 10,
				WindowMessages:  64,
				WindowBytes:     32 << 10,
				DeliveryQueue:   16 + r.IntN(64),
				StatusTicks:     1 + r.IntN(5),
				NAKTicks:        2 + r.IntN(10),
				MaxOutDatagrams: 8,
			},
			DiscoverTicks: 30,
			RetryTicks:    10,
			SilentTicks:   60 + r.IntN(100),
			ProbeTicks:    30,
			RoundTicks:    200,
			BlockTicks:    1000,
		},
	}
	// As the engine runs: processes watch each other for all their groups.
	o.SharedLiveness = true
	// Drawn last, so that the options above stay what they were for every
	// seed before the slow-member policy existed.
	o.SlowMembers = r.IntN(2)
	if r.IntN(2) == 0 {
		o.Protocol.EvictTicks = 20 + r.IntN(300)
		o.Protocol.EvictLag = 0.2 + 0.8*r.Float64()
	}
	// Messages up to four windows: a sender sends their pieces only as
	// fast as the members consume them (protocol's sendLimit).
	o.Protocol.Member.MaxMessageSize = 4 * o.Protocol.Member.WindowBytes
	o.HugeShare = r.Float64() * 0.03
	o.IdleTicks = []int64{1, 16, 100}[r.IntN(3)]
	return o
}

// StaticOptions is RandomOptions without membership faults: loss,
// duplication, reordering and delay only.
func StaticOptions(seed uint64) Options {
	o := RandomOptions(seed)
	o.Crashes, o.Joins, o.Leaves, o.Partitions, o.SequencerCrashes, o.SlowMembers = 0, 0, 0, 0, 0, 0
	o.Protocol.EvictTicks = 0
	return o
}

// Result summarizes a run.
type Result struct {
	Violations []check.Violation
	Events     int
	EndMicros  int64
	Stats      []protocol.Stats
	Sent       int
	Delivered  int
	Views      int // views installed, over all processes
	Evictions  int // slow members evicted (by the suspicions of senders)
	// AdversaryMoves counts the datagrams the adversary sent; Refused,
	// the datagrams a keyed process refused (the adversary's, and the
	// network's duplicates).
	AdversaryMoves int
	Refused        int
	// IdleSkipped counts the ticks idle groups did not take one by one
	// (Options.IdleTicks).
	IdleSkipped int
}

type eventKind uint8

const (
	evDatagram eventKind = iota
	evTick
	evSend
	evConsume
	evCrash
	evRestart
	evJoin
	evLeave
	evPartition
	evHeal
	evSlow
	evAttack // a move of the adversary (adversary.go)
)

type event struct {
	at   int64
	seq  uint64 // tie-break, keeps the order deterministic
	kind eventKind
	to   int
	k    int // group index (sends, consumes; a restart of one membership); -1: the whole process
	from int
	inc  uint64 // incarnation the event is for (ticks, sends, consumes)
	data []byte
	adv  advMove // a datagram of the adversary: what it did
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// proc is one address; a process runs there while up, a member of each
// group (m).
type proc struct {
	addr      netip.AddrPort
	up        bool
	pinc      uint64 // the process's incarnation: its ticks
	joins     uint64 // memberships started in this incarnation
	side      int    // partition side
	slowUntil int64  // consumes slowly until then
	live      *liveness.Liveness
	m         []*node
	// Keyed: this incarnation's sealer and opener (a restart draws a new
	// salt, and starts with no replay windows, as a real one does).
	sealer *seal.Sealer
	opener *seal.Opener
}

// boot names the process's run (see liveness).
func (p *proc) boot() uint64 { return p.pinc * 1000 }

// node is a process's membership of one group, running while g is not
// nil.
type node struct {
	p          *proc
	i, k       int // process and group index
	g          *protocol.Group
	inc        uint64
	name       string // address index and incarnation
	sentN      uint64
	sendDone   int
	blocked    bool
	unconsumed int
	consumeAt  int64
	epoch      uint64         // current view, as the application saw it
	leaving    bool           // told to leave
	redirect   netip.AddrPort // a member to rejoin through after a merge
	watched    []netip.AddrPort
	token      uint64 // its view's (liveness.ViewToken)
	lag        int64  // ticks an idle group is behind its process (Options.IdleTicks)
}

// catchUp brings an idle group's clock level with its process's before
// anything reaches it.
func (n *node) catchUp() {
	if n.lag > 0 {
		n.g.TickN(n.lag)
		n.lag = 0
	}
}

type world struct {
	opt       Options
	rng       *rand.Rand
	q         eventQueue
	seq       uint64
	now       int64
	procs     []*proc
	evictions int
	skipped   int // Result.IdleSkipped
	seeds     []netip.AddrPort
	groups    []string // group names, by index
	hists     []*check.History
	events    int
	delivered int
	views     int
	partition bool
	stats     []protocol.Stats

	captures       []capture // datagrams the adversary saw
	adversaryMoves int
	answers        int // datagrams the members sent the adversary
	refused        int // datagrams keyed processes refused
	keys           *seal.Keyring
	advSealer      *seal.Sealer      // the adversary's, when it has the key
	violations     []check.Violation // found outside the checker
	answerBytes    int
}

// Run executes one simulation.
func Run(opt Options) Result {
	w := &world{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0xc0de))}
	for k := range max(opt.Groups, 1) {
		name := "sim"
		if k > 0 {
			name = fmt.Sprint("sim", k)
		}
		w.groups = append(w.groups, name)
		w.hists = append(w.hists, check.NewHistory())
	}
	if opt.Keyed {
		key := make([]byte, seal.KeySize)
		for i := range key {
			key[i] = byte(w.rng.IntN(256))
		}
		var err error
		if w.keys, err = seal.NewKeyring(key); err != nil {
			panic(err)
		}
		w.advSealer = seal.NewSealer(w.keys)
	}
	spare := opt.Joins
	for i := 0; i < opt.Members+spare; i++ {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 7000)
		p := &proc{addr: a}
		for k := range w.groups {
			p.m = append(p.m, &node{p: p, i: i, k: k})
		}
		w.procs = append(w.procs, p)
		if i < opt.Members {
			w.seeds = append(w.seeds, a)
		}
	}
	for i := 0; i < opt.Members; i++ {
		w.push(&event{at: int64(w.rng.IntN(2000)), kind: evRestart, to: i, k: -1})
	}
	for k := 0; k < opt.Joins; k++ {
		w.push(&event{at: w.faultTime(), kind: evJoin, to: opt.Members + k})
	}
	for k := 0; k < opt.SequencerCrashes; k++ {
		w.push(&event{at: w.faultTime(), kind: evCrash, to: -2})
	}
	for k := 0; k < opt.Crashes; k++ {
		w.push(&event{at: w.faultTime(), kind: evCrash, to: -1})
	}
	for k := 0; k < opt.Leaves; k++ {
		w.push(&event{at: w.faultTime(), kind: evLeave, to: -1})
	}
	if opt.Adversary {
		w.push(&event{at: 10_000, kind: evAttack})
	}
	for k := 0; k < opt.SlowMembers; k++ {
		w.push(&event{at: w.faultTime(), kind: evSlow, to: -1})
	}
	for k := 0; k < opt.Partitions; k++ {
		at := w.faultTime()
		w.push(&event{at: at, kind: evPartition})
		w.push(&event{at: at + 200_000 + w.rng.Int64N(600_000), kind: evHeal})
	}
	lastProgress := int64(0)
	progress := 0
	for w.q.Len() > 0 {
		e := heap.Pop(&w.q).(*event)
		if e.at > opt.TimeLimit {
			break
		}
		w.now = e.at
		if w.events++; w.events > maxEvents {
			// A run takes about 10^5 events: this many is a storm (two
			// processes answering each other without end), which virtual
			// time would never stop.
			w.violations = append(w.violations, check.Violation{Rule: "liveness", Detail: fmt.Sprintf("more than %d events by %.3fs: a storm of datagrams", maxEvents, float64(w.now)/1e6)})
			break
		}
		w.handle(e)
		if p := w.delivered + w.views; p != progress {
			progress, lastProgress = p, w.now
		}
		if w.now > opt.SendUntil && w.now-lastProgress > 3_000_000 && w.settled() {
			break
		}
	}
	res := Result{Events: w.events, EndMicros: w.now, Delivered: w.delivered, Views: w.views}
	for _, h := range w.hists {
		res.Violations = append(res.Violations, h.Check(10)...)
	}
	res.Violations = append(res.Violations, w.violations...)
	for _, p := range w.procs {
		for _, n := range p.m {
			if n.g != nil && n.g.Member() != nil {
				w.stats = append(w.stats, n.g.Member().Stats())
			}
			if n.g != nil {
				w.evictions += int(n.g.Stats().Evictions)
			}
			res.Sent += int(n.sentN)
		}
	}
	res.Stats = w.stats
	res.Evictions = w.evictions
	res.IdleSkipped = w.skipped
	res.AdversaryMoves = w.adversaryMoves
	res.Refused = w.refused
	if !w.settled() {
		res.Violations = append(res.Violations, check.Violation{Rule: "liveness", Detail: fmt.Sprintf("the group did not settle into one view by %.1fs: %s", float64(w.now)/1e6, w.describeNodes())})
	}
	return res
}

// settled: in every group, every running member is in the same view, and
// no view change is under way.
func (w *world) settled() bool {
	for k := range w.groups {
		var first *protocol.View
		for _, p := range w.procs {
			n := p.m[k]
			if n.g == nil {
				continue
			}
			if !n.g.InView() || n.g.Blocked() > 0 {
				return false
			}
			v := n.g.View()
			if first == nil {
				first = &v
			} else if v.Epoch != first.Epoch || v.Founder != first.Founder {
				return false
			}
		}
	}
	return true
}

func (w *world) describeNodes() string {
	s := ""
	for _, p := range w.procs {
		for _, n := range p.m {
			if n.g != nil {
				s += fmt.Sprintf("[%s %v blocked %d] ", w.label(n), n.g, n.g.Blocked())
			}
		}
	}
	return s
}

// label names a membership in the trace: its group too when there are
// several.
func (w *world) label(n *node) string {
	if len(w.groups) == 1 {
		return n.name
	}
	return w.groups[n.k] + "/" + n.name
}

func (w *world) faultTime() int64 { return 100_000 + w.rng.Int64N(w.opt.FaultWindow) }

func (w *world) push(e *event) {
	w.seq++
	e.seq = w.seq
	heap.Push(&w.q, e)
}

func (w *world) gap() int64 {
	return w.now + 1 + int64(w.rng.ExpFloat64()*float64(w.opt.SendGap))
}

func (w *world) tracef(format string, args ...any) {
	if w.opt.Trace != nil {
		fmt.Fprintf(w.opt.Trace, "%10d ", w.now)
		fmt.Fprintf(w.opt.Trace, format, args...)
		fmt.Fprintln(w.opt.Trace)
	}
}

// live returns the indexes of running processes.
func (w *world) live() []int {
	var l []int
	for i, p := range w.procs {
		if p.up {
			l = append(l, i)
		}
	}
	return l
}

// startProc starts the process at address i, a member of every group.
func (w *world) startProc(i int) {
	p := w.procs[i]
	p.up = true
	p.pinc++
	p.joins = 0
	if w.opt.Keyed {
		p.sealer = seal.NewSealer(w.keys)
		p.opener = seal.NewOpener(w.keys, p.addr, p.sealer)
	}
	if w.opt.SharedLiveness {
		pc := w.opt.Protocol
		p.live = liveness.New(liveness.Config{HeartbeatTicks: int64(max(1, pc.SilentTicks/5)), SilentTicks: int64(pc.SilentTicks), ProbeTicks: int64(pc.ProbeTicks), Helpers: 2}, p.boot())
	}
	w.push(&event{at: w.now + int64(w.rng.IntN(int(w.opt.TickMicros))), kind: evTick, to: i, inc: p.pinc})
	for k := range w.groups {
		w.start(i, k)
	}
}

// start makes process i a member of group k, as a new incarnation.
func (w *world) start(i, k int) {
	p := w.procs[i]
	n := p.m[k]
	// As the engine numbers them: every membership of a run above the
	// run's boot, and a restart's boot above them all.
	p.joins++
	n.inc = p.boot() + p.joins
	n.name = fmt.Sprintf("p%d.%d", i, n.inc)
	n.sentN, n.sendDone, n.blocked, n.unconsumed, n.consumeAt, n.epoch, n.leaving = 0, 0, false, 0, 0, 0, false
	cfg := w.opt.Protocol
	cfg.Group = wire.GroupID(w.groups[k])
	cfg.Self = wire.MemberID{Addr: p.addr, Incarnation: n.inc}
	cfg.Seeds = w.seeds
	if n.redirect.IsValid() {
		cfg.Seeds = append(slices.Clone(w.seeds), n.redirect)
	}
	if p.live != nil {
		cfg.Liveness = p.live
	}
	g, err := protocol.NewGroup(cfg)
	if err != nil {
		panic(err) // the simulator's configuration is valid by construction
	}
	n.g, n.lag = g, 0
	w.hists[k].Member(n.name)
	w.tracef("%s starts", w.label(n))
	w.push(&event{at: w.gap(), kind: evSend, to: i, k: k, inc: n.inc})
}

// stopProc stops the process at i, every membership with it.
func (w *world) stopProc(i int, crashed bool) {
	p := w.procs[i]
	for k := range p.m {
		if p.m[k].g != nil {
			w.stop(i, k, crashed)
		}
	}
	p.up, p.live = false, nil
}

// stop ends membership k of process i.
func (w *world) stop(i, k int, crashed bool) {
	n := w.procs[i].m[k]
	if crashed {
		w.hists[k].Crashed(n.name)
	}
	if m := n.g.Member(); m != nil {
		w.stats = append(w.stats, m.Stats())
	}
	w.evictions += int(n.g.Stats().Evictions)
	w.unwatch(n)
	n.g = nil
}

// watch has the process watch the members of n's new view (shared
// liveness), and no longer those of its previous one.
func (w *world) watch(n *node, v *protocol.View) {
	w.unwatch(n)
	if n.p.live == nil {
		return
	}
	n.token = liveness.ViewToken(wire.GroupID(w.groups[n.k]), wire.InstanceID(v.Founder), v.Epoch)
	for r, m := range v.Members {
		if m.Addr != n.p.addr {
			n.p.live.Watch(m.Addr, n.token)
			n.watched = append(n.watched, m.Addr)
			if n.p.live.Suspected(m.Addr) && !slices.Contains(v.Joined, r) {
				n.g.PeerSuspected(m.Addr) // as the engine does
			}
		}
	}
}

func (w *world) unwatch(n *node) {
	if n.p.live != nil {
		for _, a := range n.watched {
			n.p.live.Unwatch(a, n.token)
		}
	}
	n.watched = n.watched[:0]
}

// drainAll collects every membership's output.
func (w *world) drainAll(i int) {
	for k := range w.groups {
		w.drain(i, k)
	}
}

func (w *world) handle(e *event) {
	switch e.kind {
	case evRestart:
		p := w.procs[e.to]
		switch {
		case e.k < 0 && !p.up:
			w.startProc(e.to)
			w.drainAll(e.to)
		case e.k >= 0 && p.up && p.m[e.k].g == nil:
			w.start(e.to, e.k)
			w.drain(e.to, e.k)
		}
		return
	case evJoin:
		w.startProc(e.to)
		w.drainAll(e.to)
		return
	case evCrash:
		// Crash a process, and restart it later as a new incarnation.
		i, ok := w.victim()
		if e.to == -2 {
			i, ok = w.sequencer()
		}
		if !ok {
			return
		}
		w.tracef("p%d crashes", i)
		w.stopProc(i, true)
		w.push(&event{at: w.now + 100_000 + w.rng.Int64N(500_000), kind: evRestart, to: i, k: -1})
		return
	case evSlow:
		l := w.live()
		if len(l) == 0 {
			return
		}
		i := l[w.rng.IntN(len(l))]
		w.procs[i].slowUntil = w.now + 300_000 + w.rng.Int64N(1_200_000)
		w.tracef("p%d slows down until %d", i, w.procs[i].slowUntil)
		return
	case evLeave:
		i, ok := w.victim()
		if !ok {
			return
		}
		k := 0
		if len(w.groups) > 1 {
			k = w.rng.IntN(len(w.groups))
		}
		n := w.procs[i].m[k]
		if n.g == nil {
			return
		}
		w.tracef("%s leaves", w.label(n))
		n.leaving = true
		n.catchUp()
		n.g.Leave()
		w.drain(i, k)
		return
	case evPartition:
		l := w.live()
		if len(l) < 2 || w.partition {
			return
		}
		w.partition = true
		for _, i := range l {
			w.procs[i].side = w.rng.IntN(2)
		}
		w.tracef("partition %s", w.sides())
		return
	case evHeal:
		if w.partition {
			w.partition = false
			w.tracef("heal")
		}
		return
	case evAttack:
		w.attack()
		return
	}
	p := w.procs[e.to]
	if !p.up || e.kind == evTick && e.inc != p.pinc {
		return // an event for a process that is gone
	}
	switch e.kind {
	case evTick:
		if p.live != nil {
			msgs, suspects := p.live.Tick(nil)
			w.sendLiveness(e.to, msgs)
			for _, a := range suspects {
				w.tracef("p%d suspects %v", e.to, a)
				for _, n := range p.m {
					if n.g != nil {
						n.catchUp()
						n.g.PeerSuspected(a)
					}
				}
			}
		}
		for _, n := range p.m {
			switch {
			case n.g == nil:
			case w.opt.IdleTicks > 1 && (n.lag > 0 || n.g.Idle()):
				w.skipped++
				if n.lag++; n.lag >= w.opt.IdleTicks {
					n.catchUp()
				}
			default:
				n.g.Tick()
			}
		}
		w.push(&event{at: w.now + w.opt.TickMicros, kind: evTick, to: e.to, inc: p.pinc})
		w.drainAll(e.to)
	case evDatagram:
		w.receive(e)
	case evSend, evConsume:
		n := p.m[e.k]
		if n.g == nil || e.inc != n.inc {
			return // an event for a membership that is gone
		}
		n.catchUp()
		if e.kind == evSend {
			w.send(e.to, e.k)
		} else {
			n.consumeAt = 0
			k := 1 + w.rng.IntN(n.unconsumed)
			if p.slowUntil > w.now {
				k = 1
			}
			n.g.Consumed(k)
			n.unconsumed -= k
			w.scheduleConsume(e.to, e.k)
		}
		w.drain(e.to, e.k)
	}
}

// receive hands a datagram to the process it is for: liveness to its
// watch, the rest to the group its header names.
func (w *world) receive(e *event) {
	p := w.procs[e.to]
	from := adversaryAddr
	if e.from >= 0 {
		from = w.procs[e.from].addr
	}
	data := e.data
	defer func() {
		// A real receive buffer is reused at once: scribble over this one
		// so that anything still pointing into it shows up as corruption.
		for i := range e.data {
			e.data[i] = 0xEE
		}
	}()
	if w.opt.Keyed {
		plain, _, err := p.opener.Open(data, seal.FirstContact)
		if err != nil {
			w.refused++
			w.tracef("p%d <- %s refused: %v", e.to, from, err)
			return
		}
		if e.adv == advDamage || (e.adv == advForge && !w.opt.AdversaryHasKey) {
			w.violations = append(w.violations, check.Violation{Rule: "keyed", Detail: fmt.Sprintf("p%d took a datagram the adversary made without the key (move %d)", e.to, e.adv)})
		}
		data = plain
	}
	if p.live != nil && len(data) >= wire.HeaderSize && data[3] == wire.TypeLiveness {
		if h, err := wire.ParseHeader(data); err == nil && h.Type == wire.TypeLiveness {
			if l, err := wire.ParseLiveness(data); err == nil {
				w.sendLiveness(e.to, p.live.Receive(from, l))
			}
		}
		w.peersChanged(e.to)
		return
	}
	k := w.groupOf(data)
	if k < 0 {
		w.tracef("p%d <- %s for no group %s", e.to, from, describe(data))
		return
	}
	n := p.m[k]
	if n.g == nil {
		return // that membership is restarting
	}
	if w.opt.Keyed {
		wire.SetGroupID(data, wire.GroupID(w.groups[k]))
	}
	w.tracef("%s <- %s %s", w.label(n), from, describe(data))
	n.catchUp()
	n.g.Receive(from, data)
	w.drain(e.to, k)
	if p.live != nil {
		w.peersChanged(e.to)
	}
}

// peersChanged tells process i's groups, as the engine does, what its
// watch found: peers heard again, peers restarted.
func (w *world) peersChanged(i int) {
	p := w.procs[i]
	for _, c := range p.live.Changes() {
		w.tracef("p%d: %v restarted %v, nudge %v, boot %d (else heard again)", i, c.Addr, c.Restarted, c.Nudge, c.Boot)
		for _, n := range p.m {
			if n.g != nil {
				n.catchUp()
			}
			switch {
			case n.g == nil:
			case c.Nudge:
				n.g.PeerNudged(c.Addr)
			case c.Restarted:
				n.g.PeerRestarted(c.Addr, c.Boot)
			default:
				n.g.PeerHeard(c.Addr, c.Boot)
			}
		}
	}
	w.drainAll(i)
}

// groupOf is the index of the group a datagram's header names (by its
// keyed id when keyed); with one group, every datagram goes to it, as to
// a process in one group, which drops what is not its own.
func (w *world) groupOf(b []byte) int {
	if len(w.groups) == 1 {
		return 0
	}
	if len(b) < wire.HeaderSize {
		return -1
	}
	id := wire.GroupIDOf(b)
	for k, name := range w.groups {
		if id == wire.GroupID(name) || w.opt.Keyed && id == w.keys.Primary().GroupID(name) {
			return k
		}
	}
	return -1
}

// sendLiveness puts a process's liveness messages on the network.
func (w *world) sendLiveness(i int, msgs []liveness.Message) {
	p := w.procs[i]
	for _, m := range msgs {
		b := wire.AppendLiveness(nil, m.Liveness)
		if m.To == adversaryAddr {
			w.answers++ // what the adversary hears back (a ping's ack)
			w.answerBytes += len(b)
			continue
		}
		if w.opt.Keyed {
			var err error
			if b, err = p.sealer.Seal(nil, w.keys.Primary(), 0, seal.AddrTag(m.To), b); err != nil {
				panic(err)
			}
		}
		w.tracef("p%d -> %v liveness %d", i, m.To, m.Kind)
		w.transmit(i, w.rank(m.To), b)
	}
}

// victim picks a running process whose loss every group survives, if
// any.
func (w *world) victim() (int, bool) {
	l := w.live()
	if len(l) < 3 {
		return 0, false
	}
	i := l[w.rng.IntN(len(l))]
	return i, w.survivable(i)
}

// sequencer picks a process that orders total-order messages in its view
// of some group, if every group survives its loss.
func (w *world) sequencer() (int, bool) {
	for _, i := range w.live() {
		for _, n := range w.procs[i].m {
			g := n.g
			if g != nil && g.InView() && g.View().Self == min(w.opt.Protocol.Member.Sequencer, len(g.View().Members)-1) && len(g.View().Members) >= 3 {
				return i, w.survivable(i)
			}
		}
	}
	return 0, false
}

// survivable reports whether losing process i leaves, in every group, a
// majority running of its view, and of the view that remains once the
// members told to leave are gone: a group that loses its majority blocks
// by design (primary partition), and a run in which it must never
// settles.
func (w *world) survivable(i int) bool {
	// A view change under way may be about to install a smaller view (an
	// adopted proposal) whose majority the simulator cannot see: wait
	// for it to finish.
	for _, k := range w.live() {
		for _, n := range w.procs[k].m {
			if n.g != nil && n.g.Blocked() > 0 {
				return false
			}
		}
	}
	for k := range w.groups {
		g := w.procs[i].m[k].g
		if g == nil || !g.InView() {
			continue
		}
		v := g.View()
		alive, staying, stayingAlive := 0, 0, 0
		for _, m := range v.Members {
			r := w.rank(m.Addr)
			// Up means running in this very view: a member still catching
			// up with an older one does not count towards the majority yet.
			o := w.procs[r].m[k]
			up := o.g != nil && o.inc == m.Incarnation && o.g.InView() && o.g.View().Epoch == v.Epoch && o.g.View().Founder == v.Founder
			if !up || !o.leaving {
				staying++
			}
			if r != i && up {
				alive++
				if !o.leaving {
					stayingAlive++
				}
			}
		}
		if alive < len(v.Members)/2+1 || stayingAlive < staying/2+1 {
			return false
		}
	}
	return true
}

func (w *world) sides() string {
	s := ""
	for _, i := range w.live() {
		s += fmt.Sprintf("p%d:%d ", i, w.procs[i].side)
	}
	return s
}

func (w *world) sizeFor(sender int, inc, n uint64) int {
	r := rand.New(rand.NewPCG(w.opt.Seed^uint64(sender)<<32^inc<<48, n))
	switch f := r.Float64(); {
	case f < w.opt.LargeShare:
		return w.opt.Protocol.Member.MaxDatagram + r.IntN(3*w.opt.Protocol.Member.MaxDatagram)
	case f < w.opt.LargeShare+w.opt.HugeShare:
		most, least := w.opt.Protocol.Member.MaxMessageSize, w.opt.Protocol.Member.WindowBytes/2
		if r.IntN(4) == 0 {
			return most
		}
		return least + r.IntN(most-least+1)
	case f < 0.3:
		return 100 + r.IntN(900)
	default:
		return 24 + r.IntN(100)
	}
}

// orderFor picks the ordering and safe flag of a sender's message n.
func (w *world) orderFor(sender int, inc, n uint64) uint8 {
	r := rand.New(rand.NewPCG(w.opt.Seed^uint64(sender)<<40^inc<<52, n^0x0de5))
	var order uint8
	f := r.Float64()
	switch w.opt.OrderMix {
	case 1: // mostly total
		order = [4]uint8{wire.OrderTotal, wire.OrderTotal, wire.OrderTotal, wire.OrderFIFO}[r.IntN(4)]
	case 2: // mostly causal
		order = [4]uint8{wire.OrderCausal, wire.OrderCausal, wire.OrderCausal, wire.OrderTotal}[r.IntN(4)]
	default:
		order = uint8(r.IntN(4))
	}
	if r.IntN(5) == 0 || (w.opt.OrderMix == 3 && f < 0.5) {
		order |= wire.FlagSafe
	}
	return order
}

func orderName(flags uint8) string {
	switch flags & wire.OrderMask {
	case wire.OrderUnordered:
		return check.Unordered
	case wire.OrderCausal:
		return check.Causal
	case wire.OrderTotal:
		return check.Total
	}
	return check.FIFO
}

// send offers membership k's next message while it is in a view.
func (w *world) send(i, k int) {
	n := w.procs[i].m[k]
	// A message begun is finished (its first fragments are out); no new
	// one starts after SendUntil.
	if n.sendDone == 0 && (n.sentN >= uint64(w.opt.Messages) || w.now > w.opt.SendUntil) {
		return
	}
	if !n.g.InView() || n.g.Ended() != nil {
		w.push(&event{at: w.gap(), kind: evSend, to: i, k: k, inc: n.inc})
		return
	}
	next := n.sentN + 1
	p := payloadFor(i, n.inc, next, w.sizeFor(i, n.inc, next))
	flags := w.orderFor(i, n.inc, next)
	done, err := n.g.Sender().TrySend(flags, p, n.sendDone)
	if err != nil {
		panic(err) // the simulator never sends an oversized message
	}
	if n.sendDone == 0 && done > 0 {
		w.hists[k].SentAs(check.MsgID{Sender: n.name, N: next}, orderName(flags), flags&wire.FlagSafe != 0, check.PayloadHash(p), n.epoch)
	}
	n.sendDone = done
	if done < len(p) {
		n.blocked = true
		return
	}
	w.tracef("%s sent #%d (%d bytes)", w.label(n), next, len(p))
	n.sentN, n.sendDone, n.blocked = next, 0, false
	w.push(&event{at: w.gap(), kind: evSend, to: i, k: k, inc: n.inc})
}

func (w *world) scheduleConsume(i, k int) {
	p := w.procs[i]
	n := p.m[k]
	if n.g == nil || n.unconsumed == 0 || n.consumeAt != 0 {
		return
	}
	delay := int64(1)
	if w.rng.Float64() < w.opt.SlowConsume {
		delay = int64(w.rng.IntN(5000))
	}
	if p.slowUntil > w.now {
		delay = 1000 + w.rng.Int64N(4000)
	}
	n.consumeAt = w.now + delay
	w.push(&event{at: n.consumeAt, kind: evConsume, to: i, k: k, inc: n.inc})
}

// drain collects membership k's output: datagrams go to the network,
// events and deliveries to the checker, in the order the application
// would see them.
func (w *world) drain(i, k int) {
	p := w.procs[i]
	n := p.m[k]
	for guard := 0; n.g != nil; guard++ {
		if guard > 10000 {
			panic(fmt.Sprintf("%s: Ready keeps reporting More", w.label(n)))
		}
		rd := n.g.Ready()
		for j, d := range rd.Datagrams {
			if d.Addr == adversaryAddr {
				w.answers++ // what the adversary hears back
				w.answerBytes += d.N
				continue
			}
			b := d.Buf[:d.N]
			if w.opt.Keyed {
				// Sealed as the engine seals: a multicast (copies sharing
				// one buffer) once, for every member of its view.
				shared := func(j int) bool {
					return j >= 0 && j < len(rd.Datagrams) && unsafe.SliceData(rd.Datagrams[j].Buf) == unsafe.SliceData(d.Buf)
				}
				to := seal.AddrTag(d.Addr)
				if shared(j-1) || shared(j+1) {
					to = 0
				}
				w.tracef("%s seals %s", w.label(n), describe(b))
				var err error
				if b, err = p.sealer.Seal(nil, w.keys.Primary(), w.keys.Primary().GroupID(w.groups[k]), to, b); err != nil {
					panic(err)
				}
			}
			if p.live != nil {
				p.live.Sent(d.Addr)
			}
			w.transmit(i, w.rank(d.Addr), b)
		}
		ended := false
		for _, ev := range n.g.Events() {
			n.unconsumed++
			if ev.View != nil {
				// Views are numbered within an instance of the group: the
				// checker sees (founder, epoch) as one number.
				n.epoch = uint64(w.rank(ev.View.Founder.Addr)+1)<<48 | ev.View.Founder.Incarnation<<32 | ev.View.Epoch
				w.views++
				names := make([]string, len(ev.View.Members))
				for r, m := range ev.View.Members {
					names[r] = w.nameOf(m)
				}
				w.tracef("%s installs view %d %v", w.label(n), ev.View.Epoch, names)
				gone := map[string][]string{}
				for why, ms := range map[string][]wire.MemberID{"left": ev.View.Left, "failed": ev.View.Failed, "evicted": ev.View.Evicted} {
					for _, m := range ms {
						gone[why] = append(gone[why], w.nameOf(m))
					}
				}
				w.hists[k].InstalledWhy(n.name, n.epoch, names, gone)
				w.watch(n, ev.View)
			} else {
				w.tracef("%s ends: %v", w.label(n), ev.Err)
				n.redirect = ev.Redirect
				w.hists[k].Gone(n.name)
				ended = true
			}
		}
		for _, d := range rd.Deliveries {
			w.record(n, d)
		}
		n.unconsumed += len(rd.Deliveries)
		released, more := rd.Released, rd.More
		n.g.Advance()
		if ended {
			// Removed or left: the process rejoins as a new incarnation
			// (alone in its only group, it restarts whole, as it used to).
			if len(w.groups) == 1 && !w.opt.SharedLiveness {
				w.stopProc(i, false)
				w.push(&event{at: w.now + 50_000, kind: evRestart, to: i, k: -1})
			} else {
				w.stop(i, k, false)
				w.push(&event{at: w.now + 50_000, kind: evRestart, to: i, k: k})
			}
			return
		}
		if released && n.blocked {
			w.push(&event{at: w.now, kind: evSend, to: i, k: k, inc: n.inc})
			n.blocked = false
		}
		if !more {
			break
		}
	}
	w.scheduleConsume(i, k)
}

func (w *world) nameOf(m wire.MemberID) string {
	return fmt.Sprintf("p%d.%d", w.rank(m.Addr), m.Incarnation)
}

func (w *world) rank(a netip.AddrPort) int {
	for r, p := range w.procs {
		if p.addr == a {
			return r
		}
	}
	panic("datagram to an unknown address " + a.String())
}

func (w *world) record(n *node, d protocol.Delivery) {
	w.delivered++
	h := w.hists[n.k]
	id, ok := parsePayload(d.Payload)
	if !ok {
		w.tracef("%s delivers an unparsable payload from rank %d seq %d flags %x: %d bytes %x", w.label(n), d.Origin, d.Seq, d.Flags, len(d.Payload), d.Payload[:min(len(d.Payload), 32)])
		h.DeliveredAs(n.name, check.MsgID{Sender: "?"}, orderName(d.Flags), d.Flags&wire.FlagSafe != 0, 0, n.epoch)
		return
	}
	w.tracef("%s delivers %v in view %d", w.label(n), id, n.epoch)
	h.DeliveredAs(n.name, id, orderName(d.Flags), d.Flags&wire.FlagSafe != 0, check.PayloadHash(d.Payload), n.epoch)
}

// transmit puts a datagram on the simulated link from -> to.
func (w *world) transmit(from, to int, b []byte) {
	o := &w.opt
	if o.Adversary {
		w.observe(from, to, b)
	}
	if w.partition && w.procs[from].side != w.procs[to].side {
		w.tracef("p%d -> p%d cut off %s", from, to, describe(b))
		return
	}
	if w.rng.Float64() < o.Loss {
		w.tracef("p%d -> p%d lost %s", from, to, describe(b))
		return
	}
	copies := 1
	if w.rng.Float64() < o.Duplicate {
		copies = 2
	}
	for c := 0; c < copies; c++ {
		delay := o.DelayMin + w.rng.Int64N(o.DelayMax-o.DelayMin+1)
		if w.rng.Float64() < o.Reorder {
			delay += w.rng.Int64N(4 * o.DelayMax)
		}
		w.push(&event{at: w.now + delay, kind: evDatagram, to: to, from: from, data: append([]byte(nil), b...)})
	}
}

// payloadFor makes message n of process sender's incarnation inc: its
// identity, then bytes that derive from it, so that a receiver can verify
// every byte.
func payloadFor(sender int, inc, n uint64, size int) []byte {
	p := make([]byte, max(size, 24))
	binary.LittleEndian.PutUint64(p, uint64(sender))
	binary.LittleEndian.PutUint64(p[8:], inc)
	binary.LittleEndian.PutUint64(p[16:], n)
	x := n*0x9e3779b97f4a7c15 ^ uint64(sender) ^ inc<<40
	for i := 24; i < len(p); i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x)
	}
	return p
}

func parsePayload(p []byte) (check.MsgID, bool) {
	if len(p) < 24 {
		return check.MsgID{}, false
	}
	s, inc, n := binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]), binary.LittleEndian.Uint64(p[16:])
	return check.MsgID{Sender: fmt.Sprintf("p%d.%d", s, inc), N: n}, true
}

// describe summarizes a datagram's frames for the trace.
func describe(b []byte) string {
	h, err := wire.ParseHeader(b)
	if err != nil {
		return "malformed"
	}
	if h.Type == wire.TypeLiveness {
		return "[liveness]"
	}
	if h.Type == wire.TypeControl {
		c, err := wire.ParseControl(b[wire.HeaderSize:])
		if err != nil {
			return "malformed control"
		}
		s := fmt.Sprintf("[ctl %d epoch %d ballot %d.%d", c.Kind, c.Epoch, c.Ballot.Round, c.Ballot.Rank)
		if c.Target.Addr.IsValid() {
			s += " target " + c.Target.Addr.String()
		}
		if c.Proposal != nil {
			s += fmt.Sprintf(" proposal %d members %d cut %v", c.Proposal.Epoch, len(c.Proposal.Members), c.Proposal.Cut)
		}
		return s + "]"
	}
	var r wire.FrameReader
	r.Reset(b[wire.HeaderSize:])
	s := ""
	for r.Next() {
		switch r.Kind {
		case wire.FrameData:
			var d wire.DataReader
			d.Reset(r.Body)
			s += fmt.Sprintf("[data %d:%d+%d]", d.Origin, d.FirstSeq, d.Count)
		case wire.FrameStatus:
			s += "[status]"
		case wire.FrameReport:
			s += "[report]"
		case wire.FrameStable:
			s += "[stable]"
		case wire.FrameNAK:
			var k wire.NAKReader
			k.Reset(r.Body)
			s += fmt.Sprintf("[nak %d", k.Origin)
			for k.Next() {
				s += fmt.Sprintf(" %d+%d", k.From, k.Count)
			}
			s += "]"
		}
	}
	return s
}
