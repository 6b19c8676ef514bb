package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/valyala/bytebufferpool"
	"io"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"

	"github.com/cohort-vs/cohort/internal/protocol"
	"github.com/cohort-vs/cohort/internal/transfer"
	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

// maxStateWindow is the zstd window of state transfers: the donor
// compresses with it and a joiner refuses a stream that asks for more, so
// a damaged or forged stream cannot make it reserve more memory.
const maxStateWindow = 8 << 20

var (
	errDonorLost = errors.New("the donor left the view before the state was complete")
	errNoDonor   = errors.New("no member sent the state")
	errRestart   = errors.New("a new view arrived before the state was complete")
)

// Transfer tuning: bytes in flight from a donor, bytes a joiner buffers
// ahead of its Restore, and the retransmission timeout.
const (
	stateWindow     = 4 << 20
	stateRecvBuffer = 8 << 20
	stateGiveUp     = 30_000 // ms of silence after which a donor or a joiner gives up
)

func (e *Engine) stateRTO() int { return e.cfg.ticks(max(20*e.cfg.TickInterval, 4*e.cfg.NAKInterval)) }

type outXfer struct {
	to   wire.MemberID
	s    *transfer.Sender
	snap *snapshotBuf
}

// snapshotBuf is a donor's compressed state, shared by its transfers to
// each joiner, and given back to the pool when the last one ends
// (refs, protoMu). A donor takes a snapshot at every view with joiners:
// pooled, its buffer is reused rather than grown again each time.
type snapshotBuf struct {
	buf  *bytebufferpool.ByteBuffer
	refs int
}

func (b *snapshotBuf) release() {
	if b.refs--; b.refs == 0 {
		bytebufferpool.Put(b.buf)
		b.buf = nil
	}
}

type inXfer struct {
	donor wire.MemberID // zero until the first chunk
	heard int64         // ticks since the last chunk
	r     *transfer.Receiver
	pipe  *statePipe
}

// Which members are restoring their state: the view says so. A member
// restores from the moment it joins until it has the whole state; then
// it sends StateDone to every member and tells the protocol (Restored),
// whose next promise stops listing it. Each view change lists, in the
// view it makes, its joiners and the members whose promise says they are
// restoring (wire.Proposal.Restoring), so every member of the view agrees
// on them, and on the donor: the lowest-ranked member not restoring. It
// sends its state to every restoring member it has not had StateDone
// from. A joiner that has not finished restoring when a new view arrives
// starts again from that view's donor: the messages it buffered meanwhile
// are in the new snapshot. A member that finished after its promise is
// sent a state it does not need (it tells the donor to stop): a snapshot
// taken at a view boundary is the same at every member, so either is
// right.

// stateAtView runs at the delivery goroutine for each view, before its
// View handler.
func (g *Group) stateAtView(v *protocol.View) {
	if !g.known {
		// This member's first view: it is new, so it is not a donor.
		g.known = true
		g.stateDone(v.Epoch)
		return
	}
	// The view says who is restoring, the same at every member, so every
	// member picks the same donor: the lowest rank not restoring.
	restoring := g.restoringIn(v)
	if len(restoring) == 0 {
		return
	}
	for r, m := range v.Members {
		if !slices.Contains(v.Restoring, m) {
			if r == v.Self {
				g.snapshot(v, restoring)
			}
			return
		}
	}
}

// restoringIn lists the members of v that the view says are restoring,
// less this member (it runs this at a view event: it has its state) and
// those it heard are done since (StateDone): the donor's recipients.
func (g *Group) restoringIn(v *protocol.View) []wire.MemberID {
	var out []wire.MemberID
	g.restMu.Lock()
	defer g.restMu.Unlock()
	for _, m := range v.Restoring {
		if m != v.Members[v.Self] && !g.doneRest[m] {
			out = append(out, m)
		}
	}
	return out
}

// stateDone tells every member that this one has its state.
func (g *Group) stateDone(epoch uint64) {
	g.doneEpoch.Store(epoch)
	g.xferPending.Store(true)
	g.poke()
}

