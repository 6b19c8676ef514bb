package batch

import "github.com/cohort-vs/cohort/udp"

// A Grouper reorders a batch of datagrams so that each destination's
// datagrams come together, in their order, destinations in the order they
// first appear. A multicast packed datagram by datagram, each copied to
// every receiver in turn (A, B, C, A, B, C, ...), has no run to any one
// address; grouped, each receiver's run of same-size datagrams can leave
// as one GSO message (see udp.Options.DisableGSO), one packet through the
// kernel's stack instead of one per datagram. Across destinations order
// means nothing to UDP. Its zero value is ready; it reuses its buffers,
// so one Grouper serves one writer at a time.
type Grouper struct {
	out   []udp.Datagram
	taken []bool
}

// Group returns ds grouped by destination, in the Grouper's buffer: valid
// until the next call. It allocates only to grow that buffer.
func (g *Grouper) Group(ds []udp.Datagram) []udp.Datagram {
	if cap(g.taken) < len(ds) {
		g.taken = make([]bool, len(ds))
	}
	taken := g.taken[:len(ds)]
	clear(taken)
	out := g.out[:0]
	for i := range ds {
		if taken[i] {
			continue
		}
		for j := i; j < len(ds); j++ { // destinations are few: a group's members
			if !taken[j] && ds[j].Addr == ds[i].Addr {
				out = append(out, ds[j])
				taken[j] = true
			}
		}
	}
	g.out = out[:0]
	return out
}
