// Package memnet is an in-memory datagram network for tests: endpoints are
// udp.Conn values, and every directed link can drop, duplicate, reorder and
// delay datagrams, or be cut by a partition.
//
// All randomness comes from one seeded source, so a test that sends from a
// single goroutine sees the same faults on every run. Datagrams that are
// delayed wait in one scheduler goroutine per Network, which keeps them in
// due-time order (equal times keep send order) and stops on Close.
package memnet

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/cohort-vs/cohort/udp"
)

// QueueLimit is how many datagrams an endpoint holds unread; more are
// dropped and counted in its Stats().KernelDrops, as a kernel would.
const QueueLimit = 4096

// MaxDatagram is the largest payload the network carries (the IPv4 UDP
// limit).
const MaxDatagram = 65507

// ReorderHold is how long a datagram held back for reordering waits, beyond
// its own delay, for a later datagram on its link to overtake it.
const ReorderHold = 2 * time.Millisecond

// firstEphemeralPort is where Listen starts looking when asked for port 0.
const firstEphemeralPort = 49152

// Faults describe what a directed link does to each datagram. The zero
// value is a perfect link.
type Faults struct {
	// Drop, Duplicate and Reorder are probabilities from 0 to 1. A
	// reordered datagram is held back and delivered right after the next
	// datagram on its link, or after ReorderHold if none comes. The
	// datagram that overtakes a held one is never held itself, so about
	// Reorder/(1+Reorder) of a busy link's datagrams arrive late.
	Drop, Duplicate, Reorder float64
	// Delay is added to every datagram, plus a uniformly random extra of
	// up to Jitter (which therefore also reorders).
	Delay, Jitter time.Duration
}

// Stats are the network's counters. Fields are cumulative.
type Stats struct {
	Sent        uint64 // datagrams handed to the network
	Dropped     uint64 // lost to Faults.Drop
	LostBytes   uint64 // bytes of the datagrams Dropped and Overflowed
	Partitioned uint64 // lost to a partition (at send or at delivery)
	Duplicated  uint64 // extra copies made by Faults.Duplicate
	Reordered   uint64 // datagrams held back by Faults.Reorder
	Delivered   uint64 // datagrams put into an endpoint's queue
	Overflowed  uint64 // datagrams that found the endpoint's queue full
	NoListener  uint64 // datagrams addressed to no open endpoint
}

type link struct{ from, to netip.AddrPort }

type packet struct {
	from, to netip.AddrPort
	data     []byte // shared by duplicates; never written after send
}

// held is a datagram kept back for reordering. Whoever delivers it first,
// the next datagram on the link or the fallback timer, sets released.
type held struct {
	pk       packet
	at       time.Time
	released bool
}

// Network is a simulated datagram network. Create it with New; its methods
// are safe for concurrent use.
type Network struct {
	mu      sync.Mutex
	rng     *rand.Rand
	conns   map[netip.AddrPort]*conn
	links   map[link]Faults
	def     Faults
	group   map[netip.AddrPort]int // partition group of each address, if any
	held    map[link]*held
	pending schedule
	seq     uint64
	nextEph uint16
	closed  bool
	stats   Stats

	tap func(from, to netip.AddrPort, b []byte) // sees every datagram sent (SetTap)

	wake chan struct{} // nudges the scheduler when the earliest due time moves
	stop chan struct{}
	done chan struct{}
}

