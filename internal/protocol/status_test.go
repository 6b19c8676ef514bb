package protocol

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/cohort-vs/cohort/internal/wire"
)

// statusNet runs members of one view in lockstep: each step ticks every
// member, sends what its Ready produced (unless drop says otherwise) and
// consumes its deliveries at once.
type statusNet struct {
	t         *testing.T
	ms        []*Member
	delivered []int
	statuses  []int // status frames sent, by member (standalone or piggybacked)
	drop      func(from, to int) bool
	seen      func(from, to int, b []byte) // every datagram sent, dropped or not
}

func newStatusNet(t *testing.T, n, heartbeat int, tweak ...func(*Config)) *statusNet {
	s := &statusNet{t: t, delivered: make([]int, n), statuses: make([]int, n)}
	for i := 0; i < n; i++ {
		cfg := testMemberConfig(n, i)
		cfg.HeartbeatTicks = heartbeat
		for _, f := range tweak {
			f(&cfg)
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.ms = append(s.ms, m)
	}
	return s
}

func (s *statusNet) rank(a netip.AddrPort) int {
	for i, m := range s.ms {
		if m.cfg.Members[i] == a {
			return i
		}
	}
	s.t.Fatalf("no member at %v", a)
	return -1
}

func (s *statusNet) step() {
	type dgram struct {
		from, to int
		b        []byte
	}
	var inflight []dgram
	for i, m := range s.ms {
		m.Tick()
		before := m.stats.StatusSent
		for {
			rd := m.Ready()
			for _, d := range rd.Datagrams {
				inflight = append(inflight, dgram{i, s.rank(d.Addr), append([]byte(nil), d.Buf[:d.N]...)})
			}
			s.delivered[i] += len(rd.Deliveries)
			n := len(rd.Deliveries)
			more := rd.More
			m.Advance()
			if n > 0 {
				m.Consumed(n)
			}
			if !more {
				break
			}
		}
		s.statuses[i] += int(m.stats.StatusSent - before)
	}
	for _, d := range inflight {
		if s.seen != nil {
			s.seen(d.from, d.to, d.b)
		}
		if s.drop == nil || !s.drop(d.from, d.to) {
			s.ms[d.to].Receive(s.ms[d.from].cfg.Members[d.from], d.b)
		}
	}
}

// A member that lost the last datagram of a burst, and every status frame
// after it, learns of it from the sender's next status frames, which come
// every status interval while a member has not said it holds everything:
// not only at the next heartbeat, though the sender has nothing more to
// send.
func TestSenderRepeatsStatusUntilEveryMemberHasItsMessages(t *testing.T) {
	const heartbeat = 1000
	s := newStatusNet(t, 3, heartbeat)
	if n, err := s.ms[0].Sender().TrySend(wire.OrderFIFO, []byte("last"), 0); n != 4 || err != nil {
		t.Fatal(n, err)
	}
	lossy := true
	s.drop = func(from, to int) bool { return lossy && to == 2 }
	for i := 0; i < 20; i++ {
		s.step()
	}
	if s.delivered[1] != 1 || s.delivered[2] != 0 {
		t.Fatalf("delivered %v before the loss ends, want [1 1 0]", s.delivered)
	}
	lossy = false
	for i := 0; i < 20 && s.delivered[2] == 0; i++ {
		s.step()
	}
	if s.delivered[2] != 1 {
		t.Fatalf("member 2 has not repaired the message 20 ticks after the loss ended (heartbeat every %d ticks)", heartbeat)
	}
	// Once every member holds and has consumed everything, the group is
	// quiet until the heartbeat.
	for i := 0; i < 10; i++ {
		s.step()
	}
	quiet := append([]int(nil), s.statuses...)
	for i := 0; i < heartbeat/2; i++ {
		s.step()
	}
	for i := range quiet {
		if s.statuses[i] != quiet[i] {
			t.Fatalf("member %d sent %d status frames in a settled group, before its heartbeat", i, s.statuses[i]-quiet[i])
		}
	}
}

// A member that hears few of another's status frames cannot free the
// copies it keeps for that one's sake: its receive window fills, and the
// sender, held to its pace, stops. The member whose status it lacks is
// then idle, with nothing new to report; but it holds more than the
// lossy member says it holds, so it repeats its status every interval,
// not every heartbeat, and the group moves on.
func TestLossyMemberHearsTheOthersConsumption(t *testing.T) {
	const heartbeat = 1000
	s := newStatusNet(t, 3, heartbeat)
	tick := 0
	// 9 of every 10 ticks, member 2 hears nothing from member 1.
	s.drop = func(from, to int) bool { return from == 1 && to == 2 && tick%10 != 0 }
	for ; tick < 300; tick++ {
		for {
			if n, _ := s.ms[0].Sender().TrySend(wire.OrderFIFO, []byte("m"), 0); n == 0 {
				break
			}
		}
		s.step()
	}
	window := s.ms[0].cfg.WindowMessages
	if s.delivered[2] < 20*window {
		t.Fatalf("member 2 delivered %d messages in %d ticks (%d windows); want at least 20 windows", s.delivered[2], tick, s.delivered[2]/window)
	}
}

// nakRanges returns the ranges of the NAK frames in datagram b.
func nakRanges(t *testing.T, b []byte) (naks [][][2]uint64) {
	var fr wire.FrameReader
	var nr wire.NAKReader
	fr.Reset(b[wire.HeaderSize:])
	for fr.Next() {
		if fr.Kind != wire.FrameNAK {
			continue
		}
		if err := nr.Reset(fr.Body); err != nil {
			t.Fatal(err)
		}
		var rs [][2]uint64
		for nr.Next() {
			rs = append(rs, [2]uint64{nr.From, nr.Count})
		}
		naks = append(naks, rs)
	}
	return naks
}

// A member whose repair of a gap's head was lost asks for the head again,
// alone, once a whole tick has passed with the head unmoved (every other
// tick: a request counted just before a tick may have gone a moment
// ago), and for the whole gap again only a NAK interval after the last
// full NAK.
func TestLostRepairOfTheHeadIsAskedForEveryOtherTick(t *testing.T) {
	const nakTicks = 8
	s := newStatusNet(t, 2, 1000, func(c *Config) { c.NAKTicks = nakTicks })
	tick := 0
	// Messages 1 and 3 never reach member 1 at first; 2 and 4 do.
	lostData, lostRepairs := true, true
	s.drop = func(from, to int) bool {
		return from == 0 && (tick == 0 || tick == 2) && lostData || from == 0 && tick > 3 && lostRepairs
	}
	type nak struct {
		tick   int
		ranges [][2]uint64
	}
	var naks []nak
	s.seen = func(from, to int, b []byte) {
		if from == 1 {
			for _, rs := range nakRanges(t, b) {
				naks = append(naks, nak{tick, rs})
			}
		}
	}
	for ; tick < 4; tick++ {
		if n, _ := s.ms[0].Sender().TrySend(wire.OrderFIFO, []byte{byte(tick)}, 0); n != 1 {
			t.Fatal("window full")
		}
		s.step()
	}
	for ; tick < 4+2*nakTicks; tick++ {
		s.step()
	}
	if s.delivered[1] != 0 {
		t.Fatalf("member 1 delivered %d messages with the first missing", s.delivered[1])
	}
	var full, head []int
	for _, k := range naks {
		switch {
		case len(k.ranges) == 2 && k.ranges[0] == [2]uint64{1, 1} && k.ranges[1] == [2]uint64{3, 1}:
			full = append(full, k.tick)
		case len(k.ranges) == 1 && k.ranges[0] == [2]uint64{1, 1}:
			head = append(head, k.tick)
		default:
			t.Fatalf("unexpected NAK at tick %d: %v", k.tick, k.ranges)
		}
	}
	if len(full) != 2 || full[1]-full[0] != nakTicks {
		t.Fatalf("full NAKs at ticks %v, want two, %d ticks apart", full, nakTicks)
	}
	var between []int
	for _, h := range head {
		if h > full[0] && h < full[1] {
			between = append(between, h)
		}
	}
	want := []int{}
	for h := full[0] + 2; h < full[1]; h += 2 {
		want = append(want, h)
	}
	if !slices.Equal(between, want) {
		t.Fatalf("NAKs of the head alone at ticks %v (full ones at %v), want %v", head, full, want)
	}
	lostRepairs = false
	for i := 0; i < nakTicks-2 && s.delivered[1] < 4; i++ {
		s.step()
		tick++
	}
	if s.delivered[1] != 4 {
		t.Fatalf("member 1 delivered %d of 4 messages %d ticks after repairs got through, before the next full NAK", s.delivered[1], nakTicks-2)
	}
}

// Deliveries gathered from datagrams wait for the next Ready even when a
// tick that trims memory falls in between: trimming once dropped them,
// so the application never saw them and the delivery queue stayed full.
func TestTrimKeepsDeliveriesForReady(t *testing.T) {
	s := newStatusNet(t, 2, 0, func(c *Config) { c.TrimTicks = 1 })
	for i := range 10 {
		if _, err := s.ms[0].Sender().TrySend(wire.OrderFIFO, []byte{byte(i)}, 0); err != nil {
			t.Fatal(err)
		}
		s.step() // the datagram arrives after member 1's Ready; its next tick trims first
	}
	for i := 0; i < 5; i++ {
		s.step()
	}
	if s.delivered[1] != 10 || s.ms[1].pendingLen != 0 {
		t.Fatalf("member 1 delivered %d of 10, %d deliveries outstanding", s.delivered[1], s.ms[1].pendingLen)
	}
}
