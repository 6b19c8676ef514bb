package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cohort-vs/cohort/engine"
)

// kv is a replicated map: every member applies the same Total-ordered
// puts, so every member holds the same map; a joiner takes it whole by
// state transfer (Snapshot at a member, Restore at the joiner).
type kv struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *kv) handlers(applied chan<- string) engine.Handlers {
	return engine.Handlers{
		Deliver: func(msg engine.Message) {
			k, v, _ := strings.Cut(string(msg.Payload), "=")
			s.mu.Lock()
			s.m[k] = v
			s.mu.Unlock()
			applied <- k
		},
		Snapshot: func(w io.Writer) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			return json.NewEncoder(w).Encode(s.m)
		},
		Restore: func(r io.Reader) error {
			m := map[string]string{}
			if err := json.NewDecoder(r).Decode(&m); err != nil {
				return err
			}
			s.mu.Lock()
			s.m = m
			s.mu.Unlock()
			return nil
		},
	}
}

func (s *kv) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s ", k, s.m[k])
	}
	return strings.TrimSpace(b.String())
}

// A replicated map with Total order and state transfer: two members put
// keys; a third joins later, restores the map from a member and applies
// the puts that follow like the others.
func Example_totalOrderAndStateTransfer() {
	ctx := context.Background()
	var engines []*engine.Engine
	for range 3 {
		e, err := engine.New(engine.DefaultConfig())
		if err != nil {
			log.Fatal(err)
		}
		defer e.Close()
		engines = append(engines, e)
	}
	seeds := []string{engines[0].Addr().String(), engines[1].Addr().String()}
	stores := []*kv{{m: map[string]string{}}, {m: map[string]string{}}, {m: map[string]string{}}}
	applied := []chan string{make(chan string, 16), make(chan string, 16), make(chan string, 16)}
	var groups []*engine.Group
	for i := range 2 {
		g, err := engines[i].Join(ctx, "kv", seeds, stores[i].handlers(applied[i]))
		if err != nil {
			log.Fatal(err)
		}
		groups = append(groups, g)
	}
	for len(groups[0].View().Members) < 2 {
		time.Sleep(time.Millisecond) // a's view of both (b's Join returned at it)
	}
	for _, put := range []string{"a=1", "b=2"} {
		if err := groups[0].Send(ctx, engine.Total, []byte(put)); err != nil {
			log.Fatal(err)
		}
	}
	for range 2 {
		<-applied[1]
	}
	// The joiner restores {a=1 b=2} before its first delivery.
	g2, err := engines[2].Join(ctx, "kv", seeds, stores[2].handlers(applied[2]))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("joiner after restore:", stores[2])
	if err := g2.Send(ctx, engine.Total, []byte("c=3")); err != nil {
		log.Fatal(err)
	}
	for _, ch := range applied {
		for k := range ch {
			if k == "c" {
				break
			}
		}
	}
	fmt.Println("every member:", stores[0], "|", stores[1], "|", stores[2])
	// Output:
	// joiner after restore: a=1 b=2
	// every member: a=1 b=2 c=3 | a=1 b=2 c=3 | a=1 b=2 c=3
}

// Leaving: Flush waits until every member holds what this one sent;
// Shutdown then leaves every group of the engine gracefully and closes
// it, and the others see it go in a view's Left.
func ExampleEngine_Shutdown() {
	ctx := context.Background()
	a, err := engine.New(engine.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := engine.New(engine.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	members := []string{a.Addr().String(), b.Addr().String()}
	left := make(chan int, 1)
	got := make(chan string, 1)
	_, err = a.Join(ctx, "leaving", members, engine.Handlers{
		Deliver: func(m engine.Message) { got <- string(m.Payload) },
		View: func(v engine.View) {
			if len(v.Left) > 0 {
				left <- len(v.Members)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	gb, err := b.Join(ctx, "leaving", members, engine.Handlers{Deliver: func(engine.Message) {}})
	if err != nil {
		log.Fatal(err)
	}
	for len(gb.View().Members) < 2 {
		time.Sleep(time.Millisecond)
	}
	if err := gb.Send(ctx, engine.FIFO, []byte("last words")); err != nil {
		log.Fatal(err)
	}
	if err := gb.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	if err := b.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("a delivered:", <-got)
	fmt.Println("a's view after b left has", <-left, "member")
	// Output:
	// a delivered: last words
	// a's view after b left has 1 member
}
