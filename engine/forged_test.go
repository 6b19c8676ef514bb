package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/internal/wire"
)

// outsider is a process on the same machine that is no member: an
// ordinary UDP socket, with its own address (no spoofing).
type outsider struct {
	t    *testing.T
	conn *net.UDPConn
	id   wire.MemberID
}

func newOutsider(t *testing.T) *outsider {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &outsider{t: t, conn: c, id: wire.MemberID{Addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), Incarnation: 1}}
}

func (o *outsider) send(to netip.AddrPort, group string, epoch uint64, c *wire.Control) {
	b := wire.AppendControl(nil, wire.Header{Sender: wire.NoRank, Group: wire.GroupID(group), Epoch: epoch}, c)
	if _, err := o.conn.WriteToUDPAddrPort(b, to); err != nil {
		o.t.Fatal(err)
	}
}

// sendBundle sends datagrams as one bundle.
func (o *outsider) sendBundle(to netip.AddrPort, ds [][]byte) {
	b := wire.AppendBundleHeader(nil)
	for _, d := range ds {
		b = wire.AppendBundleEntry(b, d)
	}
	if _, err := o.conn.WriteToUDPAddrPort(b, to); err != nil {
		o.t.Fatal(err)
	}
}

func toWire(ms []MemberID) []wire.MemberID {
	var out []wire.MemberID
	for _, m := range ms {
		out = append(out, wire.MemberID{Addr: m.Addr, Incarnation: m.Incarnation})
	}
	return out
}

