package protocol

import (
	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/udp"
)

// Ready packs everything the member has to say into datagrams, collects
// deliveries, and frees stable messages. The result is valid until Advance.
func (m *Member) Ready() Ready {
	m.deliverAll()
	more := false
	more = !m.packRetransmits() || more
	more = !m.packNAKs() || more
	more = !m.packData() || more
	m.makeRecords()
	more = !m.packStream() || more
	// Own messages are delivered in the round that multicasts them (the
	// driver sends Datagrams before it hands out Deliveries), not in the
	// next one: that would hold them until the next wake-up of the
	// driver, up to a tick later.
	m.deliverAll()
	more = !m.packReports() || more
	if m.statusDue {
		if m.bufsUsed < m.cfg.MaxOutDatagrams {
			b := m.startDatagram()
			n := wire.HeaderSize + m.putStatus(b[wire.HeaderSize:])
			m.multicast(b, n)
		} else {
			more = true
		}
	}
	more = !m.packStable() || more
	m.release()
	return Ready{Datagrams: m.out, Deliveries: m.deliveries, Released: m.released, More: more}
}

// Advance acknowledges the last Ready: its buffers may be reused.
func (m *Member) Advance() {
	m.out = m.out[:0]
	m.deliveries = m.deliveries[:0]
	m.bufsUsed = 0
	m.released = false
}

func (m *Member) startDatagram() []byte {
	// Taken as traffic needs them; trim gives them back.
	if m.bufsUsed == len(m.bufs) {
		m.bufs = append(m.bufs, nil)
	}
	if m.bufs[m.bufsUsed] == nil {
		m.bufs[m.bufsUsed] = make([]byte, m.cfg.MaxDatagram)
	}
	b := m.bufs[m.bufsUsed]
	m.bufsUsed++
	wire.PutHeader(b, wire.Header{Type: wire.TypeGroup, Sender: uint16(m.self), Group: m.cfg.Group, Instance: m.cfg.Instance, Epoch: m.cfg.Epoch})
	m.stats.DatagramsSent++
	return b
}

// multicast queues b[:n] for every other member.
func (m *Member) multicast(b []byte, n int) {
	for r := 0; r < m.n; r++ { // ranks, not the order stream
		if r != m.self {
			m.out = append(m.out, udp.Datagram{Buf: b[:n], N: n, Addr: m.peers[r].addr})
		}
	}
}

func (m *Member) unicast(b []byte, n int, to int) {
	m.out = append(m.out, udp.Datagram{Buf: b[:n], N: n, Addr: m.peers[to].addr})
}

// putStatus writes this member's status frame and marks status as sent.
func (m *Member) putStatus(b []byte) int {
	m.fillStatus()
	m.statusDue, m.statusDirty, m.progress, m.progressBytes, m.answerDue = false, false, 0, 0, false
	m.lastStatusTick = m.now
	m.stats.StatusSent++
	if m.cfg.HeartbeatTicks < 0 && m.unheard() {
		// No heartbeats: ask the others to answer, so that a report of
		// theirs that was lost comes again (see FrameStatusAsk).
		return wire.PutStatusAsk(b, m.statusC, m.statusD)
	}
	return wire.PutStatus(b, m.statusC, m.statusD)
}

// fillStatus writes this member's status into statusC and statusD.
func (m *Member) fillStatus() {
	for o := range m.peers { // every origin, the order stream too
		p := &m.peers[o]
		if o == m.self {
			m.statusC[o], m.statusD[o] = m.sentUpTo, p.consumed
		} else {
			// Frozen, it holds no more than its limit for anyone's safety:
			// what lies beyond may be outside the cut, and a safe message
			// must never be delivered on the word of a member that will
			// not deliver it.
			m.statusC[o], m.statusD[o] = min(p.win.Contiguous(), p.limit), p.consumed
		}
	}
}

