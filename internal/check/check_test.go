package check

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	a1, a2, b1 := MsgID{"a", 1}, MsgID{"a", 2}, MsgID{"b", 1}
	cases := []struct {
		name  string
		build func(h *History)
		want  string // rule of the first violation; "" for none
	}{
		{"clean", func(h *History) {
			h.Delivered("a", a1, FIFO, 1)
			h.Delivered("a", a2, FIFO, 2)
			h.Delivered("b", a1, FIFO, 1)
			h.Delivered("b", a2, FIFO, 2)
		}, ""},
		{"fifo", func(h *History) {
			h.Delivered("a", a1, FIFO, 1)
			h.Delivered("a", a2, FIFO, 2)
			h.Delivered("b", a2, FIFO, 2)
			h.Delivered("b", a1, FIFO, 1)
		}, "fifo"},
		{"duplicate", func(h *History) {
			h.Delivered("a", a1, FIFO, 1)
			h.Delivered("a", a1, FIFO, 1)
			h.Delivered("a", a2, FIFO, 2)
			h.Delivered("b", a1, FIFO, 1)
			h.Delivered("b", a2, FIFO, 2)
		}, "exactly-once"},
		{"missing", func(h *History) {
			h.Delivered("a", a1, FIFO, 1)
			h.Delivered("a", a2, FIFO, 2)
			h.Delivered("b", a1, FIFO, 1)
		}, "completeness"},
		{"crashed receiver may miss", func(h *History) {
			h.Crashed("b")
			h.Delivered("a", a1, FIFO, 1)
			h.Delivered("a", a2, FIFO, 2)
		}, ""},
		{"never sent", func(h *History) {
			h.Delivered("a", a1, FIFO, 1)
			h.Delivered("a", a2, FIFO, 2)
			h.Delivered("b", a1, FIFO, 1)
			h.Delivered("b", a2, FIFO, 2)
			h.Delivered("b", b1, FIFO, 1)
		}, "integrity"},
		{"corrupt", func(h *History) {
			h.Delivered("a", a1, FIFO, 1)
			h.Delivered("a", a2, FIFO, 2)
			h.Delivered("b", a1, FIFO, 9)
			h.Delivered("b", a2, FIFO, 2)
		}, "integrity"},
	}
	for _, c := range cases {
		h := NewHistory()
		h.Member("a")
		h.Member("b")
		h.Sent(a1, FIFO, 1)
		h.Sent(a2, FIFO, 2)
		c.build(h)
		v := h.Check(0)
		switch {
		case c.want == "" && len(v) > 0:
			t.Errorf("%s: unexpected %v", c.name, v)
		case c.want != "" && (len(v) == 0 || v[0].Rule != c.want):
			t.Errorf("%s: got %v, want a %s violation", c.name, v, c.want)
		case c.want != "" && !strings.Contains(v[0].String(), c.want):
			t.Errorf("%s: %q", c.name, v[0])
		}
	}
}

func TestUnorderedMayReorder(t *testing.T) {
	h := NewHistory()
	h.Member("a")
	a1, a2 := MsgID{"a", 1}, MsgID{"a", 2}
	h.Sent(a1, Unordered, 0)
	h.Sent(a2, Unordered, 0)
	h.Delivered("a", a2, Unordered, 0)
	h.Delivered("a", a1, Unordered, 0)
	if v := h.Check(0); len(v) != 0 {
		t.Fatal(v)
	}
}

