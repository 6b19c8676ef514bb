package bench

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/cohort-vs/cohort/batch"
	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

// The baseline moves the same messages the engine would, bundled the way
// the engine bundles them (and fragmented the way it fragments messages
// larger than a datagram), over a plain socket: no sequence tracking, no
// acknowledgements, no retransmission, no flow control. It bounds what the
// engine could reach on this machine with this fan-out.

const (
	// baselineDatagram is the engine's default MaxDatagram.
	baselineDatagram = 8192
	// baselineBatch is how many datagrams the sender packs before one
	// WriteBatch, as the engine's protocol loop does per round.
	baselineBatch = 64
	// baselineGroup names the baseline's traffic in datagram headers.
	baselineGroup = "vsbench/baseline"
	// baselineFragment is the most payload one fragment of a message
	// larger than a datagram carries: the engine's fragment size for its
	// default MaxDatagram (protocol.Config.FragmentSize).
	baselineFragment = baselineDatagram - wire.HeaderSize - wire.DataHeadSize - 1 - 2*binary.MaxVarintLen64
)

// baselineSender packs and sends one member's messages.
type baselineSender struct {
	conn  udp.Conn
	peers []netip.AddrPort // every other member's baseline socket
	self  int
	size  int
	flags uint8
	rate  float64

	own *recorder // counts own messages as delivered (as the engine does)

	byPeer batch.Grouper // write's, as the engine's

	sent        atomic.Uint64
	datagrams   atomic.Uint64
	writeErrors atomic.Uint64
}

// run sends from start until end: messages of size bytes, many
// length-prefixed messages per datagram, each datagram to every other
// member. A datagram goes out when it is full or when the pacer has
// nothing more to send right now. Messages larger than a fragment go
// out in fragments (runFragmented), as the engine sends them.
func (s *baselineSender) run(start, end time.Time) {
	if s.size > baselineFragment {
		s.runFragmented(start, end)
		return
	}
	bufs, ds, payload, hdr := s.buffers()
	msgSize := wire.MessageSize(s.flags, 0, s.size)
	perDatagram := max(1, (baselineDatagram-wire.HeaderSize-wire.DataHeadSize)/msgSize)
	endNs, endStamp := end.UnixNano(), stampOf(end)
	seq := uint64(1)
	sample := newSampler(sampleEvery(s.rate, s.size))

	sleepUntil(start)
	p := NewPacer(s.rate, DefaultBurst(s.rate), start)
	for {
		now := time.Now()
		if now.UnixNano() >= endNs {
			return
		}
		avail := p.Take(now, perDatagram*baselineBatch)
		if avail == 0 {
			p.Wait()
			continue
		}
		ds = ds[:0]
		stop := false
		for nd := 0; nd < baselineBatch && avail > 0 && !stop; nd++ {
			b := bufs[nd]
			wire.PutHeader(b, hdr)
			frame := wire.HeaderSize
			off := frame + wire.PutDataHead(b[frame:], uint16(s.self), seq)
			count := 0
			for avail > 0 && off+msgSize <= len(b) && count < wire.MaxRunCount {
				if !sample.next() {
					off += wire.PutMessage(b[off:], s.flags, 0, payload)
				} else {
					t := stampNow()
					if t >= endStamp {
						stop = true
						break
					}
					binary.LittleEndian.PutUint64(payload, uint64(t))
					off += wire.PutMessage(b[off:], s.flags, 0, payload)
					binary.LittleEndian.PutUint64(payload, 0)
				}
				count++
				avail--
			}
			if count == 0 {
				break
			}
			wire.SetDataCount(b[frame:], count)
			wire.FinishFrame(b[frame:], off-frame)
			seq += uint64(count)
			for _, a := range s.peers {
				ds = append(ds, udp.Datagram{Buf: b[:off], N: off, Addr: a})
			}
			s.own.delivered.Add(uint64(count))
			s.sent.Add(uint64(count))
			s.datagrams.Add(1)
		}
		s.write(ds)
		if stop {
			return
		}
	}
}

