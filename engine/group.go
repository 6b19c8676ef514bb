package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cohort-vs/cohort/flush"
	"github.com/cohort-vs/cohort/internal/protocol"
	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/ring"
	"github.com/cohort-vs/cohort/udp"
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
	latency  *latencySampler // nil without Config.MeasureLatency
	consumed uint64          // queue items the protocol has been told about

	queue     *ring.SPSC[item]
	deliverCh chan struct{} // wakes the delivery goroutine
	released  chan struct{} // the send window has room again
	stopCh    chan struct{}
	stopOnce  sync.Once
	// The delivery goroutine runs while the group is active: started
	// when deliveries come and none runs, told to retire when the group
	// goes quiet (dstate: deliveryNone, deliveryRunning,
	// deliveryRetiring), so that thousands of idle groups hold no
	// goroutine stacks. spawnMu orders starts with stop.
	dstate    atomic.Int32
	spawnMu   sync.Mutex
	stopping  bool
	delivered sync.WaitGroup

	// Sends from the delivery goroutine (a handler replying) that found
	// the window full: they wait here, in order, for the protocol loop
	// to move them into the window (drainBacklog), so that the handler
	// never waits on the window, which its own undelivered messages may
	// be what holds. Later Sends from other goroutines wait behind them.
	backlogMu    sync.Mutex
	backlog      []backlogged
	backlogBytes int
	backlogLen   atomic.Int32
	backlogSize  atomic.Int64 // backlogBytes, for the protocol loop
	// hold: the protocol holds the other senders back (HoldOthers),
	// since holdTick; holdLow is the smallest backlog seen since, and
	// holdOff the tick before which it may not hold again (protoMu).
	holding           bool
	holdTick, holdOff int64
	holdLow           int64
	ticks             int64         // the engine's ticks
	deliveryGID       atomic.Uint64 // the delivery goroutine's id (goid)
	// delivering is set while the delivery goroutine runs handlers (not
	// while it waits for work): a Send that meets a full window while it
	// is set is most likely a handler's (see mayBeHandler).
	delivering atomic.Bool
	handlerSP  atomic.Uintptr // the delivery loop's frame, for mayBeHandler

	leave    atomic.Bool // Leave asked; the protocol loop carries it out
	blocked  atomic.Bool // no view could be installed for BlockTimeout
	ended    atomic.Pointer[error]
	endedCh  chan struct{}
	failErr  atomic.Pointer[error] // why it is leaving of its own accord: restoring the state failed
	viewCh   chan struct{}         // closed at the first view
	viewOnce sync.Once
	view     atomic.Pointer[View]

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
	restMu     sync.Mutex
	doneRest   map[wire.MemberID]bool
	watched    []netip.AddrPort // the members of its view the engine watches for it (protoMu)
	watchToken uint64           // its view's token (liveness.ViewToken)
	// Scheduling (schedule.go): on the active and dirty lists, and the
	// engine tick its clock has reached (-1: not yet started); protoMu.
	active, dirty bool
	tickedAt      int64
	quietAsked    int64       // when the protocol loop last asked whether it went quiet
	poked         atomic.Bool // on the poked list
	unlisted      atomic.Bool // removed from the engine
	// Owned by the delivery goroutine: restoring the state failed, nothing
	// more is delivered; the first view was seen.
	failed  bool
	known   bool
	endOnce sync.Once
}

// item is one entry of a group's delivery queue: a message, or an event
// (a view, the end of membership) in its place among the messages.
type item struct {
	d  protocol.Delivery
	ev *protocol.Event
}