// needsRestore reports whether v, this member's first view, is its join
// into a group whose state it must take.
func (g *Group) needsRestore(v *protocol.View) bool {
	return !g.known && g.handlers.Restore != nil && v.Founder != v.Members[v.Self]
}

// The donor sends, ahead of the compressed state, the members it sends it
// to (informational: every member knows them from the view): a count,
// then for each its address (16 bytes), port (2) and incarnation (8),
// little-endian.
func appendRestoring(b []byte, ms []wire.MemberID) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ms)))
	for _, m := range ms {
		a := m.Addr.Addr().As16()
		b = append(b, a[:]...)
		b = binary.LittleEndian.AppendUint16(b, m.Addr.Port())
		b = binary.LittleEndian.AppendUint64(b, m.Incarnation)
	}
	return b
}

func readRestoring(r io.Reader) ([]wire.MemberID, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	count := binary.LittleEndian.Uint32(n[:])
	if count > 1<<16 {
		return nil, errors.New("malformed state header")
	}
	var out []wire.MemberID
	var e [26]byte
	for range count {
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return nil, err
		}
		addr := netip.AddrFrom16([16]byte(e[:16])).Unmap()
		out = append(out, wire.MemberID{
			Addr:        netip.AddrPortFrom(addr, binary.LittleEndian.Uint16(e[16:])),
			Incarnation: binary.LittleEndian.Uint64(e[18:]),
		})
	}
	return out, nil
}

// statePipe carries the state's bytes from the protocol loop to the
// joiner's Restore.
type statePipe struct {
	g        *Group
	mu       sync.Mutex
	cond     sync.Cond
	segs     [][]byte
	eof      bool
	err      error
	consumed atomic.Uint64
	poked    uint64 // consumed at the last poke (reader only)
}

func newStatePipe(g *Group) *statePipe {
	p := &statePipe{g: g}
	p.cond.L = &p.mu
	return p
}

func (p *statePipe) push(segs [][]byte, eof bool) {
	p.mu.Lock()
	p.segs = append(p.segs, segs...)
	p.eof = p.eof || eof
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *statePipe) abort(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *statePipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	for len(p.segs) == 0 && !p.eof && p.err == nil {
		p.cond.Wait()
	}
	if p.err != nil {
		p.mu.Unlock()
		return 0, p.err
	}
	if len(p.segs) == 0 {
		p.mu.Unlock()
		return 0, io.EOF
	}
	n := copy(b, p.segs[0])
	if p.segs[0] = p.segs[0][n:]; len(p.segs[0]) == 0 {
		p.segs[0] = nil
		p.segs = p.segs[1:]
	}
	p.mu.Unlock()
	c := p.consumed.Add(uint64(n))
	// Let the protocol loop announce the room freed before the donor
	// stalls on it.
	if c-p.poked >= stateRecvBuffer/8 {
		p.poked = c
		p.g.poke()
	}
	return n, nil
}

