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
