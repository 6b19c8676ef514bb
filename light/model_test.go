package light

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cohort-vs/cohort/engine"
	"github.com/cohort-vs/cohort/internal/check"
)

// The model: carrier members run their tables over a carrier that keeps
// exactly the engine's promises and no more: each sender's messages in
// send order, Total messages in one order, any interleaving of senders
// otherwise, and at a view change every survivor delivers the same
// messages of the old view (a crashed member's: any prefix of what it
// sent that covers what some survivor delivered). The light groups'
// histories then go to the project's checker, and every member's
// application state at each view is compared.

type mmsg struct {
	sender  int
	m       engine.Message
	total   int // index in the total order, -1 if not Total
	dropped bool
}

type mproc struct {
	idx     int
	name    string
	id      engine.MemberID
	c       *Carrier
	gone    bool // crashed or left the carrier
	crashed bool
	// delivered[s] counts sender s's messages of the current carrier view
	// this process delivered; nextTotal is its place in the total order.
	delivered map[int]int
	nextTotal int
	apps      map[string]*mapp
	joins     map[string]bool // light groups it joined once (never again)
}

// mapp is the application of one light group at one process.
type mapp struct {
	p      *mproc
	name   string // light member name: process.group
	group  string
	g      *Group
	sum    uint64 // the state: a sum of delivered message digests
	epoch  uint64
	sent   uint64
	ended  error
	hasEnd bool
	model  *model
}

type model struct {
	t       *testing.T
	rng     *rand.Rand
	procs   []*mproc
	epoch   uint64
	members []int // the carrier view, oldest first
	// installed is the view the members installed last (members also
	// loses a crashed member while the view closes): ranks are its
	installed []int
	// this carrier view's messages per sender; next holds what was sent
	// while the view closes (it belongs to the next one)
	sent       map[int][]*mmsg
	next       map[int][]*mmsg
	closing    bool
	totalCount int
	totalOrder []*mmsg
	hist       map[string]*check.History // per light group instance
	states     map[string]uint64         // instance/epoch -> state at that view
	stateOwner map[string]string
	fail       []string
	counts     map[string]int
}

func (md *model) failf(format string, args ...any) {
	md.fail = append(md.fail, fmt.Sprintf(format, args...))
}

func newModel(t *testing.T, seed uint64, n int) *model {
	md := &model{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e37)), sent: map[int][]*mmsg{},
		hist: map[string]*check.History{}, states: map[string]uint64{}, stateOwner: map[string]string{}, counts: map[string]int{}}
	for range n {
		md.addProc()
	}
	md.epoch = 1
	for i := range n {
		md.members = append(md.members, i)
	}
	md.installed = slices.Clone(md.members)
	for _, i := range md.members {
		md.procs[i].c.t.onView(md.viewFor(md.procs[i], md.view(nil, nil)))
	}
	return md
}

func (md *model) addProc() *mproc {
	i := len(md.procs)
	p := &mproc{idx: i, name: fmt.Sprintf("p%d", i),
		id:        engine.MemberID{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(1000+i)), Incarnation: 1},
		delivered: map[int]int{}, apps: map[string]*mapp{}, joins: map[string]bool{}}
	p.c = newCarrier(nil, "carrier", Options{MaxStateBytes: 1 << 20, ChunkBytes: 5})
	p.c.send = func(_ context.Context, o engine.Ordering, payload []byte) error {
		md.carrierSend(p, o, payload)
		return nil
	}
	md.procs = append(md.procs, p)
	return p
}

// view is the carrier view of md.members (Self set per process by onView's
// caller through viewFor).
func (md *model) view(left, failed []engine.MemberID) engine.View {
	v := engine.View{Group: "carrier", Epoch: md.epoch, Left: left, Failed: failed}
	for _, i := range md.members {
		v.Members = append(v.Members, md.procs[i].id)
	}
	return v
}

func (md *model) viewFor(p *mproc, v engine.View) engine.View {
	v.Self = slices.Index(v.Members, p.id)
	return v
}

func (md *model) carrierSend(p *mproc, o engine.Ordering, payload []byte) {
	if p.gone {
		return
	}
	mm := &mmsg{sender: p.idx, total: -1, m: engine.Message{Sender: p.id, Ordering: o, Payload: slices.Clone(payload)}}
	if md.closing {
		md.next[p.idx] = append(md.next[p.idx], mm)
		return
	}
	md.sent[p.idx] = append(md.sent[p.idx], mm)
	mm.m.Seq = uint64(len(md.sent[p.idx]))
	if o&3 == engine.Total {
		mm.total = md.totalCount
		md.totalCount++
		md.totalOrder = append(md.totalOrder, mm)
	}
}