func TestViewRules(t *testing.T) {
	m1, m2 := MsgID{"a", 1}, MsgID{"b", 1}
	cases := []struct {
		name  string
		build func(h *History)
		want  string
	}{
		{"two views one number", func(h *History) {
			h.Installed("a", 1, []string{"a"})
			h.Installed("b", 1, []string{"b"})
		}, "views"},
		{"one view, two accounts of who went", func(h *History) {
			for _, m := range []string{"a", "b"} {
				h.Installed(m, 1, []string{"a", "b", "c"})
			}
			h.InstalledWhy("a", 2, []string{"a", "b"}, map[string][]string{"left": {"c"}})
			h.InstalledWhy("b", 2, []string{"a", "b"}, map[string][]string{"failed": {"c"}})
		}, "views"},
		{"one view, one account; a joiner knows none", func(h *History) {
			for _, m := range []string{"a", "b"} {
				h.Installed(m, 1, []string{"a", "b", "c", "d"})
			}
			h.InstalledWhy("a", 2, []string{"a", "b", "e"}, map[string][]string{"left": {"c", "d"}, "failed": nil})
			h.InstalledWhy("b", 2, []string{"a", "b", "e"}, map[string][]string{"left": {"d", "c"}})
			h.InstalledWhy("e", 2, []string{"a", "b", "e"}, map[string][]string{})
		}, ""},
		{"together but different sets", func(h *History) {
			for _, m := range []string{"a", "b"} {
				h.Installed(m, 1, []string{"a", "b"})
			}
			h.SentInView(m1, FIFO, 1, 1)
			h.DeliveredInView("a", m1, FIFO, 1, 1)
			for _, m := range []string{"a", "b"} {
				h.Installed(m, 2, []string{"a", "b"})
			}
		}, "virtual-synchrony"},
		{"final view differs", func(h *History) {
			for _, m := range []string{"a", "b"} {
				h.Installed(m, 1, []string{"a", "b"})
			}
			h.SentInView(m1, FIFO, 1, 1)
			h.DeliveredInView("a", m1, FIFO, 1, 1)
		}, "final-view"},
		{"different views", func(h *History) {
			for _, m := range []string{"a", "b"} {
				h.Installed(m, 1, []string{"a", "b"})
				h.Installed(m, 2, []string{"a", "b"})
			}
			h.SentInView(m2, FIFO, 1, 1)
			h.DeliveredInView("a", m2, FIFO, 1, 1)
			h.DeliveredInView("b", m2, FIFO, 1, 2)
		}, "same-view"},
		{"crashed member may differ", func(h *History) {
			for _, m := range []string{"a", "b"} {
				h.Installed(m, 1, []string{"a", "b"})
			}
			h.SentInView(m1, FIFO, 1, 1)
			h.DeliveredInView("a", m1, FIFO, 1, 1)
			h.Crashed("b")
		}, ""},
		{"own message never delivered", func(h *History) {
			h.Installed("a", 1, []string{"a"})
			h.SentInView(m1, FIFO, 1, 1)
		}, "self-delivery"},
	}
	for _, c := range cases {
		h := NewHistory()
		c.build(h)
		v := h.Check(0)
		switch {
		case c.want == "" && len(v) > 0:
			t.Errorf("%s: unexpected %v", c.name, v)
		case c.want != "" && (len(v) == 0 || v[0].Rule != c.want):
			t.Errorf("%s: got %v, want %s", c.name, v, c.want)
		}
	}
}