// Every kind of control message, forged by an outsider from its own
// address (and again naming a member as its sender), against a live
// group of three on real sockets: no member is removed, nothing crashes,
// no view changes, the group goes on delivering, and the counters say
// what was refused, alone or in a bundle. (Before: a forged Install ended every member, or
// panicked the one it named with an empty cut; a Join with a member's
// address replaced it; Leave, Suspect or Evict from anyone removed their
// target; a Here describing a larger instance dissolved the group.)
func TestForgedControlMessages(t *testing.T) {
	cl := newCluster(t, 3, DefaultConfig(), nil)
	v := cl.groups[0].View()
	members := toWire(v.Members)
	o := newOutsider(t)
	fakes := []wire.MemberID{o.id}
	for i := 0; i < 5; i++ {
		fakes = append(fakes, wire.MemberID{Addr: netip.MustParseAddrPort(fmt.Sprintf("192.0.2.%d:7000", i+1)), Incarnation: 1})
	}
	founder := members[0] // the first member formed the group
	n := len(members)
	forgeries := func(to wire.MemberID, from wire.MemberID) []*wire.Control {
		cut := make([]uint64, n+1)
		holders := make([]uint16, n+1)
		other := members[(slices.Index(members, to)+1)%n]
		return []*wire.Control{
			{Kind: wire.CtlInstall, Proposal: &wire.Proposal{Epoch: v.Epoch + 1, Founder: founder}},
			{Kind: wire.CtlInstall, Proposal: &wire.Proposal{Epoch: v.Epoch + 1, Founder: founder, Members: []wire.MemberID{to}}},
			{Kind: wire.CtlInstall, Proposal: &wire.Proposal{Epoch: v.Epoch + 1, Founder: founder, Members: []wire.MemberID{to, from}, Cut: cut, Holders: holders}},
			{Kind: wire.CtlJoin, Target: wire.MemberID{Addr: other.Addr, Incarnation: other.Incarnation + 7}},
			{Kind: wire.CtlLeave, Target: other},
			{Kind: wire.CtlSuspect, Target: other},
			{Kind: wire.CtlEvict, Target: other},
			{Kind: wire.CtlChange},
			{Kind: wire.CtlPrepare, Ballot: wire.Ballot{Round: 1 << 40}},
			{Kind: wire.CtlPropose, Ballot: wire.Ballot{Round: 1 << 40}, Proposal: &wire.Proposal{Epoch: v.Epoch + 1, Founder: founder, Members: []wire.MemberID{from}, Cut: cut, Holders: holders}},
			{Kind: wire.CtlFlushed, Ballot: wire.Ballot{Round: 1 << 40}},
			{Kind: wire.CtlNotMember, Epoch: v.Epoch + 5},
			{Kind: wire.CtlProbeAck, Target: other, Nonce: 1},
			{Kind: wire.CtlProbeReq, Target: other, Nonce: 1},
			{Kind: wire.CtlHere, Proposal: &wire.Proposal{Epoch: 99, Founder: fakes[1], Members: fakes}},
			{Kind: wire.CtlInstalled, Epoch: v.Epoch},
		}
	}
	malformed := func() (n uint64) {
		for _, e := range cl.engines {
			n += e.Stats().Malformed
		}
		return n
	}
	malformedBefore := malformed()
	for round := 0; round < 4; round++ {
		for _, to := range members {
			// From its own address as itself, then naming a member; in
			// the last round all of them in one bundle, which must not
			// make them any more believable.
			var bundle [][]byte
			for _, from := range []wire.MemberID{o.id, members[0], to} {
				for _, c := range forgeries(to, from) {
					c.From = from
					if c.Epoch == 0 {
						c.Epoch = v.Epoch
					}
					if round < 3 {
						o.send(to.Addr, "test", v.Epoch, c)
					} else {
						bundle = append(bundle, wire.AppendControl(nil, wire.Header{Sender: wire.NoRank, Group: wire.GroupID("test"), Epoch: v.Epoch}, c))
					}
				}
			}
			if round == 3 {
				o.sendBundle(to.Addr, bundle)
				// Bundles that do not split are refused whole: nested,
				// truncated, an entry shorter than a header.
				nested := wire.AppendBundleEntry(wire.AppendBundleHeader(nil), bundle[0])
				o.sendBundle(to.Addr, [][]byte{bundle[0], nested})
				o.sendBundle(to.Addr, [][]byte{bundle[0][:wire.HeaderSize-1]})
				b := wire.AppendBundleEntry(wire.AppendBundleHeader(nil), bundle[0])
				if _, err := o.conn.WriteToUDPAddrPort(b[:len(b)-1], to.Addr); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	waitFor(t, 5*time.Second, func() bool { return malformed()-malformedBefore == uint64(3*n) }, "every bad bundle counted malformed")
	// A view change would follow an accepted forgery within a round
	// timeout; watch for two.
	deadline := time.Now().Add(2 * DefaultConfig().RoundTimeout)
	for time.Now().Before(deadline) {
		for i, g := range cl.groups {
			if gv := g.View(); gv.Epoch != v.Epoch || len(gv.Members) != n {
				t.Fatalf("member %d is in view %d of %d members after the forgeries, was %d of %d", i, gv.Epoch, len(gv.Members), v.Epoch, n)
			}
			if err := g.ended.Load(); err != nil {
				t.Fatalf("member %d ended: %v", i, *err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for s := range cl.groups {
		if err := cl.send(ctx, s, 1, 64, FIFO); err != nil {
			t.Fatal(err)
		}
	}
	cl.waitDelivered(n, 5*time.Second)
	cl.verify()
	for i, g := range cl.groups {
		s := g.Stats()
		if s.ControlRefused == 0 || s.ControlDropped == 0 {
			t.Errorf("member %d: refused %d, dropped %d control messages; want both counted", i, s.ControlRefused, s.ControlDropped)
		}
		t.Logf("member %d: %d control messages refused, %d dropped", i, s.ControlRefused, s.ControlDropped)
	}
}

// Outsiders that join a group of three and then never answer (four of
// them: as many as would leave the group without a majority if all got
// in at once) cannot block it: fewer joiners than members are admitted
// per view, and those that never take part are removed.
func TestSilentJoinersCannotBlock(t *testing.T) {
	cl := newCluster(t, 3, DefaultConfig(), nil)
	v := cl.groups[0].View()
	for i := 0; i < 4; i++ {
		o := newOutsider(t)
		o.send(v.Members[0].Addr, "test", 0, &wire.Control{Kind: wire.CtlJoin, From: o.id, Target: o.id})
	}
	var grew atomic.Bool
	waitFor(t, 15*time.Second, func() bool {
		for _, g := range cl.groups {
			gv := g.View()
			if len(gv.Members) > 3 {
				grew.Store(true)
			}
			if gv.Epoch == v.Epoch || len(gv.Members) != 3 {
				return false
			}
		}
		return grew.Load()
	}, "the silent joiners to be admitted, then removed")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.send(ctx, 0, 1, 64, FIFO); err != nil {
		t.Fatal(err)
	}
	cl.waitDelivered(1, 5*time.Second)
}