// Join makes this engine a member of the group called name. seeds are
// addresses ("ip:port", or "host:port": every address of this engine's
// family the name resolves to now, and again three times per
// DiscoverTimeout while discovering, every 30 s after) of processes that
// may be members: Join contacts
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
	addrs, err := e.resolveSeeds(ctx, seeds)
	if err != nil {
		return nil, fmt.Errorf("engine: Join %q: %w", name, err)
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
			Budget:          e.budget,
			TrimTicks:       c.ticks(time.Second),
		},
		DiscoverTicks:     c.ticks(c.DiscoverTimeout),
		RetryTicks:        c.ticks(c.RetryInterval),
		SilentTicks:       c.ticks(c.SuspectTimeout),
		ProbeTicks:        c.ticks(c.ProbeTimeout),
		RoundTicks:        c.ticks(c.RoundTimeout),
		BlockTicks:        c.ticks(c.BlockTimeout),
		EvictLag:          c.EvictLag,
		EvictTicks:        c.evictTicks(),
		Quorum:            flush.Quorum(c.Quorum),
		QuorumStableTicks: c.ticks(c.QuorumWindow),
		Liveness:          e.live,
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
		tickedAt:  -1,
		track:     track,
	}
	if c.MeasureLatency {
		g.latency = &latencySampler{}
	}
	if err := e.add(g); err != nil {
		return nil, err
	}
	e.protoMu.Lock()
	if e.flow.counting {
		g.sender.ShareCount(&e.flow.held)
	}
	e.shareCounts()
	e.protoMu.Unlock()
	if hasNames(seeds) {
		go g.reresolve(seeds, addrs)
	}
	g.poke()
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
	if err := g.checkSend(o); err != nil {
		return err
	}
	flags := uint8(o & (Total | Safe))
	// Across groups: wait while all of them hold more than
	// EngineWindowBytes, if this one holds some (a group that holds
	// nothing may always start a message, so none waits for good).
	if g.e.flow.over() && g.sender.Pending() > 0 {
		if err := g.e.flow.wait(ctx, g); err != nil {
			return err
		}
	}
	// The fast path: the sender is free, nothing waits in the backlog,
	// and the message fits the window. Otherwise Send asks (once) whether
	// this is the delivery goroutine (a handler): that one never waits,
	// its message goes to the backlog.
	inHandler, asked := false, false
	handler := func() bool {
		if !asked {
			inHandler, asked = g.mayBeHandler(), true
		}
		return inHandler
	}
	// queue puts the rest of the message in the backlog; false: the
	// caller is no handler after all, and waits.
	queue := func(done int) (bool, error) {
		if err := g.backlogSend(flags, payload, done); err != errNotHandler {
			return true, err
		}
		inHandler = false
		return false, nil
	}
	if !g.sender.TryLock() {
		if handler() {
			if queued, err := queue(0); queued {
				return err
			}
		}
		g.sender.Lock()
	}
	defer g.sender.Unlock()
	done := 0
	for {
		select {
		case <-g.stopCh:
			return ErrClosed
		default:
		}
		if g.backlogLen.Load() > 0 && done == 0 {
			// Handler replies wait for the window: this message goes
			// after them.
			if handler() {
				if queued, err := queue(0); queued {
					return err
				}
			}
			// Wait without the sender, which the protocol loop needs to
			// move them into the window.
			g.sender.Unlock()
			err := g.waitRoom(ctx)
			g.sender.Lock()
			if err != nil {
				return err
			}
			continue
		}
		n, err := g.sender.TrySend(flags, payload, done)
		if err != nil {
			if errors.Is(err, protocol.ErrTooLarge) {
				return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), g.e.cfg.MaxMessageSize)
			}
			return err
		}
		if n > done {
			g.poke()
		}
		done = n
		if done == len(payload) {
			if g.latency != nil {
				g.latency.accept()
			}
			return nil
		}
		if handler() {
			// The rest goes through the backlog, ahead of anything sent
			// after it (the sender stays locked until it is queued).
			if queued, err := queue(done); queued {
				return err
			}
		}
		// The window is full: wait for the protocol to release room.
		if err := g.waitRoom(ctx); err != nil {
			if done > 0 && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				// Fragments already queued can't be taken back; finish the
				// message so the stream stays well formed.
				ctx = context.Background()
				continue
			}
			return err
		}
	}
}

