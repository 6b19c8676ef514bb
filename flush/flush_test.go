package flush

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/cohort-vs/cohort/wire"
)

func id(port uint16, inc uint64) wire.MemberID {
	return wire.MemberID{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Incarnation: inc}
}

func promise(report ...uint64) *wire.Control {
	return &wire.Control{Kind: wire.CtlPromise, Report: report}
}

func TestChooseFresh(t *testing.T) {
	view := []wire.MemberID{id(1, 1), id(2, 1), id(3, 1), id(4, 1)}
	ch := &Changes{
		Joiners: []wire.MemberID{id(5, 1), id(4, 2)}, // 4 restarted: its old incarnation goes
		Leavers: map[wire.MemberID]bool{id(2, 1): true},
	}
	// 3 did not promise (crashed); 2 leaves but promised.
	ps := []*wire.Control{promise(5, 7, 9, 1), promise(5, 8, 2, 1), nil, promise(4, 8, 9, 3)}
	p := Choose(wire.Ballot{Round: 2, Rank: 0}, 6, view, ps, ch)
	// 4.1 goes (replaced); one member kept admits one joiner: 4.2 waits
	// for the next change.
	wantMembers := []wire.MemberID{id(1, 1), id(5, 1)}
	if !reflect.DeepEqual(p.Members, wantMembers) {
		t.Fatalf("members %v", p.Members)
	}
	if !reflect.DeepEqual(p.Cut, []uint64{5, 8, 9, 3}) || p.Epoch != 7 {
		t.Fatalf("cut %v epoch %d", p.Cut, p.Epoch)
	}
	// Holders: the origin itself where it holds the most, else the lowest rank.
	if !reflect.DeepEqual(p.Holders, []uint16{0, 1, 0, 3}) {
		t.Fatalf("holders %v", p.Holders)
	}
	// Why each one went is part of the proposal: 2 left; 3 and the old 4
	// failed (listed nowhere).
	if !reflect.DeepEqual(p.Left, []wire.MemberID{id(2, 1)}) || len(p.Evicted) != 0 {
		t.Fatalf("left %v evicted %v", p.Left, p.Evicted)
	}
}

func TestChooseAdoptsHighestAccepted(t *testing.T) {
	view := []wire.MemberID{id(1, 1), id(2, 1), id(3, 1)}
	old := &wire.Proposal{Ballot: wire.Ballot{Round: 1, Rank: 0}, Epoch: 4, Members: view[:2], Cut: []uint64{1, 1, 1}, Holders: []uint16{0, 1, 0}}
	newer := &wire.Proposal{Ballot: wire.Ballot{Round: 2, Rank: 0}, Epoch: 4, Members: view, Cut: []uint64{2, 2, 2}, Holders: []uint16{0, 1, 2}}
	ps := []*wire.Control{nil, {Proposal: old, Report: []uint64{9, 9, 9}}, {Proposal: newer, Report: []uint64{9, 9, 9}}}
	p := Choose(wire.Ballot{Round: 3, Rank: 1}, 3, view, ps, &Changes{})
	if p.Ballot != (wire.Ballot{Round: 3, Rank: 1}) || !reflect.DeepEqual(p.Cut, newer.Cut) || !reflect.DeepEqual(p.Members, newer.Members) {
		t.Fatalf("adopted %+v", p)
	}
	if newer.Ballot.Round != 2 {
		t.Fatal("the accepted proposal was modified in place")
	}
}

func TestMajority(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3} {
		if Majority(n) != want {
			t.Errorf("Majority(%d) = %d", n, Majority(n))
		}
	}
}

// Joiners are admitted fewer than the members kept (or one), so the kept
// members stay a majority of the new view: joiners that never take part
// cannot block it. The others wait for the next change.
func TestChooseAdmitsFewerJoinersThanMembers(t *testing.T) {
	view := []wire.MemberID{id(1, 1), id(2, 1), id(3, 1)}
	ch := &Changes{Joiners: []wire.MemberID{id(4, 1), id(5, 1), id(6, 1), id(7, 1)}}
	ps := []*wire.Control{promise(1, 1, 1, 1), promise(1, 1, 1, 1), promise(1, 1, 1, 1)}
	p := Choose(wire.Ballot{Round: 1}, 1, view, ps, ch)
	want := []wire.MemberID{id(1, 1), id(2, 1), id(3, 1), id(4, 1), id(5, 1)}
	if !reflect.DeepEqual(p.Members, want) {
		t.Fatalf("members %v, want %v", p.Members, want)
	}
	if kept := 3; kept < Majority(len(p.Members)) {
		t.Fatalf("%d kept members are not a majority of %d", kept, len(p.Members))
	}
	// A group of one takes one joiner at a time.
	p = Choose(wire.Ballot{Round: 1}, 1, view[:1], ps[:1], ch)
	if !reflect.DeepEqual(p.Members, []wire.MemberID{id(1, 1), id(4, 1)}) {
		t.Fatalf("members %v", p.Members)
	}
}
