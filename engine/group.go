package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cohort-vs/cohort/protocol"
	"github.com/cohort-vs/cohort/ring"
	"github.com/cohort-vs/cohort/udp"
	"github.com/cohort-vs/cohort/wire"
)

// Group is this engine's membership in one process group.
type Group struct {
	e        *Engine
	name     string
	id       uint64
	handlers Handlers
	track    *rejoinTrack // shared by the incarnations Rejoin makes
	joinedAt atomic.Int64 // when its first view came (monotonic ns since the engine started)

	// Owned by the goroutine holding the engine's protoMu.
	proto    *protocol.Group
	sender   *protocol.Sender
	consumed uint64 // queue items the protocol has been told about

	queue     *ring.SPSC[item]
	deliverCh chan struct{} // wakes the delivery goroutine
	released  chan struct{} // the send window has room again
	stopCh    chan struct{}
	stopOnce  sync.Once
	delivered sync.WaitGroup

	leave    atomic.Bool // Leave asked; the protocol loop carries it out
	blocked  atomic.Bool // no view could be installed for BlockTimeout
	ended    atomic.Pointer[error]
	endedCh  chan struct{}
	viewCh   chan struct{} // closed at the first view
	viewOnce sync.Once
	view     atomic.Pointer[View]

	statsMu sync.Mutex
	stats   Stats

	// State transfer. The delivery goroutine hands new transfers to the
	// protocol loop through newSends and newRecv (under xferMu).
	xferMu      sync.Mutex
	newSends    []*outXfer
	newRecv     *inXfer
	xferPending atomic.Bool // something for stateService to do
	// Owned by the goroutine holding protoMu.
	sends     []*outXfer
	recv      *inXfer
	xferBuf   []byte
	xferOut   []udp.Datagram
	doneSent  uint64        // the epoch of the StateDone this member sent
	doneEpoch atomic.Uint64 // StateDone to send, for this epoch
	restarts  atomic.Uint64 // state transfers started over
	// Members that sent StateDone, noted by the protocol loop.
	restMu   sync.Mutex
	doneRest map[wire.MemberID]bool
	// Owned by the delivery goroutine: restoring the state failed, nothing
	// more is delivered; the first view was seen; members this one counts
	// as restoring (see stateAtView).
	failed  bool
	known   bool
	pending map[wire.MemberID]bool
	endOnce sync.Once
}

// item is one entry of a group's delivery queue: a message, or an event
// (a view, the end of membership) in its place among the messages.
type item struct {
	d  protocol.Delivery
	ev *protocol.Event
}

// Join makes this engine a member of the group called name. seeds are
// addresses ("ip:port") of processes that may be members: Join contacts
// them, joins the group through any member, or, when none answers within
// DiscoverTimeout, forms the group (if several processes start together,
// the one with the lowest address forms it and the others join). This
// engine's own address may be among the seeds; with no other seed it
// forms a group alone. Join returns at the first view; later views arrive
// through Handlers.View.
func (e *Engine) Join(ctx context.Context, name string, seeds []string, h Handlers) (*Group, error) {
	return e.join(ctx, name, seeds, h, &rejoinTrack{})
}

