package light

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/engine"
)

// After a process dies, the survivors leave every light group at once:
// every Leave returns.
func TestLeaveAllAfterCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n, groups = 3, 50
	engines := make([]*engine.Engine, n)
	var seeds []string
	for i := range engines {
		engines[i] = newEngine(t)
		seeds = append(seeds, engines[i].Addr().String())
	}
	lgs := make([][]*Group, n)
	for i := range n {
		c, err := Open(ctx, engines[i], "carrier", seeds, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for k := range groups {
			a := &app{}
			g, err := c.Join(ctx, fmt.Sprintf("g%d", k), a.handlers())
			if err != nil {
				t.Fatal(err)
			}
			lgs[i] = append(lgs[i], g)
		}
	}
	engines[1].Close()
	waitFor(t, 10*time.Second, "every group loses the dead process", func() bool {
		for _, i := range []int{0, 2} {
			for _, g := range lgs[i] {
				if len(g.View().Members) != n-1 {
					return false
				}
			}
		}
		return true
	})
	var wg sync.WaitGroup
	for _, i := range []int{0, 2} {
		for _, g := range lgs[i] {
			wg.Go(func() {
				lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := g.Leave(lctx); err != nil {
					t.Errorf("member %d: Leave %s: %v", i, g.Name(), err)
				}
			})
		}
	}
	wg.Wait()
}

// Handlers use the light groups as users will: a Deliver handler replies
// in another light group, and one leaves its group from its own handler.
func TestHandlersSendAndLeave(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	engines := []*engine.Engine{newEngine(t), newEngine(t)}
	seeds := []string{engines[0].Addr().String(), engines[1].Addr().String()}
	carriers := make([]*Carrier, 2)
	for i, e := range engines {
		c, err := Open(ctx, e, "carrier", seeds, Options{})
		if err != nil {
			t.Fatal(err)
		}
		carriers[i] = c
	}
	// Process 1 answers every request with a reply in "replies", and
	// leaves "requests" from its handler at the last one.
	const n = 500
	replies := make(chan uint64, n)
	var reps1 *Group
	// The handler's own group, stored once Join returns: the handler
	// reads it from the carrier's delivery goroutine.
	var reqs1 atomic.Pointer[Group]
	var err error
	if reps1, err = carriers[1].Join(ctx, "replies", engine.Handlers{Deliver: func(engine.Message) {}}); err != nil {
		t.Fatal(err)
	}
	left := make(chan error, 1)
	g1, err := carriers[1].Join(ctx, "requests", engine.Handlers{
		Deliver: func(m engine.Message) {
			v := binary.LittleEndian.Uint64(m.Payload)
			if err := reps1.Send(ctx, engine.FIFO, payload(v)); err != nil {
				t.Errorf("reply from a handler: %v", err)
			}
			if v == n-1 {
				if err := reqs1.Load().Leave(ctx); err != nil { // returns at once in a handler
					t.Errorf("Leave from a handler: %v", err)
				}
			}
		},
		Ended: func(err error) { left <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	reqs1.Store(g1)
	if _, err := carriers[0].Join(ctx, "replies", engine.Handlers{Deliver: func(m engine.Message) {
		if m.Sender != carriers[0].View().Members[carriers[0].View().Self] {
			replies <- binary.LittleEndian.Uint64(m.Payload)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	reqs0, err := carriers[0].Join(ctx, "requests", engine.Handlers{
		Deliver: func(engine.Message) {},
		View: func(v engine.View) {
			if _, err := carriers[0].Join(ctx, "x", engine.Handlers{Deliver: func(engine.Message) {}}); !errors.Is(err, engine.ErrInHandler) {
				t.Errorf("Join from a handler: %v, want ErrInHandler", err)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both in requests", func() bool { return len(g1.View().Members) == 2 })
	for v := range uint64(n) {
		if err := reqs0.Send(ctx, engine.FIFO, payload(v)); err != nil {
			t.Fatal(err)
		}
	}
	for want := range uint64(n) {
		select {
		case got := <-replies:
			if got != want {
				t.Fatalf("reply %d, want %d", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d replies", want, n)
		}
	}
	select {
	case err := <-left:
		if !errors.Is(err, engine.ErrLeft) {
			t.Fatalf("the handler's Leave ended with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the handler's Leave never ended the membership")
	}
	waitFor(t, 10*time.Second, "requests down to one member", func() bool { return len(reqs0.View().Members) == 1 })
}