// snapshot runs at the donor's delivery goroutine, at the view event of
// a view with joiners: it takes the application's state and hands it to
// the protocol loop to send to every joiner.
func (g *Group) snapshot(v *protocol.View, to []wire.MemberID) {
	snap := &snapshotBuf{buf: bytebufferpool.Get(), refs: len(to)}
	buf := snap.buf
	buf.B = appendRestoring(buf.B[:0], to)
	none := g.handlers.Snapshot == nil
	var err error
	if !none {
		var enc *zstd.Encoder
		enc, err = zstd.NewWriter(buf, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(maxStateWindow))
		if err == nil {
			err = g.handlers.Snapshot(enc)
			if cerr := enc.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		g.e.log.Error("cohort: Snapshot failed; joiners will end their membership", "group", g.name, "epoch", v.Epoch, "err", err)
	}
	if len(to) == 0 {
		bytebufferpool.Put(buf)
		return
	}
	data := buf.B
	c := &g.e.cfg
	chunk := c.frameDatagram() - wire.HeaderSize - transfer.ChunkOverhead
	g.xferMu.Lock()
	for _, m := range to {
		g.newSends = append(g.newSends, &outXfer{
			to:   m,
			s:    transfer.NewSender(v.Epoch, data, chunk, stateWindow, g.e.stateRTO(), err != nil, none),
			snap: snap,
		})
	}
	g.xferMu.Unlock()
	g.xferPending.Store(true)
	g.poke()
}

// restoreResult is what a Restore goroutine ends with.
type restoreResult struct {
	err error
}

// startRestore asks the protocol loop for the state of view epoch and
// runs Restore on it in a new goroutine.
func (g *Group) startRestore(epoch uint64) (*statePipe, chan restoreResult) {
	pipe := newStatePipe(g)
	g.xferMu.Lock()
	g.newRecv = &inXfer{
		r:    transfer.NewReceiver(epoch, stateRecvBuffer, g.e.stateRTO()),
		pipe: pipe,
	}
	g.xferMu.Unlock()
	g.xferPending.Store(true)
	g.poke()
	done := make(chan restoreResult, 1)
	go func() {
		_, err := readRestoring(pipe)
		if errors.Is(err, ErrNoState) {
			err = g.handlers.Restore(errReader{err})
		} else if err == nil {
			var dec *zstd.Decoder
			dec, err = zstd.NewReader(pipe, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxStateWindow))
			if err == nil {
				err = g.handlers.Restore(dec)
				dec.Close()
			}
		}
		done <- restoreResult{err}
	}()
	return pipe, done
}

// restore runs at the joiner's delivery goroutine, at its joining view
// (already popped from the queue): Restore runs on another goroutine
// while this one keeps draining the queue into a bounded spill buffer,
// then the view and the spilled items are handed to the application.
// When a new view arrives first (or the donor leaves), it starts over
// from that view, dropping what it spilled: the new snapshot holds it.
// It returns false when the engine stops.
func (g *Group) restore(ev *protocol.Event) bool {
	for {
		pipe, done := g.startRestore(ev.View.Epoch)
		var spill []item
		spilled, limit := 0, g.e.cfg.StateBufferBytes
		var res restoreResult
		var next *protocol.Event // a view to start over from
	drain:
		for {
			full, n := false, 0
			for {
				p, ok := g.queue.Peek()
				if !ok {
					break
				}
				it := *p
				if it.ev != nil && it.ev.View != nil {
					next = it.ev
					g.queue.Pop()
					pipe.abort(errRestart)
					res = <-done
					break drain
				}
				if it.ev == nil {
					if len(spill) > 0 && spilled+len(it.d.Payload) > limit {
						full = true
						break
					}
					it.d.Payload = append([]byte(nil), it.d.Payload...)
					spilled += len(it.d.Payload)
				}
				spill = append(spill, it)
				g.queue.Pop()
				if n++; n%256 == 0 {
					g.poke()
				}
			}
			if n > 0 {
				g.poke()
			}
			wake := g.deliverCh
			if full {
				wake = nil // flow control holds the senders back
			}
			select {
			case res = <-done:
				break drain
			case <-wake:
			case <-g.stopCh:
				pipe.abort(ErrClosed)
				return false
			}
		}
		ended := slices.ContainsFunc(spill, func(it item) bool { return it.ev != nil })
		if next == nil && errors.Is(res.err, errDonorLost) && !ended {
			// The donor left: its view's successor is (or will be) in the
			// queue. What comes before it is in the new donor's state.
			for next == nil {
				p, ok := g.queue.Peek()
				if !ok {
					select {
					case <-g.deliverCh:
					case <-g.stopCh:
						return false
					}
					continue
				}
				it := *p
				g.queue.Pop()
				g.poke()
				switch {
				case it.ev != nil && it.ev.View != nil:
					next = it.ev
				case it.ev != nil:
					spill = append(spill[:0], it)
					ended = true
				}
				if ended {
					break
				}
			}
		}
		if next != nil && res.err == nil {
			// Restore finished before it saw the abort: keep its state,
			// and deliver the new view after what was spilled.
			spill = append(spill, item{ev: next})
			next = nil
		}
		if next != nil && !ended {
			g.e.log.Info("cohort: state transfer starts over at a new view", "group", g.name, "epoch", next.View.Epoch, "reason", res.err)
			g.restarts.Add(1)
			ev = next
			continue
		}
		if errors.Is(res.err, ErrNoState) {
			res.err = nil
		}
		if res.err != nil {
			g.failed = true
			g.e.log.Warn("cohort: state transfer failed; leaving the group", "group", g.name, "epoch", ev.View.Epoch, "err", res.err)
			if !ended {
				// Membership ends once the others have a view without
				// this member (Join and Ended then report why): the group
				// stays registered until its leave is through, since
				// nothing else would tell them (its process lives on).
				err := fmt.Errorf("%w: %w", ErrStateTransfer, res.err)
				g.failErr.Store(&err)
				g.leave.Store(true)
				g.poke()
			}
		} else {
			g.event(ev)
		}
		for i := range spill {
			g.handle(&spill[i])
		}
		return true
	}
}

