// Package flush holds the decisions of cohort's view change, as pure
// functions over the messages of its rounds (see docs/ARCHITECTURE.md,
// "View change"). The protocol package carries the messages; this package
// says what a coordinator proposes and when a round may proceed.
package flush

import (
	"net/netip"

	"github.com/cohort-vs/cohort/internal/wire"
)

// Majority is the number of members of a view of n that must take part in
// installing the next one: with a majority required, two sides of a
// partition can never both install a view.
func Majority(n int) int { return n/2 + 1 }

// Quorum is the rule by which the members of a view that take part in a
// view change may install the next view. Each allows at most one side of
// any partition to go on.
type Quorum uint8

const (
	// QuorumMajority: more than half of the view.
	QuorumMajority Quorum = iota
	// QuorumTieBreaker: more than half, or exactly half when that half
	// holds the view's lowest rank (its oldest member): a group of 2
	// outlives the crash of its higher-ranked member, and of an exact
	// half split the half with the oldest member goes on.
	QuorumTieBreaker
	// QuorumLastManStanding: as QuorumTieBreaker, but the tie is broken
	// only for a view that has been stable for the configured time: the
	// group shrinks one failure at a time (down to its oldest member
	// alone), never in a cascade of views that a flapping network makes.
	QuorumLastManStanding
)

// HasQuorum reports whether k members of a view of n, present[r] telling
// which ranks, may install the next view under q; stable says whether
// the view has been stable long enough (QuorumLastManStanding).
func HasQuorum(q Quorum, n int, present func(rank int) bool, stable bool) bool {
	k := 0
	for r := 0; r < n; r++ {
		if present(r) {
			k++
		}
	}
	switch {
	case 2*k > n:
		return true
	case 2*k < n || n == 0:
		return false
	case q == QuorumTieBreaker, q == QuorumLastManStanding && stable:
		return present(0)
	}
	return false
}

// Changes are the membership changes a coordinator has collected.
type Changes struct {
	Joiners []wire.MemberID
	Leavers map[wire.MemberID]bool
	Failed  map[wire.MemberID]bool
	// Evicted members are removed for being too slow: unlike failed ones
	// they stay removed when they answer (they are alive, only late).
	Evicted map[wire.MemberID]bool
}

// Empty reports whether there is nothing to change.
func (c *Changes) Empty() bool {
	return len(c.Joiners) == 0 && len(c.Leavers) == 0 && len(c.Failed) == 0 && len(c.Evicted) == 0
}

// Choose decides the proposal for view epoch+1 from the promises of the
// members of view (by rank; nil where none arrived) under ballot b.
//
//   - If any promise carries an accepted proposal, the one with the highest
//     ballot is adopted unchanged but for the ballot: it may already be
//     installed somewhere, and a view number must never name two views.
//   - Otherwise the new view is the members that promised, minus leavers,
//     in their old order, then the joiners (fewer than those members,
//     or one); its restoring members are the joiners and the members
//     whose promise says they are restoring; and the cut for every old
//     member is the highest contiguous mark any promise reports, with the
//     member that reported it as the holder to fetch from.
//
// The caller has checked that a majority promised.
func Choose(b wire.Ballot, epoch uint64, view []wire.MemberID, promises []*wire.Control, ch *Changes) *wire.Proposal {
	var adopted *wire.Proposal
	for _, p := range promises {
		if p != nil && p.Proposal != nil && (adopted == nil || adopted.Ballot.Less(p.Proposal.Ballot)) {
			adopted = p.Proposal
		}
	}
	if adopted != nil {
		q := *adopted
		q.Ballot = b
		return &q
	}
	// One cut entry per origin of the view's messages: every report has
	// that many (the ranks and the order stream).
	n := 0
	for _, p := range promises {
		if p != nil {
			n = max(n, len(p.Report))
		}
	}
	prop := &wire.Proposal{Ballot: b, Epoch: epoch + 1, Cut: make([]uint64, n), Holders: make([]uint16, n)}
	// A joiner at the address of a member is that member restarted: the
	// old incarnation goes.
	replaced := map[netip.AddrPort]bool{}
	for _, j := range ch.Joiners {
		replaced[j.Addr] = true
	}
	for r, m := range view {
		p := promises[r]
		if p == nil || ch.Leavers[m] || ch.Failed[m] || ch.Evicted[m] || replaced[m.Addr] {
			switch {
			case ch.Leavers[m]:
				prop.Left = append(prop.Left, m)
			case ch.Evicted[m]:
				prop.Evicted = append(prop.Evicted, m)
			}
			continue
		}
		prop.Members = append(prop.Members, m)
		if p.Restoring {
			prop.Restoring = append(prop.Restoring, m)
		}
	}
	// Joiners may be fewer than the members kept: then the kept members
	// alone are a majority of the new view, and joiners that never take
	// part (crashed at once, or not real processes at all) cannot leave
	// it without one. The rest join at the next change.
	kept, joined := len(prop.Members), 0
	for _, j := range ch.Joiners {
		if joined >= max(1, kept-1) {
			break
		}
		if !contains(prop.Members, j) {
			prop.Members = append(prop.Members, j)
			prop.Restoring = append(prop.Restoring, j) // a joiner takes the state
			joined++
		}
	}
	for o := 0; o < n; o++ {
		best, holder := uint64(0), -1
		for r, p := range promises {
			if p == nil || o >= len(p.Report) {
				continue
			}
			// Prefer the origin itself, then the lowest rank, among those
			// holding the most.
			if c := p.Report[o]; holder < 0 || c > best || (c == best && r == o) {
				best, holder = c, r
			}
		}
		prop.Cut[o] = best
		if holder >= 0 {
			prop.Holders[o] = uint16(holder)
		}
	}
	return prop
}

func contains(ms []wire.MemberID, m wire.MemberID) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// Index is m's rank in members, or -1.
func Index(members []wire.MemberID, m wire.MemberID) int {
	for i, x := range members {
		if x == m {
			return i
		}
	}
	return -1
}
