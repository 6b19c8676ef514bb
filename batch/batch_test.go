package batch

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

// recorder is a Conn that keeps copies of what it is asked to write.
type recorder struct {
	writes [][]udp.Datagram
}

func (r *recorder) ReadBatch([]udp.Datagram) (int, error) { return 0, udp.ErrClosed }
func (r *recorder) WriteBatch(ds []udp.Datagram) (int, error) {
	var w []udp.Datagram
	for _, d := range ds {
		w = append(w, udp.Datagram{Buf: bytes.Clone(d.Buf[:d.N]), N: d.N, Addr: d.Addr})
	}
	r.writes = append(r.writes, w)
	return len(ds), nil
}
func (r *recorder) LocalAddr() netip.AddrPort { return netip.AddrPort{} }
func (r *recorder) Stats() udp.Stats          { return udp.Stats{} }
func (r *recorder) Close() error              { return nil }

var (
	peerA = netip.MustParseAddrPort("127.0.0.1:1001")
	peerB = netip.MustParseAddrPort("127.0.0.1:1002")
)

// datagram returns a plausible datagram of n bytes (a header, then a
// pattern that names it).
func datagram(n int, tag byte) []byte {
	b := make([]byte, n)
	wire.PutHeader(b, wire.Header{Type: wire.TypeGroup, Group: uint64(tag)})
	for i := wire.HeaderSize; i < n; i++ {
		b[i] = tag
	}
	return b
}

// unpack returns, per destination, the datagrams a recorder's writes
// carried, bundles opened, in order.
func unpack(t *testing.T, r *recorder) map[netip.AddrPort][][]byte {
	t.Helper()
	got := map[netip.AddrPort][][]byte{}
	for _, w := range r.writes {
		for _, d := range w {
			if !wire.IsBundle(d.Buf) {
				got[d.Addr] = append(got[d.Addr], d.Buf)
				continue
			}
			inner, err := wire.SplitBundle(d.Buf, nil)
			if err != nil {
				t.Fatalf("a bundle that does not split: %v", err)
			}
			if len(inner) < 2 {
				t.Fatalf("a bundle of %d datagrams was sent", len(inner))
			}
			got[d.Addr] = append(got[d.Addr], inner...)
		}
	}
	return got
}

// The small datagrams of many groups bound for two processes leave as
// one bundle per process, in one WriteBatch, each datagram intact and in
// its order.
func TestSmallDatagramsShareABundle(t *testing.T) {
	r := &recorder{}
	b := New(r, 8192, 0, Policy{})
	want := map[netip.AddrPort][][]byte{}
	for g := range 20 {
		p := datagram(100+g, byte(g))
		// a multicast: one buffer, two addressees
		b.Add([]udp.Datagram{{Buf: p, N: len(p), Addr: peerA}, {Buf: p, N: len(p), Addr: peerB}}, 0)
		want[peerA] = append(want[peerA], p)
		want[peerB] = append(want[peerB], p)
	}
	if len(r.writes) != 0 {
		t.Fatal("written before the end of the round")
	}
	b.End(0)
	if len(r.writes) != 1 || len(r.writes[0]) != 2 {
		t.Fatalf("%d writes (%v), want one of 2 bundles", len(r.writes), r.writes)
	}
	if got := unpack(t, r); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("datagrams differ:\n got %v\nwant %v", got, want)
	}
	if s := b.Stats(); s.Bundles != 2 || s.Bundled != 40 || s.Datagrams != 40 || s.Writes != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A datagram alone for its destination leaves as itself: no envelope.
func TestLoneDatagramLeavesAlone(t *testing.T) {
	r := &recorder{}
	b := New(r, 8192, 0, Policy{})
	p := datagram(200, 7)
	b.Add([]udp.Datagram{{Buf: p, N: len(p), Addr: peerA}}, 0)
	b.End(0)
	if len(r.writes) != 1 || !bytes.Equal(r.writes[0][0].Buf, p) {
		t.Fatalf("writes %v", r.writes)
	}
	if s := b.Stats(); s.Bundles != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A bundle never exceeds the largest datagram; what does not fit opens
// another, and every datagram arrives once, in order.
func TestBundlesStayWithinMax(t *testing.T) {
	r := &recorder{}
	const max = 1472
	b := New(r, max, 0, Policy{})
	var want [][]byte
	for i := range 50 {
		p := datagram(wire.HeaderSize+i*7%300, byte(i))
		want = append(want, p)
		b.Add([]udp.Datagram{{Buf: p, N: len(p), Addr: peerA}}, 0)
	}
	b.End(0)
	for _, d := range r.writes[0] {
		if d.N > max {
			t.Fatalf("a datagram of %d bytes, max %d", d.N, max)
		}
	}
	if got := unpack(t, r)[peerA]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("datagrams differ")
	}
}

