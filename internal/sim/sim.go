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

	TickMicros  int64 // tick interval, µs
	FaultWindow int64 // faults happen in [0, FaultWindow), µs
	SendUntil   int64 // processes stop sending at this time, µs
	TimeLimit   int64 // virtual time limit, µs

	Protocol protocol.GroupConfig // limits and timings; identity and seeds are set per process

	Trace io.Writer // when set, every event is written here
}

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

// node is one address; a process runs there while g is not nil.
type node struct {
	addr       netip.AddrPort
	g          *protocol.Group
	inc        uint64
	name       string // address index and incarnation
	sentN      uint64
	sendDone   int
	blocked    bool
	unconsumed int
	consumeAt  int64
	epoch      uint64         // current view, as the application saw it
	side       int            // partition side
	leaving    bool           // told to leave
	slowUntil  int64          // consumes slowly until then
	redirect   netip.AddrPort // a member to rejoin through after a merge
	// Keyed: this incarnation's sealer and opener (a restart draws a new
	// salt, and starts with no replay windows, as a real one does).
	sealer *seal.Sealer
	opener *seal.Opener
}

type world struct {
	opt       Options
	rng       *rand.Rand
	q         eventQueue
	seq       uint64
	now       int64
	nodes     []*node
	evictions int
	seeds     []netip.AddrPort
	hist      *check.History
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
	w := &world{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0xc0de)), hist: check.NewHistory()}
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
		w.nodes = append(w.nodes, &node{addr: a})
		if i < opt.Members {
			w.seeds = append(w.seeds, a)
		}
	}
	for i := 0; i < opt.Members; i++ {
		w.push(&event{at: int64(w.rng.IntN(2000)), kind: evRestart, to: i})
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
		w.events++
		w.handle(e)
		if p := w.delivered + w.views; p != progress {
			progress, lastProgress = p, w.now
		}
		if w.now > opt.SendUntil && w.now-lastProgress > 3_000_000 && w.settled() {
			break
		}
	}
	res := Result{Violations: append(w.hist.Check(10), w.violations...), Events: w.events, EndMicros: w.now, Delivered: w.delivered, Views: w.views}
	for _, n := range w.nodes {
		if n.g != nil && n.g.Member() != nil {
			w.stats = append(w.stats, n.g.Member().Stats())
		}
		if n.g != nil {
			w.evictions += int(n.g.Stats().Evictions)
		}
		res.Sent += int(n.sentN)
	}
	res.Stats = w.stats
	res.Evictions = w.evictions
	res.AdversaryMoves = w.adversaryMoves
	res.Refused = w.refused
	if !w.settled() {
		res.Violations = append(res.Violations, check.Violation{Rule: "liveness", Detail: fmt.Sprintf("the group did not settle into one view by %.1fs: %s", float64(w.now)/1e6, w.describeNodes())})
	}
	return res
}

