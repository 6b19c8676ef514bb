package check

import (
	"fmt"
	"sort"
)

// checkOrders applies the rules of causal, total and safe delivery (the
// sender-order part of causal and total is checked with FIFO's, in Check):
//
//   - total: in each view, any two members that survived it deliver the
//     total-order messages both delivered in it in the same relative
//     order; a member that did not survive the view (it crashed, or was
//     removed) is held to that only up to its last safe delivery in it:
//     without Safe, the order records it followed may be lost with it;
//   - causal: if member s delivered m0 before it sent the causal message
//     m1, every member q that delivers m1 delivered m0 before m1, provided
//     q installed the view in which s delivered m0 (with no views
//     recorded: every member; with views, a delivery of unknown view
//     binds nobody);
//   - total-causal: total order is causal among total messages: if s
//     delivered total message m0 before it sent total message m1, every
//     member that delivers both delivers m0 first;
//   - safe: a safe message that any member (a crashed one too) delivered
//     in view v was delivered in v by every member that survived v: it
//     installed a later view, or it ended the history in v neither
//     crashed nor gone (with no views recorded: every member that neither
//     crashed nor left).
//
// Memory: one index entry per message delivered, and per member one int32
// per message (its delivery position), built only when the history holds
// causal, total or safe messages.
func (h *History) checkOrders(add func(rule, format string, args ...any) bool) {
	if !h.hasOrdered() {
		return
	}
	x := h.newIndex()
	if h.checkTotal(x, add) {
		return
	}
	if h.checkCausal(x, add) {
		return
	}
	h.checkSafe(x, add)
}

// hasOrdered reports whether any message was sent or delivered causal,
// total or safe.
func (h *History) hasOrdered() bool {
	for _, s := range h.sent {
		if s.order == Causal || s.order == Total || s.safe {
			return true
		}
	}
	for _, ds := range h.delivered {
		for _, d := range ds {
			if d.order == Causal || d.order == Total || d.safe {
				return true
			}
		}
	}
	return false
}

// index numbers the messages and records where each member delivered
// each one.
type index struct {
	members []string // sorted
	rank    map[string]int
	ids     map[MsgID]int32
	seq     [][]int32 // per member, the message number of each delivery
	pos     [][]int32 // per member, per message: 1 + position of its first delivery; 0: never
	epochs  []map[uint64]bool
}

func (h *History) newIndex() *index {
	x := &index{rank: map[string]int{}, ids: map[MsgID]int32{}}
	x.members = append([]string(nil), h.members...)
	sort.Strings(x.members)
	for i, m := range x.members {
		x.rank[m] = i
		seq := make([]int32, len(h.delivered[m]))
		for k, d := range h.delivered[m] {
			n, ok := x.ids[d.id]
			if !ok {
				n = int32(len(x.ids))
				x.ids[d.id] = n
			}
			seq[k] = n
		}
		x.seq = append(x.seq, seq)
		ep := map[uint64]bool{}
		for _, in := range h.installs[m] {
			ep[in.epoch] = true
		}
		x.epochs = append(x.epochs, ep)
	}
	for i := range x.members {
		pos := make([]int32, len(x.ids))
		for k, n := range x.seq[i] {
			if pos[n] == 0 {
				pos[n] = int32(k + 1)
			}
		}
		x.pos = append(x.pos, pos)
	}
	return x
}

// at returns the position of member i's first delivery of id, or -1.
func (x *index) at(i int, id MsgID) int {
	n, ok := x.ids[id]
	if !ok {
		return -1
	}
	return int(x.pos[i][n]) - 1
}

// checkTotal: for each pair of members, walk the first one's total-order
// deliveries of each view; the second's positions of those it delivered
// in the same view must increase.
func (h *History) checkTotal(x *index, add func(rule, format string, args ...any) bool) bool {
	// bound[member][view]: the last delivery position held to the rule
	// for a member that did not survive the view.
	bound := make([]map[uint64]int, len(x.members))
	for i, p := range x.members {
		bound[i] = map[uint64]int{}
		for k, d := range h.delivered[p] {
			if _, ok := bound[i][d.view]; !ok {
				bound[i][d.view] = -1
				if h.survived(p, d.view) {
					bound[i][d.view] = int(^uint(0) >> 1)
				}
			}
			if d.safe && !h.survived(p, d.view) {
				bound[i][d.view] = k
			}
		}
	}
	for i, p := range x.members {
		dp := h.delivered[p]
		for j := i + 1; j < len(x.members); j++ {
			q := x.members[j]
			dq := h.delivered[q]
			var view uint64
			last := -1 // q's position of the last message compared in this view
			var lastID MsgID
			for k, d := range dp {
				n := x.seq[i][k]
				if d.order != Total || int(x.pos[i][n])-1 != k || k > bound[i][d.view] {
					continue // not total, a repeated delivery, or past what binds p
				}
				if d.view != view || last < 0 {
					view, last = d.view, -1
				}
				at := int(x.pos[j][n]) - 1
				if at < 0 || dq[at].view != d.view || at > bound[j][d.view] {
					continue
				}
				if at < last {
					if add("total", "in view %d %s delivered %v before %v, %s the other way round", d.view, p, lastID, d.id, q) {
						return true
					}
					break
				}
				last, lastID = at, d.id
			}
		}
	}
	return false
}