// waitRoom waits until the protocol released room in the window, or ctx
// or the membership ends.
func (g *Group) waitRoom(ctx context.Context) error { return g.waitFor(ctx, g.released) }

// waitFor waits until ch is ready, or ctx is done, or the membership
// ends or stops.
func (g *Group) waitFor(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-g.endedCh:
		return *g.ended.Load()
	case <-g.stopCh:
		return ErrClosed
	}
}

// checkSend reports why a message cannot be sent now, if it cannot.
func (g *Group) checkSend(o Ordering) error {
	if o&^(Total|Safe) != 0 {
		return fmt.Errorf("%w: %d", ErrUnsupported, o)
	}
	if err := g.ended.Load(); err != nil {
		return *err
	}
	if g.blocked.Load() {
		return fmt.Errorf("%w: group %q has installed no view for BlockTimeout (%v)", ErrBlocked, g.name, g.e.cfg.BlockTimeout)
	}
	if o&Total == Causal {
		if v := g.view.Load(); v != nil && len(v.Members) > protocol.MaxCausalMembers(g.e.cfg.frameDatagram()) {
			return fmt.Errorf("%w: causal messages in a view of %d members need a MaxDatagram above %d", ErrTooLarge, len(v.Members), g.e.cfg.MaxDatagram)
		}
	}
	return nil
}