// packData multicasts own messages not yet sent, many per datagram, and
// piggybacks a due status frame. It reports false when it ran out of
// datagrams before the messages ran out.
func (m *Member) packData() bool {
	if m.frozen {
		return true // new messages wait for the next view
	}
	head := m.sendLimit(m.sender.stash.Head() - m.seqBase)
	for m.sentUpTo < head {
		if m.bufsUsed == m.cfg.MaxOutDatagrams {
			return false
		}
		b := m.startDatagram()
		// The sequencer keeps room for the records of what it packs, so
		// that they ride in the same datagram.
		reserve := 0
		if m.ord.seq != nil && m.peers[m.stream].win.Highest() > 0 {
			reserve = orderRecordRoom
		}
		n := m.packRun(b, wire.HeaderSize, m.self, m.sentUpTo+1, head, len(b)-reserve)
		if m.lastRunEnd == m.sentUpTo {
			// A message that fills a datagram alone.
			n = m.packRun(b, wire.HeaderSize, m.self, m.sentUpTo+1, head, len(b))
		}
		m.stats.MessagesSent += (m.lastRunEnd - m.sentUpTo)
		m.sentUpTo = m.lastRunEnd
		m.ord.stableDirty = true
		n = m.piggybackRecords(b, n)
		if m.statusDue && len(b)-n >= wire.StatusSize(m.origins) {
			n += m.putStatus(b[n:])
		}
		if m.stableReady() && len(b)-n >= wire.StableSize(m.origins) {
			n += m.putStable(b[n:])
		}
		m.multicast(b, n)
	}
	return true
}

