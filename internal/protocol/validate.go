package protocol

import (
	"github.com/cohort-vs/cohort/flush"
	"github.com/cohort-vs/cohort/internal/wire"
)

// Checks on what the network says about views. Nothing from a datagram is
// used before it is checked: a proposal's lists index this member's
// windows, and a forged or damaged one must be dropped (and counted), not
// trusted or followed into a panic.

// maxMembers is the largest view this process believes in.
func (g *Group) maxMembers() int {
	if g.cfg.MaxMembers > 0 {
		return min(g.cfg.MaxMembers, MaxMembers)
	}
	return MaxMembers
}

// validMembers: 1 to maxMembers members, each with an address, none twice
// (by address: one process per address).
func (g *Group) validMembers(ms []wire.MemberID) bool {
	return len(ms) > 0 && g.validList(ms)
}

// validList: at most maxMembers members, each with an address, none
// twice.
func (g *Group) validList(ms []wire.MemberID) bool {
	if len(ms) > g.maxMembers() {
		return false
	}
	seen := make(map[wire.MemberID]bool, len(ms))
	for _, m := range ms {
		if !m.Addr.IsValid() || seen[wire.MemberID{Addr: m.Addr}] {
			return false
		}
		seen[wire.MemberID{Addr: m.Addr}] = true
	}
	return true
}

// validNext reports whether p can be the view that follows this member's:
// this instance, the next number, valid members (none: the last member
// left), a cut and a holder for every origin of the current view,
// holders that are its ranks, and no more members gone than it has.
func (g *Group) validNext(p *wire.Proposal) bool {
	n := len(g.view.Members)
	if g.install == nil || p.Epoch != g.view.Epoch+1 || p.Founder != g.install.Founder ||
		!g.validList(p.Members) || len(p.Cut) != n+1 || len(p.Holders) != n+1 ||
		len(p.Left) > n || len(p.Evicted) > n || len(p.Restoring) > len(p.Members) {
		return false
	}
	for _, h := range p.Holders {
		if int(h) >= n {
			return false
		}
	}
	return true
}

// validFirst reports whether p can be a joiner's first view: valid
// members, this process among them.
func (g *Group) validFirst(p *wire.Proposal) bool {
	return p.Epoch > 0 && g.validMembers(p.Members) && len(p.Left) <= MaxMembers && len(p.Evicted) <= MaxMembers && len(p.Restoring) <= len(p.Members) &&
		flush.Index(p.Members, g.cfg.Self) >= 0
}

// inView reports whether id is a member of the current view.
func (g *Group) inView(id wire.MemberID) bool {
	return g.state == member && flush.Index(g.view.Members, id) >= 0
}
