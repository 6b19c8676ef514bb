package light_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cohort-vs/cohort/engine"
	"github.com/cohort-vs/cohort/light"
)

// Two processes (here two engines in one) share two light groups over one
// carrier: one stream and one failure detector for both.
func Example() {
	ctx := context.Background()
	var seeds []string
	var engines []*engine.Engine
	for range 2 {
		e, err := engine.New(engine.DefaultConfig())
		if err != nil {
			log.Fatal(err)
		}
		defer e.Close()
		engines = append(engines, e)
		seeds = append(seeds, e.Addr().String())
	}
	got := make(chan string, 2)
	var senders []*light.Group
	for i, e := range engines {
		carrier, err := light.Open(ctx, e, "carrier", seeds, light.Options{})
		if err != nil {
			log.Fatal(err)
		}
		defer carrier.Close(ctx)
		for _, name := range []string{"orders", "prices"} {
			g, err := carrier.Join(ctx, name, engine.Handlers{Deliver: func(m engine.Message) {
				if i == 1 { // Payload is valid only inside the handler
					got <- name + ": " + string(m.Payload)
				}
			}})
			if err != nil {
				log.Fatal(err)
			}
			if i == 0 {
				senders = append(senders, g)
			}
		}
	}
	if err := senders[0].Send(ctx, engine.Total, []byte("buy 10")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	if err := senders[1].Send(ctx, engine.FIFO, []byte("42.5")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	// Output:
	// orders: buy 10
	// prices: 42.5
}
