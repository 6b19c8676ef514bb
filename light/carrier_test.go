package light

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/engine"
)

// app is one member's application in one light group: it counts and
// sums what it delivers (its state), and records its views.
type app struct {
	mu    sync.Mutex
	count uint64
	sum   uint64
	views []engine.View
	ended error
}

func (a *app) handlers() engine.Handlers {
	return engine.Handlers{
		Deliver: func(m engine.Message) {
			a.mu.Lock()
			a.count++
			a.sum += binary.LittleEndian.Uint64(m.Payload)
			a.mu.Unlock()
		},
		View: func(v engine.View) {
			a.mu.Lock()
			a.views = append(a.views, v)
			a.mu.Unlock()
		},
		Ended: func(err error) {
			a.mu.Lock()
			a.ended = err
			a.mu.Unlock()
		},
		Snapshot: func(w io.Writer) error {
			return binary.Write(w, binary.LittleEndian, [2]uint64{a.count, a.sum})
		},
		Restore: func(r io.Reader) error {
			var s [2]uint64
			err := binary.Read(r, binary.LittleEndian, &s)
			a.count, a.sum = s[0], s[1]
			return err
		},
	}
}

func (a *app) state() (uint64, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.count, a.sum
}

func (a *app) lastView() engine.View {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.views) == 0 {
		return engine.View{}
	}
	return a.views[len(a.views)-1]
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newEngine(t *testing.T) *engine.Engine {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.SuspectTimeout = time.Second
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func payload(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// Three processes share ten light groups over one carrier: traffic in
// all of them, a fourth process joining one under traffic (state
// transfer), a member leaving one, then a process killed: every group
// it was in changes view at once, and every member's state agrees.
func TestCarrierOnLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n, groups, perSender = 3, 10, 200
	engines := make([]*engine.Engine, n+1)
	var seeds []string
	for i := range engines {
		engines[i] = newEngine(t)
		seeds = append(seeds, engines[i].Addr().String())
	}
	carriers := make([]*Carrier, n+1)
	for i := range n {
		c, err := Open(ctx, engines[i], "carrier", seeds[:n], Options{})
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		carriers[i] = c
	}
	apps := make([][]*app, n+1) // [process][group]
	lgs := make([][]*Group, n+1)
	for i := range n {
		apps[i], lgs[i] = make([]*app, groups), make([]*Group, groups)
		for k := range groups {
			apps[i][k] = &app{}
			g, err := carriers[i].Join(ctx, fmt.Sprintf("g%d", k), apps[i][k].handlers())
			if err != nil {
				t.Fatalf("Join %d g%d: %v", i, k, err)
			}
			lgs[i][k] = g
		}
	}
	// Everyone in every group's view.
	for k := range groups {
		waitFor(t, 10*time.Second, fmt.Sprintf("g%d has 3 members everywhere", k), func() bool {
			for i := range n {
				if len(apps[i][k].lastView().Members) != n {
					return false
				}
			}
			return true
		})
	}

	// Traffic in every group, from every member, in every ordering.
	send := func(i, k int, v uint64) {
		o := []engine.Ordering{engine.FIFO, engine.Total, engine.Unordered, engine.Causal | engine.Safe}[v%4]
		if err := lgs[i][k].Send(ctx, o, payload(v)); err != nil {
			t.Errorf("Send %d g%d: %v", i, k, err)
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for v := range uint64(perSender) {
				for k := range groups {
					send(i, k, uint64(i)<<32|v)
				}
			}
		})
	}
	wg.Wait()
	want := uint64(n * perSender)
	for k := range groups {
		waitFor(t, 20*time.Second, fmt.Sprintf("g%d delivers %d messages everywhere", k, want), func() bool {
			for i := range n {
				if c, _ := apps[i][k].state(); c != want {
					return false
				}
			}
			return true
		})
		_, s0 := apps[0][k].state()
		for i := 1; i < n; i++ {
			if _, s := apps[i][k].state(); s != s0 {
				t.Fatalf("g%d: member %d's state differs from member 0's", k, i)
			}
		}
	}

	// A fourth process joins g0 while member 1 sends to it.
	c3, err := Open(ctx, engines[n], "carrier", seeds[:n], Options{})
	if err != nil {
		t.Fatal(err)
	}
	carriers[n] = c3
	stop := make(chan struct{})
	var sent uint64
	wg.Go(func() {
		for v := uint64(1 << 40); ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			send(1, 0, v)
			sent++
			if sent%64 == 0 {
				time.Sleep(time.Millisecond) // a steady flow, not a flood
			}
		}
	})
	joiner := &app{}
	g3, err := c3.Join(ctx, "g0", joiner.handlers())
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if v := joiner.lastView(); len(v.Members) != n+1 || v.Members[v.Self] != c3.View().Members[c3.View().Self] {
		t.Fatalf("joiner's first view: %+v", v)
	}
	total := want + sent
	waitFor(t, 20*time.Second, "g0 delivers everything everywhere, the joiner by its state", func() bool {
		for _, a := range []*app{apps[0][0], apps[1][0], apps[2][0], joiner} {
			if c, _ := a.state(); c != total {
				return false
			}
		}
		return true
	})
	_, s0 := apps[0][0].state()
	if _, s := joiner.state(); s != s0 {
		t.Fatal("the joiner's state differs from member 0's")
	}
	t.Logf("joined under traffic: %d messages sent during the join", sent)

	// The joiner leaves g0 again; the others see it go.
	if err := g3.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "g0 back to 3 members with the joiner in Left", func() bool {
		v := apps[0][0].lastView()
		return len(v.Members) == n && len(v.Left) == 1
	})
	if err := g3.Send(ctx, engine.FIFO, payload(1)); !errors.Is(err, engine.ErrLeft) {
		t.Fatalf("Send after Leave: %v, want ErrLeft", err)
	}

	// Process 2 dies: all ten groups lose it, in one carrier view change.
	failed := carriers[2].View().Members[carriers[2].View().Self]
	engines[2].Close()
	for k := range groups {
		waitFor(t, 10*time.Second, fmt.Sprintf("g%d removes the dead process", k), func() bool {
			for i := range 2 {
				v := apps[i][k].lastView()
				if len(v.Members) != 2 || !slices.Contains(v.Failed, failed) {
					return false
				}
			}
			return true
		})
	}
	for i, c := range carriers {
		if i == 2 {
			continue
		}
		if st := c.Stats(); st.Malformed != 0 {
			t.Errorf("carrier %d: %d malformed messages", i, st.Malformed)
		}
	}
	// Closing a carrier ends its light groups with ErrLeft.
	if err := carriers[0].Close(ctx); err != nil {
		t.Fatal(err)
	}
	for k := range groups {
		apps[0][k].mu.Lock()
		err := apps[0][k].ended
		apps[0][k].mu.Unlock()
		if !errors.Is(err, engine.ErrLeft) {
			t.Errorf("g%d at the closed carrier ended with %v", k, err)
		}
	}
}
