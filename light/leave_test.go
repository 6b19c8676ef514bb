package light

import (
	"context"
	"fmt"
	"sync"
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
