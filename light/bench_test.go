package light

import (
	"context"
	"net/netip"
	"testing"

	"github.com/cohort-vs/cohort/engine"
)

// A member's table delivering data messages of one of many light groups:
// the light layer's cost per delivered message, above the carrier's.
func BenchmarkDeliver(b *testing.B) {
	for _, groups := range []int{1, 1000} {
		b.Run(map[int]string{1: "groups=1", 1000: "groups=1000"}[groups], func(b *testing.B) {
			c := newCarrier(nil, "carrier", Options{})
			c.send = func(context.Context, engine.Ordering, []byte) error { return nil }
			self := engine.MemberID{Addr: netip.MustParseAddrPort("127.0.0.1:1"), Incarnation: 1}
			c.t.onView(engine.View{Members: []engine.MemberID{self}})
			delivered := 0
			for k := range groups {
				name := string(rune('a'+k%26)) + string(rune('a'+k/26%26)) + string(rune('a'+k/676))
				if _, err := c.startJoin(context.Background(), name, engine.Handlers{Deliver: func(engine.Message) { delivered++ }}); err != nil {
					b.Fatal(err)
				}
				c.t.deliver(engine.Message{Sender: self, Ordering: requestOrdering, Payload: appendJoin(name)})
			}
			msgs := make([][]byte, groups)
			for k := range msgs {
				msgs[k] = appendData(nil, uint64(k+1), make([]byte, 64))
			}
			m := engine.Message{Sender: self, Ordering: engine.FIFO}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				m.Payload = msgs[i%groups]
				c.t.deliver(m)
			}
			if delivered != b.N {
				b.Fatalf("delivered %d of %d", delivered, b.N)
			}
		})
	}
}

// A light group's Send above the carrier's.
func BenchmarkSend(b *testing.B) {
	c := newCarrier(nil, "carrier", Options{})
	c.send = func(context.Context, engine.Ordering, []byte) error { return nil }
	self := engine.MemberID{Addr: netip.MustParseAddrPort("127.0.0.1:1"), Incarnation: 1}
	c.t.onView(engine.View{Members: []engine.MemberID{self}})
	g, err := c.startJoin(context.Background(), "a", engine.Handlers{Deliver: func(engine.Message) {}})
	if err != nil {
		b.Fatal(err)
	}
	c.t.deliver(engine.Message{Sender: self, Ordering: requestOrdering, Payload: appendJoin("a")})
	payload := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Send(ctx, engine.FIFO, payload); err != nil {
			b.Fatal(err)
		}
	}
}
