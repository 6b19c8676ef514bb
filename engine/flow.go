package engine

import (
	"context"
	"sync"
	"sync/atomic"
)

// crossFlow is flow control across an engine's groups. Each group's
// window bounds what its sender holds unstable (not yet consumed by
// every member); crossFlow bounds the sum over groups
// (Config.EngineWindowBytes). Every group's stash counts what it holds
// in held (ring.Stash.ShareCount: appends add, releases subtract); a
// Send to a group that holds some waits while the sum is above the
// limit. Handlers never wait here: a handler of one group sending to
// another would otherwise wait on its own group's messages, which only
// its own deliveries make stable.
type crossFlow struct {
	limit    int64
	counting bool // the groups' stashes count in held (protoMu)
	held     atomic.Int64
	waiting  atomic.Bool
	mu       sync.Mutex
	room     chan struct{} // closed when held falls to half the limit
	// The goroutine ids of the engine's running delivery goroutines.
	handlers sync.Map
}

// shareCounts has the groups' stashes count what they hold in the
// engine's counter only while their windows together could pass the
// engine window: below that their own windows bound the sum already,
// and counting costs an atomic add per message (one group sending flat
// out would pay it for nothing); protoMu held.
func (e *Engine) shareCounts() {
	groups := *e.groupList.Load()
	want := int64(len(groups))*int64(e.cfg.WindowBytes) > e.flow.limit
	if want == e.flow.counting {
		return
	}
	e.flow.counting = want
	for _, g := range groups {
		if want {
			g.sender.ShareCount(&e.flow.held)
		} else {
			g.sender.ShareCount(nil)
		}
	}
	e.flow.wake()
}

// over reports whether the groups hold more than the limit.
func (f *crossFlow) over() bool { return f.held.Load() > f.limit }

// wake lets waiting Sends go on once the groups hold half the limit or
// less (after releases): a sender then has half a window to send
// before it waits again (and asks, once per wait, whether it is a
// handler: a goroutine id costs microseconds).
func (f *crossFlow) wake() {
	if f.waiting.Load() && f.held.Load() <= f.limit/2 {
		f.mu.Lock()
		if f.room != nil {
			close(f.room)
			f.room = nil
		}
		f.waiting.Store(false)
		f.mu.Unlock()
	}
}

// wait returns once the groups hold no more than the limit, or at once
// on a delivery goroutine.
func (f *crossFlow) wait(ctx context.Context, g *Group) error {
	if _, ok := f.handlers.Load(goid()); ok {
		return nil
	}
	f.mu.Lock()
	f.waiting.Store(true) // before held is read: wake reads them the other way round
	if !f.over() {
		f.mu.Unlock()
		return nil
	}
	if f.room == nil {
		f.room = make(chan struct{})
	}
	room := f.room
	f.mu.Unlock()
	return g.waitFor(ctx, room)
}
