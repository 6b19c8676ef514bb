package light

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cohort-vs/cohort/engine"
)

// table is one process's copy of a carrier's light groups. Its replicated
// part (every lgroup but its g and awaiting fields) is the same at every
// carrier member once they have delivered the same carrier messages,
// whatever their interleaving: requests are Total carrier messages,
// markers and state chunks are counted per sender, and every carrier view
// change settles whatever was under way. It runs in the carrier's
// delivery goroutine only (its handlers, Snapshot and Restore).
type table struct {
	c      *Carrier
	self   engine.MemberID
	cview  engine.View // the carrier's current view
	nextID uint64
	byID   map[uint64]*lgroup
	byName map[string]*lgroup
	// cache is a direct-mapped cache of byID: a data message's group in
	// an array index rather than a map probe.
	cache [cacheSize]*lgroup
}

const cacheSize = 4096

// lookup is byID[id], through the cache.
func (t *table) lookup(id uint64) *lgroup {
	slot := &t.cache[id%cacheSize]
	if lg := *slot; lg != nil && lg.id == id {
		return lg
	}
	lg := t.byID[id]
	if lg != nil {
		*slot = lg
	}
	return lg
}

// request is a join or a leave, in the carrier's total order.
type request struct {
	join bool
	who  engine.MemberID
}

// transfer is a member of a light group that waits for its state.
type transfer struct {
	joiner engine.MemberID
	donor  engine.MemberID
	xfer   uint64 // names the transfer's chunks
	failed bool   // the donor's Snapshot failed: the joiner will leave
}

// lgroup is one light group.
type lgroup struct {
	// The data path's fields first: one cache line per message.
	id       uint64
	flushing bool
	g        *Group // this process's member, joined or joining (local)

	name      string
	epoch     uint64
	members   []engine.MemberID // oldest first
	restoring []transfer
	// queue holds the requests not yet applied, in total order; while
	// flushing, queue[0] is the one whose markers are awaited.
	queue []request
	req   uint64 // flushes started: names a flush's markers
	xfers uint64 // transfers started: names a transfer's chunks

	// Local, not replicated:
	awaiting []engine.MemberID // flushing: members whose marker has not come
}

func newTable(c *Carrier) *table {
	return &table{c: c, nextID: 1, byID: map[uint64]*lgroup{}, byName: map[string]*lgroup{}}
}

func (lg *lgroup) isMember(m engine.MemberID) bool { return slices.Contains(lg.members, m) }

func (lg *lgroup) transferOf(m engine.MemberID) int {
	return slices.IndexFunc(lg.restoring, func(t transfer) bool { return t.joiner == m })
}

// deliver is the carrier's Deliver handler.
func (t *table) deliver(m engine.Message) {
	if len(m.Payload) == 0 {
		t.c.stats.malformed.Add(1)
		return
	}
	if m.Payload[0] == kindData { // the hot path
		id, n := binary.Uvarint(m.Payload[1:])
		if n <= 0 {
			t.c.stats.malformed.Add(1)
			return
		}
		lg := t.lookup(id)
		switch {
		case lg == nil:
			t.c.stats.stale.Add(1)
		case lg.g == nil:
			t.c.stats.foreign.Add(1)
		default:
			t.data(lg, &m, m.Payload[1+n:])
		}
		return
	}
	r := reader{b: m.Payload[1:]}
	switch m.Payload[0] {
	case kindJoin:
		if !validName(string(r.b)) {
			break
		}
		t.request(string(r.b), request{join: true, who: m.Sender})
		return
	case kindLeave:
		id := r.uvarint()
		if r.err != nil || len(r.b) != 0 {
			break
		}
		if lg := t.lookup(id); lg != nil {
			t.enqueue(lg, request{who: m.Sender})
		} else {
			t.c.stats.stale.Add(1)
		}
		return
	case kindMarker:
		id, req := r.uvarint(), r.uvarint()
		if r.err != nil || len(r.b) != 0 {
			break
		}
		t.marker(t.lookup(id), m.Sender, req)
		return
	case kindState:
		id, xfer, flags := r.uvarint(), r.uvarint(), r.byte()
		if r.err != nil {
			break
		}
		t.state(t.lookup(id), m.Sender, xfer, flags, r.b)
		return
	}
	t.c.stats.malformed.Add(1)
}

// data places one message of a light group this process is in (or
// joining): during a flush, a sender whose marker came is already in the
// next view, so its message waits for that view.
func (t *table) data(lg *lgroup, m *engine.Message, p []byte) {
	g := lg.g
	if lg.flushing && !slices.Contains(lg.awaiting, m.Sender) {
		g.next = append(g.next, copyMessage(*m, p))
		return
	}
	if !g.member {
		return // of a view before this process's first
	}
	t.emitMessage(g, m, p)
}