// New returns a network whose faults are drawn from a source seeded with
// seed.
func New(seed int64) *Network {
	n := &Network{
		rng:     rand.New(rand.NewPCG(uint64(seed), 0x636f686f7274)),
		conns:   make(map[netip.AddrPort]*conn),
		links:   make(map[link]Faults),
		held:    make(map[link]*held),
		nextEph: firstEphemeralPort,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go n.run()
	return n
}

// Listen opens an endpoint at addr. Port 0 picks a free port. Addresses
// match exactly: there is no wildcard binding, and the endpoint's address
// is the source of what it sends.
func (n *Network) Listen(addr netip.AddrPort) (udp.Conn, error) {
	if !addr.Addr().IsValid() {
		return nil, errors.New("memnet: invalid address")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, udp.ErrClosed
	}
	if addr.Port() == 0 {
		port, ok := n.freePort(addr.Addr())
		if !ok {
			return nil, fmt.Errorf("memnet: no free port on %v", addr.Addr())
		}
		addr = netip.AddrPortFrom(addr.Addr(), port)
	} else if n.conns[addr] != nil {
		return nil, fmt.Errorf("memnet: %v: address already in use", addr)
	}
	c := newConn(n, addr)
	n.conns[addr] = c
	return c, nil
}

// freePort hands out ephemeral ports round-robin, like a kernel, so a
// closed endpoint's port is not immediately reused.
func (n *Network) freePort(a netip.Addr) (uint16, bool) {
	for range 65536 - firstEphemeralPort {
		p := n.nextEph
		n.nextEph++
		if n.nextEph == 0 {
			n.nextEph = firstEphemeralPort
		}
		if n.conns[netip.AddrPortFrom(a, p)] == nil {
			return p, true
		}
	}
	return 0, false
}

// SetDefault sets the faults of every link that has none of its own.
func (n *Network) SetDefault(f Faults) {
	n.mu.Lock()
	n.def = f
	n.mu.Unlock()
}

// SetLink sets the faults of the directed link from → to, overriding the
// default.
func (n *Network) SetLink(from, to netip.AddrPort, f Faults) {
	n.mu.Lock()
	n.links[link{from, to}] = f
	n.mu.Unlock()
}

// Partition splits the listed addresses into groups: datagrams between
// addresses of different groups are lost, including those already in
// flight. Addresses in no group are unaffected. It replaces any earlier
// partition; an address listed twice belongs to its last group.
func (n *Network) Partition(groups ...[]netip.AddrPort) {
	m := make(map[netip.AddrPort]int)
	for i, g := range groups {
		for _, a := range g {
			m[a] = i
		}
	}
	n.mu.Lock()
	n.group = m
	n.mu.Unlock()
}

// Heal ends the partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.group = nil
	n.mu.Unlock()
}

// Stats returns the network's counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Close closes every endpoint, discards datagrams in flight and stops the
// scheduler. Later calls do nothing.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	conns := make([]*conn, 0, len(n.conns))
	for _, c := range n.conns {
		conns = append(conns, c)
	}
	clear(n.conns)
	n.pending = nil
	clear(n.held)
	n.mu.Unlock()

	close(n.stop)
	<-n.done
	for _, c := range conns {
		c.shut()
	}
	return nil
}

// remove forgets an endpoint that closed itself.
func (n *Network) remove(c *conn) {
	n.mu.Lock()
	if n.conns[c.local] == c {
		delete(n.conns, c.local)
	}
	n.mu.Unlock()
}

// SetTap makes fn see every datagram sent from now on (nil: none), as an
// observer on the path would: fn must not keep or modify b beyond the
// call (copy it). It runs with the network locked: it must not call the
// network.
func (n *Network) SetTap(fn func(from, to netip.AddrPort, b []byte)) {
	n.mu.Lock()
	n.tap = fn
	n.mu.Unlock()
}

// Inject sends b to to as if from from, whatever endpoint (if any) has
// that address: a spoofed source. The link's faults apply.
func (n *Network) Inject(from, to netip.AddrPort, b []byte) error {
	return n.send(from, []udp.Datagram{{Buf: b, N: len(b), Addr: to}})
}