// sendLimit is the last own message (of head, the last queued) that this
// member may multicast now: flow control keeps a sender within a window
// (WindowMessages, WindowBytes) of what the slowest member has consumed.
// The stash takes new messages only within that window already; what
// this adds is the later pieces of a message larger than the window,
// which the stash holds whole. They go out as the members consume the
// pieces before them (a receiver consumes a piece when it copies it into
// the message it reassembles), so no receiver is ever sent more than its
// receive window holds, and a lost piece always finds room when it is
// sent again.
func (m *Member) sendLimit(head uint64) uint64 {
	acked := m.sentUpTo
	for r := 0; r < m.n; r++ {
		if r != m.self {
			acked = min(acked, m.peers[r].delivered[m.self])
		}
	}
	limit := min(head, acked+uint64(m.cfg.WindowMessages))
	// The bytes from acked to s grow with s. They are measured between
	// the two messages, never from the stash's head: the application
	// appends meanwhile, and two readings of the head would let out up
	// to what it appended beyond the window.
	stash := m.sender.stash
	fits := func(s uint64) bool {
		return stash.BytesBetween(m.seqBase+acked, m.seqBase+s) <= m.cfg.WindowBytes
	}
	if fits(limit) {
		return limit
	}
	lo, hi := acked, limit // lo fits, hi does not
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// packRun writes one data frame of origin's messages from..to (inclusive,
// as many as fit below limit) into b at off and returns the new offset.
// The last sequence number written is left in lastRunEnd.
func (m *Member) packRun(b []byte, off int, origin int, from, to uint64, limit int) int {
	start := off
	off += wire.PutDataHead(b[off:], uint16(origin), from)
	count := 0
	seq := from
	for ; seq <= to && count < wire.MaxRunCount; seq++ {
		flags, total, payload, ok := m.held(origin, seq)
		if !ok {
			break
		}
		if origin == m.self && flags&wire.OrderMask >= wire.OrderCausal && (flags&wire.FlagFrag == 0 || flags&wire.FlagFragFirst != 0) {
			// Causal messages carry their timestamp, total ones their order
			// hint, ahead of the payload.
			var ts []byte
			if flags&wire.OrderMask == wire.OrderCausal {
				ts = m.stampOwn(seq, seq > m.sentUpTo)
			} else {
				ts = m.totalHint(seq, seq > m.sentUpTo)
			}
			if off+wire.MessageSize(flags, total, len(ts)+len(payload)) > limit {
				break
			}
			off += wire.PutMessagePrefixed(b[off:], flags, total, ts, payload)
			count++
			continue
		}
		sz := wire.MessageSize(flags, total, len(payload))
		if off+sz > limit {
			break
		}
		off += wire.PutMessage(b[off:], flags, total, payload)
		count++
	}
	wire.SetDataCount(b[start:], count)
	wire.FinishFrame(b[start:], off-start)
	m.lastRunEnd = from + uint64(count) - 1
	if count == 0 {
		return start // nothing fit: drop the empty frame
	}
	return off
}

// held returns origin's message seq if this member still holds it.
func (m *Member) held(origin int, seq uint64) (flags uint8, total int, payload []byte, ok bool) {
	if origin == m.self {
		return m.sender.stash.Get(m.seqBase + seq)
	}
	return m.peers[origin].win.Get(seq)
}

// heldRange is the range of origin's messages this member can send again.
func (m *Member) heldRange(origin int) (first, last uint64) {
	if origin == m.self {
		if m.retired {
			return 1, 0 // the stash holds the next view's messages now
		}
		return m.sender.stash.Tail() - m.seqBase + 1, m.sentUpTo
	}
	w := m.peers[origin].win
	return w.Base() + 1, w.Highest()
}

// packRetransmits answers NAKs with unicast data frames.
func (m *Member) packRetransmits() bool {
	for len(m.rtx) > 0 {
		r := &m.rtx[0]
		// Only what is still held can be sent again.
		first, held := m.heldRange(r.origin)
		if r.from < first {
			skip := first - r.from
			if skip >= r.count {
				m.rtx = m.rtx[1:]
				continue
			}
			r.from, r.count = r.from+skip, r.count-skip
		}
		last := min(r.from+r.count-1, held)
		// What went to this member a moment ago is still on its way.
		for r.from <= last && m.resentRecently(r.origin, r.from, r.to) {
			m.stats.RetransmitsSkipped++
			r.from++
			r.count--
		}
		if r.from > last {
			m.rtx = m.rtx[1:]
			continue
		}
		// [r.from, end) has no recent retransmission; r.clear keeps what
		// was found for the request's next datagram.
		end := max(r.from+1, r.clear)
		for end <= last && !m.resentRecently(r.origin, end, r.to) {
			end++
		}
		r.clear = end
		if m.bufsUsed == m.cfg.MaxOutDatagrams {
			m.compactRTX()
			return false
		}
		b := m.startDatagram()
		n := m.packRun(b, wire.HeaderSize, r.origin, r.from, end-1, len(b))
		sent := m.lastRunEnd + 1 - r.from
		if sent == 0 {
			// A hole in a window: nothing here to send from r.from on.
			m.rtx = m.rtx[1:]
			continue
		}
		for seq := r.from; seq <= m.lastRunEnd; seq++ {
			m.noteResent(r.origin, seq, r.to)
			m.stats.RetransmitBytes += uint64(m.heldSize(r.origin, seq))
		}
		m.stats.Retransmits += sent
		m.unicast(b, n, r.to)
		r.from += sent
		r.count -= min(sent, r.count)
		if r.count == 0 || r.from > held {
			m.rtx = m.rtx[1:]
		}
	}
	m.compactRTX()
	return true
}

// resendLinger is how long, in ticks, a retransmission to one member is
// taken to be on its way: half a NAK interval, and at least a whole tick
// (a request can come a moment after the tick it was counted in).
func (m *Member) resendLinger() int64 { return int64(max(2, m.cfg.NAKTicks/2)) }

// resentRecently reports whether origin's message seq went again to
// member to within the linger.
func (m *Member) resentRecently(origin int, seq uint64, to int) bool {
	if origin == m.self {
		return m.sender.stash.Resent(m.seqBase+seq, to, m.now, m.resendLinger())
	}
	return m.peers[origin].win.Resent(seq, to, m.now, m.resendLinger())
}

func (m *Member) noteResent(origin int, seq uint64, to int) {
	if origin == m.self {
		m.sender.stash.NoteResent(m.seqBase+seq, to, m.now)
	} else {
		m.peers[origin].win.NoteResent(seq, to, m.now)
	}
}

// heldSize is the payload size of a held message (0 if not held).
func (m *Member) heldSize(origin int, seq uint64) int {
	_, _, payload, _ := m.held(origin, seq)
	return len(payload)
}

// compactRTX moves the remaining requests to the front of their array, so
// that its capacity is never lost to slicing.
func (m *Member) compactRTX() {
	if len(m.rtx) == 0 {
		m.rtx = m.rtxBase[:0]
		return
	}
	n := copy(m.rtxBase, m.rtx)
	m.rtx = m.rtxBase[:n]
}

// orderRecordRoom is what the sequencer keeps free in its data datagrams
// for an order-stream frame: a few records.
const orderRecordRoom = 64

// piggybackRecords, at the sequencer, orders what it has just packed (and
// anything observed since) and adds the order stream's unsent messages to
// datagram b[:n] if they fit, returning the new length.
func (m *Member) piggybackRecords(b []byte, n int) int {
	if m.ord.seq == nil {
		return n
	}
	m.makeRecords()
	w := m.peers[m.stream].win
	m.ord.streamSent = max(m.ord.streamSent, w.Base())
	if m.ord.streamSent < w.Highest() && len(b)-n > wire.DataHeadSize+8 {
		end := m.packRun(b, n, m.stream, m.ord.streamSent+1, w.Highest(), len(b))
		if end > n {
			m.ord.streamSent = m.lastRunEnd
			n = end
		}
	}
	return n
}

// packStream multicasts the order stream's new messages (at the
// sequencer).
func (m *Member) packStream() bool {
	if m.ord.seq == nil {
		return true
	}
	w := m.peers[m.stream].win
	// Released already (every member holds them, or there is no other
	// member): nothing to send.
	m.ord.streamSent = max(m.ord.streamSent, w.Base())
	if m.n == 1 {
		m.ord.streamSent = w.Highest()
	}
	for m.ord.streamSent < w.Highest() {
		if m.bufsUsed == m.cfg.MaxOutDatagrams {
			return false
		}
		b := m.startDatagram()
		n := m.packRun(b, wire.HeaderSize, m.stream, m.ord.streamSent+1, w.Highest(), len(b))
		m.ord.streamSent = m.lastRunEnd
		m.multicast(b, n)
	}
	return true
}

// packNAKs asks each origin with an old gap for the missing messages.
func (m *Member) packNAKs() bool {
	for o := range m.peers {
		p := &m.peers[o]
		if o == m.self || !p.nakDue && !p.headDue {
			continue
		}
		if m.bufsUsed == m.cfg.MaxOutDatagrams {
			return false
		}
		b := m.startDatagram()
		off := wire.HeaderSize
		start := off
		off += wire.PutNAKHead(b[off:], uint16(o))
		ranges, maxRanges, asked := 0, maxNAKRanges, uint64(0)
		if !p.nakDue {
			maxRanges = 1 // the head only
		}
		limit := min(p.knownSent, p.win.Limit())
		for seq := p.win.Contiguous() + 1; seq <= limit && ranges < maxRanges && off+wire.NAKRangeSize <= len(b); {
			if p.win.Has(seq) {
				seq++
				continue
			}
			first := seq
			for seq <= limit && !p.win.Has(seq) {
				seq++
			}
			off += wire.PutNAKRange(b[off:], first, seq-first)
			ranges++
			asked = seq - 1
		}
		wire.SetNAKCount(b[start:], ranges)
		wire.FinishFrame(b[start:], off-start)
		m.unicast(b, off, p.nakTo)
		if p.nakDue {
			if m.frozen {
				// In a view change the named holder may be gone too: ask
				// the next member next time, round the view.
				for p.nakTo = (p.nakTo + 1) % m.n; p.nakTo == m.self; p.nakTo = (p.nakTo + 1) % m.n {
				}
			}
			p.nakTick = m.now
			p.nakEnd = asked
		}
		p.nakDue, p.headDue = false, false
		p.askTick = m.now
		m.stats.NAKsSent++
	}
	return true
}

// maxNAKRanges bounds one NAK frame; the rest is asked for next time.
const maxNAKRanges = 64

// release frees messages that every member has consumed. The origin's
// own consumption matters only for its stash (its self-deliveries point
// into it): other members keep their copies for the others' sake.
func (m *Member) release() {
	for o := range m.peers {
		p := &m.peers[o]
		stable := p.consumed
		for r := 0; r < m.n; r++ {
			if r != m.self && (r != o || o == m.self) {
				stable = min(stable, m.peers[r].delivered[o])
			}
		}
		if o == m.self {
			if !m.retired && m.seqBase+stable > m.sender.stash.Tail() {
				m.sender.stash.Release(m.seqBase + stable)
				m.released = true
			}
		} else if stable > p.win.Base() {
			p.win.Release(stable)
		}
	}
}