// join is Join, carrying what the engine remembers of the group's
// earlier incarnations (a new one for an application's Join).
func (e *Engine) join(ctx context.Context, name string, seeds []string, h Handlers, track *rejoinTrack) (*Group, error) {
	if h.Deliver == nil {
		return nil, errors.New("engine: Join: Handlers.Deliver is required")
	}
	if name == "" {
		return nil, errors.New("engine: Join: empty group name")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var addrs []netip.AddrPort
	for i, s := range seeds {
		a, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("engine: Join %q: seed %d: %w", name, i, err)
		}
		addrs = append(addrs, a)
	}
	c := &e.cfg
	proto, err := protocol.NewGroup(protocol.GroupConfig{
		Group:      wire.GroupID(name),
		Self:       wire.MemberID{Addr: e.Addr(), Incarnation: e.nextIncarnation()},
		Seeds:      addrs,
		MaxMembers: c.MaxMembers,
		Member: protocol.Config{
			MaxDatagram: c.frameDatagram(), MaxMessageSize: c.MaxMessageSize,
			WindowMessages: c.WindowMessages, WindowBytes: c.WindowBytes,
			DeliveryQueue: c.DeliveryQueue,
			StatusTicks:   c.ticks(c.StatusInterval), NAKTicks: c.ticks(c.NAKInterval),
			MaxOutDatagrams: 64,
			Sequencer:       c.SequencerRank,
		},
		DiscoverTicks: c.ticks(c.DiscoverTimeout),
		RetryTicks:    c.ticks(c.RetryInterval),
		SilentTicks:   c.ticks(c.SuspectTimeout),
		ProbeTicks:    c.ticks(c.ProbeTimeout),
		RoundTicks:    c.ticks(c.RoundTimeout),
		BlockTicks:    c.ticks(c.BlockTimeout),
		EvictLag:      c.EvictLag,
		EvictTicks:    c.evictTicks(),
	})
	if err != nil {
		return nil, fmt.Errorf("engine: Join %q: %w", name, err)
	}
	g := &Group{
		e: e, name: name, id: wire.GroupID(name), handlers: h,
		proto: proto, sender: proto.Sender(),
		// Room for every delivery the protocol may hand out, plus events.
		queue:     ring.NewSPSC[item](c.DeliveryQueue + 64),
		deliverCh: make(chan struct{}, 1),
		released:  make(chan struct{}, 1),
		stopCh:    make(chan struct{}),
		endedCh:   make(chan struct{}),
		viewCh:    make(chan struct{}),
		doneRest:  map[wire.MemberID]bool{},
		pending:   map[wire.MemberID]bool{},
		track:     track,
	}
	if err := e.add(g); err != nil {
		return nil, err
	}
	g.delivered.Add(1)
	go g.deliveryLoop()
	e.poke()
	select {
	case <-g.viewCh:
		return g, nil
	case <-g.endedCh:
		e.remove(g)
		return nil, *g.ended.Load()
	case <-ctx.Done():
		e.remove(g)
		return nil, fmt.Errorf("engine: Join %q: no view yet: %w", name, ctx.Err())
	case <-e.done:
		return nil, ErrClosed
	}
}

// Name is the group's name.
func (g *Group) Name() string { return g.name }

// View is the group's current view, as the application has seen it (the
// last one given to Handlers.View).
func (g *Group) View() View {
	if v := g.view.Load(); v != nil {
		return *v
	}
	return View{Group: g.name}
}

// Send multicasts payload to every member with the given ordering. It
// returns once the message is in this member's send window (the payload
// may be reused at once); when the window is full it waits for the slowest
// member (flow control) until ctx ends. During a view change the message
// waits for the new view. Send allocates nothing.
func (g *Group) Send(ctx context.Context, o Ordering, payload []byte) error {
	if o&^(Total|Safe) != 0 {
		return fmt.Errorf("%w: %d", ErrUnsupported, o)
	}
	if err := g.ended.Load(); err != nil {
		return *err
	}
	if g.blocked.Load() {
		return ErrBlocked
	}
	if o&Total == Causal {
		if v := g.view.Load(); v != nil && len(v.Members) > protocol.MaxCausalMembers(g.e.cfg.frameDatagram()) {
			return fmt.Errorf("%w: causal messages in a view of %d members need a MaxDatagram above %d", ErrTooLarge, len(v.Members), g.e.cfg.MaxDatagram)
		}
	}
	flags := uint8(o & (Total | Safe))
	g.sender.Lock()
	defer g.sender.Unlock()
	done := 0
	for {
		select {
		case <-g.stopCh:
			return ErrClosed
		default:
		}
		n, err := g.sender.TrySend(flags, payload, done)
		if err != nil {
			if errors.Is(err, protocol.ErrTooLarge) {
				return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), g.e.cfg.MaxMessageSize)
			}
			return err
		}
		if n > done {
			g.e.poke()
		}
		done = n
		if done == len(payload) {
			return nil
		}
		// The window is full: wait for the protocol to release room.
		select {
		case <-g.released:
		case <-ctx.Done():
			if done > 0 {
				// Fragments already queued can't be taken back; finish the
				// message so the stream stays well formed.
				ctx = context.Background()
				continue
			}
			return ctx.Err()
		case <-g.endedCh:
			return *g.ended.Load()
		case <-g.stopCh:
			return ErrClosed
		}
	}
}

