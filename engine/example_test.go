package engine_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cohort-vs/cohort/engine"
)

// Two members of one group, each in its own engine (normally its own
// process or host), replicate a counter by multicasting increments.
func Example() {
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
	defer b.Close()
	members := []string{a.Addr().String(), b.Addr().String()}

	done := make(chan int)
	counter := 0
	apply := func(m engine.Message) { // runs on b's delivery goroutine
		counter += int(m.Payload[0]) // Payload is valid only inside the handler
		if counter == 6 {
			done <- counter
		}
	}
	ga, err := a.Join(ctx, "counter", members, engine.Handlers{Deliver: func(engine.Message) {}})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := b.Join(ctx, "counter", members, engine.Handlers{Deliver: apply}); err != nil {
		log.Fatal(err)
	}
	for _, inc := range []byte{1, 2, 3} {
		if err := ga.Send(ctx, engine.FIFO, []byte{inc}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("b's counter:", <-done)
	// Output: b's counter: 6
}
