package check

import "sort"

// checkViews applies view synchrony's rules:
//
//   - views: no two members install different views under one number, and
//     each member installs views in increasing order;
//   - same view: every member that delivers a message delivers it in the
//     same view, and never in a view older than the one it was sent in;
//   - virtual synchrony: members that install a view and then the same
//     next view delivered the same messages in the first;
//   - final view: members still in the group at the end, in the same last
//     view, delivered the same messages in it;
//   - self-delivery: a member that neither crashed nor left delivered
//     every message it sent.
func (h *History) checkViews(add func(rule, format string, args ...any) bool) {
	views := map[uint64]string{}
	viewOwner := map[uint64]string{}
	whys, whyOwner := map[uint64]string{}, map[uint64]string{}
	members := append([]string(nil), h.members...)
	sort.Strings(members)
	for _, m := range members {
		var last uint64
		for _, in := range h.installs[m] {
			if in.epoch <= last {
				if add("views", "%s installed view %d after view %d", m, in.epoch, last) {
					return
				}
			}
			last = in.epoch
			if v, ok := views[in.epoch]; ok && v != in.members {
				if add("views", "view %d is %s at %s but %s at %s", in.epoch, v, viewOwner[in.epoch], in.members, m) {
					return
				}
			} else if !ok {
				views[in.epoch], viewOwner[in.epoch] = in.members, m
			}
			if in.why == "" {
				continue
			}
			// Members that were in the previous view give one account of
			// who went and why.
			if w, ok := whys[in.epoch]; ok && w != in.why {
				if add("views", "view %d at %s says %s but at %s %s", in.epoch, whyOwner[in.epoch], w, m, in.why) {
					return
				}
			} else if !ok {
				whys[in.epoch], whyOwner[in.epoch] = in.why, m
			}
		}
	}

	// The first delivery of each message: in which view, by whom. The
	// maps are made at their final size: with the millions of deliveries
	// of a real-process run, growing them was a good part of the check.
	type first struct {
		view uint64
		by   string
	}
	deliveredIn := make(map[MsgID]first, len(h.sent))
	// per member, per view: the set of messages delivered
	sets := map[string]map[uint64]map[MsgID]bool{}
	for _, m := range members {
		perView := map[uint64]int{}
		for _, d := range h.delivered[m] {
			perView[d.view]++
		}
		sets[m] = make(map[uint64]map[MsgID]bool, len(perView))
		for v, n := range perView {
			sets[m][v] = make(map[MsgID]bool, n)
		}
		for _, d := range h.delivered[m] {
			if f, ok := deliveredIn[d.id]; ok && f.view != d.view {
				if add("same-view", "%v delivered in view %d at %s and in view %d at %s", d.id, f.view, f.by, d.view, m) {
					return
				}
			} else if !ok {
				deliveredIn[d.id] = first{view: d.view, by: m}
			}
			if s, ok := h.sent[d.id]; ok && s.view != 0 && d.view < s.view {
				if add("same-view", "%s delivered %v in view %d, before view %d in which it was sent", m, d.id, d.view, s.view) {
					return
				}
			}
			sets[m][d.view][d.id] = true
		}
	}

	// Successor of each view at each member.
	next := func(m string, epoch uint64) (uint64, bool) {
		ins := h.installs[m]
		for i, in := range ins {
			if in.epoch == epoch && i+1 < len(ins) {
				return ins[i+1].epoch, true
			}
		}
		return 0, false
	}
	// Members at the end: neither crashed nor gone; their last view.
	finalView := map[string]uint64{}
	for _, m := range members {
		if !h.crashed[m] && !h.gone[m] && len(h.installs[m]) > 0 {
			finalView[m] = h.installs[m][len(h.installs[m])-1].epoch
		}
	}
	for i, p := range members {
		for _, in := range h.installs[p] {
			np, okp := next(p, in.epoch)
			for _, q := range members[i+1:] {
				nq, okq := next(q, in.epoch)
				together := okp && okq && np == nq
				atEnd := !okp && !okq && finalView[p] == in.epoch && finalView[q] == in.epoch
				if !together && !atEnd {
					continue
				}
				if !installed(h.installs[q], in.epoch) {
					continue
				}
				a, b := sets[p][in.epoch], sets[q][in.epoch]
				if id, ok := differ(a, b); ok {
					rule := "virtual-synchrony"
					if atEnd {
						rule = "final-view"
					}
					if add(rule, "%s and %s went through view %d together but only one delivered %v there (%d vs %d messages)", p, q, in.epoch, id, len(a), len(b)) {
						return
					}
				}
			}
		}
	}

	own := make(map[MsgID]bool, len(h.sent)) // messages their own senders delivered
	for _, m := range members {
		for _, d := range h.delivered[m] {
			if d.id.Sender == m {
				own[d.id] = true
			}
		}
	}
	for id := range h.sent {
		if h.crashed[id.Sender] || h.gone[id.Sender] {
			continue
		}
		if !own[id] {
			if add("self-delivery", "%s never delivered its own %v", id.Sender, id) {
				return
			}
			break
		}
	}
}

func installed(ins []install, epoch uint64) bool {
	for _, in := range ins {
		if in.epoch == epoch {
			return true
		}
	}
	return false
}

// differ returns a message in one set and not the other.
func differ(a, b map[MsgID]bool) (MsgID, bool) {
	for id := range a {
		if !b[id] {
			return id, true
		}
	}
	for id := range b {
		if !a[id] {
			return id, true
		}
	}
	return MsgID{}, false
}