// A large datagram is not held (its buffer is its owner's): it is
// written at once with the rest of its Add, after what was held, in one
// WriteBatch, and each destination gets its datagrams in order.
func TestLargeDatagramFlushesInOrder(t *testing.T) {
	r := &recorder{}
	b := New(r, 8192, 0, Policy{})
	s1, s2 := datagram(100, 1), datagram(120, 2)
	big := datagram(8000, 3)
	b.Add([]udp.Datagram{{Buf: s1, N: len(s1), Addr: peerA}, {Buf: s2, N: len(s2), Addr: peerB}}, 0)
	// a group's large datagram, then its status: the status must not
	// overtake the data it reports
	b.Add([]udp.Datagram{{Buf: big, N: len(big), Addr: peerA}, {Buf: big, N: len(big), Addr: peerB}, {Buf: s2, N: len(s2), Addr: peerA}}, 0)
	if len(r.writes) != 1 {
		t.Fatalf("%d writes, want 1", len(r.writes))
	}
	got := unpack(t, r)
	if fmt.Sprint(got[peerA]) != fmt.Sprint([][]byte{s1, big, s2}) || fmt.Sprint(got[peerB]) != fmt.Sprint([][]byte{s2, big}) {
		t.Fatal("order per destination lost")
	}
	if b.Held() {
		t.Fatal("still holding after a large datagram")
	}
	b.End(0)
	if len(r.writes) != 1 {
		t.Fatal("an empty round wrote")
	}
}

// With a linger, held datagrams wait until the oldest is Linger old,
// unless a bundle filled.
func TestLingerHoldsUntilDue(t *testing.T) {
	r := &recorder{}
	b := New(r, 1024, 0, Policy{Linger: 100 * time.Microsecond})
	p := datagram(100, 1)
	b.Add([]udp.Datagram{{Buf: p, N: len(p), Addr: peerA}}, 1000)
	if at, waiting := b.End(1000); !waiting || at != 1000+100_000 {
		t.Fatalf("End = %d, %v; want a wait until %d", at, waiting, 1000+100_000)
	}
	b.Add([]udp.Datagram{{Buf: p, N: len(p), Addr: peerA}}, 50_000)
	if _, waiting := b.End(50_000); !waiting || len(r.writes) != 0 {
		t.Fatal("written before the linger ran out")
	}
	if _, waiting := b.End(101_000); waiting || len(r.writes) != 1 || len(unpack(t, r)[peerA]) != 2 {
		t.Fatalf("not written when due: %v", r.writes)
	}
	for range 12 { // 12 x 102 bytes fill a 1 KiB bundle
		b.Add([]udp.Datagram{{Buf: p, N: len(p), Addr: peerA}}, 200_000)
	}
	if _, waiting := b.End(200_000); waiting {
		t.Fatal("a full bundle waited")
	}
}

func TestPolicy(t *testing.T) {
	if hold, _ := (Policy{}).Hold(0, 0, false); hold {
		t.Error("natural batching held")
	}
	p := Policy{Linger: 50 * time.Microsecond}
	if hold, until := p.Hold(10, 20, false); !hold || until != 50_010 {
		t.Errorf("Hold = %v, %d", hold, until)
	}
	if hold, _ := p.Hold(10, 50_010, false); hold {
		t.Error("held past the linger")
	}
	if hold, _ := p.Hold(10, 20, true); hold {
		t.Error("held with a full bundle")
	}
	if _, until := (Policy{Linger: time.Second}).Hold(0, 0, false); until != int64(MaxLinger) {
		t.Errorf("linger not bounded: until %d", until)
	}
}

// Once warm, a round allocates nothing.
func TestBatchAllocatesNothing(t *testing.T) {
	b := New(&discard{}, 8192, 0, Policy{})
	small, big := datagram(150, 1), datagram(8000, 2)
	round := func() {
		for range 100 {
			b.Add([]udp.Datagram{{Buf: small, N: len(small), Addr: peerA}, {Buf: small, N: len(small), Addr: peerB}}, 0)
		}
		b.Add([]udp.Datagram{{Buf: big, N: len(big), Addr: peerA}}, 0)
		b.Add([]udp.Datagram{{Buf: small, N: len(small), Addr: peerA}}, 0)
		b.End(0)
	}
	round()
	if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
		t.Errorf("%v allocations per round", allocs)
	}
}

type discard struct{ recorder }

func (*discard) WriteBatch(ds []udp.Datagram) (int, error) { return len(ds), nil }
