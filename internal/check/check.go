// Package check verifies cohort's delivery guarantees from a history of
// sends and deliveries, without looking at the protocol's internals. The
// simulator feeds it directly; the real-process tests feed it from the
// members' delivery logs. It knows only what the application saw: who sent
// which message with which ordering (and whether safe), what each member
// had delivered when it sent, and who delivered it in what order.
//
// The rules, by the Rule name of their violations:
//
//   - integrity: nothing is delivered that was not sent, and a message is
//     delivered with the payload, ordering and safe flag it was sent with;
//   - exactly-once: no member delivers a message twice;
//   - fifo, total-fifo, causal (sender order): each member delivers one
//     sender's FIFO, causal and total messages in the order they were
//     sent (unordered messages are exempt);
//   - total: in each view, any two members deliver the total-order
//     messages both delivered there in the same relative order;
//   - causal: when a member sent a causal message m1 after it delivered
//     m0 (of any ordering), every member that delivers m1 delivered m0
//     before it, if it was in the view in which the sender delivered m0
//     (a later joiner has m0's effect through state transfer);
//   - safe: a safe message delivered in view v by anyone (crashed
//     members included) is delivered in v by every member that survived
//     v (installed a later view, or ended the history in v neither
//     crashed nor gone);
//   - completeness (no views recorded): every member that did not crash
//     delivered every message of every sender that did not crash;
//   - views, same-view, virtual-synchrony, final-view, self-delivery
//     (views recorded): see checkViews.
package check

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// MsgID names a message by its sender and the sender's count of sends,
// starting at 1.
type MsgID struct {
	Sender string
	N      uint64
}

func (id MsgID) String() string { return fmt.Sprintf("%s#%d", id.Sender, id.N) }

// Orderings as the checker names them (the same words as the logs).
const (
	Unordered = "unordered"
	FIFO      = "fifo"
	Causal    = "causal"
	Total     = "total"
)

// Violation is one broken guarantee.
type Violation struct {
	Rule   string // short name of the guarantee
	Detail string
}

func (v Violation) String() string { return v.Rule + ": " + v.Detail }

type sent struct {
	order string
	hash  uint64
	view  uint64 // the sender's view when it sent (0: unknown)
	// before is how many deliveries the sender had recorded when it sent:
	// the send's place in the sender's sequence of events.
	before int
	safe   bool
}

type delivery struct {
	id    MsgID
	order string
	hash  uint64
	view  uint64 // the deliverer's view (0: unknown)
	safe  bool
}

// orderName is an ordering as the details name it: "total+safe".
func orderName(order string, safe bool) string {
	if safe {
		return order + "+safe"
	}
	return order
}

// install is one view a member installed.
type install struct {
	epoch   uint64
	members string // canonical form of the member list
	// why: canonical form of the reasons for the members gone since the
	// previous view; "" for a member's first view (it knew no previous
	// one) and where the reasons were not recorded.
	why string
}

// History collects events. It is not safe for concurrent use.
type History struct {
	sent      map[MsgID]sent
	delivered map[string][]delivery // per member, in delivery order
	crashed   map[string]bool
	gone      map[string]bool // left or removed: not expected to deliver later views
	installs  map[string][]install
	members   []string
	// dynamic: views were recorded, so completeness is judged by view
	// synchrony rather than "everyone delivers everything".
	dynamic bool
}

// NewHistory starts an empty history.
func NewHistory() *History {
	return &History{sent: map[MsgID]sent{}, delivered: map[string][]delivery{}, crashed: map[string]bool{}, gone: map[string]bool{}, installs: map[string][]install{}}
}

// Member declares a member of the group.
func (h *History) Member(name string) {
	if _, ok := h.delivered[name]; !ok {
		h.delivered[name] = nil
		h.members = append(h.members, name)
	}
}

// Sent records that id.Sender sent id. hash is a digest of the payload, or
// 0 when unknown. Call it when the application calls Send: the send takes
// its place among id.Sender's deliveries recorded so far (the causal rule
// takes those as delivered before the send), so id.Sender must be the
// sending member's name as its deliveries record it.
func (h *History) Sent(id MsgID, order string, hash uint64) {
	h.SentAs(id, order, false, hash, 0)
}

// Delivered records that member delivered id, in the order of calls.
func (h *History) Delivered(member string, id MsgID, order string, hash uint64) {
	h.DeliveredAs(member, id, order, false, hash, 0)
}

// SentInView is Sent for a member that was in view epoch when it sent.
func (h *History) SentInView(id MsgID, order string, hash uint64, epoch uint64) {
	h.SentAs(id, order, false, hash, epoch)
}

// DeliveredInView is Delivered in the deliverer's view epoch.
func (h *History) DeliveredInView(member string, id MsgID, order string, hash uint64, epoch uint64) {
	h.DeliveredAs(member, id, order, false, hash, epoch)
}

// SentAs is Sent with every attribute of the send: order is Unordered,
// FIFO, Causal or Total; safe says the message was sent safe (uniform
// delivery, or-ed with the ordering); epoch is the sender's view when it
// sent (0: unknown).
func (h *History) SentAs(id MsgID, order string, safe bool, hash uint64, epoch uint64) {
	h.sent[id] = sent{order: order, hash: hash, view: epoch, before: len(h.delivered[id.Sender]), safe: safe}
}

