package light

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/valyala/bytebufferpool"

	"github.com/cohort-vs/cohort/engine"
)

// Group is this process's membership of one light group.
type Group struct {
	// The data path's fields first (the carrier's delivery goroutine).
	member  bool    // in a view of the light group
	xfer    uint64  // the transfer this member waits for (0: none)
	ranks   []int32 // carrier rank -> light rank, -1 if not in it
	deliver func(engine.Message)
	rankBuf [8]int32 // ranks' storage for carriers of up to 8 members

	c    *Carrier
	name string
	h    engine.Handlers

	id        atomic.Uint64 // the light group's id, once a view came
	view      atomic.Pointer[engine.View]
	abandoned atomic.Bool // Join gave up: leave as soon as joined

	// joined is closed when Join may return (first view, state restored)
	// or membership ended first; ended when membership ends.
	joined, ended chan struct{}
	endOnce       sync.Once
	endErr        error // set before ended is closed

	// The carrier's delivery goroutine only:
	cur       *engine.View     // the table's current view of it
	next      []engine.Message // during a flush: messages of the next view
	replay    []event          // while restoring: what it will deliver after Restore
	state     []byte           // while restoring: the chunks so far
	leaving   bool             // this member asked to leave
	failErr   error            // why this member leaves on its own
	joinedSet bool
}

func newGroup(c *Carrier, name string, h engine.Handlers) *Group {
	return &Group{c: c, name: name, h: h, deliver: h.Deliver, joined: make(chan struct{}), ended: make(chan struct{})}
}

// event is what a member delivers to its handlers, or, while it restores
// its state, buffers for after Restore.
type event struct {
	view     *engine.View
	msg      engine.Message
	snapshot uint64 // a transfer this member is the donor of
}

// Name is the light group's name.
func (g *Group) Name() string { return g.name }

// View is the light group's current view as the application has seen it.
func (g *Group) View() engine.View {
	if v := g.view.Load(); v != nil {
		return *v
	}
	return engine.View{Group: g.name}
}

// Send multicasts payload to the light group's members with the given
// ordering: the carrier's Send, with the light group's id before the
// payload. It returns as the carrier's does (the payload may be reused at
// once; the carrier's flow control may make it wait). A message sent
// while this member leaves may be delivered or not, the same at every
// member.
func (g *Group) Send(ctx context.Context, o engine.Ordering, payload []byte) error {
	select {
	case <-g.ended:
		return g.endErr
	default:
	}
	id := g.id.Load()
	if id == 0 {
		return ErrNotJoined
	}
	// The engine's Send copies the payload and keeps no reference: a
	// small one is framed on the stack, in a buffer near its size (a
	// stack buffer is zeroed whole at each call).
	if cg := g.c.g.Load(); cg != nil {
		switch {
		case len(payload) <= tinyPayload:
			var buf [tinyPayload + maxDataHeader]byte
			return cg.Send(ctx, o, appendData(buf[:0], id, payload))
		case len(payload) <= smallPayload:
			var buf [smallPayload + maxDataHeader]byte
			return cg.Send(ctx, o, appendData(buf[:0], id, payload))
		}
	}
	bp := sendBufs.Get().(*[]byte)
	*bp = appendData((*bp)[:0], id, payload)
	err := g.c.send(ctx, o, *bp)
	sendBufs.Put(bp)
	return err
}

// Send frames payloads up to smallPayload on the stack.
const (
	tinyPayload  = 128
	smallPayload = 1024
)

var sendBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// Leave leaves the light group: it returns once the other members have
// installed a view without this one (or ctx ends). From a handler it
// starts leaving and returns at once.
func (g *Group) Leave(ctx context.Context) error {
	select {
	case <-g.ended:
		return nil
	default:
	}
	if g.c.inHandler() {
		g.startLeave()
		return nil
	}
	if err := g.requestLeave(ctx); err != nil {
		return err
	}
	select {
	case <-g.ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requestLeave sends the leave request (a member still joining leaves
// once joined).
func (g *Group) requestLeave(ctx context.Context) error {
	id := g.id.Load()
	if id == 0 {
		g.abandoned.Store(true)
		return nil
	}
	return g.c.send(ctx, requestOrdering, appendLeave(id))
}

// ErrNotJoined: the light group has no view here yet.
var ErrNotJoined = errors.New("light: not joined yet")

func (g *Group) emit(ev event) {
	if g.xfer != 0 {
		if ev.msg.Payload != nil {
			ev.msg.Payload = slices.Clone(ev.msg.Payload)
		}
		g.replay = append(g.replay, ev)
		return
	}
	g.dispatch(ev)
}

func (g *Group) dispatch(ev event) {
	switch {
	case ev.view != nil:
		g.view.Store(ev.view)
		if g.h.View != nil {
			g.h.View(*ev.view)
		}
	case ev.snapshot != 0:
		g.donate(ev.snapshot)
	default:
		g.h.Deliver(ev.msg)
	}
}

// setRanks maps the carrier's ranks to the light group's.
func (g *Group) setRanks(cv engine.View, members []engine.MemberID) {
	if g.ranks == nil && len(cv.Members) <= len(g.rankBuf) {
		g.ranks = g.rankBuf[:0]
	}
	g.ranks = slices.Grow(g.ranks[:0], len(cv.Members))[:len(cv.Members)]
	for i, m := range cv.Members {
		g.ranks[i] = int32(slices.Index(members, m))
	}
}

// startRestore starts waiting for a state (xfer 0: none comes, the
// member founds the group or starts empty).
func (g *Group) startRestore(xfer uint64) {
	g.xfer, g.replay, g.state = xfer, nil, nil
}

// chunk takes a piece of this member's state; the last one restores it
// and delivers what waited.
func (g *Group) chunk(flags byte, b []byte) {
	c := g.c
	if flags&stateFailed != 0 {
		g.failWith(fmt.Errorf("%w: the donor's Snapshot failed", engine.ErrStateTransfer), true)
		return
	}
	if len(g.state)+len(b) > c.opt.MaxStateBytes {
		g.failWith(fmt.Errorf("%w: the state is larger than MaxStateBytes (%d)", engine.ErrStateTransfer, c.opt.MaxStateBytes), true)
		return
	}
	g.state = append(g.state, b...)
	if flags&stateFinal == 0 {
		return
	}
	if g.h.Restore != nil {
		var r io.Reader = bytes.NewReader(g.state)
		if flags&stateNoState != 0 {
			r = errReader{engine.ErrNoState}
		}
		if err := g.h.Restore(r); err != nil && !(flags&stateNoState != 0 && errors.Is(err, engine.ErrNoState)) {
			g.failWith(fmt.Errorf("%w: Restore: %w", engine.ErrStateTransfer, err), true)
			return
		}
	}
	g.xfer, g.state = 0, nil
	replay := g.replay
	g.replay = nil
	for _, ev := range replay {
		g.dispatch(ev)
	}
	g.joinDone()
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// failWith ends this member's wait for its state: joiners it was to give
// a state to fail too, and it leaves the group (leave false: the view
// that removes it is being installed).
func (g *Group) failWith(err error, leave bool) {
	g.failErr = err
	for _, ev := range g.replay {
		if ev.snapshot != 0 {
			g.c.sendProto(engine.Total, appendState(nil, g.id.Load(), ev.snapshot, stateFinal|stateFailed, nil))
		}
	}
	g.xfer, g.replay, g.state = 0, nil, nil
	if leave {
		g.startLeave()
	}
}

// joinDone lets Join return, or, if it gave up meanwhile, leaves.
func (g *Group) joinDone() {
	if !g.joinedSet {
		g.joinedSet = true
		close(g.joined)
	}
	if g.abandoned.Load() {
		g.startLeave()
	}
}

// startLeave sends this member's leave request, once (delivery goroutine).
func (g *Group) startLeave() {
	if g.leaving || !g.member {
		if !g.member {
			g.abandoned.Store(true)
		}
		return
	}
	g.leaving = true
	g.c.sendProto(requestOrdering, appendLeave(g.id.Load()))
}

func (g *Group) leaveErr() error {
	if g.failErr != nil {
		return g.failErr
	}
	return engine.ErrLeft
}

// end ends membership: Ended is called (from the delivery goroutine) and
// Join, Leave and Send return.
func (g *Group) end(err error) {
	g.endOnce.Do(func() {
		g.endErr = err
		g.c.unregister(g)
		close(g.ended)
		if !g.joinedSet {
			g.joinedSet = true
			close(g.joined)
		}
		g.replay, g.next, g.state = nil, nil, nil
		if g.h.Ended != nil {
			g.h.Ended(err)
		}
	})
}

// donate takes this member's snapshot for a joiner, here, between the
// old view's last delivery and the new view's first, and hands it to the
// carrier's sender in chunks.
func (g *Group) donate(xfer uint64) {
	id := g.id.Load()
	if g.h.Snapshot == nil {
		g.c.sendProto(engine.Total, appendState(nil, id, xfer, stateFinal|stateNoState, nil))
		return
	}
	buf := bytebufferpool.Get()
	if err := g.h.Snapshot(buf); err != nil {
		bytebufferpool.Put(buf)
		g.c.logf("light group %q: Snapshot: %v", g.name, err)
		g.c.sendProto(engine.Total, appendState(nil, id, xfer, stateFinal|stateFailed, nil))
		return
	}
	g.c.sendState(id, xfer, buf)
}
