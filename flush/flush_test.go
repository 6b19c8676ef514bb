package flush

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/cohort-vs/cohort/internal/wire"
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

func TestHasQuorum(t *testing.T) {
	set := func(ranks ...int) func(int) bool {
		return func(r int) bool {
			for _, x := range ranks {
				if x == r {
					return true
				}
			}
			return false
		}
	}
	for _, c := range []struct {
		q      Quorum
		n      int
		ranks  []int
		stable bool
		want   bool
	}{
		{QuorumMajority, 3, []int{1, 2}, false, true},
		{QuorumMajority, 2, []int{0}, true, false},
		{QuorumMajority, 4, []int{0, 1}, true, false},
		{QuorumTieBreaker, 2, []int{0}, false, true},
		{QuorumTieBreaker, 2, []int{1}, false, false},
		{QuorumTieBreaker, 4, []int{0, 3}, false, true},
		{QuorumTieBreaker, 4, []int{1, 2}, false, false},
		{QuorumTieBreaker, 5, []int{0, 1}, false, false}, // odd: no tie to break
		{QuorumLastManStanding, 2, []int{0}, false, false},
		{QuorumLastManStanding, 2, []int{0}, true, true},
		{QuorumLastManStanding, 4, []int{2, 3}, true, false},
		{QuorumLastManStanding, 3, []int{0, 2}, false, true},
	} {
		if got := HasQuorum(c.q, c.n, set(c.ranks...), c.stable); got != c.want {
			t.Errorf("HasQuorum(%d, n=%d, %v, stable=%v) = %v, want %v", c.q, c.n, c.ranks, c.stable, got, c.want)
		}
	}
	// At most one side of any split: no two disjoint sets both have it.
	for _, q := range []Quorum{QuorumMajority, QuorumTieBreaker, QuorumLastManStanding} {
		for n := 1; n <= 6; n++ {
			for mask := 0; mask < 1<<n; mask++ {
				in := func(r int) bool { return mask&(1<<r) != 0 }
				out := func(r int) bool { return mask&(1<<r) == 0 }
				if HasQuorum(q, n, in, true) && HasQuorum(q, n, out, true) {
					t.Fatalf("quorum %d, n=%d: both sides of split %b have a quorum", q, n, mask)
				}
			}
		}
	}
}