// settled: every running process is a member of the same view, and no
// view change is under way.
func (w *world) settled() bool {
	var first *protocol.View
	for _, n := range w.nodes {
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
	return true
}

func (w *world) describeNodes() string {
	s := ""
	for _, n := range w.nodes {
		if n.g != nil {
			s += fmt.Sprintf("[%s %v blocked %d] ", n.name, n.g, n.g.Blocked())
		}
	}
	return s
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
	for i, n := range w.nodes {
		if n.g != nil {
			l = append(l, i)
		}
	}
	return l
}

func (w *world) start(i int) {
	n := w.nodes[i]
	n.inc++
	n.name = fmt.Sprintf("p%d.%d", i, n.inc)
	n.sentN, n.sendDone, n.blocked, n.unconsumed, n.consumeAt, n.epoch, n.leaving = 0, 0, false, 0, 0, 0, false
	cfg := w.opt.Protocol
	cfg.Group = wire.GroupID("sim")
	cfg.Self = wire.MemberID{Addr: n.addr, Incarnation: n.inc}
	cfg.Seeds = w.seeds
	if n.redirect.IsValid() {
		cfg.Seeds = append(slices.Clone(w.seeds), n.redirect)
	}
	g, err := protocol.NewGroup(cfg)
	if err != nil {
		panic(err) // the simulator's configuration is valid by construction
	}
	n.g = g
	if w.opt.Keyed {
		n.sealer = seal.NewSealer(w.keys)
		n.opener = seal.NewOpener(w.keys, n.addr, n.sealer)
	}
	w.hist.Member(n.name)
	w.tracef("%s starts", n.name)
	w.push(&event{at: w.now + int64(w.rng.IntN(int(w.opt.TickMicros))), kind: evTick, to: i, inc: n.inc})
	w.push(&event{at: w.gap(), kind: evSend, to: i, inc: n.inc})
}

func (w *world) stop(i int, crashed bool) {
	n := w.nodes[i]
	if crashed {
		w.hist.Crashed(n.name)
	}
	if m := n.g.Member(); m != nil {
		w.stats = append(w.stats, m.Stats())
	}
	w.evictions += int(n.g.Stats().Evictions)
	n.g = nil
}

func (w *world) handle(e *event) {
	switch e.kind {
	case evRestart:
		if w.nodes[e.to].g == nil {
			w.start(e.to)
			w.drain(e.to)
		}
		return
	case evJoin:
		w.start(e.to)
		w.drain(e.to)
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
		w.tracef("%s crashes", w.nodes[i].name)
		w.stop(i, true)
		w.push(&event{at: w.now + 100_000 + w.rng.Int64N(500_000), kind: evRestart, to: i})
		return
	case evSlow:
		l := w.live()
		if len(l) == 0 {
			return
		}
		i := l[w.rng.IntN(len(l))]
		w.nodes[i].slowUntil = w.now + 300_000 + w.rng.Int64N(1_200_000)
		w.tracef("%s slows down until %d", w.nodes[i].name, w.nodes[i].slowUntil)
		return
	case evLeave:
		i, ok := w.victim()
		if !ok {
			return
		}
		w.tracef("%s leaves", w.nodes[i].name)
		w.nodes[i].leaving = true
		w.nodes[i].g.Leave()
		w.drain(i)
		return
	case evPartition:
		l := w.live()
		if len(l) < 2 || w.partition {
			return
		}
		w.partition = true
		for _, i := range l {
			w.nodes[i].side = w.rng.IntN(2)
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
	n := w.nodes[e.to]
	if n.g == nil || (e.kind != evDatagram && e.inc != n.inc) {
		return // an event for a process that is gone
	}
	switch e.kind {
	case evTick:
		n.g.Tick()
		w.push(&event{at: w.now + w.opt.TickMicros, kind: evTick, to: e.to, inc: n.inc})
	case evDatagram:
		from := adversaryAddr
		if e.from >= 0 {
			from = w.nodes[e.from].addr
		}
		data := e.data
		if w.opt.Keyed {
			plain, _, err := n.opener.Open(data, seal.FirstContact)
			if err != nil {
				w.refused++
				w.tracef("%s <- %s refused: %v", n.name, from, err)
				return
			}
			if e.adv == advDamage || (e.adv == advForge && !w.opt.AdversaryHasKey) {
				w.violations = append(w.violations, check.Violation{Rule: "keyed", Detail: fmt.Sprintf("%s took a datagram the adversary made without the key (move %d)", n.name, e.adv)})
			}
			wire.SetGroupID(plain, wire.GroupID("sim"))
			data = plain
		}
		w.tracef("%s <- %s %s", n.name, from, describe(data))
		n.g.Receive(from, data)
		// A real receive buffer is reused at once: scribble over this one so
		// that anything still pointing into it shows up as corruption.
		for i := range e.data {
			e.data[i] = 0xEE
		}
	case evSend:
		w.send(e.to)
	case evConsume:
		n.consumeAt = 0
		k := 1 + w.rng.IntN(n.unconsumed)
		if n.slowUntil > w.now {
			k = 1
		}
		n.g.Consumed(k)
		n.unconsumed -= k
		w.scheduleConsume(e.to)
	}
	w.drain(e.to)
}

// victim picks a running process whose loss the group survives, if any.
func (w *world) victim() (int, bool) {
	l := w.live()
	if len(l) < 3 {
		return 0, false
	}
	i := l[w.rng.IntN(len(l))]
	return i, w.survivable(i)
}

// sequencer picks the process that orders total-order messages in its
// view, if the group survives its loss.
func (w *world) sequencer() (int, bool) {
	for _, i := range w.live() {
		g := w.nodes[i].g
		if g.InView() && g.View().Self == min(w.opt.Protocol.Member.Sequencer, len(g.View().Members)-1) && len(g.View().Members) >= 3 {
			return i, w.survivable(i)
		}
	}
	return 0, false
}

// survivable reports whether losing process i leaves a majority running
// of its view, and of the view that remains once the members told to
// leave are gone: a group that loses its majority blocks by design
// (primary partition), and a run in which it must never settles.
func (w *world) survivable(i int) bool {
	// A view change under way may be about to install a smaller view (an
	// adopted proposal) whose majority the simulator cannot see: wait
	// for it to finish.
	for _, k := range w.live() {
		if w.nodes[k].g.Blocked() > 0 {
			return false
		}
	}
	g := w.nodes[i].g
	if !g.InView() {
		return true
	}
	v := g.View()
	alive, staying, stayingAlive := 0, 0, 0
	for _, m := range v.Members {
		r := w.rank(m.Addr)
		// Up means running in this very view: a member still catching up
		// with an older one does not count towards the majority yet.
		o := w.nodes[r].g
		up := o != nil && w.nodes[r].inc == m.Incarnation && o.InView() && o.View().Epoch == v.Epoch && o.View().Founder == v.Founder
		if !up || !w.nodes[r].leaving {
			staying++
		}
		if r != i && up {
			alive++
			if !w.nodes[r].leaving {
				stayingAlive++
			}
		}
	}
	return alive >= len(v.Members)/2+1 && stayingAlive >= staying/2+1
}

func (w *world) sides() string {
	s := ""
	for _, i := range w.live() {
		s += fmt.Sprintf("%s:%d ", w.nodes[i].name, w.nodes[i].side)
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

// send offers the process's next message while it is in a view.
func (w *world) send(i int) {
	n := w.nodes[i]
	// A message begun is finished (its first fragments are out); no new
	// one starts after SendUntil.
	if n.sendDone == 0 && (n.sentN >= uint64(w.opt.Messages) || w.now > w.opt.SendUntil) {
		return
	}
	if !n.g.InView() || n.g.Ended() != nil {
		w.push(&event{at: w.gap(), kind: evSend, to: i, inc: n.inc})
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
		w.hist.SentAs(check.MsgID{Sender: n.name, N: next}, orderName(flags), flags&wire.FlagSafe != 0, check.PayloadHash(p), n.epoch)
	}
	n.sendDone = done
	if done < len(p) {
		n.blocked = true
		return
	}
	w.tracef("%s sent #%d (%d bytes)", n.name, next, len(p))
	n.sentN, n.sendDone, n.blocked = next, 0, false
	w.push(&event{at: w.gap(), kind: evSend, to: i, inc: n.inc})
}

func (w *world) scheduleConsume(i int) {
	n := w.nodes[i]
	if n.g == nil || n.unconsumed == 0 || n.consumeAt != 0 {
		return
	}
	delay := int64(1)
	if w.rng.Float64() < w.opt.SlowConsume {
		delay = int64(w.rng.IntN(5000))
	}
	if n.slowUntil > w.now {
		delay = 1000 + w.rng.Int64N(4000)
	}
	n.consumeAt = w.now + delay
	w.push(&event{at: n.consumeAt, kind: evConsume, to: i, inc: n.inc})
}

// drain collects the process's output: datagrams go to the network,
// events and deliveries to the checker, in the order the application
// would see them.
func (w *world) drain(i int) {
	n := w.nodes[i]
	for guard := 0; n.g != nil; guard++ {
		if guard > 10000 {
			panic(fmt.Sprintf("%s: Ready keeps reporting More", n.name))
		}
		rd := n.g.Ready()
		for k, d := range rd.Datagrams {
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
				if shared(k-1) || shared(k+1) {
					to = 0
				}
				w.tracef("%s seals %s", n.name, describe(b))
				var err error
				if b, err = n.sealer.Seal(nil, w.keys.Primary(), w.keys.Primary().GroupID("sim"), to, b); err != nil {
					panic(err)
				}
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
				for k, m := range ev.View.Members {
					names[k] = w.nameOf(m)
				}
				w.tracef("%s installs view %d %v", n.name, ev.View.Epoch, names)
				gone := map[string][]string{}
				for why, ms := range map[string][]wire.MemberID{"left": ev.View.Left, "failed": ev.View.Failed, "evicted": ev.View.Evicted} {
					for _, m := range ms {
						gone[why] = append(gone[why], w.nameOf(m))
					}
				}
				w.hist.InstalledWhy(n.name, n.epoch, names, gone)
			} else {
				w.tracef("%s ends: %v", n.name, ev.Err)
				n.redirect = ev.Redirect
				w.hist.Gone(n.name)
				ended = true
			}
		}
		for _, d := range rd.Deliveries {
			w.record(i, d)
		}
		n.unconsumed += len(rd.Deliveries)
		released, more := rd.Released, rd.More
		n.g.Advance()
		if ended {
			// Removed or left: the process rejoins as a new incarnation.
			w.stop(i, false)
			w.push(&event{at: w.now + 50_000, kind: evRestart, to: i})
			return
		}
		if released && n.blocked {
			w.push(&event{at: w.now, kind: evSend, to: i, inc: n.inc})
			n.blocked = false
		}
		if !more {
			break
		}
	}
	w.scheduleConsume(i)
}

func (w *world) nameOf(m wire.MemberID) string {
	return fmt.Sprintf("p%d.%d", w.rank(m.Addr), m.Incarnation)
}

func (w *world) rank(a netip.AddrPort) int {
	for r, n := range w.nodes {
		if n.addr == a {
			return r
		}
	}
	panic("datagram to an unknown address " + a.String())
}

func (w *world) record(i int, d protocol.Delivery) {
	n := w.nodes[i]
	w.delivered++
	id, ok := parsePayload(d.Payload)
	if !ok {
		w.tracef("%s delivers an unparsable payload from rank %d seq %d flags %x: %d bytes %x", n.name, d.Origin, d.Seq, d.Flags, len(d.Payload), d.Payload[:min(len(d.Payload), 32)])
		w.hist.DeliveredAs(n.name, check.MsgID{Sender: "?"}, orderName(d.Flags), d.Flags&wire.FlagSafe != 0, 0, n.epoch)
		return
	}
	w.tracef("%s delivers %v in view %d", n.name, id, n.epoch)
	w.hist.DeliveredAs(n.name, id, orderName(d.Flags), d.Flags&wire.FlagSafe != 0, check.PayloadHash(d.Payload), n.epoch)
}

// transmit puts a datagram on the simulated link from -> to.
func (w *world) transmit(from, to int, b []byte) {
	o := &w.opt
	if o.Adversary {
		w.observe(from, to, b)
	}
	if w.partition && w.nodes[from].side != w.nodes[to].side {
		w.tracef("%s -> %s cut off %s", w.nodes[from].name, w.nodes[to].name, describe(b))
		return
	}
	if w.rng.Float64() < o.Loss {
		w.tracef("%s -> %s lost %s", w.nodes[from].name, w.nodes[to].name, describe(b))
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
