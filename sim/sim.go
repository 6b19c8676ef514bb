// Package sim runs groups of protocol members over a seeded, simulated
// network and checks the guarantees with package check. Time is virtual
// (microseconds); every random choice comes from one seeded source, so a
// run replays exactly from its seed.
package sim

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"

	"github.com/cohort-vs/cohort/check"
	"github.com/cohort-vs/cohort/protocol"
	"github.com/cohort-vs/cohort/wire"
)

// Options describe one simulation.
type Options struct {
	Seed     uint64
	Members  int
	Messages int // messages each member sends

	Loss      float64 // probability a datagram is lost
	Duplicate float64 // probability a datagram is delivered twice
	Reorder   float64 // probability a datagram is held back
	DelayMin  int64   // one-way delay bounds, µs
	DelayMax  int64

	SendGap     int64   // mean time between one member's sends, µs
	SlowConsume float64 // probability a delivery is consumed late
	LargeShare  float64 // share of messages larger than a datagram

	TickMicros int64 // tick interval, µs
	TimeLimit  int64 // virtual time limit, µs

	Protocol protocol.Config // limits; Group, Epoch, Self and Members are set per member

	Trace io.Writer // when set, every event is written here
}

// RandomOptions draws a fault mix from seed: 2 to 5 members, loss 0-30%,
// duplication, reordering and delay, slow consumers and large messages.
func RandomOptions(seed uint64) Options {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	dmin := int64(20 + r.IntN(200))
	return Options{
		Seed:        seed,
		Members:     2 + r.IntN(4),
		Messages:    50 + r.IntN(150),
		Loss:        r.Float64() * 0.30,
		Duplicate:   r.Float64() * 0.10,
		Reorder:     r.Float64() * 0.20,
		DelayMin:    dmin,
		DelayMax:    dmin + int64(r.IntN(3000)),
		SendGap:     int64(1 + r.IntN(500)),
		SlowConsume: r.Float64() * 0.2,
		LargeShare:  r.Float64() * 0.05,
		TickMicros:  1000,
		TimeLimit:   600_000_000,
		Protocol: protocol.Config{
			MaxDatagram:     1200,
			MaxMessageSize:  16 << 10,
			WindowMessages:  64,
			WindowBytes:     32 << 10,
			DeliveryQueue:   16 + r.IntN(64),
			StatusTicks:     1 + r.IntN(5),
			NAKTicks:        2 + r.IntN(10),
			MaxOutDatagrams: 8,
		},
	}
}

// Result summarizes a run.
type Result struct {
	Violations []check.Violation
	Events     int
	EndMicros  int64
	Stats      []protocol.Stats
	Sent       int
	Delivered  int
}

type eventKind uint8

const (
	evDatagram eventKind = iota
	evTick
	evSend
	evConsume
)

type event struct {
	at   int64
	seq  uint64 // tie-break, keeps the order deterministic
	kind eventKind
	to   int
	from int
	data []byte
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

type node struct {
	m          *protocol.Member
	name       string
	sentN      uint64 // messages fully handed to the sender
	sendDone   int    // bytes of the current message accepted so far
	blocked    bool   // waiting for the window to open
	unconsumed int    // deliveries not yet consumed
	consumeAt  int64  // when the next consume event is scheduled (0: none)
}

type world struct {
	opt       Options
	rng       *rand.Rand
	q         eventQueue
	seq       uint64
	now       int64
	nodes     []*node
	addrs     []netip.AddrPort
	hist      *check.History
	events    int
	delivered int
	expected  int
}

// Run executes one simulation.
func Run(opt Options) Result {
	w := &world{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0xc0de)), hist: check.NewHistory()}
	for i := 0; i < opt.Members; i++ {
		w.addrs = append(w.addrs, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 7000))
	}
	for i := 0; i < opt.Members; i++ {
		cfg := opt.Protocol
		cfg.Group, cfg.Epoch, cfg.Self, cfg.Members = wire.GroupID("sim"), 1, i, w.addrs
		m, err := protocol.New(cfg)
		if err != nil {
			return Result{Violations: []check.Violation{{Rule: "config", Detail: err.Error()}}}
		}
		n := &node{m: m, name: fmt.Sprintf("m%d", i)}
		w.nodes = append(w.nodes, n)
		w.hist.Member(n.name)
		w.push(&event{at: int64(w.rng.IntN(int(opt.TickMicros))), kind: evTick, to: i})
		w.push(&event{at: w.gap(), kind: evSend, to: i})
	}
	w.expected = opt.Members * opt.Members * opt.Messages
	for w.q.Len() > 0 && w.delivered < w.expected {
		e := heap.Pop(&w.q).(*event)
		if e.at > opt.TimeLimit {
			break
		}
		w.now = e.at
		w.events++
		w.handle(e)
	}
	res := Result{Violations: w.hist.Check(10), Events: w.events, EndMicros: w.now, Delivered: w.delivered}
	for _, n := range w.nodes {
		res.Stats = append(res.Stats, n.m.Stats())
		res.Sent += int(n.sentN)
	}
	return res
}

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

