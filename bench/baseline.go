package bench

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/cohort-vs/cohort/udp"
	"github.com/cohort-vs/cohort/wire"
)

// The baseline moves the same messages the engine would, bundled the way
// the engine bundles them, over a plain socket: no sequence tracking, no
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

	sent        atomic.Uint64
	datagrams   atomic.Uint64
	writeErrors atomic.Uint64
}

// run sends from start until end: messages of size bytes, many
// length-prefixed messages per datagram, each datagram to every other
// member. A datagram goes out when it is full or when the pacer has
// nothing more to send right now.
func (s *baselineSender) run(start, end time.Time) {
	bufs := make([][]byte, baselineBatch)
	for i := range bufs {
		bufs[i] = make([]byte, baselineDatagram)
	}
	ds := make([]udp.Datagram, 0, baselineBatch*len(s.peers))
	payload := make([]byte, s.size)
	fillPayload(payload)
	hdr := wire.Header{Type: wire.TypeGroup, Sender: uint16(s.self), Group: wire.GroupID(baselineGroup), Epoch: 1}
	msgSize := wire.MessageSize(s.flags, 0, s.size)
	perDatagram := max(1, (baselineDatagram-wire.HeaderSize-wire.DataHeadSize)/msgSize)
	endNs := end.UnixNano()
	seq := uint64(1)

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
				t := time.Now().UnixNano()
				if t >= endNs {
					stop = true
					break
				}
				binary.LittleEndian.PutUint64(payload, uint64(t))
				off += wire.PutMessage(b[off:], s.flags, 0, payload)
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
		if len(ds) > 0 {
			if n, err := s.conn.WriteBatch(ds); err != nil {
				s.writeErrors.Add(uint64(len(ds) - n))
			}
		}
		if stop {
			return
		}
	}
}

// receiveBaseline reads datagrams until conn is closed and hands every
// message in them to rec. It parses exactly what the engine's receive path
// parses: header, frames, the messages of each data frame.
func receiveBaseline(conn udp.Conn, rec *recorder, malformed *atomic.Uint64) {
	ds := make([]udp.Datagram, udp.DefaultMaxBatch)
	for i := range ds {
		ds[i].Buf = make([]byte, 65536)
	}
	var fr wire.FrameReader
	var dr wire.DataReader
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
					rec.deliver(dr.Payload)
				}
			}
		}
	}
}

// fillPayload gives the bytes after the timestamp a recognizable pattern.
func fillPayload(p []byte) {
	for i := range p {
		p[i] = byte(i)
	}
}

// sleepUntil sleeps until t (at once if t is past).
func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}