// buffers makes a sender's datagram buffers, its batch of datagrams (one
// per buffer and peer), a message payload and the datagrams' header.
func (s *baselineSender) buffers() (bufs [][]byte, ds []udp.Datagram, payload []byte, hdr wire.Header) {
	bufs = make([][]byte, baselineBatch)
	for i := range bufs {
		bufs[i] = make([]byte, baselineDatagram)
	}
	payload = make([]byte, s.size)
	fillPayload(payload)
	hdr = wire.Header{Type: wire.TypeGroup, Sender: uint16(s.self), Group: wire.GroupID(baselineGroup), Epoch: 1}
	return bufs, make([]udp.Datagram, 0, baselineBatch*len(s.peers)), payload, hdr
}

// write sends a batch, counting the datagrams the kernel refused. Like
// the engine, it sends the batch grouped by peer (packed datagram by
// datagram, each to every peer in turn), so that each peer's run leaves
// as GSO messages where the kernel takes them.
func (s *baselineSender) write(ds []udp.Datagram) {
	if len(ds) == 0 {
		return
	}
	ds = s.byPeer.Group(ds)
	if n, err := s.conn.WriteBatch(ds); err != nil {
		s.writeErrors.Add(uint64(len(ds) - n))
	}
}

// runFragmented is run for messages larger than a datagram: each is cut
// into fragments of at most baselineFragment bytes, flagged as the
// engine flags them (first, middle, last; the first carries the total
// size), one fragment per datagram, consecutive sequence numbers; up to
// baselineBatch datagrams (to each peer) go out per WriteBatch.
func (s *baselineSender) runFragmented(start, end time.Time) {
	frags := (s.size + baselineFragment - 1) / baselineFragment
	bufs, ds, payload, hdr := s.buffers()
	perBatch := max(1, baselineBatch/frags) // whole messages per batch, but at least one
	endNs, endStamp := end.UnixNano(), stampOf(end)
	seq := uint64(1)
	sample := newSampler(sampleEvery(s.rate, s.size))

	sleepUntil(start)
	p := NewPacer(s.rate, DefaultBurst(s.rate), start)
	nd := 0 // datagrams packed into the current batch
	flush := func() {
		s.write(ds)
		ds, nd = ds[:0], 0
	}
	for {
		now := time.Now()
		if now.UnixNano() >= endNs {
			return
		}
		avail := p.Take(now, perBatch)
		if avail == 0 {
			p.Wait()
			continue
		}
		for ; avail > 0; avail-- {
			stamped := sample.next()
			if stamped {
				t := stampNow()
				if t >= endStamp {
					flush()
					return
				}
				binary.LittleEndian.PutUint64(payload, uint64(t))
			}
			for done := 0; done < s.size; {
				if nd == baselineBatch {
					flush()
				}
				stop := min(done+baselineFragment, s.size)
				f := s.flags | wire.FlagFrag
				if done == 0 {
					f |= wire.FlagFragFirst
				}
				if stop == s.size {
					f |= wire.FlagFragLast
				}
				b := bufs[nd]
				wire.PutHeader(b, hdr)
				frame := wire.HeaderSize
				off := frame + wire.PutDataHead(b[frame:], uint16(s.self), seq)
				off += wire.PutMessage(b[off:], f, s.size, payload[done:stop])
				wire.SetDataCount(b[frame:], 1)
				wire.FinishFrame(b[frame:], off-frame)
				for _, a := range s.peers {
					ds = append(ds, udp.Datagram{Buf: b[:off], N: off, Addr: a})
				}
				seq++
				nd++
				s.datagrams.Add(1)
				done = stop
			}
			if stamped {
				binary.LittleEndian.PutUint64(payload, 0)
			}
			s.own.delivered.Add(1)
			s.sent.Add(1)
		}
		flush()
	}
}

