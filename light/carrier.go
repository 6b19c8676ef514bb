package light

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/valyala/bytebufferpool"

	"github.com/cohort-vs/cohort/engine"
)

// Options tune a carrier. The zero value takes the defaults.
type Options struct {
	// MaxStateBytes bounds one light group's state in transit to a
	// joiner (the joiner holds it whole before Restore). Default 64 MiB.
	MaxStateBytes int
	// ChunkBytes is the size of the carrier messages a state travels in.
	// Default 256 KiB, and at most the engine's MaxMessageSize less 32.
	ChunkBytes int
	// Ended is called once when the carrier's membership ends (after
	// every light group's Ended). Optional.
	Ended func(error)
}

// Carrier is this process's membership of one engine group that carries
// light groups. See the package documentation.
type Carrier struct {
	e    *engine.Engine
	name string
	opt  Options
	g    atomic.Pointer[engine.Group]
	// send is the carrier group's Send (a test's model of it).
	send func(ctx context.Context, o engine.Ordering, payload []byte) error
	t    *table
	view atomic.Pointer[engine.View]

	mu    sync.Mutex
	local map[string]*Group // this process's light groups, joined or joining

	// Sends the delivery goroutine could not make at once (the handler
	// backlog was full), and states in chunks, go out in order from one
	// goroutine that may wait for the window.
	outMu   sync.Mutex
	outWake chan struct{}
	out     []outgoing

	done    chan struct{} // closed when the carrier's membership ends
	endErr  error
	stopped chan struct{} // the sending goroutine returned
	stats   counters
}

type outgoing struct {
	o       engine.Ordering
	payload []byte
	// A state: sent in chunks.
	state    *bytebufferpool.ByteBuffer
	id, xfer uint64
}

type counters struct {
	malformed, stale, foreign, refused atomic.Uint64
	groups                             atomic.Int64
}

// Stats are a carrier's counters.
type Stats struct {
	Groups    int    // light groups the carrier knows (all members')
	Joined    int    // light groups this process is in or joining
	Malformed uint64 // carrier messages that did not parse (dropped)
	Stale     uint64 // messages for a light group or flush that had ended, or from a non-member (dropped)
	Foreign   uint64 // messages of light groups this process is not in (skipped)
	Refused   uint64 // joins beyond MaxGroups, requests beyond a light group's queue bound
}

// Open joins (or founds) the carrier group name on e, as Engine.Join
// does with seeds, and returns once this process has the carrier's state
// (the light groups and their members).
func Open(ctx context.Context, e *engine.Engine, name string, seeds []string, opt Options) (*Carrier, error) {
	max := e.Config().MaxMessageSize - 32
	if opt.MaxStateBytes == 0 {
		opt.MaxStateBytes = 64 << 20
	}
	if opt.ChunkBytes == 0 {
		opt.ChunkBytes = min(256<<10, max)
	}
	switch {
	case opt.MaxStateBytes < 0:
		return nil, fmt.Errorf("light: Open: MaxStateBytes %d is negative", opt.MaxStateBytes)
	case opt.ChunkBytes < 1 || opt.ChunkBytes > max:
		return nil, fmt.Errorf("light: Open: ChunkBytes %d must be between 1 and the engine's MaxMessageSize less 32 (%d)", opt.ChunkBytes, max)
	}
	c := newCarrier(e, name, opt)
	c.send = func(ctx context.Context, o engine.Ordering, payload []byte) error {
		if g := c.g.Load(); g != nil {
			return g.Send(ctx, o, payload)
		}
		return engine.ErrHandlerBacklog // not joined yet: the sending goroutine waits
	}
	g, err := e.Join(ctx, name, seeds, engine.Handlers{
		Deliver:  c.t.deliver,
		View:     c.t.onView,
		Ended:    c.ended,
		Snapshot: c.t.snapshot,
		Restore:  c.t.restore,
	})
	if err != nil {
		return nil, err
	}
	c.g.Store(g)
	go c.sendLoop()
	return c, nil
}

func newCarrier(e *engine.Engine, name string, opt Options) *Carrier {
	c := &Carrier{e: e, name: name, opt: opt, local: map[string]*Group{},
		outWake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	c.t = newTable(c)
	return c
}

// Name is the carrier group's name.
func (c *Carrier) Name() string { return c.name }

// View is the carrier's current view.
func (c *Carrier) View() engine.View {
	if v := c.view.Load(); v != nil {
		return *v
	}
	return engine.View{Group: c.name}
}

// Stats returns the carrier's counters.
func (c *Carrier) Stats() Stats {
	c.mu.Lock()
	joined := len(c.local)
	c.mu.Unlock()
	return Stats{Groups: int(c.stats.groups.Load()), Joined: joined, Malformed: c.stats.malformed.Load(),
		Stale: c.stats.stale.Load(), Foreign: c.stats.foreign.Load(), Refused: c.stats.refused.Load()}
}

// Engine is the carrier's engine group (its Stats, Flush).
func (c *Carrier) Engine() *engine.Group { return c.g.Load() }

// Join joins (or founds) the light group name, with the same handlers and
// guarantees as an engine group's (Rejoined excepted: a light group ends
// when its carrier membership does). It returns once this member has the
// group's state and its first view. Join must not be called from a
// handler of the carrier's light groups (ErrInHandler): it would wait on
// that goroutine.
func (c *Carrier) Join(ctx context.Context, name string, h engine.Handlers) (*Group, error) {
	if h.Deliver == nil {
		return nil, errors.New("light: Join: Handlers.Deliver is required")
	}
	if !validName(name) {
		return nil, fmt.Errorf("light: Join: a light group name has 1 to %d bytes, not %d", MaxNameBytes, len(name))
	}
	if c.inHandler() {
		return nil, fmt.Errorf("light: Join: %w", engine.ErrInHandler)
	}
	g, err := c.startJoin(ctx, name, h)
	if err != nil {
		return nil, err
	}
	select {
	case <-g.joined:
		select {
		case <-g.ended:
			return nil, g.endErr
		default:
			return g, nil
		}
	case <-ctx.Done():
		// The request is out: the group leaves once it gets there.
		g.abandoned.Store(true)
		return nil, ctx.Err()
	}
}

// startJoin registers the light group and sends the join request.
func (c *Carrier) startJoin(ctx context.Context, name string, h engine.Handlers) (*Group, error) {
	g := newGroup(c, name, h)
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return nil, c.endErr
	default:
	}
	if c.local[name] != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("light: Join %q: %w", name, engine.ErrJoined)
	}
	c.local[name] = g
	c.mu.Unlock()
	if err := c.send(ctx, requestOrdering, appendJoin(name)); err != nil {
		c.unregister(g)
		return nil, err
	}
	return g, nil
}