// Leave leaves the group gracefully: this member's messages sent so far
// are delivered to the others, then a view without it is installed. Leave
// returns when that has happened (nil), or when ctx ends. From a handler
// it starts leaving and returns nil at once: the end comes through the
// handlers' own goroutine (Handlers.Ended receives ErrLeft).
func (g *Group) Leave(ctx context.Context) error {
	g.leave.Store(true)
	g.poke()
	if g.inHandler() {
		return nil // the end comes through this very goroutine: Ended
	}
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
// rather than on every message. From a handler it fails at once with an
// error wrapping ErrInHandler.
func (g *Group) Flush(ctx context.Context) error {
	if g.inHandler() {
		return fmt.Errorf("%w: Flush waits for deliveries this handler holds up; call it from another goroutine", ErrInHandler)
	}
	g.e.protoMu.Lock()
	point := g.proto.FlushPoint()
	g.e.protoMu.Unlock()
	g.poke()
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

// Stats returns the group's counters now. It takes the engine's
// protocol lock for about a microsecond (they are read when asked for,
// not copied out at every tick of every group).
func (g *Group) Stats() Stats {
	g.e.protoMu.Lock()
	st := Stats{Traffic: Traffic(g.proto.Traffic()), Membership: Membership(g.proto.Stats()), Epoch: g.proto.View().Epoch,
		Rejoins: g.track.rejoins.Load(), TimesEvicted: g.track.evicted.Load(), SendWindow: g.sender.Pending(), MaxLag: g.proto.MaxLag()}
	g.e.protoMu.Unlock()
	if g.latency != nil {
		st.Latency = g.latency.read()
	}
	return st
}

// tick moves g's clock n ticks on; protoMu held.
func (g *Group) tick(n int64) {
	g.ticks += n
	g.tickedAt += n
	g.proto.TickN(n)
	for range n {
		g.stateTick()
	}
	if trim := int64(g.e.cfg.ticks(time.Second)); g.ticks/trim != (g.ticks-n)/trim {
		g.queue.Trim() // once a second: a queue deep once keeps no memory idle
	}
	g.blocked.Store(g.proto.Blocked() >= int64(g.e.cfg.ticks(g.e.cfg.BlockTimeout)))
}

// service runs under the engine's protoMu: it reports the application's
// progress to the protocol, then carries out everything the protocol has
// to do.
func (g *Group) service() {
	g.drainBacklog()
	g.holdOthers()
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
			switch {
			case ev.View != nil:
				g.e.watchView(g, ev.View)
			case ev.Err != nil:
				g.e.unwatchAll(g)
			}
			// Cannot fail: the queue has room for every delivery the
			// protocol may have outstanding, and events are few.
			g.queue.Push(item{ev: &ev})
		}
		for _, d := range rd.Deliveries {
			g.queue.Push(item{d: d})
		}
		if len(rd.Deliveries)+len(events) > 0 {
			g.wakeDelivery()
			// The delivery goroutine runs at the end of the round
			// (endRound), once the datagrams are out; or now, when more
			// is to come of this group (whose datagrams are then large,
			// and out already).
			if rd.More {
				runtime.Gosched()
			} else {
				g.e.yield = true
			}
		}
		if rd.Released {
			g.drainBacklog()
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

const (
	deliveryNone int32 = iota
	deliveryRunning
	deliveryRetiring
)

// wakeDelivery has the delivery goroutine take what was queued: it wakes
// it, or calls back one retiring, or starts one; protoMu held.
func (g *Group) wakeDelivery() {
	for {
		switch g.dstate.Load() {
		case deliveryRetiring:
			if !g.dstate.CompareAndSwap(deliveryRetiring, deliveryRunning) {
				continue // it retired just now
			}
			fallthrough
		case deliveryRunning:
			select {
			case g.deliverCh <- struct{}{}:
			default:
			}
			return
		case deliveryNone:
			g.spawnMu.Lock()
			if !g.stopping {
				g.dstate.Store(deliveryRunning)
				g.delivered.Add(1)
				go g.deliveryLoop()
			}
			g.spawnMu.Unlock()
			return
		}
	}
}

// retireDelivery tells the delivery goroutine of a group gone quiet to
// end once its queue is empty (a delivery queued meanwhile calls it
// back); protoMu held.
func (g *Group) retireDelivery() {
	if g.dstate.CompareAndSwap(deliveryRunning, deliveryRetiring) {
		select {
		case g.deliverCh <- struct{}{}:
		default:
		}
	}
}

// deliveryLoop runs the application's handlers for each delivery and
// event, in order, while the group is active.
func (g *Group) deliveryLoop() {
	defer g.delivered.Done()
	id := goid()
	g.deliveryGID.Store(id)
	g.e.flow.handlers.Store(id, g)
	defer g.e.flow.handlers.Delete(id)
	var batch uint64
	active := false
	for {
		it, ok := g.queue.Peek()
		if ok && !active {
			active = true
			var top byte // where handlers' frames begin (the stack may have moved since the last batch)
			g.handlerSP.Store(uintptr(unsafe.Pointer(&top)))
			g.delivering.Store(true)
		}
		if !ok {
			if active {
				active = false
				g.delivering.Store(false)
			}
			if batch > 0 {
				g.poke() // report progress to the protocol loop
				batch = 0
			}
			if g.dstate.Load() == deliveryRetiring && g.dstate.CompareAndSwap(deliveryRetiring, deliveryNone) {
				return // the queue is empty, and the protocol will start another for what comes
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
			g.poke()
			batch = 0
			continue
		}
		g.handle(it)
		g.queue.Pop()
		if batch++; batch == 256 {
			g.poke()
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
		if g.latency != nil && it.d.Origin == v.Self {
			g.latency.deliver()
		}
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
	if f := g.failErr.Load(); f != nil {
		err = *f // it left because it could not restore the state
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
	g.spawnMu.Lock()
	g.stopping = true // no delivery goroutine starts after this
	g.spawnMu.Unlock()
	g.stopOnce.Do(func() { close(g.stopCh) })
	g.delivered.Wait()
}

// backlogged is a handler's Send waiting for the window: a copy of its
// payload and how much of it (fragments) is in the window already.
type backlogged struct {
	flags   uint8
	payload []byte
	done    int
}

// holdOthers: while handlers' replies wait for the window, past half a
// window of them, the member stops reporting the other senders' messages
// as consumed (protocol HoldOthers), so that a handler replying to a flood
// slows the flood rather than queue without end; it lets go below a
// quarter. Two members whose handlers reply to each other could hold
// each other for good: a hold under which the backlog has not shrunk for
// holdStall is let go, and not taken again for as long. protoMu held.
func (g *Group) holdOthers() {
	size, w := g.backlogSize.Load(), int64(g.e.cfg.WindowBytes)
	switch {
	case !g.holding && size > w/2 && g.ticks >= g.holdOff:
		g.holding, g.holdTick, g.holdLow = true, g.ticks, size
		g.proto.HoldOthers(true)
	case g.holding && size < w/4:
		g.holding = false
		g.proto.HoldOthers(false)
	case g.holding && size < g.holdLow:
		g.holdLow, g.holdTick = size, g.ticks // progress
	case g.holding && g.ticks-g.holdTick >= holdStall(g.e.cfg):
		g.holding, g.holdOff = false, g.ticks+holdStall(g.e.cfg)
		g.proto.HoldOthers(false)
	}
}

// holdStall is how long a hold may go without the backlog shrinking:
// a few status rounds.
func holdStall(c Config) int64 { return int64(c.ticks(10 * c.StatusInterval)) }

// backlogSend queues the rest of a Send from the delivery goroutine behind
// the backlog. Past half a window of it, the other senders are held back
// (holdOthers); it fails, rather than waits, past two windows (a handler
// that sends many messages for each one it receives).
func (g *Group) backlogSend(flags uint8, payload []byte, done int) error {
	if len(payload) > g.e.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), g.e.cfg.MaxMessageSize)
	}
	g.backlogMu.Lock()
	defer g.backlogMu.Unlock()
	if g.backlogBytes > 0 && g.backlogBytes+len(payload)-done > 2*g.e.cfg.WindowBytes {
		if !g.inHandler() {
			return errNotHandler // mayBeHandler was wrong: it waits
		}
		return fmt.Errorf("%w: %d bytes sent from handlers wait for the window already (2*WindowBytes, %d, at most)", ErrHandlerBacklog, g.backlogBytes, 2*g.e.cfg.WindowBytes)
	}
	g.backlog = append(g.backlog, backlogged{flags: flags, payload: bytes.Clone(payload), done: done})
	g.backlogBytes += len(payload) - done
	g.backlogSize.Store(int64(g.backlogBytes))
	g.backlogLen.Add(1)
	g.poke()
	return nil
}

// drainBacklog moves handler replies into the window, in order, as far as
// it has room; protoMu held. It never waits: if an application goroutine
// holds the sender, it tries again at the next service.
func (g *Group) drainBacklog() {
	if g.backlogLen.Load() == 0 || !g.sender.TryLock() {
		return
	}
	defer g.sender.Unlock()
	g.backlogMu.Lock()
	defer g.backlogMu.Unlock()
	k := 0
	for ; k < len(g.backlog); k++ {
		b := &g.backlog[k]
		n, err := g.sender.TrySend(b.flags, b.payload, b.done)
		if err != nil {
			g.e.log.Error("cohort: a handler's message could not be sent", "group", g.name, "err", err) // cannot happen: checked in defer
			n = len(b.payload)
		}
		g.backlogBytes -= n - b.done
		g.backlogSize.Store(int64(g.backlogBytes))
		b.done = n
		if n < len(b.payload) {
			break
		}
		if g.latency != nil {
			g.latency.accept()
		}
	}
	if k > 0 {
		clear(g.backlog[:k])
		g.backlog = g.backlog[k:]
		g.backlogLen.Add(int32(-k))
		if len(g.backlog) == 0 {
			g.backlog = nil
			select { // Sends from other goroutines waited behind them
			case g.released <- struct{}{}:
			default:
			}
		}
	}
}

// InHandler reports whether the caller runs on this group's delivery
// goroutine (one of its handlers, Snapshot or Restore): a layer above the
// group uses it to refuse what would wait on its own deliveries. It costs
// microseconds.
func (g *Group) InHandler() bool { return g.inHandler() }

// errNotHandler: backlogSend found its caller is no handler after all.
var errNotHandler = errors.New("engine: not on the delivery goroutine")

// inHandler reports whether the caller is the delivery goroutine (a
// handler, Snapshot or Restore). It costs microseconds (goid).
func (g *Group) inHandler() bool {
	return g.delivering.Load() && goid() == g.deliveryGID.Load()
}

// handlerStackSpan bounds how far below the delivery loop's frame a
// handler's Send can run on the same stack.
const handlerStackSpan = 256 << 10

// mayBeHandler is inHandler for Send's slow paths, in nanoseconds: a
// caller whose stack lies just below the delivery loop's frame is taken
// as a handler without asking goid. It may take another goroutine whose
// stack happens to lie there for one: that Send then goes to the backlog
// (in order, bounded) rather than wait, and backlogSend asks inHandler
// before it would fail one. It never misses a handler: a stack that
// moved (grown) falls back to goid.
func (g *Group) mayBeHandler() bool {
	if !g.delivering.Load() {
		return false
	}
	var here byte
	if g.handlerSP.Load()-uintptr(unsafe.Pointer(&here)) < handlerStackSpan {
		return true
	}
	return goid() == g.deliveryGID.Load()
}

// goid is the calling goroutine's id, read from the first line of its
// stack trace ("goroutine 42 [running]:"). A few microseconds: only the
// slow paths ask.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// resolveSeeds turns seeds, "ip:port" or "host:port", into addresses: a
// host name gives every address it resolves to in this engine's address
// family. A seed that does not resolve is an error (a typo must not make
// a process form a group of its own).
func (e *Engine) resolveSeeds(ctx context.Context, seeds []string) ([]netip.AddrPort, error) {
	var addrs []netip.AddrPort
	for i, s := range seeds {
		if a, err := netip.ParseAddrPort(s); err == nil {
			addrs = append(addrs, a)
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("seed %d, %q: want ip:port or host:port: %w", i, s, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("seed %d, %q: port: %w", i, s, err)
		}
		ips, err := e.lookup(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("seed %d, %q: %w", i, s, err)
		}
		n := len(addrs)
		for _, ip := range ips {
			if ip.Unmap().Is4() == e.addr.Addr().Unmap().Is4() {
				addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
			}
		}
		if len(addrs) == n {
			return nil, fmt.Errorf("seed %d, %q: no address of this engine's family (%s)", i, s, e.addr.Addr())
		}
	}
	return addrs, nil
}

func hasNames(seeds []string) bool {
	for _, s := range seeds {
		if _, err := netip.ParseAddrPort(s); err != nil {
			return true
		}
	}
	return false
}

// reresolve resolves seeds given as host names again, three times per
// DiscoverTimeout while the process is looking for its group (a name
// may point elsewhere by now) and every 30 s once in a view (a blocked
// member asks its seeds), until the membership ends. A lookup that
// fails keeps the addresses known.
func (g *Group) reresolve(seeds []string, known []netip.AddrPort) {
	for {
		every := 30 * time.Second
		g.e.protoMu.Lock()
		if g.proto.Discovering() {
			every = max(g.e.cfg.DiscoverTimeout/3, time.Millisecond)
		}
		g.e.protoMu.Unlock()
		t := time.NewTimer(every)
		select {
		case <-t.C:
		case <-g.endedCh:
			t.Stop()
			return
		case <-g.stopCh:
			t.Stop()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(g.e.cfg.DiscoverTimeout, time.Second))
		addrs, err := g.e.resolveSeeds(ctx, seeds)
		cancel()
		if err != nil || slices.Equal(addrs, known) {
			continue
		}
		known = addrs
		g.e.protoMu.Lock()
		g.proto.SetSeeds(addrs)
		g.e.protoMu.Unlock()
	}
}
