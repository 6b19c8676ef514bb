package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"

	"github.com/cohort-vs/cohort/engine"
	"github.com/cohort-vs/cohort/udp/memnet"
)

// Leaving one group: Leave returns once the others have installed a view
// without this member, after delivering everything it sent; its Ended
// handler receives ErrLeft.
func ExampleGroup_Leave() {
	ctx := context.Background()
	var engines []*engine.Engine
	for range 2 {
		e, err := engine.New(engine.DefaultConfig())
		if err != nil {
			log.Fatal(err)
		}
		defer e.Close()
		engines = append(engines, e)
	}
	seeds := []string{engines[0].Addr().String(), engines[1].Addr().String()}
	delivered := make(chan string, 4)
	views := make(chan engine.View, 4)
	stay, err := engines[0].Join(ctx, "room", seeds, engine.Handlers{
		Deliver: func(m engine.Message) { delivered <- string(m.Payload) },
		View:    func(v engine.View) { views <- v },
	})
	if err != nil {
		log.Fatal(err)
	}
	ended := make(chan error, 1)
	leaver, err := engines[1].Join(ctx, "room", seeds, engine.Handlers{
		Deliver: func(engine.Message) {},
		Ended:   func(err error) { ended <- err },
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := leaver.Send(ctx, engine.FIFO, []byte("goodbye")); err != nil {
		log.Fatal(err)
	}
	if err := leaver.Leave(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("delivered before it left:", <-delivered)
	for v := range views {
		if len(v.Left) > 0 {
			fmt.Println("view without it:", len(v.Members), "member, left:", len(v.Left))
			break
		}
	}
	fmt.Println("its Ended handler:", errors.Is(<-ended, engine.ErrLeft))
	fmt.Println("still a member:", len(stay.View().Members) == 1)
	// Output:
	// delivered before it left: goodbye
	// view without it: 1 member, left: 1
	// its Ended handler: true
	// still a member: true
}

// Rejoining: a member cut off from the others is removed from their view;
// with Config.Rejoin, once it can reach them again it joins as a new
// incarnation by itself, and Handlers.Rejoined hands over the new Group.
// (The members here share an in-memory network, to cut one off.)
func Example_rejoin() {
	ctx := context.Background()
	network := memnet.New(1)
	defer network.Close()
	var engines []*engine.Engine
	var seeds []string
	for i := range 3 {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 7000)
		conn, err := network.Listen(addr)
		if err != nil {
			log.Fatal(err)
		}
		cfg := engine.DefaultConfig()
		cfg.Conn, cfg.Rejoin = conn, true
		e, err := engine.New(cfg)
		if err != nil {
			log.Fatal(err)
		}
		defer e.Close()
		engines = append(engines, e)
		seeds = append(seeds, addr.String())
	}
	views := make(chan engine.View, 16)
	for i, e := range engines[:2] {
		h := engine.Handlers{Deliver: func(engine.Message) {}}
		if i == 0 {
			h.View = func(v engine.View) { views <- v }
		}
		if _, err := e.Join(ctx, "rejoin", seeds, h); err != nil {
			log.Fatal(err)
		}
	}
	rejoined := make(chan *engine.Group, 1)
	removed := make(chan error, 1)
	first, err := engines[2].Join(ctx, "rejoin", seeds, engine.Handlers{
		Deliver:  func(engine.Message) {},
		Ended:    func(err error) { removed <- err },
		Rejoined: func(g *engine.Group) { rejoined <- g },
	})
	if err != nil {
		log.Fatal(err)
	}
	waitView := func(want func(engine.View) bool) engine.View {
		for v := range views {
			if want(v) {
				return v
			}
		}
		panic("views closed")
	}
	waitView(func(v engine.View) bool { return len(v.Members) == 3 })

	// Cut the third member off: the other two suspect it and go on.
	self := netip.MustParseAddrPort(seeds[2])
	others := []netip.AddrPort{netip.MustParseAddrPort(seeds[0]), netip.MustParseAddrPort(seeds[1])}
	network.Partition(others, []netip.AddrPort{self})
	v := waitView(func(v engine.View) bool { return len(v.Failed) > 0 })
	fmt.Println("the others go on with", len(v.Members), "members")

	// Heal: it learns it was removed and joins again.
	network.Heal()
	g := <-rejoined
	fmt.Println("removed:", errors.Is(<-removed, engine.ErrRemoved))
	v = waitView(func(v engine.View) bool { return len(v.Members) == 3 })
	fmt.Println("back in:", len(v.Joined), "joined, a new incarnation:",
		g.View().Members[g.View().Self].Incarnation != first.View().Members[first.View().Self].Incarnation)
	// Output:
	// the others go on with 2 members
	// removed: true
	// back in: 1 joined, a new incarnation: true
}