// deliverable lists, for process p, the senders whose next message p may
// deliver now.
func (md *model) deliverable(p *mproc) []int {
	var out []int
	for _, s := range md.members {
		msgs := md.sent[s]
		k := p.delivered[s]
		for k < len(msgs) && msgs[k].dropped {
			k++
		}
		if k >= len(msgs) {
			continue
		}
		if mm := msgs[k]; mm.total >= 0 && md.nextLiveTotal(p) != mm {
			continue
		}
		out = append(out, s)
	}
	for s, msgs := range md.sent {
		if !slices.Contains(md.members, s) && p.delivered[s] < len(msgs) {
			// a crashed or leaving sender's messages still due
			k := p.delivered[s]
			for k < len(msgs) && msgs[k].dropped {
				k++
			}
			if k < len(msgs) && (msgs[k].total < 0 || md.nextLiveTotal(p) == msgs[k]) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (md *model) nextLiveTotal(p *mproc) *mmsg {
	for p.nextTotal < len(md.totalOrder) && md.totalOrder[p.nextTotal].dropped {
		p.nextTotal++
	}
	if p.nextTotal < len(md.totalOrder) {
		return md.totalOrder[p.nextTotal]
	}
	return nil
}

func (md *model) deliverOne(p *mproc, s int) {
	msgs := md.sent[s]
	k := p.delivered[s]
	for msgs[k].dropped {
		k++
	}
	mm := msgs[k]
	p.delivered[s] = k + 1
	if mm.total >= 0 {
		p.nextTotal++
	}
	m := mm.m
	m.Rank = slices.Index(md.installed, s)
	m.Payload = slices.Clone(m.Payload)
	p.c.t.deliver(m)
	md.drainOut(p)
}

// drainOut sends what the process queued for its sending goroutine.
func (md *model) drainOut(p *mproc) {
	for len(p.c.out) > 0 {
		o := p.c.out[0]
		p.c.out = p.c.out[1:]
		if err := p.c.sendOut(context.Background(), o); err != nil {
			md.failf("%s: sendOut: %v", p.name, err)
		}
	}
}

func (md *model) live() []*mproc {
	var out []*mproc
	for _, i := range md.members {
		out = append(out, md.procs[i])
	}
	return out
}

// step delivers one message somewhere; false if nothing is due.
func (md *model) step() bool {
	procs := md.live()
	md.rng.Shuffle(len(procs), func(i, j int) { procs[i], procs[j] = procs[j], procs[i] })
	for _, p := range procs {
		if ss := md.deliverable(p); len(ss) > 0 {
			md.deliverOne(p, ss[md.rng.IntN(len(ss))])
			return true
		}
	}
	return false
}

// cut changes the carrier view: crash (or leave) one member, or add one.
func (md *model) cut(kind string) {
	md.counts["cut "+kind]++
	md.closing = true
	md.next = map[int][]*mmsg{}
	var goneIdx = -1
	var leftIDs, failedIDs []engine.MemberID
	switch kind {
	case "crash", "leave":
		goneIdx = md.members[md.rng.IntN(len(md.members))]
		gp := md.procs[goneIdx]
		if kind == "crash" {
			// Keep a prefix of its messages that covers what any other
			// member delivered.
			msgs := md.sent[goneIdx]
			lo := 0
			for _, q := range md.live() {
				if q != gp {
					lo = max(lo, q.delivered[goneIdx])
				}
			}
			// A Safe message it delivered itself was held by everyone:
			// the survivors deliver it too.
			for k := range gp.delivered[goneIdx] {
				if msgs[k].m.Ordering&engine.Safe != 0 {
					lo = max(lo, k+1)
				}
			}
			keep := lo + md.rng.IntN(len(msgs)-lo+1)
			for _, mm := range msgs[keep:] {
				mm.dropped = true
			}
			gp.gone, gp.crashed = true, true
			failedIDs = append(failedIDs, gp.id)
			for _, a := range gp.apps {
				md.histOf(a).Crashed(a.name)
			}
		} else {
			leftIDs = append(leftIDs, gp.id)
		}
		md.members = slices.DeleteFunc(md.members, func(i int) bool { return i == goneIdx && kind == "crash" })
	}
	// Every member still here delivers the rest of the view.
	for md.step() {
	}
	for _, p := range md.live() {
		for s, msgs := range md.sent {
			for k := p.delivered[s]; k < len(msgs); k++ {
				if !msgs[k].dropped {
					md.failf("cut: %s did not deliver %s's message %d", p.name, md.procs[s].name, k)
				}
			}
		}
	}
	if kind == "leave" {
		gp := md.procs[goneIdx]
		md.members = slices.DeleteFunc(md.members, func(i int) bool { return i == goneIdx })
		gp.gone = true
		gp.c.ended(engine.ErrLeft)
	}
	var joiner *mproc
	if kind == "join" {
		joiner = md.addProc()
	}
	// The new view.
	md.epoch++
	var snap []byte
	if joiner != nil {
		var buf bytes.Buffer
		donor := md.procs[md.members[0]]
		if err := donor.c.t.snapshot(&buf); err != nil {
			md.failf("snapshot: %v", err)
		}
		snap = buf.Bytes()
		md.members = append(md.members, joiner.idx)
	}
	v := md.view(leftIDs, failedIDs)
	if joiner != nil {
		v.Joined = []engine.MemberID{joiner.id}
		if err := joiner.c.t.restore(bytes.NewReader(snap)); err != nil {
			md.failf("restore: %v", err)
		}
	}
	md.closing = false
	md.sent = map[int][]*mmsg{}
	md.totalOrder, md.totalCount = nil, 0
	for _, p := range md.live() {
		p.delivered, p.nextTotal = map[int]int{}, 0
	}
	// What was sent during the change belongs to the new view, in each
	// sender's order.
	pending := md.next
	md.next = nil
	md.installed = slices.Clone(md.members)
	for _, p := range md.live() {
		p.c.t.onView(md.viewFor(p, v))
		md.drainOut(p)
	}
	for _, s := range slices.Sorted(mapsKeys(pending)) {
		if md.procs[s].gone {
			continue
		}
		for _, mm := range pending[s] {
			md.carrierSend(md.procs[s], mm.m.Ordering, mm.m.Payload)
		}
	}
}

func mapsKeys(m map[int][]*mmsg) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (md *model) histOf(a *mapp) *check.History {
	key := a.group
	if a.g != nil {
		if id := a.g.id.Load(); id != 0 {
			key = fmt.Sprintf("%s/%d", a.group, id)
		}
	}
	h := md.hist[key]
	if h == nil {
		h = check.NewHistory()
		md.hist[key] = h
	}
	return h
}

var groupNames = []string{"a", "b", "c"}

// act makes one application move at a random live process.
func (md *model) act() {
	procs := md.live()
	p := procs[md.rng.IntN(len(procs))]
	name := groupNames[md.rng.IntN(len(groupNames))]
	a := p.apps[name]
	switch {
	case a == nil && !p.joins[name]:
		p.joins[name] = true
		a = &mapp{p: p, name: p.name + "." + name, group: name, model: md}
		p.apps[name] = a
		g, err := p.c.startJoin(context.Background(), name, a.handlers())
		if err != nil {
			md.failf("%s: join %s: %v", p.name, name, err)
			return
		}
		a.g = g
	case a != nil && !a.hasEnd && a.g.member && a.g.xfer == 0 && md.rng.IntN(12) == 0:
		if err := a.g.requestLeave(context.Background()); err != nil {
			md.failf("%s: leave: %v", a.name, err)
		}
	case a != nil && !a.hasEnd && a.g.member && a.g.xfer == 0:
		a.send([]engine.Ordering{engine.FIFO, engine.Total, engine.Unordered}[md.rng.IntN(3)])
	}
}

func (a *mapp) send(o engine.Ordering) {
	a.sent++
	id := check.MsgID{Sender: a.name, N: a.sent}
	payload := []byte(id.String())
	h := a.model.histOf(a)
	h.SentAs(id, orderWord(o), false, check.PayloadHash(payload), a.epoch)
	if err := a.g.Send(context.Background(), o, payload); err != nil {
		a.model.failf("%s: send: %v", a.name, err)
	}
}

func orderWord(o engine.Ordering) string {
	return [...]string{check.Unordered, check.FIFO, check.Causal, check.Total}[o&3]
}

func (a *mapp) memberName(m engine.MemberID) string {
	for _, p := range a.model.procs {
		if p.id == m {
			return p.name + "." + a.group
		}
	}
	return m.String()
}

func (a *mapp) names(ms []engine.MemberID) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = a.memberName(m)
	}
	return out
}

func (a *mapp) handlers() engine.Handlers {
	md := a.model
	return engine.Handlers{
		Deliver: func(m engine.Message) {
			id, err := check.ParseMsgID(string(m.Payload))
			if err != nil {
				md.failf("%s: payload %q", a.name, m.Payload)
				return
			}
			md.counts["deliveries"]++
			md.histOf(a).DeliveredAs(a.name, id, orderWord(m.Ordering), false, check.PayloadHash(m.Payload), a.epoch)
			a.sum += check.PayloadHash(m.Payload)
			if want := a.memberName(m.Sender); want != id.Sender {
				md.failf("%s: message %v says sender %s", a.name, id, want)
			}
		},
		View: func(v engine.View) {
			a.epoch = v.Epoch
			md.counts["views"]++
			if len(v.Failed) > 0 {
				md.counts["views with failed"]++
			}
			h := md.histOf(a)
			h.InstalledWhy(a.name, v.Epoch, a.names(v.Members), map[string][]string{"left": a.names(v.Left), "failed": a.names(v.Failed)})
			key := fmt.Sprintf("%s/%d/%d", a.group, a.g.id.Load(), v.Epoch)
			if s, ok := md.states[key]; ok && s != a.sum {
				md.failf("state at %s: %s has %x, %s had %x", key, a.name, a.sum, md.stateOwner[key], s)
			} else if !ok {
				md.states[key], md.stateOwner[key] = a.sum, a.name
			}
		},
		Ended: func(err error) {
			a.ended, a.hasEnd = err, true
			md.histOf(a).Gone(a.name)
		},
		Snapshot: func(w io.Writer) error {
			return binary.Write(w, binary.LittleEndian, a.sum)
		},
		Restore: func(r io.Reader) error {
			md.counts["restores"]++
			return binary.Read(r, binary.LittleEndian, &a.sum)
		},
	}
}

// run plays one seed: moves, deliveries and cuts, then a quiet end where
// everything is delivered, and checks.
func runModel(t *testing.T, seed uint64, steps int) []string {
	md := newModel(t, seed, 3+int(seed%2))
	for range steps {
		switch r := md.rng.IntN(100); {
		case r < 30:
			md.act()
		case r < 99:
			md.step()
		default:
			kinds := []string{"join", "leave", "crash"}
			if len(md.members) <= 2 {
				kinds = kinds[:1]
			}
			md.cut(kinds[md.rng.IntN(len(kinds))])
		}
	}
	for md.step() {
	}
	// Quiet: every flush completes, every transfer ends, every join is
	// settled.
	for _, p := range md.live() {
		for _, lg := range p.c.t.byID {
			if lg.flushing || len(lg.queue) > 0 {
				md.failf("%s: light group %s still flushing at the end (queue %d, awaiting %v)", p.name, lg.name, len(lg.queue), lg.awaiting)
			}
			if len(lg.restoring) > 0 {
				md.failf("%s: light group %s still has %d transfers at the end", p.name, lg.name, len(lg.restoring))
			}
		}
		for _, a := range p.apps {
			if !a.hasEnd && (!a.g.member || a.g.xfer != 0) {
				md.failf("%s: still joining at the end", a.name)
			}
		}
	}
	// Every live process sees the same table.
	var first string
	for _, p := range md.live() {
		var b bytes.Buffer
		_ = p.c.t.snapshot(&b)
		if first == "" {
			first = b.String()
		} else if b.String() != first {
			md.failf("%s: table differs from %s's", p.name, md.procs[md.members[0]].name)
		}
	}
	for k, v := range md.counts {
		modelCounts[k] += v
	}
	for key, h := range md.hist {
		for _, v := range h.Check(5) {
			md.failf("%s: %v", key, v)
		}
	}
	return md.fail
}

var modelCounts = map[string]int{}

func TestModel(t *testing.T) {
	seeds := uint64(1000)
	if testing.Short() {
		seeds = 200
	}
	if n, err := strconv.Atoi(os.Getenv("COHORT_LIGHT_SEEDS")); err == nil {
		seeds = uint64(n)
	}
	failed := 0
	for seed := uint64(1); seed <= seeds; seed++ {
		if fail := runModel(t, seed, 3000); len(fail) > 0 {
			failed++
			if failed <= 3 {
				t.Errorf("seed %d:\n  %s", seed, strings.Join(fail[:min(len(fail), 8)], "\n  "))
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d seeds failed", failed, seeds)
	}
	t.Logf("%d seeds: %v", seeds, modelCounts)
}
