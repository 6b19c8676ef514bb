package protocol

import (
	"net/netip"
	"testing"

	"github.com/cohort-vs/cohort/internal/wire"
)

func testMemberConfig(n, self int) Config {
	cfg := Config{
		Group: 1, Epoch: 1, Self: self,
		MaxDatagram: 1400, MaxMessageSize: 64 << 10,
		WindowMessages: 64, WindowBytes: 64 << 10, DeliveryQueue: 64,
		StatusTicks: 1, NAKTicks: 2, MaxOutDatagrams: 8,
	}
	for i := 0; i < n; i++ {
		cfg.Members = append(cfg.Members, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(1000+i)))
	}
	return cfg
}

// A member alone in its view orders and delivers its own total and safe
// messages at once.
func TestSingletonOrdersItsOwnMessages(t *testing.T) {
	m, err := New(testMemberConfig(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	orders := []uint8{wire.OrderTotal, wire.OrderCausal, wire.OrderTotal | wire.FlagSafe, wire.OrderFIFO, wire.OrderTotal}
	for i, o := range orders {
		if n, err := m.Sender().TrySend(o, []byte{byte(i)}, 0); n != 1 || err != nil {
			t.Fatal(n, err)
		}
	}
	rd := m.Ready()
	if len(rd.Deliveries) != len(orders) {
		t.Fatalf("%d deliveries of %d", len(rd.Deliveries), len(orders))
	}
	for i, d := range rd.Deliveries {
		if d.Payload[0] != byte(i) || d.Flags != orders[i] {
			t.Fatalf("delivery %d: %+v", i, d)
		}
	}
	m.Advance()
	m.Consumed(len(orders))
	// Rounds after the first records were released: nothing left to
	// multicast in the order stream, and every round still delivers.
	for round := 0; round < 20; round++ {
		for i := 0; i < 10; i++ {
			if n, _ := m.Sender().TrySend(wire.OrderTotal, []byte{byte(i)}, 0); n != 1 {
				t.Fatalf("round %d: window full", round)
			}
		}
		if rd := m.Ready(); len(rd.Deliveries) != 10 {
			t.Fatalf("round %d: %d deliveries", round, len(rd.Deliveries))
		}
		m.Advance()
		m.Consumed(10)
	}
}

// A multicast goes once to every other member: the order stream is an
// origin of messages, not a destination.
func TestMulticastReachesEachMemberOnce(t *testing.T) {
	for self := 0; self < 3; self++ {
		m, err := New(testMemberConfig(3, self))
		if err != nil {
			t.Fatal(err)
		}
		m.Sender().TrySend(wire.OrderTotal, []byte("x"), 0)
		to := map[netip.AddrPort]int{}
		for _, d := range m.Ready().Datagrams {
			to[d.Addr]++
		}
		if len(to) != 2 || to[m.cfg.Members[self]] != 0 {
			t.Fatalf("rank %d sent to %v", self, to)
		}
		for a, k := range to {
			if self != 0 && k != 1 {
				t.Fatalf("rank %d sent %d datagrams to %v", self, k, a)
			}
		}
	}
}