// stateReceive handles a TypeState datagram; protoMu held.
func (g *Group) stateReceive(from netip.AddrPort, b []byte) {
	h, err := wire.ParseHeader(b)
	if err != nil {
		g.e.malformed.Add(1)
		return
	}
	m, err := transfer.Parse(b[wire.HeaderSize:])
	if err != nil || m.ID != h.Epoch {
		g.e.malformed.Add(1)
		return
	}
	if h.Instance != g.instance() {
		g.e.otherInstance.Add(1)
		return
	}
	view := g.proto.View()
	sender := -1
	for r, x := range view.Members {
		if x.Addr == from {
			sender = r
		}
	}
	switch m.Kind {
	case transfer.KindChunk:
		x := g.recv
		if x != nil && x.r.ID() == m.ID && x.donor == (wire.MemberID{}) && sender >= 0 {
			x.donor = view.Members[sender] // the first donor heard is the one
		}
		if x != nil && x.r.ID() == m.ID && x.donor.Addr == from {
			x.r.OnChunk(m.Offset, m.Total, m.Flags, m.Data)
			x.heard = 0
			g.xferPending.Store(true)
			return
		}
		// Not wanted: another donor was first, the transfer is for an
		// earlier view, or this member has its state (and its StateDone
		// was lost, or crossed this transfer). A chunk that comes before
		// this member asked for it is dropped: it comes again.
		unwanted := g.handlers.Restore == nil || g.doneSent != 0 ||
			(x != nil && (m.ID < x.r.ID() || (m.ID == x.r.ID() && x.donor.Addr != from)))
		if !unwanted {
			return
		}
		g.stateSend(from, m.ID, func(b []byte) []byte { return transfer.AppendAck(b, m.ID, m.Total, m.Total) })
		if d := g.doneSent; d != 0 {
			g.stateSend(from, d, func(b []byte) []byte { return transfer.AppendDone(b, d) })
		}
		g.xferPending.Store(true)
	case transfer.KindAck:
		for _, x := range g.sends {
			if x.to.Addr == from && x.s.ID() == m.ID {
				x.s.OnAck(m.Offset, m.Total)
				g.xferPending.Store(true)
			}
		}
	case transfer.KindDone:
		if sender >= 0 {
			g.restMu.Lock()
			g.doneRest[view.Members[sender]] = true
			g.restMu.Unlock()
		}
	}
}

// instance is the id of the group instance this member is in, 0 before
// its first view; protoMu held.
func (g *Group) instance() uint64 {
	v := g.proto.View()
	if v.Epoch == 0 {
		return 0
	}
	return wire.InstanceID(v.Founder)
}

