// Package batch is what one protocol round sends, for every group, on
// its way to the socket: a Batch gathers the round's datagrams, packs the
// small ones bound for the same process into bundles (wire.TypeBundle),
// groups everything by destination (Grouper) and writes it with one
// WriteBatch. A Policy says when held datagrams leave.
package batch

import (
	"net/netip"
	"sync/atomic"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

// Batch gathers datagrams for one writer (the protocol loop): Add during
// a round, End at its end. Small datagrams (New) are copied
// into a bundle for their destination, shared with whatever else goes
// there in the round; an Add with a larger one is written at once (its
// buffers are valid only until their owner moves on), after everything
// held, so that each destination receives its datagrams in the order
// they were added. A bundle that ends up holding one datagram leaves as
// that datagram alone. Not safe for concurrent use.
type Batch struct {
	conn   udp.Conn
	max    int // the largest datagram written: no bundle is larger
	small  int
	policy Policy

	open   map[netip.AddrPort]int // destination -> its bundle being filled, in bundles
	bundle []bundle
	spare  [][]byte       // buffers of bundles written, reused (as many as the busiest round needed)
	big    []udp.Datagram // datagrams to write as they are, after the held ones
	list   []udp.Datagram
	by     Grouper
	oldest int64 // when the first datagram held came (with a linger)
	held   bool
	full   bool

	datagrams, bundles, bundled, writes, failed atomic.Uint64
}

type bundle struct {
	to      netip.AddrPort
	buf     []byte
	entries int
}

// Stats counts what a Batch wrote.
type Stats struct {
	Datagrams uint64 // datagrams added
	Bundles   uint64 // bundles written (each carrying at least two)
	Bundled   uint64 // datagrams that travelled inside a bundle
	Writes    uint64 // WriteBatch calls
	Failed    uint64 // datagrams (bundles count once) the socket did not take
}

// New returns a Batch writing to conn datagrams of at most max bytes;
// datagrams of at most small bytes may share bundles (0: a quarter of
// max).
func New(conn udp.Conn, max, small int, p Policy) *Batch {
	if small <= 0 {
		small = max / 4
	}
	small = min(small, max-wire.BundleHeaderSize-wire.BundleEntryOverhead)
	return &Batch{conn: conn, max: max, small: small, policy: p, open: make(map[netip.AddrPort]int)}
}

// Stats returns the counters so far; any goroutine.
func (b *Batch) Stats() Stats {
	return Stats{Datagrams: b.datagrams.Load(), Bundles: b.bundles.Load(), Bundled: b.bundled.Load(),
		Writes: b.writes.Load(), Failed: b.failed.Load()}
}

// Add takes datagrams. now is the time in nanoseconds, read only with a
// linger (pass 0 otherwise). If any of ds is not small, all of
// them are written at once, as they are, after what was held: the order
// of a group's datagrams is kept (a status that overtook the data it
// reports would have the data asked for again).
func (b *Batch) Add(ds []udp.Datagram, now int64) {
	b.datagrams.Add(uint64(len(ds)))
	for i := range ds {
		if ds[i].N > b.small {
			b.big = append(b.big, ds...)
			b.Flush()
			return
		}
	}
	if len(ds) > 0 && !b.held {
		b.held, b.oldest = true, now
	}
	for i := range ds {
		b.put(ds[i].Addr, ds[i].Buf[:ds[i].N])
	}
}

// put copies datagram p into the bundle for to.
func (b *Batch) put(to netip.AddrPort, p []byte) {
	i, ok := b.open[to]
	if ok && len(b.bundle[i].buf)+wire.BundleEntryOverhead+len(p) > b.max {
		b.full = true
		ok = false
	}
	if !ok {
		var buf []byte
		if n := len(b.spare); n > 0 {
			buf, b.spare = b.spare[n-1][:0], b.spare[:n-1]
		} else {
			buf = make([]byte, 0, b.max)
		}
		i = len(b.bundle)
		b.bundle = append(b.bundle, bundle{to: to, buf: wire.AppendBundleHeader(buf)})
		b.open[to] = i
	}
	bn := &b.bundle[i]
	bn.buf = wire.AppendBundleEntry(bn.buf, p)
	bn.entries++
}

// Held reports whether datagrams wait for End or Flush.
func (b *Batch) Held() bool { return b.held }

// End closes a round: what is held is written, unless the policy lets it
// wait; then it returns when End should be called again at the latest.
func (b *Batch) End(now int64) (wakeAt int64, waiting bool) {
	if !b.held {
		return 0, false
	}
	if hold, until := b.policy.Hold(b.oldest, now, b.full); hold {
		return until, true
	}
	b.Flush()
	return 0, false
}

// Flush writes everything held, with one WriteBatch.
func (b *Batch) Flush() {
	list := b.list[:0]
	for i := range b.bundle {
		bn := &b.bundle[i]
		buf := bn.buf
		if bn.entries == 1 {
			buf = buf[wire.BundleHeaderSize+wire.BundleEntryOverhead:]
		} else {
			b.bundles.Add(1)
			b.bundled.Add(uint64(bn.entries))
		}
		list = append(list, udp.Datagram{Buf: buf, N: len(buf), Addr: bn.to})
	}
	list = append(list, b.big...)
	if len(list) > 0 {
		ds := b.by.Group(list)
		b.writes.Add(1)
		if n, err := b.conn.WriteBatch(ds); err != nil {
			b.failed.Add(uint64(len(ds) - n))
		}
	}
	clear(list)
	b.list = list[:0]
	for i := range b.bundle {
		b.spare = append(b.spare, b.bundle[i].buf[:0])
	}
	clear(b.bundle)
	b.bundle = b.bundle[:0]
	clear(b.big)
	b.big = b.big[:0]
	clear(b.open)
	b.held, b.full = false, false
}