func (w *world) handle(e *event) {
	n := w.nodes[e.to]
	switch e.kind {
	case evTick:
		n.m.Tick()
		w.push(&event{at: w.now + w.opt.TickMicros, kind: evTick, to: e.to})
	case evDatagram:
		w.tracef("%s <- %s %s", n.name, w.nodes[e.from].name, describe(e.data))
		n.m.Receive(w.addrs[e.from], e.data)
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
		w.tracef("%s consumes %d", n.name, k)
		n.m.Consumed(k)
		n.unconsumed -= k
		w.scheduleConsume(e.to)
	}
	w.drain(e.to)
}

// payloadFor makes message n of sender s: its identity, then bytes that
// derive from it, so that a receiver can verify every byte.
func payloadFor(sender int, n uint64, size int) []byte {
	p := make([]byte, max(size, 16))
	binary.LittleEndian.PutUint64(p, uint64(sender))
	binary.LittleEndian.PutUint64(p[8:], n)
	x := n*0x9e3779b97f4a7c15 ^ uint64(sender)
	for i := 16; i < len(p); i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x)
	}
	return p
}

func hashOf(p []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range p {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h | 1
}

func (w *world) sizeFor(sender int, n uint64) int {
	r := rand.New(rand.NewPCG(w.opt.Seed^uint64(sender)<<32, n))
	switch f := r.Float64(); {
	case f < w.opt.LargeShare:
		return w.opt.Protocol.MaxDatagram + r.IntN(3*w.opt.Protocol.MaxDatagram)
	case f < 0.3:
		return 100 + r.IntN(900)
	default:
		return 16 + r.IntN(100)
	}
}

func orderFor(sender int, n uint64) uint8 {
	if (uint64(sender)+n)%3 == 0 {
		return wire.OrderUnordered
	}
	return wire.OrderFIFO
}

func orderName(flags uint8) string {
	if flags&wire.OrderMask == wire.OrderUnordered {
		return check.Unordered
	}
	return check.FIFO
}

// send offers the member's next message to its sender; when the window is
// full the member waits for Released.
func (w *world) send(i int) {
	n := w.nodes[i]
	if n.sentN >= uint64(w.opt.Messages) {
		return
	}
	next := n.sentN + 1
	p := payloadFor(i, next, w.sizeFor(i, next))
	flags := orderFor(i, next)
	if n.sendDone == 0 {
		w.hist.Sent(check.MsgID{Sender: n.name, N: next}, orderName(flags), hashOf(p))
	}
	done, err := n.m.Sender().TrySend(flags, p, n.sendDone)
	if err != nil {
		panic(err) // the simulator never sends an oversized message
	}
	n.sendDone = done
	if done < len(p) {
		n.blocked = true
		w.tracef("%s send %d blocked at %d/%d", n.name, next, done, len(p))
		return
	}
	w.tracef("%s sent #%d (%d bytes)", n.name, next, len(p))
	n.sentN, n.sendDone, n.blocked = next, 0, false
	w.push(&event{at: w.gap(), kind: evSend, to: i})
}

func (w *world) scheduleConsume(i int) {
	n := w.nodes[i]
	if n.unconsumed == 0 || n.consumeAt != 0 {
		return
	}
	delay := int64(1)
	if w.rng.Float64() < w.opt.SlowConsume {
		delay = int64(w.rng.IntN(5000))
	}
	n.consumeAt = w.now + delay
	w.push(&event{at: n.consumeAt, kind: evConsume, to: i})
}

// drain collects the member's output: datagrams go to the network,
// deliveries to the checker.
func (w *world) drain(i int) {
	n := w.nodes[i]
	for {
		rd := n.m.Ready()
		for _, d := range rd.Datagrams {
			to := w.rank(d.Addr)
			w.transmit(i, to, d.Buf[:d.N])
		}
		for _, d := range rd.Deliveries {
			w.record(i, d)
		}
		n.unconsumed += len(rd.Deliveries)
		released := rd.Released
		more := rd.More
		n.m.Advance()
		if released && n.blocked {
			w.push(&event{at: w.now, kind: evSend, to: i})
			n.blocked = false
		}
		if !more {
			break
		}
	}
	w.scheduleConsume(i)
}

func (w *world) rank(a netip.AddrPort) int {
	for r, x := range w.addrs {
		if x == a {
			return r
		}
	}
	panic("datagram to an unknown address " + a.String())
}

func (w *world) record(i int, d protocol.Delivery) {
	n := w.nodes[i]
	w.delivered++
	if len(d.Payload) < 16 {
		w.tracef("%s delivers a short payload from %d seq %d flags %x: %x", n.name, d.Origin, d.Seq, d.Flags, d.Payload)
		w.hist.Delivered(n.name, check.MsgID{Sender: "?", N: 0}, orderName(d.Flags), 0)
		return
	}
	sender := int(binary.LittleEndian.Uint64(d.Payload))
	num := binary.LittleEndian.Uint64(d.Payload[8:])
	name := "?"
	if sender == d.Origin && sender < len(w.nodes) {
		name = w.nodes[sender].name
	}
	w.tracef("%s delivers %s#%d", n.name, name, num)
	w.hist.Delivered(n.name, check.MsgID{Sender: name, N: num}, orderName(d.Flags), hashOf(d.Payload))
}

// transmit puts a datagram on the simulated link from -> to.
func (w *world) transmit(from, to int, b []byte) {
	o := &w.opt
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

// describe summarizes a datagram's frames for the trace.
func describe(b []byte) string {
	if _, err := wire.ParseHeader(b); err != nil {
		return "malformed"
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