// reassembly follows one origin's fragmented baseline message: a
// receiver counts the message once its last fragment arrives, if every
// fragment did, in order (the baseline retransmits nothing, so a message
// with a lost fragment is lost).
type reassembly struct {
	active bool
	next   uint64  // the sequence number of the fragment expected next
	got    int     // payload bytes received
	total  int     // the message's size, from its first fragment
	stamp  [8]byte // the message's first 8 bytes: its send time
}

// add takes one fragment (seq, flags, total and payload as DataReader
// reads them) and reports whether it completed a message.
func (r *reassembly) add(seq uint64, flags uint8, total int, payload []byte) bool {
	if flags&wire.FlagFragFirst != 0 {
		*r = reassembly{active: len(payload) >= len(r.stamp), next: seq + 1, got: len(payload), total: total}
		copy(r.stamp[:], payload)
	} else if !r.active || seq != r.next {
		r.active = false // a fragment is missing: the message is lost
		return false
	} else {
		r.next++
		r.got += len(payload)
	}
	if flags&wire.FlagFragLast == 0 {
		return false
	}
	done := r.active && r.got == r.total
	r.active = false
	return done
}

// maxBaselineOrigins bounds the origins a baseline receiver follows
// fragments for (vsbench groups have at most 64 members).
const maxBaselineOrigins = 1024

// receiveBaseline reads datagrams until conn is closed and hands every
// message in them to rec. It parses exactly what the engine's receive path
// parses: header, frames, the messages of each data frame; fragments are
// counted as one message when the last arrives (reassembly), without
// copying them together.
func receiveBaseline(conn udp.Conn, rec *recorder, malformed *atomic.Uint64) {
	receiveBaselineInto(conn, newBaselineBatch(), rec, malformed)
}

// newBaselineBatch makes the baseline receiver's buffers: a batch of
// datagrams of the largest size.
func newBaselineBatch() []udp.Datagram {
	ds := make([]udp.Datagram, udp.DefaultMaxBatch)
	for i := range ds {
		ds[i].Buf = make([]byte, 65536)
	}
	return ds
}

// receiveBaselineInto is receiveBaseline reading into ds.
func receiveBaselineInto(conn udp.Conn, ds []udp.Datagram, rec *recorder, malformed *atomic.Uint64) {
	var fr wire.FrameReader
	var dr wire.DataReader
	var frag []reassembly // by origin
	for {
		n, err := conn.ReadBatch(ds)
		if err != nil {
			return // closed
		}
		for i := 0; i < n; i++ {
			b := ds[i].Buf[:ds[i].N]
			if _, err := wire.ParseHeader(b); err != nil {
				malformed.Add(1)
				continue
			}
			fr.Reset(b[wire.HeaderSize:])
			for fr.Next() {
				if fr.Kind != wire.FrameData {
					continue
				}
				if dr.Reset(fr.Body) != nil {
					malformed.Add(1)
					break
				}
				for dr.Next() {
					if dr.Flags&wire.FlagFrag == 0 {
						rec.deliver(dr.Payload)
						continue
					}
					o := int(dr.Origin)
					if o >= maxBaselineOrigins {
						malformed.Add(1)
						break
					}
					if o >= len(frag) {
						frag = append(frag, make([]reassembly, o+1-len(frag))...)
					}
					if r := &frag[o]; r.add(dr.Seq, dr.Flags, dr.Total, dr.Payload) {
						rec.deliver(r.stamp[:])
					}
				}
			}
		}
	}
}

// fillPayload gives the bytes after the timestamp a recognizable pattern
// and the timestamp 0: a message outside the latency sample.
func fillPayload(p []byte) {
	for i := range p {
		p[i] = byte(i)
	}
	clear(p[:min(len(p), MinSize)])
}

// sleepUntil sleeps until t (at once if t is past).
func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}