// send puts a batch from one endpoint on the network. Payloads are copied
// (once, however many copies are delivered), since the caller reuses its
// buffers.
func (n *Network) send(from netip.AddrPort, ds []udp.Datagram) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return udp.ErrClosed
	}
	now := time.Now()
	for i := range ds {
		d := &ds[i]
		l := link{from, d.Addr}
		n.stats.Sent++
		if n.cut(l) {
			n.stats.Partitioned++
			continue
		}
		f, ok := n.links[l]
		if !ok {
			f = n.def
		}
		if f.Drop > 0 && n.rng.Float64() < f.Drop {
			n.stats.Dropped++
			n.stats.LostBytes += uint64(d.N)
			continue
		}
		copies := 1
		if f.Duplicate > 0 && n.rng.Float64() < f.Duplicate {
			copies = 2
			n.stats.Duplicated++
		}
		pk := packet{from: from, to: d.Addr, data: append([]byte(nil), d.Buf[:d.N]...)}
		if n.tap != nil {
			n.tap(from, d.Addr, pk.data)
		}
		for range copies {
			at := now.Add(max(f.Delay, 0))
			if f.Jitter > 0 {
				at = at.Add(time.Duration(n.rng.Int64N(int64(f.Jitter) + 1)))
			}
			// Draw even when the link already holds one, so the random
			// stream does not depend on when a fallback fired.
			if f.Reorder > 0 && n.rng.Float64() < f.Reorder && n.held[l] == nil {
				h := &held{pk: pk, at: at}
				n.held[l] = h
				n.stats.Reordered++
				n.enqueue(now, &item{at: at.Add(ReorderHold), pk: pk, hold: h})
				continue
			}
			n.enqueue(now, &item{at: at, pk: pk})
			if h := n.held[l]; h != nil {
				// The datagram just sent overtakes the held one.
				delete(n.held, l)
				h.released = true
				n.enqueue(now, &item{at: later(at, h.at), pk: h.pk})
			}
		}
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// cut reports whether a partition separates the link's ends.
func (n *Network) cut(l link) bool {
	if n.group == nil {
		return false
	}
	gf, okf := n.group[l.from]
	gt, okt := n.group[l.to]
	return okf && okt && gf != gt
}

// enqueue delivers an item at once if it is already due, and otherwise
// hands it to the scheduler. Only undelayed datagrams are due at once, and
// an earlier datagram on the same link can be pending only if it was
// delayed, so a link without jitter stays in order.
func (n *Network) enqueue(now time.Time, it *item) {
	if it.hold == nil && !it.at.After(now) {
		n.deliver(it.pk)
		return
	}
	n.seq++
	it.seq = n.seq
	heap.Push(&n.pending, it)
	if n.pending[0] == it {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}
}

// deliver hands a datagram to its endpoint's queue. The partition is
// checked again, so a partition also catches datagrams in flight.
func (n *Network) deliver(pk packet) {
	if n.cut(link{pk.from, pk.to}) {
		n.stats.Partitioned++
		return
	}
	c := n.conns[pk.to]
	if c == nil {
		n.stats.NoListener++
		return
	}
	if c.push(pk) {
		n.stats.Delivered++
	} else {
		n.stats.Overflowed++
		n.stats.LostBytes += uint64(len(pk.data))
	}
}

// fire runs a due item: a delivery, or a reorder fallback that delivers its
// datagram unless a later one already released it.
func (n *Network) fire(it *item) {
	if h := it.hold; h != nil {
		if h.released {
			return
		}
		h.released = true
		l := link{h.pk.from, h.pk.to}
		if n.held[l] == h {
			delete(n.held, l)
		}
	}
	n.deliver(it.pk)
}

// run is the scheduler: it delivers items as they fall due.
func (n *Network) run() {
	defer close(n.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		n.mu.Lock()
		now := time.Now()
		for len(n.pending) > 0 && !n.pending[0].at.After(now) {
			n.fire(heap.Pop(&n.pending).(*item))
		}
		wait := time.Duration(-1)
		if len(n.pending) > 0 {
			wait = n.pending[0].at.Sub(now)
		}
		n.mu.Unlock()
		if wait >= 0 {
			t.Reset(wait)
		}
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-n.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// item is a scheduled delivery.
type item struct {
	at   time.Time
	seq  uint64 // breaks ties in send order
	pk   packet
	hold *held // set for a reorder fallback
}

// schedule is a min-heap of items by due time, then sequence.
type schedule []*item

func (s schedule) Len() int { return len(s) }
func (s schedule) Less(i, j int) bool {
	if !s[i].at.Equal(s[j].at) {
		return s[i].at.Before(s[j].at)
	}
	return s[i].seq < s[j].seq
}
func (s schedule) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s *schedule) Push(x any)   { *s = append(*s, x.(*item)) }
func (s *schedule) Pop() any {
	old := *s
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*s = old[:len(old)-1]
	return it
}
