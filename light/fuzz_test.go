package light

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"github.com/cohort-vs/cohort/engine"
)

// Whatever a carrier member sends, a table counts and drops what does not
// parse and never panics; a carrier state that does not parse is refused.
func FuzzCarrierMessage(f *testing.F) {
	f.Add(byte(0), appendJoin("a"))
	f.Add(byte(1), appendData(nil, 1, []byte("x")))
	f.Add(byte(1), appendMarker(1, 1))
	f.Add(byte(2), appendState(nil, 1, 1, stateFinal, []byte("s")))
	f.Add(byte(2), appendLeave(1))
	f.Add(byte(0), []byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, from byte, payload []byte) {
		c := newCarrier(nil, "carrier", Options{MaxStateBytes: 1 << 10, ChunkBytes: 64})
		c.send = func(context.Context, engine.Ordering, []byte) error { return nil }
		members := make([]engine.MemberID, 3)
		for i := range members {
			members[i] = engine.MemberID{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(1+i)), Incarnation: 1}
		}
		c.t.onView(engine.View{Members: members})
		if _, err := c.startJoin(context.Background(), "a", engine.Handlers{Deliver: func(engine.Message) {}}); err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			c.t.deliver(engine.Message{Sender: m, Ordering: requestOrdering, Payload: appendJoin("a")})
		}
		sender := members[int(from)%len(members)]
		c.t.deliver(engine.Message{Sender: sender, Rank: int(from) % len(members), Ordering: engine.FIFO, Payload: payload})
		var snap bytes.Buffer
		if err := c.t.snapshot(&snap); err != nil {
			t.Fatal(err)
		}
		// The snapshot parses back; the payload as a snapshot never panics.
		c2 := newCarrier(nil, "carrier", Options{})
		if err := c2.t.restore(bytes.NewReader(snap.Bytes())); err != nil {
			t.Fatalf("own snapshot refused: %v", err)
		}
		_ = c2.t.restore(bytes.NewReader(payload))
	})
}