func copyMessage(m engine.Message, p []byte) engine.Message {
	m.Payload = append([]byte(nil), p...)
	return m
}

// emitMessage delivers (or, while restoring, buffers) a message of g's
// current view, delivered by the carrier just now: its carrier rank maps
// to its light rank (the map follows every carrier and light view). One
// from a sender not in the view is dropped.
func (t *table) emitMessage(g *Group, m *engine.Message, p []byte) {
	rank := int32(-1)
	if uint(m.Rank) < uint(len(g.ranks)) {
		rank = g.ranks[m.Rank]
	}
	if rank < 0 {
		t.c.stats.stale.Add(1)
		return
	}
	// A new value rather than *m with two fields changed: copying a
	// struct just partly written stalls on store forwarding.
	lm := engine.Message{Sender: m.Sender, Rank: int(rank), Seq: m.Seq, Ordering: m.Ordering, Payload: p}
	if g.xfer == 0 {
		g.deliver(lm)
		return
	}
	g.emit(event{msg: lm})
}

// emitBuffered is emitMessage for a message that waited for a flush: it
// may come from an earlier carrier view, so its sender is looked up.
func (t *table) emitBuffered(g *Group, m *engine.Message) {
	rank := slices.Index(g.cur.Members, m.Sender)
	if rank < 0 {
		t.c.stats.stale.Add(1)
		return
	}
	m.Rank = rank
	g.emit(event{msg: *m})
}

// request applies a Total join request: the first one for a name founds
// the light group.
func (t *table) request(name string, rq request) {
	if lg := t.byName[name]; lg != nil {
		if rq.who == t.self && lg.g == nil {
			lg.g = t.c.localGroup(name)
		}
		t.enqueue(lg, rq)
		return
	}
	if len(t.byName) >= MaxGroups {
		// Refused everywhere alike: the joiner's Join fails.
		t.c.stats.refused.Add(1)
		if rq.who == t.self {
			if g := t.c.localGroup(name); g != nil {
				g.end(fmt.Errorf("light: Join %q: %w", name, ErrTooManyGroups))
			}
		}
		return
	}
	lg := &lgroup{id: t.nextID, name: name}
	t.nextID++
	t.byID[lg.id], t.byName[name] = lg, lg
	t.c.stats.groups.Add(1)
	if rq.who == t.self {
		lg.g = t.c.localGroup(name)
	}
	t.install(lg, []engine.MemberID{rq.who}, change{joined: []engine.MemberID{rq.who}}, false)
}

func (t *table) enqueue(lg *lgroup, rq request) {
	// A member's request the same as its last one in the queue changes
	// nothing; beyond that the queue is bounded (alike everywhere: a
	// member that alternates requests that fast is refused).
	for i := len(lg.queue) - 1; i >= 0; i-- {
		if lg.queue[i].who == rq.who {
			if lg.queue[i] == rq {
				return
			}
			break
		}
	}
	if len(lg.queue) >= 4*len(t.cview.Members)+4 {
		t.c.stats.refused.Add(1)
		return
	}
	lg.queue = append(lg.queue, rq)
	if !lg.flushing {
		t.startFlush(lg)
	}
}

// noop reports whether a request would change nothing now.
func (lg *lgroup) noop(rq request) bool { return rq.join == lg.isMember(rq.who) }

// startFlush starts the flush of the first request that changes
// something: every member sends a marker after its last message of the
// current view.
func (t *table) startFlush(lg *lgroup) {
	for len(lg.queue) > 0 {
		rq := lg.queue[0]
		switch {
		case lg.noop(rq):
			lg.queue = lg.queue[1:]
			continue
		case len(lg.members) == 0:
			// Everyone left while this join waited: it founds the
			// group again.
			lg.queue = lg.queue[1:]
			t.install(lg, []engine.MemberID{rq.who}, change{joined: []engine.MemberID{rq.who}}, false)
			continue
		}
		break
	}
	if len(lg.queue) == 0 {
		lg.queue = nil
		t.deleteIfEmpty(lg)
		return
	}
	lg.flushing = true
	lg.req++
	lg.awaiting = slices.Clone(lg.members)
	if lg.g != nil && lg.g.member {
		t.c.sendProto(requestOrdering, appendMarker(lg.id, lg.req))
	}
}