// The rules of causal, total and safe delivery, each shown failing on a
// bad history and passing on the good one beside it.
func TestOrderRules(t *testing.T) {
	a1, a2, b1, b2, c1 := MsgID{"a", 1}, MsgID{"a", 2}, MsgID{"b", 1}, MsgID{"b", 2}, MsgID{"c", 1}
	abc := []string{"a", "b", "c"}
	view := func(h *History, epoch uint64, members ...string) {
		for _, m := range members {
			h.Installed(m, epoch, members)
		}
	}
	// deliver records that each member delivers ids in view 1, as sent.
	deliver := func(h *History, epoch uint64, m string, ids ...MsgID) {
		for _, id := range ids {
			s := h.sent[id]
			h.DeliveredAs(m, id, s.order, s.safe, 0, epoch)
		}
	}
	cases := []struct {
		name  string
		build func(h *History)
		want  string // rule of the first violation; "" for none
	}{
		// Total: a and b agree, c does not.
		{"total agrees", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, Total, false, 0, 1)
			h.SentAs(b1, Total, false, 0, 1)
			deliver(h, 1, "a", b1, a1)
			deliver(h, 1, "b", b1, a1)
			deliver(h, 1, "c", b1, a1)
		}, ""},
		{"total disagrees", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, Total, false, 0, 1)
			h.SentAs(b1, Total, false, 0, 1)
			deliver(h, 1, "a", b1, a1)
			deliver(h, 1, "b", b1, a1)
			deliver(h, 1, "c", a1, b1)
		}, "total"},
		{"a crashed member's non-safe total order binds nobody", func(h *History) {
			view(h, 1, abc...)
			view(h, 2, "a", "b")
			h.SentAs(a1, Total, false, 0, 1)
			h.SentAs(b1, Total, false, 0, 1)
			deliver(h, 1, "a", b1, a1)
			deliver(h, 1, "b", b1, a1)
			deliver(h, 1, "c", a1, b1) // its records were lost with it
			h.Crashed("c")
		}, ""},
		{"a crashed member's total order binds up to its last safe delivery", func(h *History) {
			view(h, 1, abc...)
			view(h, 2, "a", "b")
			h.SentAs(a1, Total, false, 0, 1)
			h.SentAs(b1, Total, false, 0, 1)
			h.SentAs(b2, Total, true, 0, 1)
			deliver(h, 1, "a", b1, a1, b2)
			deliver(h, 1, "b", b1, a1, b2)
			deliver(h, 1, "c", a1, b1, b2)
			h.Crashed("c")
		}, "total"},
		{"total order is causal among total messages", func(h *History) {
			view(h, 1, abc...)
			view(h, 2, "a", "c")
			h.SentAs(a1, Total, false, 0, 1)
			deliver(h, 1, "b", a1)
			h.SentAs(b1, Total, false, 0, 1) // b delivered a1 first
			h.Crashed("b")
			deliver(h, 1, "a", b1, a1) // a and c agree with each other
			deliver(h, 1, "c", b1, a1)
		}, "total-causal"},
		{"fifo messages may interleave differently", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, FIFO, false, 0, 1)
			h.SentAs(b1, FIFO, false, 0, 1)
			deliver(h, 1, "a", b1, a1)
			deliver(h, 1, "b", a1, b1)
			deliver(h, 1, "c", a1, b1)
		}, ""},
		{"total keeps sender order", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, Total, false, 0, 1)
			h.SentAs(a2, Total, false, 0, 1)
			for _, m := range abc {
				deliver(h, 1, m, a2, a1) // the same order everywhere, not a's
			}
		}, "total-fifo"},

		// Causal: b delivered a1, then sent b1; c must deliver a1 first.
		{"causal respected", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, FIFO, false, 0, 1)
			deliver(h, 1, "a", a1)
			deliver(h, 1, "b", a1)
			h.SentAs(b1, Causal, false, 0, 1)
			deliver(h, 1, "b", b1)
			deliver(h, 1, "a", b1)
			deliver(h, 1, "c", a1, b1)
		}, ""},
		{"causal inverted", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, FIFO, false, 0, 1)
			deliver(h, 1, "a", a1)
			deliver(h, 1, "b", a1)
			h.SentAs(b1, Causal, false, 0, 1)
			deliver(h, 1, "b", b1)
			deliver(h, 1, "a", b1)
			deliver(h, 1, "c", b1, a1)
		}, "causal"},
		{"causal predecessor never delivered", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, Unordered, false, 0, 1)
			deliver(h, 1, "a", a1)
			deliver(h, 1, "b", a1)
			h.SentAs(b1, Causal, false, 0, 1)
			deliver(h, 1, "b", b1)
			deliver(h, 1, "a", b1)
			deliver(h, 1, "c", b1)
			h.Crashed("c") // crashing does not excuse delivering b1 first
		}, "causal"},
		{"sent before delivering is concurrent", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, FIFO, false, 0, 1)
			h.SentAs(b1, Causal, false, 0, 1) // b had not delivered a1 yet
			deliver(h, 1, "a", a1, b1)
			deliver(h, 1, "b", b1, a1)
			deliver(h, 1, "c", b1, a1)
		}, ""},
		{"a later send's predecessors", func(h *History) {
			// b sent b1, then delivered a1, then sent b2: c may deliver
			// b1 before a1, not b2.
			view(h, 1, abc...)
			h.SentAs(a1, Causal, false, 0, 1)
			h.SentAs(b1, Causal, false, 0, 1)
			deliver(h, 1, "b", a1)
			h.SentAs(b2, Causal, false, 0, 1)
			deliver(h, 1, "b", b1, b2)
			deliver(h, 1, "a", a1, b1, b2)
			deliver(h, 1, "c", b1, b2, a1)
		}, "causal"},
		{"a later send's predecessors respected", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, Causal, false, 0, 1)
			h.SentAs(b1, Causal, false, 0, 1)
			deliver(h, 1, "b", a1)
			h.SentAs(b2, Causal, false, 0, 1)
			deliver(h, 1, "b", b1, b2)
			deliver(h, 1, "a", a1, b1, b2)
			deliver(h, 1, "c", b1, a1, b2)
		}, ""},
		{"causal sender order", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(b1, Causal, false, 0, 1)
			h.SentAs(b2, Causal, false, 0, 1)
			deliver(h, 1, "a", b1, b2)
			deliver(h, 1, "b", b1, b2)
			deliver(h, 1, "c", b2, b1)
		}, "causal"},
		{"a joiner need not deliver what came before its view", func(h *History) {
			view(h, 1, "a", "b")
			h.SentAs(a1, FIFO, false, 0, 1)
			deliver(h, 1, "a", a1)
			deliver(h, 1, "b", a1)
			view(h, 2, abc...)
			h.SentAs(b1, Causal, false, 0, 2) // b delivered a1 (view 1) before
			for _, m := range abc {
				deliver(h, 2, m, b1)
			}
		}, ""},
		{"a member of that view must", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, FIFO, false, 0, 1)
			deliver(h, 1, "a", a1)
			deliver(h, 1, "b", a1)
			view(h, 2, abc...) // c missed a1 in view 1
			h.SentAs(b1, Causal, false, 0, 2)
			for _, m := range abc {
				deliver(h, 2, m, b1)
			}
		}, "causal"},
		{"a repeated delivery does not hide the first", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, FIFO, false, 0, 1)
			for _, m := range abc {
				deliver(h, 1, m, a1)
			}
			h.SentAs(b1, Causal, false, 0, 1)
			deliver(h, 1, "b", b1)
			deliver(h, 1, "a", b1)
			deliver(h, 1, "c", b1, a1) // exactly-once, not causal
		}, "exactly-once"},

		// Safe: a crashed member delivered a1 in view 1; b and c went on
		// to view 2.
		{"safe delivered by all survivors", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, FIFO, true, 0, 1)
			for _, m := range abc {
				deliver(h, 1, m, a1)
			}
			h.Crashed("a")
			view(h, 2, "b", "c")
		}, ""},
		{"safe missed by a survivor", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(a1, FIFO, true, 0, 1)
			deliver(h, 1, "a", a1)
			deliver(h, 1, "b", a1)
			h.Crashed("a")
			h.Crashed("b")
			view(h, 2, "c") // c lost a1, which the crashed a and b delivered
		}, "safe"},
		{"safe missed by a member still in the view", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(c1, Total, true, 0, 1)
			deliver(h, 1, "a", c1)
			deliver(h, 1, "c", c1)
			h.Crashed("c")
			h.Gone("a")
			// b ended the history in view 1, neither crashed nor gone
		}, "safe"},
		{"safe need not reach members that did not survive", func(h *History) {
			view(h, 1, abc...)
			h.SentAs(c1, Total, true, 0, 1)
			deliver(h, 1, "c", c1)
			deliver(h, 1, "a", c1)
			h.Crashed("c")
			h.Crashed("b")
			h.Gone("a")
		}, ""},
		{"safe flag kept", func(h *History) {
			view(h, 1, "a")
			h.SentAs(a1, FIFO, true, 0, 1)
			h.DeliveredAs("a", a1, FIFO, false, 0, 1)
		}, "integrity"},
	}
	for _, c := range cases {
		h := NewHistory()
		c.build(h)
		v := h.Check(0)
		rules := map[string]bool{}
		for _, x := range v {
			rules[x.Rule] = true
		}
		switch {
		case c.want == "" && len(v) > 0:
			t.Errorf("%s: unexpected %v", c.name, v)
		case c.want != "" && !rules[c.want]:
			t.Errorf("%s: got %v, want a %s violation", c.name, v, c.want)
		case c.want == "exactly-once" && rules["causal"]:
			t.Errorf("%s: %v", c.name, v)
		default:
			t.Logf("%s: %v", c.name, v)
		}
	}
}

