package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"

	"github.com/cohort-vs/cohort/protocol"
	"github.com/cohort-vs/cohort/ring"
	"github.com/cohort-vs/cohort/wire"
)

// Group is this engine's membership in one process group.
type Group struct {
	e        *Engine
	name     string
	id       uint64
	view     View
	handlers Handlers

	// Owned by the goroutine holding the engine's protoMu.
	member   *protocol.Member
	sender   *protocol.Sender
	consumed uint64 // deliveries the protocol has been told about

	deliveries *ring.SPSC[protocol.Delivery]
	deliverCh  chan struct{} // wakes the delivery goroutine
	released   chan struct{} // the send window has room again
	stopCh     chan struct{}
	stopOnce   sync.Once
	delivered  sync.WaitGroup

	statsMu sync.Mutex
	stats   protocol.Stats
}

// Join makes this engine a member of the group called name whose members
// are the given addresses ("ip:port", this engine's own included), in an
// order every member must agree on: the first is the oldest. In this
// version the member list is fixed for the group's life.
func (e *Engine) Join(ctx context.Context, name string, members []string, h Handlers) (*Group, error) {
	if h.Deliver == nil {
		return nil, errors.New("engine: Join: Handlers.Deliver is required")
	}
	if name == "" {
		return nil, errors.New("engine: Join: empty group name")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	addrs := make([]netip.AddrPort, len(members))
	self := -1
	for i, s := range members {
		a, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("engine: Join %q: member %d: %w", name, i, err)
		}
		addrs[i] = a
		if a == e.Addr() {
			self = i
		}
	}
	if self < 0 {
		return nil, fmt.Errorf("engine: Join %q: the member list must include this engine's address %v", name, e.Addr())
	}
	c := &e.cfg
	m, err := protocol.New(protocol.Config{
		Group: wire.GroupID(name), Epoch: 1, Self: self, Members: addrs,
		MaxDatagram: c.MaxDatagram, MaxMessageSize: c.MaxMessageSize,
		WindowMessages: c.WindowMessages, WindowBytes: c.WindowBytes,
		DeliveryQueue: c.DeliveryQueue,
		StatusTicks:   c.ticks(c.StatusInterval), NAKTicks: c.ticks(c.NAKInterval),
		MaxOutDatagrams: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("engine: Join %q: %w", name, err)
	}
	g := &Group{
		e: e, name: name, id: wire.GroupID(name), handlers: h,
		member: m, sender: m.Sender(),
		deliveries: ring.NewSPSC[protocol.Delivery](c.DeliveryQueue),
		deliverCh:  make(chan struct{}, 1),
		released:   make(chan struct{}, 1),
		stopCh:     make(chan struct{}),
	}
	g.view = View{Group: name, Epoch: 1, Self: self}
	for _, a := range addrs {
		g.view.Members = append(g.view.Members, MemberID{Addr: a})
	}

	e.mu.Lock()
	select {
	case <-e.done:
		e.mu.Unlock()
		return nil, ErrClosed
	default:
	}
	if _, ok := e.groups[g.id]; ok {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrJoined, name)
	}
	e.groups[g.id] = g
	list := make([]*Group, 0, len(e.groups))
	for _, x := range e.groups {
		list = append(list, x)
	}
	e.groupList.Store(&list)
	e.mu.Unlock()

	if h.View != nil {
		h.View(g.view)
	}
	g.delivered.Add(1)
	go g.deliveryLoop()
	e.poke()
	return g, nil
}

// Name is the group's name.
func (g *Group) Name() string { return g.name }

// View is the group's current view.
func (g *Group) View() View { return g.view }

// Send multicasts payload to every member with the given ordering. It
// returns once the message is in this member's send window (the payload
// may be reused at once); when the window is full it waits for the slowest
// member (flow control) until ctx ends. Send allocates nothing.
func (g *Group) Send(ctx context.Context, o Ordering, payload []byte) error {
	if o&^FIFO != 0 {
		return fmt.Errorf("%w: %v", ErrUnsupported, o)
	}
	flags := uint8(o & 3)
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
		// The window is full: wait for the protocol loop to release room.
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
		case <-g.stopCh:
			return ErrClosed
		}
	}
}

// Stats are a group member's protocol counters.
type Stats = protocol.Stats

// Stats returns the group's counters as of the last protocol tick.
func (g *Group) Stats() Stats {
	g.statsMu.Lock()
	defer g.statsMu.Unlock()
	return g.stats
}

// tick runs under the engine's protoMu.
func (g *Group) tick() {
	g.member.Tick()
	g.statsMu.Lock()
	g.stats = g.member.Stats()
	g.statsMu.Unlock()
}

// service runs under the engine's protoMu: it reports the application's
// progress to the protocol, then carries out everything the protocol has
// to do.
func (g *Group) service() {
	if c := g.deliveries.Popped(); c != g.consumed {
		g.member.Consumed(int(c - g.consumed))
		g.consumed = c
	}
	for {
		rd := g.member.Ready()
		g.e.write(rd.Datagrams)
		if len(rd.Deliveries) > 0 {
			for _, d := range rd.Deliveries {
				// Cannot fail: the protocol never has more deliveries
				// outstanding than the queue holds.
				g.deliveries.Push(d)
			}
			select {
			case g.deliverCh <- struct{}{}:
			default:
			}
			// Let the delivery goroutine run now. With one P (vsbench's
			// default on small machines) it would wait until this
			// goroutine blocks, and behind any goroutine readied after it
			// (the runtime runs the most recently readied one first): at a
			// sender, behind the application's next burst of Sends and
			// the write that follows, which tripled the p99 of its own
			// deliveries.
			runtime.Gosched()
		}
		if rd.Released {
			select {
			case g.released <- struct{}{}:
			default:
			}
		}
		more := rd.More
		g.member.Advance()
		if !more {
			return
		}
	}
}

// deliveryLoop runs the application's handler for each delivery, in order.
func (g *Group) deliveryLoop() {
	defer g.delivered.Done()
	var batch uint64
	for {
		d, ok := g.deliveries.Peek()
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
		g.handlers.Deliver(Message{
			Sender:   g.view.Members[d.Origin],
			Rank:     d.Origin,
			Seq:      d.Seq,
			Ordering: Ordering(d.Flags & 3),
			Payload:  d.Payload,
		})
		g.deliveries.Pop()
		if batch++; batch == 256 {
			g.e.poke()
			batch = 0
		}
	}
}

func (g *Group) stop() {
	g.stopOnce.Do(func() { close(g.stopCh) })
	g.delivered.Wait()
}