// Groups are this process's light groups, joined or joining.
func (c *Carrier) Groups() []*Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Group, 0, len(c.local))
	for _, g := range c.local {
		out = append(out, g)
	}
	return out
}

// Close leaves the carrier, and with it every light group (they end with
// ErrLeft; the other members see this process leave all at once, in one
// carrier view change).
func (c *Carrier) Close(ctx context.Context) error {
	err := c.g.Load().Leave(ctx)
	if errors.Is(err, engine.ErrLeft) || errors.Is(err, engine.ErrRemoved) || errors.Is(err, engine.ErrClosed) {
		err = nil
	}
	select {
	case <-c.stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

// localGroup is the light group name this process joins; a request of
// this process with none registered (it cannot happen unless Join's
// registration went) gets a group that leaves at once.
func (c *Carrier) localGroup(name string) *Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.local[name]; g != nil {
		return g
	}
	g := newGroup(c, name, engine.Handlers{Deliver: func(engine.Message) {}})
	g.abandoned.Store(true)
	return g
}

func (c *Carrier) unregister(g *Group) {
	c.mu.Lock()
	if c.local[g.name] == g {
		delete(c.local, g.name)
	}
	c.mu.Unlock()
}

func (c *Carrier) inHandler() bool {
	cg := c.g.Load()
	return cg != nil && cg.InHandler()
}

func (c *Carrier) logf(format string, args ...any) {
	if l := c.e.Config().Logger; l != nil {
		l.Warn(fmt.Sprintf(format, args...))
	}
}

// sendProto sends a message of the light protocol from the delivery
// goroutine: at once if it can (a handler's Send never waits), otherwise
// after what waits already, from the sending goroutine.
func (c *Carrier) sendProto(o engine.Ordering, payload []byte) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if len(c.out) == 0 {
		err := c.send(context.Background(), o, payload)
		if !errors.Is(err, engine.ErrHandlerBacklog) {
			return // sent, or the carrier is gone
		}
	}
	c.out = append(c.out, outgoing{o: o, payload: payload})
	c.wake()
}

// sendState queues a donor's snapshot, to go in chunks.
func (c *Carrier) sendState(id, xfer uint64, buf *bytebufferpool.ByteBuffer) {
	c.outMu.Lock()
	c.out = append(c.out, outgoing{o: engine.Total, state: buf, id: id, xfer: xfer})
	c.wake()
	c.outMu.Unlock()
}

func (c *Carrier) wake() {
	select {
	case c.outWake <- struct{}{}:
	default:
	}
}

// sendLoop sends what the delivery goroutine queued, in order, waiting
// for the window as any sender does.
func (c *Carrier) sendLoop() {
	defer close(c.stopped)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.done
		cancel()
	}()
	for {
		c.outMu.Lock()
		if len(c.out) == 0 {
			c.outMu.Unlock()
			select {
			case <-c.outWake:
				continue
			case <-c.done:
				return
			}
		}
		o := c.out[0]
		c.outMu.Unlock()
		if err := c.sendOut(ctx, o); err != nil {
			c.logf("light carrier %q: %v", c.name, err)
		}
		c.outMu.Lock()
		c.out = c.out[1:]
		if len(c.out) == 0 {
			c.out = nil
		}
		c.outMu.Unlock()
	}
}

// sendOut sends one queued message, or a state in chunks.
func (c *Carrier) sendOut(ctx context.Context, o outgoing) error {
	if o.state == nil {
		return c.send(ctx, o.o, o.payload)
	}
	defer bytebufferpool.Put(o.state)
	b := o.state.B
	chunk := make([]byte, 0, min(len(b), c.opt.ChunkBytes)+32)
	for {
		n := min(len(b), c.opt.ChunkBytes)
		flags := byte(0)
		if n == len(b) {
			flags = stateFinal
		}
		chunk = appendState(chunk[:0], o.id, o.xfer, flags, b[:n])
		if err := c.send(ctx, engine.Total, chunk); err != nil || flags != 0 {
			return err
		}
		b = b[n:]
	}
}

// ended is the carrier's Ended handler: every light group ends with it.
func (c *Carrier) ended(err error) {
	c.mu.Lock()
	c.endErr = err
	groups := make([]*Group, 0, len(c.local))
	for _, g := range c.local {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	for _, g := range groups {
		g.end(err)
	}
	close(c.done)
	if c.opt.Ended != nil {
		c.opt.Ended(err)
	}
}
