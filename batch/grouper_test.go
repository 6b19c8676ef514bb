package batch

import (
	"github.com/cohort-vs/cohort/udp"
	"net/netip"
	"testing"
)

// Group gathers datagrams by address, keeps each address's datagrams in
// their order, and allocates nothing once warm.
func TestGrouper(t *testing.T) {
	a := netip.MustParseAddrPort("127.0.0.1:1")
	b := netip.MustParseAddrPort("127.0.0.1:2")
	c := netip.MustParseAddrPort("127.0.0.1:3")
	var ds []udp.Datagram
	for i, to := range []netip.AddrPort{a, b, c, a, b, c, b, a} {
		ds = append(ds, udp.Datagram{N: i, Addr: to})
	}
	var g Grouper
	got := g.Group(ds)
	want := []struct {
		n  int
		to netip.AddrPort
	}{{0, a}, {3, a}, {7, a}, {1, b}, {4, b}, {6, b}, {2, c}, {5, c}}
	if len(got) != len(want) {
		t.Fatalf("%d datagrams out of %d", len(got), len(ds))
	}
	for i, w := range want {
		if got[i].N != w.n || got[i].Addr != w.to {
			t.Errorf("position %d: datagram %d to %v, want %d to %v", i, got[i].N, got[i].Addr, w.n, w.to)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { g.Group(ds) }); allocs != 0 {
		t.Errorf("%v allocations per call", allocs)
	}
}