func (t *table) marker(lg *lgroup, from engine.MemberID, req uint64) {
	if lg == nil || !lg.flushing || req != lg.req {
		t.c.stats.stale.Add(1)
		return
	}
	i := slices.Index(lg.awaiting, from)
	if i < 0 {
		t.c.stats.stale.Add(1)
		return
	}
	lg.awaiting = slices.Delete(lg.awaiting, i, i+1)
	if len(lg.awaiting) == 0 {
		t.completeFlush(lg)
		t.startFlush(lg)
	}
}

// completeFlush applies the flushed request: the view changes, and the
// messages of the new view that came during the flush are delivered in it.
func (t *table) completeFlush(lg *lgroup) {
	rq := lg.queue[0]
	lg.queue = lg.queue[1:]
	lg.flushing, lg.awaiting = false, nil
	members := slices.Clone(lg.members)
	var ch change
	if rq.join {
		members = append(members, rq.who)
		ch.joined = []engine.MemberID{rq.who}
	} else {
		members = slices.DeleteFunc(members, func(m engine.MemberID) bool { return m == rq.who })
		ch.left = []engine.MemberID{rq.who}
	}
	g := lg.g
	t.install(lg, members, ch, false)
	if g != nil && lg.g == g && g.member {
		next := g.next
		g.next = nil
		for i := range next {
			t.emitBuffered(g, &next[i])
		}
	} else if g != nil {
		g.next = nil
	}
}

// change is what a view changes, for its View.
type change struct {
	joined, left, failed []engine.MemberID
	// restart: members whose state transfer starts again (the donor is
	// gone); each gets a new donor like a joiner.
	restart []engine.MemberID
}

// install makes members the light group's new view. Joiners (and
// restarts) get their state from a donor: at a flush, the oldest member
// (a member still restoring takes its snapshot when it gets there); at a
// carrier view change, the oldest member that has its state, and with
// none, members waiting for a state from a lost donor fail and joiners
// found the group anew.
func (t *table) install(lg *lgroup, members []engine.MemberID, ch change, atCut bool) {
	lg.epoch++
	lg.members = members
	needs := append(slices.Clone(ch.joined), ch.restart...)
	founding := len(ch.joined) == len(members) // no one was there before
	var duties []transfer
	if donor, ok := t.donor(lg, needs, atCut); ok && !founding {
		for _, j := range needs {
			if i := lg.transferOf(j); i >= 0 {
				lg.restoring = slices.Delete(lg.restoring, i, i+1)
			}
			lg.xfers++
			tr := transfer{joiner: j, donor: donor, xfer: lg.xfers}
			lg.restoring = append(lg.restoring, tr)
			duties = append(duties, tr)
		}
	}
	g := lg.g
	if g == nil {
		return
	}
	self := slices.Index(members, t.self)
	if self < 0 {
		if g.member { // left, or failed to restore
			lg.g = nil
			g.end(g.leaveErr())
		}
		return // a joiner waits for its own request
	}
	v := &engine.View{Group: lg.name, Epoch: lg.epoch, Members: members, Self: self,
		Joined: ch.joined, Left: ch.left, Failed: ch.failed}
	first := !g.member || slices.Contains(ch.restart, t.self)
	if first && !slices.Contains(v.Joined, t.self) {
		v.Joined = append(slices.Clone(v.Joined), t.self)
	}
	g.member, g.cur = true, v
	g.id.Store(lg.id)
	g.setRanks(t.cview, members)
	if first {
		xfer := uint64(0)
		if i := lg.transferOf(t.self); i >= 0 {
			xfer = lg.restoring[i].xfer
		}
		g.startRestore(xfer)
	}
	for _, tr := range duties {
		if tr.donor == t.self {
			g.emit(event{snapshot: tr.xfer})
		}
	}
	g.emit(event{view: v})
	if first && g.xfer == 0 {
		g.joinDone()
	}
}

// donor picks the member that gives a joiner its state.
func (t *table) donor(lg *lgroup, needs []engine.MemberID, atCut bool) (engine.MemberID, bool) {
	for _, m := range lg.members {
		if slices.Contains(needs, m) {
			continue
		}
		if atCut && lg.transferOf(m) >= 0 {
			continue // at a cut, only a member that has its state
		}
		return m, true
	}
	return engine.MemberID{}, false
}

func (t *table) deleteIfEmpty(lg *lgroup) {
	if len(lg.members) == 0 && len(lg.queue) == 0 && t.byID[lg.id] == lg {
		delete(t.byID, lg.id)
		delete(t.byName, lg.name)
		if t.cache[lg.id%cacheSize] == lg {
			t.cache[lg.id%cacheSize] = nil
		}
		t.c.stats.groups.Add(-1)
	}
}