// DeliveredAs is Delivered with every attribute of the delivery, as
// SentAs takes them; epoch is the deliverer's view (0: unknown).
func (h *History) DeliveredAs(member string, id MsgID, order string, safe bool, hash uint64, epoch uint64) {
	h.delivered[member] = append(h.delivered[member], delivery{id: id, order: order, hash: hash, view: epoch, safe: safe})
}

// Installed records that member installed view epoch with these members
// (names, in view order). Recording views switches the checker to view
// synchrony's rules.
func (h *History) Installed(member string, epoch uint64, members []string) {
	h.InstalledWhy(member, epoch, members, nil)
}

// InstalledWhy is Installed with the reasons the view gives for the
// members of the previous view that are not in it (for example
// "left": [...], "failed": [...]): those are part of the view, so two
// members that install one view number must give the same reasons.
func (h *History) InstalledWhy(member string, epoch uint64, members []string, gone map[string][]string) {
	h.Member(member)
	h.dynamic = true
	in := install{epoch: epoch, members: fmt.Sprint(members)}
	if gone != nil && len(h.installs[member]) > 0 {
		reasons := make([]string, 0, len(gone))
		for why, ms := range gone {
			if len(ms) > 0 {
				ms = slices.Sorted(slices.Values(ms))
				reasons = append(reasons, fmt.Sprintf("%s %v", why, ms))
			}
		}
		slices.Sort(reasons)
		in.why = "gone: " + strings.Join(reasons, ", ")
	}
	h.installs[member] = append(h.installs[member], in)
}

// Gone records that member left the group or was removed from it.
func (h *History) Gone(member string) { h.gone[member] = true }

// Crashed records that member crashed: it is not expected to have
// delivered everything, nor others to deliver all it sent.
func (h *History) Crashed(member string) { h.crashed[member] = true }

// Check returns every violation, in a stable order, at most limit of them
// (0: no limit).
func (h *History) Check(limit int) []Violation {
	var out []Violation
	add := func(rule, format string, args ...any) bool {
		out = append(out, Violation{Rule: rule, Detail: fmt.Sprintf(format, args...)})
		return limit > 0 && len(out) >= limit
	}
	members := append([]string(nil), h.members...)
	sort.Strings(members)
	for _, m := range members {
		seen := make(map[MsgID]bool, len(h.delivered[m]))
		// per sender, the last message delivered in sender order
		lastFIFO := map[string]delivery{}
		for _, d := range h.delivered[m] {
			s, ok := h.sent[d.id]
			switch {
			case !ok:
				if add("integrity", "%s delivered %v, which was never sent", m, d.id) {
					return out
				}
				continue
			case s.hash != 0 && d.hash != 0 && s.hash != d.hash:
				if add("integrity", "%s delivered %v with a payload that differs from the one sent", m, d.id) {
					return out
				}
			case s.order != d.order || s.safe != d.safe:
				if add("integrity", "%s delivered %v as %s; it was sent as %s", m, d.id, orderName(d.order, d.safe), orderName(s.order, s.safe)) {
					return out
				}
			}
			if seen[d.id] {
				if add("exactly-once", "%s delivered %v twice", m, d.id) {
					return out
				}
			}
			seen[d.id] = true
			if senderOrdered(d.order) {
				// Every ordering but unordered keeps each sender's order,
				// across orderings too (the engine delivers all of a
				// sender's messages in send order).
				if last, ok := lastFIFO[d.id.Sender]; ok && d.id.N < last.id.N {
					rule := "fifo"
					switch {
					case d.order == Total && last.order == Total:
						rule = "total-fifo"
					case d.order == Causal || last.order == Causal:
						rule = "causal"
					}
					if add(rule, "%s delivered %v (%s) after %v (%s), which its sender sent later", m, d.id, d.order, last.id, last.order) {
						return out
					}
				} else {
					lastFIFO[d.id.Sender] = d
				}
			}
		}
		if h.crashed[m] || h.dynamic {
			continue
		}
		var missing []MsgID
		for id := range h.sent {
			if !seen[id] && !h.crashed[id.Sender] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			sort.Slice(missing, func(i, j int) bool {
				if missing[i].Sender != missing[j].Sender {
					return missing[i].Sender < missing[j].Sender
				}
				return missing[i].N < missing[j].N
			})
			if add("completeness", "%s never delivered %d messages, first %v", m, len(missing), missing[0]) {
				return out
			}
		}
	}
	if h.dynamic {
		h.checkViews(add)
	}
	if limit > 0 && len(out) >= limit {
		return out
	}
	h.checkOrders(add)
	return out
}

// senderOrdered reports whether an ordering delivers each sender's
// messages in send order.
func senderOrdered(order string) bool {
	return order == FIFO || order == Causal || order == Total
}

// PayloadHash is the digest Sent and Delivered take: FNV-1a over the
// payload, never 0 (0 means unknown).
func PayloadHash(p []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range p {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h | 1
}