// stateSend queues one state datagram; protoMu held.
func (g *Group) stateSend(to netip.AddrPort, id uint64, body func([]byte) []byte) {
	c := &g.e.cfg
	if len(g.xferOut) == cap(g.xferOut) {
		g.stateFlush()
	}
	if g.xferBuf == nil {
		g.xferOut = make([]udp.Datagram, 0, 64)
		g.xferBuf = make([]byte, cap(g.xferOut)*c.frameDatagram())
	}
	i, size := len(g.xferOut), c.frameDatagram()
	b := g.xferBuf[i*size : i*size : (i+1)*size]
	b = b[:wire.HeaderSize]
	wire.PutHeader(b, wire.Header{Type: wire.TypeState, Sender: wire.NoRank, Group: g.id, Instance: g.instance(), Epoch: id})
	b = body(b)
	g.xferOut = append(g.xferOut, udp.Datagram{Buf: b, N: len(b), Addr: to})
}

func (g *Group) stateFlush() {
	g.e.write(g.xferOut)
	g.xferOut = g.xferOut[:0]
}

// stateService moves transfers along; protoMu held.
func (g *Group) stateService() {
	if !g.xferPending.Swap(false) && g.recv == nil && len(g.sends) == 0 {
		return
	}
	g.xferMu.Lock()
	if g.newRecv != nil {
		if g.recv != nil {
			g.recv.pipe.abort(errDonorLost)
		}
		g.recv, g.newRecv = g.newRecv, nil
	}
	g.sends = append(g.sends, g.newSends...)
	g.newSends = nil
	g.xferMu.Unlock()

	view := g.proto.View()
	giveUp := int64(stateGiveUp * 1e6 / g.e.cfg.TickInterval.Nanoseconds())
	if d := g.doneEpoch.Swap(0); d != 0 {
		g.doneSent = d
		g.proto.Restored() // its next promise says so: views stop listing it
		for r, m := range view.Members {
			if r != view.Self {
				// Twice: a lost StateDone costs a transfer.
				g.stateSend(m.Addr, d, func(b []byte) []byte { return transfer.AppendDone(b, d) })
				g.stateSend(m.Addr, d, func(b []byte) []byte { return transfer.AppendDone(b, d) })
			}
		}
	}
	if x := g.recv; x != nil {
		x.r.Consumed(x.pipe.consumed.Load())
		if segs := x.r.Take(); len(segs) > 0 || x.r.Complete() {
			x.pipe.push(segs, x.r.Complete() && !x.r.Aborted())
		}
		if next, limit, ok := x.r.Ack(); ok {
			g.stateSend(x.donor.Addr, x.r.ID(), func(b []byte) []byte { return transfer.AppendAck(b, x.r.ID(), next, limit) })
		}
		switch {
		case x.r.None():
			x.pipe.abort(ErrNoState)
		case x.r.Aborted():
			x.pipe.abort(errors.New("the donor could not take a snapshot"))
		case x.r.Complete():
		case g.proto.Ended() != nil || (x.donor != (wire.MemberID{}) && g.proto.InView() && !slices.Contains(view.Members, x.donor)):
			x.pipe.abort(errDonorLost)
			g.recv = nil
		case x.heard > giveUp:
			x.pipe.abort(errNoDonor)
			g.recv = nil
		}
	}
	g.sends = slices.DeleteFunc(g.sends, func(x *outXfer) bool {
		if x.s.Done() || x.s.Silent() > giveUp || (g.proto.InView() && !slices.Contains(view.Members, x.to)) {
			x.snap.release()
			return true
		}
		for {
			off, total, fl, data, ok := x.s.Next()
			if !ok {
				break
			}
			g.stateSend(x.to.Addr, x.s.ID(), func(b []byte) []byte { return transfer.AppendChunk(b, x.s.ID(), off, total, fl, data) })
		}
		return false
	})
	g.stateFlush()
	if g.recv == nil && len(g.sends) == 0 {
		g.xferOut, g.xferBuf = nil, nil // no transfer: no memory held for one
	}
}

// stateTick advances the transfers' clocks; protoMu held.
func (g *Group) stateTick() {
	if x := g.recv; x != nil {
		x.r.Tick()
		if !x.r.Complete() {
			x.heard++
		}
	}
	for _, x := range g.sends {
		x.s.Tick()
	}
	if g.recv != nil || len(g.sends) > 0 {
		g.xferPending.Store(true)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