// state takes one chunk of a joiner's state. Every carrier member notes
// the end of a transfer; only the joiner keeps the chunks.
func (t *table) state(lg *lgroup, from engine.MemberID, xfer uint64, flags byte, chunk []byte) {
	if lg == nil {
		t.c.stats.stale.Add(1)
		return
	}
	i := slices.IndexFunc(lg.restoring, func(tr transfer) bool { return tr.xfer == xfer })
	if i < 0 || lg.restoring[i].donor != from || lg.restoring[i].failed {
		t.c.stats.stale.Add(1)
		return
	}
	tr := lg.restoring[i]
	if flags&stateFailed != 0 {
		lg.restoring[i].failed = true
	} else if flags&stateFinal != 0 {
		lg.restoring = slices.Delete(lg.restoring, i, i+1)
	}
	if tr.joiner == t.self && lg.g != nil && lg.g.xfer == xfer {
		lg.g.chunk(flags, chunk)
	}
}

// view is the carrier's View handler: a carrier view change is a cut
// where every survivor has delivered the same carrier messages, so every
// light group settles there at once: a flush under way completes, the
// queued requests apply, and members that left the carrier go, in one
// more view. Transfers whose donor went start again from a member that
// has its state.
func (t *table) onView(v engine.View) {
	t.cview = v
	t.self = v.Members[v.Self]
	t.c.view.Store(&v)
	inCarrier := make(map[engine.MemberID]bool, len(v.Members))
	for _, m := range v.Members {
		inCarrier[m] = true
	}
	for _, lg := range t.byID {
		t.cut(lg, v, inCarrier)
	}
	for _, lg := range t.byID {
		if lg.g != nil && lg.g.member {
			lg.g.setRanks(v, lg.members)
		}
	}
}

func (t *table) cut(lg *lgroup, v engine.View, inCarrier map[engine.MemberID]bool) {
	if lg.flushing {
		t.completeFlush(lg)
	}
	members := slices.Clone(lg.members)
	var ch change
	for _, rq := range lg.queue {
		switch {
		case !inCarrier[rq.who]:
		case rq.join && !slices.Contains(members, rq.who):
			members = append(members, rq.who)
			ch.joined = append(ch.joined, rq.who)
		case !rq.join && slices.Contains(members, rq.who):
			members = slices.DeleteFunc(members, func(m engine.MemberID) bool { return m == rq.who })
			if i := slices.Index(ch.joined, rq.who); i >= 0 {
				ch.joined = slices.Delete(ch.joined, i, i+1)
			} else {
				ch.left = append(ch.left, rq.who)
			}
		}
	}
	lg.queue = nil
	// Members gone from the carrier, and joiners whose donor's Snapshot
	// failed (they are leaving).
	members = slices.DeleteFunc(members, func(m engine.MemberID) bool {
		if !inCarrier[m] {
			if slices.Contains(v.Left, m) {
				ch.left = append(ch.left, m)
			} else {
				ch.failed = append(ch.failed, m)
			}
			return true
		}
		if i := lg.transferOf(m); i >= 0 && lg.restoring[i].failed {
			ch.left = append(ch.left, m)
			return true
		}
		return false
	})
	lg.restoring = slices.DeleteFunc(lg.restoring, func(tr transfer) bool { return !slices.Contains(members, tr.joiner) })
	// Transfers start again whose donor is gone or starts again itself.
	for changed := true; changed; {
		changed = false
		for _, tr := range lg.restoring {
			if slices.Contains(ch.restart, tr.joiner) {
				continue
			}
			if !slices.Contains(members, tr.donor) || slices.Contains(ch.restart, tr.donor) {
				ch.restart = append(ch.restart, tr.joiner)
				changed = true
			}
		}
	}
	if len(ch.restart) > 0 {
		holder := slices.ContainsFunc(members, func(m engine.MemberID) bool {
			return lg.transferOf(m) < 0 && !slices.Contains(ch.joined, m)
		})
		if !holder {
			// No one has the state: those waiting for it fail; joiners
			// of this cut found the group anew.
			for _, m := range ch.restart {
				members = slices.DeleteFunc(members, func(x engine.MemberID) bool { return x == m })
				ch.failed = append(ch.failed, m)
				if lg.g != nil && m == t.self {
					lg.g.failWith(fmt.Errorf("%w: every member that had the state is gone", engine.ErrStateTransfer), false)
				}
			}
			lg.restoring = nil
			ch.restart = nil
		}
	}
	if len(ch.joined)+len(ch.left)+len(ch.failed)+len(ch.restart) > 0 {
		t.install(lg, members, ch, true)
	}
	t.deleteIfEmpty(lg)
}

// errTable is a carrier snapshot that does not parse.
var errTable = errors.New("light: malformed carrier state")