// Without views, the rules bind every member.
func TestOrderRulesStatic(t *testing.T) {
	a1, b1 := MsgID{"a", 1}, MsgID{"b", 1}
	h := NewHistory()
	for _, m := range []string{"a", "b", "c"} {
		h.Member(m)
	}
	h.SentAs(a1, Total, true, 0, 0)
	h.DeliveredAs("a", a1, Total, true, 0, 0)
	h.DeliveredAs("b", a1, Total, true, 0, 0)
	h.SentAs(b1, Causal, false, 0, 0)
	h.DeliveredAs("b", b1, Causal, false, 0, 0)
	h.DeliveredAs("a", b1, Causal, false, 0, 0)
	h.DeliveredAs("c", b1, Causal, false, 0, 0)
	h.Crashed("a")
	got := map[string]bool{}
	for _, v := range h.Check(0) {
		got[v.Rule] = true
		t.Log(v)
	}
	// c never delivered a1: safe (a crashed, so completeness excuses it)
	// and causal (b delivered a1 before sending b1).
	if !got["safe"] || !got["causal"] || len(got) != 2 {
		t.Errorf("rules %v, want safe and causal", got)
	}
}

// The limit holds across the rule groups.
func TestCheckLimit(t *testing.T) {
	h := NewHistory()
	for _, m := range []string{"a", "b"} {
		h.Installed(m, 1, []string{"a", "b"})
	}
	for n := uint64(1); n <= 3; n++ {
		h.SentAs(MsgID{"a", n}, Total, true, 0, 1)
		h.DeliveredAs("a", MsgID{"a", n}, Total, true, 0, 1)
		h.DeliveredAs("b", MsgID{"x", n}, Total, true, 0, 1)
	}
	if v := h.Check(2); len(v) != 2 {
		t.Errorf("%d violations with limit 2: %v", len(v), v)
	}
}
