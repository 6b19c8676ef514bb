package protocol_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/cohort-vs/cohort/internal/wire"
)

// setInstance rewrites the instance a datagram names.
func setInstance(d []byte, instance uint64) []byte {
	d = append([]byte(nil), d...)
	binary.LittleEndian.PutUint64(d[16:], instance)
	return d
}

// Traffic of another instance of the group (a restarted group, another
// deployment using the same name) at the very view number and from the
// very addresses of this one is never taken: its data is not delivered,
// its membership messages do not change the view; both are counted.
func TestOtherInstanceDropped(t *testing.T) {
	w := newScenarioWorld(t)
	w.do("start a b c")
	w.do("stabilize")
	a, b := w.procs["a"], w.procs["b"]
	var data, ctl []byte
	w.tap = func(from, to *scenarioProc, d []byte) {
		if from != a || to != b || len(d) < wire.HeaderSize {
			return
		}
		if d[3] == wire.TypeGroup && data == nil && bytes.Contains(d, []byte("hello")) {
			data = append([]byte(nil), d...)
		}
	}
	w.do("send a fifo hello")
	w.do("stabilize")
	if data == nil {
		t.Fatal("no data datagram from a to b seen")
	}
	delivered, epoch := len(b.delivered), b.epoch
	before := b.g.Stats().OtherInstance
	h, _ := wire.ParseHeader(data)
	other := h.Instance + 1
	// The same datagram, as another instance's (it is checked before
	// anything else: a duplicate of its own would be counted as one).
	b.g.Receive(a.addr, setInstance(data, other))
	ctl = wire.AppendControl(nil, wire.Header{Sender: 0, Group: h.Group, Instance: other, Epoch: h.Epoch},
		&wire.Control{Kind: wire.CtlSuspect, From: wire.MemberID{Addr: a.addr, Incarnation: a.inc}, Epoch: h.Epoch, Target: wire.MemberID{Addr: w.procs["c"].addr, Incarnation: w.procs["c"].inc}})
	b.g.Receive(a.addr, ctl)
	w.drain(b)
	w.do("stabilize")
	if got := b.g.Stats().OtherInstance - before; got != 2 {
		t.Fatalf("counted %d datagrams of another instance, want 2", got)
	}
	if len(b.delivered) != delivered || b.epoch != epoch {
		t.Fatalf("b delivered %d (was %d), epoch %d (was %d)", len(b.delivered), delivered, b.epoch, epoch)
	}
	// And the group's own traffic still flows.
	w.do("send a fifo again")
	w.do("stabilize")
	if len(b.delivered) != delivered+1 {
		t.Fatalf("b delivered %d after one more message, want %d", len(b.delivered), delivered+1)
	}
}

// A member never answers a process outside its view with more bytes than
// it was sent: a small Discover gets no answer, a padded one (as members
// send) gets the view.
func TestAnswersNoLargerThanQuestions(t *testing.T) {
	w := newScenarioWorld(t)
	w.do("start a b c")
	w.do("stabilize")
	b := w.procs["b"]
	outsider := wire.MemberID{Addr: netip.MustParseAddrPort("192.0.2.7:7000"), Incarnation: 1}
	answers := func(q *wire.Control) (n int, biggest int) {
		w.flight = nil
		d := wire.AppendControl(nil, wire.Header{Sender: wire.NoRank, Group: wire.GroupID("scenario")}, q)
		b.g.Receive(outsider.Addr, d)
		w.drain(b)
		for _, f := range w.flight {
			if f.to == outsider.Addr {
				n++
				biggest = max(biggest, len(f.data))
				if len(f.data) > len(d) {
					t.Errorf("a %d-byte answer to a %d-byte question (kind %d)", len(f.data), len(d), q.Kind)
				}
			}
		}
		for i := 0; i < 100; i++ { // past the answer limit's interval
			w.tick()
		}
		return n, biggest
	}
	withheld := b.g.Stats().AnswersWithheld
	if n, _ := answers(&wire.Control{Kind: wire.CtlDiscover, From: outsider}); n != 0 {
		t.Fatalf("an unpadded Discover got %d answers", n)
	}
	if b.g.Stats().AnswersWithheld != withheld+1 {
		t.Fatal("the withheld answer was not counted")
	}
	if n, size := answers(&wire.Control{Kind: wire.CtlDiscover, From: outsider, Pad: 8192}); n != 1 || size <= wire.HeaderSize+100 {
		t.Fatalf("a padded Discover got %d answers (%d bytes), want the view", n, size)
	}
}

// A group at MaxMembers refuses further joins (counted); the joiner is
// told (it ends with ErrJoinFull) and the view does not change.
func TestJoinBeyondMaxMembersRefused(t *testing.T) {
	w := newScenarioWorld(t)
	w.maxMembers = 2
	w.do("start a b")
	w.do("stabilize")
	a := w.procs["a"]
	epoch := a.epoch
	w.do("join c")
	for i := 0; i < 300; i++ {
		w.tick()
	}
	if a.epoch != epoch || w.procs["c"].epoch != 0 {
		t.Fatalf("a at view %d (was %d), c at view %d: the join went through", a.epoch, epoch, w.procs["c"].epoch)
	}
	if a.g.Stats().JoinsRefused+w.procs["b"].g.Stats().JoinsRefused == 0 {
		t.Fatal("the refused join was not counted")
	}
	if c := w.procs["c"]; c.g != nil || !strings.Contains(c.ended, "full") {
		t.Fatalf("the joiner ended with %q, want the group full", c.ended)
	}
}

// The view says who is restoring, the same at every member: a joiner
// until it calls Restored, as its promises say.
func TestRestoringInTheView(t *testing.T) {
	w := newScenarioWorld(t)
	w.do("start a b")
	w.do("stabilize")
	restoring := func(want ...string) {
		t.Helper()
		for name, p := range w.procs {
			if p.g == nil {
				continue
			}
			var got []string
			for _, m := range p.g.View().Restoring {
				got = append(got, w.label(m))
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("%s's view %d lists %v as restoring, want %v", name, p.g.View().Epoch, got, want)
			}
		}
	}
	restoring("b") // joined a's group
	w.procs["b"].g.Restored()
	w.do("join c")
	w.do("stabilize")
	restoring("c")
	w.do("join d") // c has not restored yet: its promise says so
	w.do("stabilize")
	restoring("c", "d")
	w.procs["c"].g.Restored()
	w.do("join e")
	w.do("stabilize")
	restoring("d", "e")
}