// checkCausal walks each sender's causal sends in send order: their
// delivered-before sets are growing prefixes of the sender's deliveries,
// so for each other member one pass over the prefix keeps the latest
// position (and the first absence) of what it must have delivered first.
func (h *History) checkCausal(x *index, add func(rule, format string, args ...any) bool) bool {
	return h.checkAfter(x, add, "causal", Causal, "") || h.checkAfter(x, add, "total-causal", Total, Total)
}

// checkAfter checks that every message of ordering sentOrder comes, at
// every member that delivers it, after the messages its sender had
// delivered before sending it (those of ordering pastOrder; "" for all).
// For causal order a member must have delivered them all; for total order
// (causal among total messages) only their relative order is checked.
func (h *History) checkAfter(x *index, add func(rule, format string, args ...any) bool, rule, sentOrder, pastOrder string) bool {
	type csend struct {
		id     MsgID
		before int
	}
	bySender := map[string][]csend{}
	for id, s := range h.sent {
		if s.order == sentOrder {
			bySender[id.Sender] = append(bySender[id.Sender], csend{id, s.before})
		}
	}
	senders := make([]string, 0, len(bySender))
	for s := range bySender {
		if _, ok := x.rank[s]; ok {
			senders = append(senders, s)
		}
	}
	sort.Strings(senders)
	for _, s := range senders {
		sends := bySender[s]
		sort.Slice(sends, func(i, j int) bool {
			if sends[i].before != sends[j].before {
				return sends[i].before < sends[j].before
			}
			return sends[i].id.N < sends[j].id.N
		})
		si := x.rank[s]
		prefix := h.delivered[s]
		for qi, q := range x.members {
			need := func(v uint64) bool { return !h.dynamic || x.epochs[qi][v] }
			latest, missing := -1, -1 // indexes into prefix
			latestAt := -1            // q's position of prefix[latest]
			k := 0
			for _, c := range sends {
				for ; k < c.before && k < len(prefix); k++ {
					d0 := prefix[k]
					if !need(d0.view) || (pastOrder != "" && d0.order != pastOrder) {
						continue
					}
					at := int(x.pos[qi][x.seq[si][k]]) - 1
					switch {
					case at < 0:
						if missing < 0 && pastOrder == "" {
							missing = k
						}
					case at > latestAt:
						latest, latestAt = k, at
					}
				}
				at1 := x.at(qi, c.id)
				if at1 < 0 {
					continue
				}
				if missing >= 0 {
					d0 := prefix[missing]
					if add(rule, "%s delivered %v but never %v, which %s delivered%s before sending it", q, c.id, d0.id, s, inView(d0.view)) {
						return true
					}
					break
				}
				if latestAt > at1 {
					d0 := prefix[latest]
					if add(rule, "%s delivered %v before %v, which %s delivered%s before sending %v", q, c.id, d0.id, s, inView(d0.view), c.id) {
						return true
					}
					break
				}
			}
		}
	}
	return false
}

// checkSafe: per view, the safe messages anyone delivered in it, against
// what each member that survived the view delivered in it.
func (h *History) checkSafe(x *index, add func(rule, format string, args ...any) bool) bool {
	type safeMsg struct {
		id MsgID
		by string
	}
	byView := map[uint64][]safeMsg{}
	seen := map[MsgID]bool{}
	for i, m := range x.members {
		for k, d := range h.delivered[m] {
			if !d.safe || int(x.pos[i][x.seq[i][k]])-1 != k {
				continue
			}
			if !seen[d.id] { // the same-view rule compares its other deliveries
				seen[d.id] = true
				byView[d.view] = append(byView[d.view], safeMsg{d.id, m})
			}
		}
	}
	views := make([]uint64, 0, len(byView))
	for v := range byView {
		views = append(views, v)
	}
	sort.Slice(views, func(i, j int) bool { return views[i] < views[j] })
	for _, v := range views {
		msgs := byView[v]
		sort.Slice(msgs, func(i, j int) bool {
			if msgs[i].id.Sender != msgs[j].id.Sender {
				return msgs[i].id.Sender < msgs[j].id.Sender
			}
			return msgs[i].id.N < msgs[j].id.N
		})
		for qi, q := range x.members {
			if !h.survived(q, v) {
				continue
			}
			dq := h.delivered[q]
			missed := 0
			var first safeMsg
			for _, m := range msgs {
				if at := x.at(qi, m.id); at < 0 || dq[at].view != v {
					if missed == 0 {
						first = m
					}
					missed++
				}
			}
			if missed > 0 {
				if add("safe", "%s went through%s to its end but missed %d safe messages delivered in it, first %v (delivered by %s)", q, viewName(v), missed, first.id, first.by) {
					return true
				}
			}
		}
	}
	return false
}

func inView(v uint64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf(" in view %d", v)
}

func viewName(v uint64) string {
	if v == 0 {
		return " the history"
	}
	return fmt.Sprintf(" view %d", v)
}

// survived reports whether member q went through view v to its end: it
// installed v and a later view, or v is its last view and it neither
// crashed nor left nor was removed. With no views recorded: it neither
// crashed nor left.
func (h *History) survived(q string, v uint64) bool {
	if !h.dynamic {
		return !h.crashed[q] && !h.gone[q]
	}
	in, later := false, false
	for _, i := range h.installs[q] {
		if i.epoch == v {
			in = true
		} else if i.epoch > v {
			later = true
		}
	}
	return in && (later || (!h.crashed[q] && !h.gone[q]))
}