// Leave leaves the group gracefully: this member's messages sent so far
// are delivered to the others, then a view without it is installed. Leave
// returns when that has happened (nil), or when ctx ends.
func (g *Group) Leave(ctx context.Context) error {
	g.leave.Store(true)
	g.e.poke()
	select {
	case <-g.endedCh:
		if err := *g.ended.Load(); !errors.Is(err, ErrLeft) {
			return err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stopCh:
		return ErrClosed
	}
}

// Flush returns once every message this member has sent or delivered so
// far is held by every member of the view (or a view change has made the
// survivors agree on them). What it buys: a flushed message survives the
// crash of any minority of the group, as a message of a Paxos-like
// protocol would, at the cost of waiting for the slowest member once
// rather than on every message.
func (g *Group) Flush(ctx context.Context) error {
	g.e.protoMu.Lock()
	point := g.proto.FlushPoint()
	g.e.protoMu.Unlock()
	g.e.poke()
	t := time.NewTicker(g.e.cfg.TickInterval)
	defer t.Stop()
	for {
		g.e.protoMu.Lock()
		done := g.proto.Flushed(point)
		g.e.protoMu.Unlock()
		if done {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-g.endedCh:
			return *g.ended.Load()
		case <-g.stopCh:
			return ErrClosed
		}
	}
}

// Stats are a group member's counters: traffic summed over its views, and
// membership.
type Stats struct {
	protocol.Stats
	protocol.GroupStats
	Epoch uint64 // the current view's number
	// Rejoins and TimesEvicted count, over the incarnations that
	// Config.Rejoin made of this membership, how often it joined again
	// and how often it was evicted as too slow.
	Rejoins      uint64
	TimesEvicted uint64
}

// Stats returns the group's counters as of the last protocol tick.
func (g *Group) Stats() Stats {
	g.statsMu.Lock()
	defer g.statsMu.Unlock()
	return g.stats
}

// tick runs under the engine's protoMu.
func (g *Group) tick() {
	g.proto.Tick()
	g.stateTick()
	st := Stats{Stats: g.proto.Traffic(), GroupStats: g.proto.Stats(), Epoch: g.proto.View().Epoch,
		Rejoins: g.track.rejoins.Load(), TimesEvicted: g.track.evicted.Load()}
	g.statsMu.Lock()
	g.stats = st
	g.statsMu.Unlock()
	g.blocked.Store(g.proto.Blocked() >= int64(g.e.cfg.ticks(g.e.cfg.BlockTimeout)))
}

// service runs under the engine's protoMu: it reports the application's
// progress to the protocol, then carries out everything the protocol has
// to do.
func (g *Group) service() {
	if g.leave.Load() && g.proto.Ended() == nil {
		g.leave.Store(false)
		g.proto.Leave()
	}
	if c := g.queue.Popped(); c != g.consumed {
		g.proto.Consumed(int(c - g.consumed))
		g.consumed = c
	}
	for {
		rd := g.proto.Ready()
		g.e.write(rd.Datagrams)
		events := g.proto.Events()
		for i := range events {
			ev := events[i]
			// Cannot fail: the queue has room for every delivery the
			// protocol may have outstanding, and events are few.
			g.queue.Push(item{ev: &ev})
		}
		for _, d := range rd.Deliveries {
			g.queue.Push(item{d: d})
		}
		if len(rd.Deliveries)+len(events) > 0 {
			select {
			case g.deliverCh <- struct{}{}:
			default:
			}
			// Let the delivery goroutine run now. With one P it would wait
			// until this goroutine blocks, and behind any goroutine readied
			// after it (the runtime runs the most recently readied first):
			// at a sender, behind the application's next burst of Sends.
			runtime.Gosched()
		}
		if rd.Released {
			select {
			case g.released <- struct{}{}:
			default:
			}
		}
		more := rd.More
		g.proto.Advance()
		if !more {
			g.stateService()
			return
		}
	}
}

// deliveryLoop runs the application's handlers for each delivery and
// event, in order.
func (g *Group) deliveryLoop() {
	defer g.delivered.Done()
	var batch uint64
	for {
		it, ok := g.queue.Peek()
		if !ok {
			if batch > 0 {
				g.e.poke() // report progress to the protocol loop
				batch = 0
			}
			select {
			case <-g.deliverCh:
				continue
			case <-g.stopCh:
				return
			}
		}
		if ev := it.ev; ev != nil && ev.View != nil && !g.failed && g.needsRestore(ev.View) {
			g.queue.Pop()
			if !g.restore(ev) {
				return
			}
			g.e.poke()
			batch = 0
			continue
		}
		g.handle(it)
		g.queue.Pop()
		if batch++; batch == 256 {
			g.e.poke()
			batch = 0
		}
	}
}

// handle runs the application's handler for one item.
func (g *Group) handle(it *item) {
	switch {
	case g.failed:
		// Restoring the state failed: only the end of membership is
		// still of interest (its handler has run already, unless the
		// protocol ended membership first).
		if it.ev != nil && it.ev.View == nil {
			g.event(it.ev)
		}
	case it.ev != nil:
		g.event(it.ev)
	default:
		v := g.view.Load()
		g.handlers.Deliver(Message{
			Sender:   v.Members[it.d.Origin],
			Rank:     it.d.Origin,
			Seq:      it.d.Seq,
			Ordering: Ordering(it.d.Flags) & (Total | Safe),
			Payload:  it.d.Payload,
		})
	}
}

// event hands a view or the end of membership to the application.
func (g *Group) event(ev *protocol.Event) {
	if ev.View != nil {
		g.stateAtView(ev.View)
		v := View{Group: g.name, Epoch: ev.View.Epoch, Self: ev.View.Self}
		for _, m := range ev.View.Members {
			v.Members = append(v.Members, MemberID{Addr: m.Addr, Incarnation: m.Incarnation})
		}
		for _, r := range ev.View.Joined {
			v.Joined = append(v.Joined, v.Members[r])
		}
		for _, m := range ev.View.Left {
			v.Left = append(v.Left, MemberID{Addr: m.Addr, Incarnation: m.Incarnation})
		}
		for _, m := range ev.View.Failed {
			v.Failed = append(v.Failed, MemberID{Addr: m.Addr, Incarnation: m.Incarnation})
		}
		for _, m := range ev.View.Evicted {
			v.Evicted = append(v.Evicted, MemberID{Addr: m.Addr, Incarnation: m.Incarnation})
		}
		g.view.Store(&v)
		if g.handlers.View != nil {
			g.handlers.View(v)
		}
		g.viewOnce.Do(func() {
			g.joinedAt.Store(int64(time.Since(g.e.start)))
			close(g.viewCh)
		})
		return
	}
	err := ErrRemoved
	switch {
	case errors.Is(ev.Err, protocol.ErrLeft):
		err = ErrLeft
	case errors.Is(ev.Err, protocol.ErrEvicted):
		err = ErrEvicted
	case errors.Is(ev.Err, protocol.ErrJoinFull):
		err = fmt.Errorf("%w: Join %q: its views are at their MaxMembers (%d)", ErrFull, g.name, g.e.cfg.MaxMembers)
	case errors.Is(ev.Err, protocol.ErrJoinBlocked):
		err = fmt.Errorf("%w: Join %q: the group stayed blocked for BlockTimeout (%v), so no view could take this member; retry once a majority of its members is reachable", ErrBlocked, g.name, g.e.cfg.BlockTimeout)
	}
	g.finish(err, ev)
}

// finish ends membership with err, once.
func (g *Group) finish(err error, ev *protocol.Event) {
	g.endOnce.Do(func() {
		g.ended.Store(&err)
		close(g.endedCh)
		if g.handlers.Ended != nil {
			g.handlers.Ended(err)
		}
		if errors.Is(err, ErrEvicted) {
			g.track.evicted.Add(1)
		}
		switch {
		case ev != nil && errors.Is(err, ErrRemoved) && g.e.cfg.Rejoin:
			go g.e.rejoin(g, ev.Redirect, g.e.rejoinDelay(g, errors.Is(err, ErrEvicted)))
		default:
			// Membership is over: unregister, so the engine stops serving
			// it (asynchronously: this runs on the goroutine that stop
			// waits for).
			go g.e.remove(g)
		}
	})
}

func (g *Group) stop() {
	g.stopOnce.Do(func() { close(g.stopCh) })
	g.delivered.Wait()
}
