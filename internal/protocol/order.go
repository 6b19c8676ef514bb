package protocol

import (
	"encoding/binary"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/ring"
	"github.com/cohort-vs/cohort/sequencer"
	"github.com/cohort-vs/cohort/vclock"
)

// Delivery order. Every origin's messages are delivered in the order it
// sent them, whatever their orderings (per-sender FIFO holds across
// orderings); each origin has one cursor, deliverNext, that stops at the
// first message whose ordering does not allow it yet:
//
//   - Unordered and FIFO: once held, with everything before it.
//   - Causal: once every message its sender had delivered when it sent it
//     has been delivered here. The sender stamps the message, when it first
//     multicasts it, with what it has delivered of every rank (vclock);
//     the cursor checks only that head message, O(ranks).
//   - Total: in the order of the sequencer's records. The head is made
//     available to the orderer; the orderer hands out the next message in
//     global order once its record and its data are both here.
//   - Safe (a flag on any ordering): once every member holds it, and holds
//     everything this member delivered before it (data and order records):
//     whoever delivers it, even if it crashes right after, the survivors
//     hold all it saw and deliver it too, in the same order. In a view
//     change, once the outcome is decided (every survivor holds the cut).
//
// A fragmented message waits at its first fragment for its causal past,
// and at its last for its order and its safety; fragments in between are
// copied out as they come, so a message larger than the window passes.

// maxRecordsPerMessage bounds the records in one order-stream message, so
// that it fits one datagram.
func maxRecordsPerMessage(cfg *Config) int {
	return max(1, cfg.FragmentSize()/sequencer.RecordSizeMax)
}

// causalReserve is the room a causal message keeps for its timestamp in
// its datagram (or its first fragment's). A view's timestamps must fit
// it: see MaxCausalMembers.
func causalReserve(fragSize int) int { return fragSize / 4 }

// maxStampEntry bounds one encoded timestamp entry: sequence numbers within
// a view stay below 2^35.
const maxStampEntry = 5

// MaxCausalMembers is the largest view in which causal messages can be
// sent with datagrams of maxDatagram bytes.
func MaxCausalMembers(maxDatagram int) int {
	c := Config{MaxDatagram: maxDatagram}
	return (causalReserve(c.FragmentSize()) - 2) / maxStampEntry
}

// fedMsg is an order-stream message whose records went to the orderer.
// maxFed bounds the order-stream messages whose records wait in the
// orderer.
const maxFed = 8192

type fedMsg struct {
	seq uint64 // its sequence number in the stream
	end uint64 // global number after its last record
}

// ordering is a member's causal, total and safe delivery state.
type ordering struct {
	orderer *sequencer.Orderer
	seq     *sequencer.Sequencer // at the sequencer only
	recs    []sequencer.Record   // decoding scratch
	recBuf  []byte               // encoding scratch
	maxRecs int

	fed     []fedMsg // stream messages fed, oldest first, not yet all delivered
	fedHead int
	// needStream is the order-stream message holding the record of the
	// last total-order message delivered: a safe delivery waits until
	// every member holds it.
	needStream uint64
	observeDue bool   // a sequencer observation was refused: repeat it
	streamSent uint64 // order-stream messages multicast (at the sequencer)

	vt      []uint64 // timestamp scratch
	stamps  []uint64 // own causal timestamps by stash slot, n per slot (made on first use)
	hints   []uint64 // own total messages' order hints by stash slot (made on first use)
	hintBuf [binary.MaxVarintLen64]byte
	stampTS []byte // encoded timestamp scratch

	stable      []uint64 // per origin: held by every member that counts
	relayed     []uint64 // per origin: held by every member, as an owner said (safe.go)
	safeTotals  bool     // a safe total-order message arrived in this view
	stableDirty bool
	cutSet      bool // a view change set the cut
	final       bool // the cut is the view's decided outcome: every survivor holds it

	blocked     bool // a cursor waits for a causal past or safety: deliveries may unblock it
	safeWaiting bool // a delivery waits only for others to say they hold something
	dead        bool // the flush ordered what the records could not: deliver the rest by rank
}

func (o *ordering) init(m *Member) {
	o.maxRecs = maxRecordsPerMessage(&m.cfg)
	o.orderer = sequencer.NewOrderer(m.n, 8192)
	o.vt = make([]uint64, m.n)
	o.stable = make([]uint64, m.origins)
	o.relayed = make([]uint64, m.origins)
	o.stableDirty = true
	if m.self == m.seqRank {
		o.seq = sequencer.NewSequencer(m.n, 1024)
	}
}

// deliverAll delivers everything the orderings allow, then, at the end of
// a flush, what only the flush can order.
func (m *Member) deliverAll() {
	m.scanStream() // a cut may have raised the stream's limit
	// The origins take turns at going first: when the delivery queue has
	// little room, the first takes it all, and an origin that always went
	// first would starve the others (this member's own messages included,
	// whose window then never frees: a handler that replies to a flood
	// waited on itself).
	first := m.deliverFirst
	m.deliverFirst = (m.deliverFirst + 1) % m.n
	for {
		m.ord.blocked, m.ord.safeWaiting = false, false
		progress := false
		for i := 0; i < m.n; i++ {
			if m.deliverFrom((first + i) % m.n) {
				progress = true
			}
		}
		if m.deliverTotal() {
			progress = true
		}
		if progress && m.ord.blocked {
			continue // a delivery may satisfy a waiting causal past
		}
		if !progress && m.completeFlush() {
			continue
		}
		return
	}
}

// held up to: what origin o's cursor may reach.
func (m *Member) heldUpTo(o int) uint64 {
	p := &m.peers[o]
	if o == m.self {
		return min(m.sentUpTo, p.limit)
	}
	return min(p.win.Contiguous(), p.limit)
}

// deliverFrom moves origin o's cursor over every message its ordering
// allows, and reports whether it moved: a delivery, and also a fragment
// copied out, may satisfy another origin's waiting causal past (a
// timestamp counts the messages a cursor passed, fragments included).
func (m *Member) deliverFrom(o int) bool {
	p := &m.peers[o]
	last := m.heldUpTo(o)
	start := p.deliverNext
	delivered := false
	for p.deliverNext <= last && m.pendingLen < m.cfg.DeliveryQueue {
		seq := p.deliverNext
		if o != m.self && p.win.Mark(seq)&markDelivered != 0 {
			p.deliverNext++
			continue
		}
		flags, total, payload, _ := m.held(o, seq)
		if flags&(wire.FlagFrag|wire.FlagSafe|wire.OrderCausal) == 0 {
			// Unordered or FIFO, whole: the hot path.
			m.deliver(o, seq, flags, payload)
			if o != m.self {
				p.win.SetMark(seq, markDelivered)
			}
			p.deliverNext++
			delivered = true
			continue
		}
		order := flags & wire.OrderMask
		begins := flags&wire.FlagFrag == 0 || flags&wire.FlagFragFirst != 0
		ends := flags&wire.FlagFrag == 0 || flags&wire.FlagFragLast != 0
		if begins && order == wire.OrderCausal && o != m.self {
			n, ok, bad := m.causalReady(o, payload)
			if bad {
				m.skipMalformed(o, seq)
				continue
			}
			if !ok {
				m.ord.blocked = true
				break
			}
			payload = payload[n:]
		}
		if begins && order == wire.OrderTotal {
			h, n, ok := m.totalHintOf(o, seq, payload)
			if !ok {
				m.skipMalformed(o, seq)
				continue
			}
			p.totalHint, payload = h, payload[n:]
		}
		if ends && order == wire.OrderTotal {
			if !p.announced && !m.ord.dead {
				p.announced = true
				m.ord.orderer.Available(o, p.delivTotals+1)
			}
			break // the orderer or the flush delivers it
		}
		if ends && flags&wire.FlagSafe != 0 && !m.safeReady(o, seq, 0) {
			m.ord.blocked, m.ord.safeWaiting = true, true
			break
		}
		if m.step(o, seq, flags, total, payload) {
			delivered = true
		}
	}
	if o != m.self {
		m.advanceConsumed(p)
	}
	return delivered || p.deliverNext != start
}

// step delivers message seq of origin o, or copies it out if it is a
// fragment before the last, and moves the cursor past it. It reports
// whether it delivered.
func (m *Member) step(o int, seq uint64, flags uint8, total int, payload []byte) bool {
	p := &m.peers[o]
	p.deliverNext++
	if flags&wire.FlagFrag == 0 {
		m.deliver(o, seq, flags, payload)
		if o != m.self {
			p.win.SetMark(seq, markDelivered)
		}
		return true
	}
	if flags&wire.FlagFragFirst != 0 {
		// The buffer grows with the fragments that arrive (each charged
		// to the window first), not with the total the first one
		// announces: a forged first fragment costs its own bytes only.
		p.reasm = make([]byte, 0, min(total, reasmStart))
		p.reasmTotal = total
	}
	if p.reasm == nil || len(p.reasm)+len(payload) > p.reasmTotal ||
		(flags&wire.FlagFragLast != 0 && len(p.reasm)+len(payload) != p.reasmTotal) {
		// Fragments out of shape: a sender bug or a forgery. Skip them;
		// the message is lost for this member and counted.
		m.stats.Malformed++
		p.reasm = nil
		if o != m.self {
			p.win.SetMark(seq, markDelivered|markConsumed)
		}
		return false
	}
	if need := len(p.reasm) + len(payload); need > cap(p.reasm) {
		grown := make([]byte, len(p.reasm), min(p.reasmTotal, max(need, 2*cap(p.reasm))))
		copy(grown, p.reasm)
		p.reasm = grown
	}
	p.reasm = append(p.reasm, payload...)
	if flags&wire.FlagFragLast != 0 {
		m.deliver(o, seq, flags, p.reasm)
		if o != m.self {
			p.win.SetMark(seq, markDelivered)
		}
		p.reasm = nil // the application's delivery holds it now
		return true
	}
	if o != m.self {
		// The bytes are copied out: the fragment itself is done with, and
		// its sender, which sends a message larger than its window only as
		// fast as the members consume its pieces (sendLimit), hears so.
		p.win.SetMark(seq, markDelivered|markConsumed)
		m.noteProgress(uint64(len(payload)))
	}
	// An own fragment before the last stays unconsumed, so the stash keeps
	// the message whole until it is delivered: a view that ends inside it
	// makes the sender send it all again in the next view.
	return false
}

// reasmStart is the first allocation of a reassembly buffer; it doubles
// as fragments arrive, up to the message's size.
const reasmStart = 256 << 10

// skipMalformed drops message seq of origin o (another member's): its
// ordering information does not decode.
func (m *Member) skipMalformed(o int, seq uint64) {
	p := &m.peers[o]
	m.stats.Malformed++
	p.win.SetMark(seq, markDelivered|markConsumed)
	p.deliverNext++
	p.reasm = nil
}

// takeHead delivers the message at origin o's cursor (the whole message or
// its last fragment), which its ordering has just allowed.
func (m *Member) takeHead(o int) {
	p := &m.peers[o]
	seq := p.deliverNext
	flags, total, payload, _ := m.held(o, seq)
	if flags&wire.FlagFrag == 0 {
		_, n, _ := m.totalHintOf(o, seq, payload) // checked when the cursor reached it
		payload = payload[n:]
	}
	p.announced = false
	p.delivTotals++
	m.step(o, seq, flags, total, payload)
}

// causalReady decodes the timestamp at the start of payload and reports
// its size and whether its causal past is delivered here; bad: it does not
// decode.
func (m *Member) causalReady(o int, payload []byte) (n int, ok, bad bool) {
	vt := m.ord.vt
	n, err := vclock.ReadTimestamp(payload, vt)
	if err != nil {
		return 0, false, true
	}
	for k, v := range vt {
		if k != o && v > m.peers[k].deliverNext-1 {
			return n, false, false
		}
	}
	return n, true, false
}

// safeReady reports whether message seq of origin o may be delivered as
// safe: every member that counts holds it, everything delivered here so
// far, and the order stream up to needStream.
func (m *Member) safeReady(o int, seq uint64, needStream uint64) bool {
	if m.ord.final {
		return true // every survivor holds the whole cut
	}
	st := m.stableVector()
	if st[o] < seq || st[m.stream] < max(needStream, m.ord.needStream) {
		return false
	}
	for k := 0; k < m.n; k++ {
		if st[k] < m.peers[k].deliverNext-1 {
			return false
		}
	}
	return true
}

// stableVector is, per origin, the highest sequence number that every
// member that counts holds with nothing missing below.
func (m *Member) stableVector() []uint64 {
	st := m.ord.stable
	if !m.ord.stableDirty {
		return st
	}
	m.ord.stableDirty = false
	for o := range st {
		s := uint64(noLimit)
		if o == m.self {
			s = m.sentUpTo
		} else {
			s = m.peers[o].win.Contiguous()
		}
		for r := 0; r < m.n; r++ {
			if r != m.self && r != m.owner(o) { // an origin holds its own messages
				s = min(s, m.peers[r].contiguous[o])
			}
		}
		st[o] = max(s, m.ord.relayed[o])
	}
	return st
}

// deliverTotal delivers total-order messages in global order, and reports
// whether it delivered any.
func (m *Member) deliverTotal() bool {
	od := m.ord.orderer
	delivered := false
	for m.pendingLen < m.cfg.DeliveryQueue && !m.ord.dead {
		o, _, g, ok := od.Peek()
		if !ok {
			break
		}
		if flags, _, _, _ := m.held(o, m.peers[o].deliverNext); flags&wire.FlagSafe != 0 {
			if !m.safeReady(o, m.peers[o].deliverNext, m.streamSeqOf(g)) {
				m.ord.blocked, m.ord.safeWaiting = true, true
				break
			}
		}
		od.Next()
		m.noteDelivered(g)
		m.takeHead(o)
		m.deliverFrom(o)
		delivered = true
	}
	if delivered {
		od.Release(od.NextGlobal())
	}
	return delivered
}

// streamSeqOf returns the order-stream message that holds global number g.
func (m *Member) streamSeqOf(g uint64) uint64 {
	for _, f := range m.ord.fed[m.ord.fedHead:] {
		if g < f.end {
			return f.seq
		}
	}
	return 0
}

// noteDelivered records that global number g was delivered.
func (m *Member) noteDelivered(g uint64) {
	od := &m.ord
	for od.fedHead < len(od.fed) && od.fed[od.fedHead].end <= g {
		od.fedHead++
	}
	if od.fedHead < len(od.fed) {
		od.needStream = od.fed[od.fedHead].seq
	}
	if od.fedHead == len(od.fed) {
		od.fed, od.fedHead = od.fed[:0], 0
	} else if od.fedHead > cap(od.fed)/2 {
		n := copy(od.fed, od.fed[od.fedHead:])
		od.fed, od.fedHead = od.fed[:n], 0
	}
}

// scanStream reads the order stream's new records into the orderer.
func (m *Member) scanStream() {
	od := &m.ord
	p := &m.peers[m.stream]
	last := min(p.win.Contiguous(), p.limit)
	for p.scanNext <= last {
		seq := p.scanNext
		if !od.dead {
			_, _, payload, _ := p.win.Get(seq)
			recs, _, err := sequencer.DecodeRecords(od.recs[:0], payload)
			od.recs = recs[:0] // scratch kept for the next (grown on demand)
			if err != nil || len(recs) == 0 {
				m.stats.Malformed++
			} else {
				if od.orderer.Room() < len(recs) || len(od.fed) == maxFed {
					break // deliveries make room
				}
				od.orderer.AddRecords(recs)
				od.fed = append(od.fed, fedMsg{seq: seq, end: recs[len(recs)-1].End()})
				if m.self != m.seqRank {
					m.stats.OrderRecords += uint64(len(recs))
				}
			}
		}
		p.win.SetMark(seq, markDelivered|markConsumed)
		p.scanNext++
		p.deliverNext = p.scanNext
	}
	m.advanceConsumed(p)
}

// scanRank counts, at the sequencer, the total-order messages of rank o
// held with nothing missing, and orders the new ones.
func (m *Member) scanRank(o int) {
	p := &m.peers[o]
	last := p.win.Contiguous()
	if p.scanNext > last {
		return
	}
	for ; p.scanNext <= last; p.scanNext++ {
		flags, _, _, _ := p.win.Get(p.scanNext)
		if flags&wire.OrderMask == wire.OrderTotal && (flags&wire.FlagFrag == 0 || flags&wire.FlagFragLast != 0) {
			p.totals++
		}
	}
	if !m.frozen && !m.ord.seq.Observe(o, p.totals) {
		m.ord.observeDue = true
	}
}

// scanOwn counts, at the sequencer, its own total-order messages
// multicast so far.
func (m *Member) scanOwn() {
	p := &m.peers[m.self]
	for ; p.scanNext <= m.sentUpTo; p.scanNext++ {
		flags, _, _, _ := m.sender.stash.Get(m.seqBase + p.scanNext)
		if flags&wire.OrderMask == wire.OrderTotal && (flags&wire.FlagFrag == 0 || flags&wire.FlagFragLast != 0) {
			p.totals++
		}
	}
	if !m.ord.seq.Observe(m.self, p.totals) {
		m.ord.observeDue = true
	}
}

// makeRecords, at the sequencer, turns new observations into order-stream
// messages (at most a window of them in flight), and reads them into its
// own orderer.
func (m *Member) makeRecords() {
	od := &m.ord
	if od.seq == nil || m.frozen {
		return
	}
	m.scanOwn()
	if od.observeDue {
		od.observeDue = false
		for o := 0; o < m.n; o++ {
			if !od.seq.Observe(o, m.peers[o].totals) {
				od.observeDue = true
			}
		}
	}
	p := &m.peers[m.stream]
	for recs := od.seq.Records(); len(recs) > 0; recs = od.seq.Records() {
		if p.win.Highest()-p.win.Base() >= uint64(m.cfg.WindowMessages) {
			break // the members have not caught up: records wait
		}
		k := min(len(recs), od.maxRecs)
		b := sequencer.AppendRecords(od.recBuf[:0], recs[0].Global, recs[:k])
		od.recBuf = b[:0] // scratch: the window keeps a copy
		if p.win.Put(p.win.Highest()+1, wire.OrderFIFO, 0, b) != ring.Stored {
			break
		}
		m.stats.OrderRecords += uint64(k)
		od.seq.Advance(k)
	}
	m.scanStream()
	if od.observeDue {
		// Records were drained: the refused observations fit now.
		od.observeDue = false
		for o := 0; o < m.n; o++ {
			if !od.seq.Observe(o, m.peers[o].totals) {
				od.observeDue = true
			}
		}
	}
}

// stampOwn returns the timestamp of own causal message seq (this view's
// numbering), making it on its first transmission: what this member has
// delivered of every rank now. Retransmissions send the same one.
func (m *Member) stampOwn(seq uint64, first bool) []byte {
	od := &m.ord
	slots := m.sender.stash.Cap()
	if od.stamps == nil {
		od.stamps = make([]uint64, slots*m.n)
		od.stampTS = make([]byte, 0, 1+m.n*(maxStampEntry+5))
	}
	i := int((m.seqBase+seq)&uint64(slots-1)) * m.n
	vt := od.stamps[i : i+m.n]
	if first {
		for k := range vt {
			vt[k] = m.peers[k].deliverNext - 1
		}
		vt[m.self] = seq
	}
	od.stampTS = vclock.AppendTimestamp(od.stampTS[:0], vt, m.self)
	return od.stampTS
}

// totalHint returns the order hint of own total message seq (this view's
// numbering), making it on its first transmission: how many total-order
// messages this member has delivered. Along any chain of "delivered, then
// sent" among total messages hints strictly grow (the message delivered
// took a global number above its own sender's hint), so a flush that must
// order total messages whose records were lost orders them by hint and
// keeps total order causal.
func (m *Member) totalHint(seq uint64, first bool) []byte {
	od := &m.ord
	slots := m.sender.stash.Cap()
	if od.hints == nil {
		od.hints = make([]uint64, slots)
	}
	i := int((m.seqBase + seq) & uint64(slots-1))
	if first {
		od.hints[i] = od.orderer.NextGlobal() - 1
	}
	n := binary.PutUvarint(od.hintBuf[:], od.hints[i])
	return od.hintBuf[:n]
}

// ownTotalHint is the hint own total message seq was sent with.
// totalHintOf reads the order hint of total-order message seq of origin
// o from its first piece: kept aside for own messages, at the start of
// payload for the others. n is the hint's length in payload (0 for own
// messages); ok is false when it does not decode.
func (m *Member) totalHintOf(o int, seq uint64, payload []byte) (hint uint64, n int, ok bool) {
	if o == m.self {
		return m.ownTotalHint(seq), 0, true
	}
	hint, n = binary.Uvarint(payload)
	return hint, n, n > 0
}

func (m *Member) ownTotalHint(seq uint64) uint64 {
	if m.ord.hints == nil {
		return 0
	}
	slots := m.sender.stash.Cap()
	return m.ord.hints[int((m.seqBase+seq)&uint64(slots-1))]
}

// completeFlush runs when nothing more can be delivered. At the end of a
// view change, once the whole cut is held and decided, what still waits can only be
// waiting for order records or causal pasts that were lost with failed
// members: every member holds the same cut and has delivered the same
// closure of it, so the same rule gives the same result everywhere. The
// rest of the total-order messages are delivered one at a time: among
// those at the head of their sender's cursor, the one with the lowest
// order hint (see totalHint), then the lowest rank, which keeps total
// order causal. What is still stuck after that depends on messages no
// survivor holds, so no survivor delivered it: it is left out of the view.
// It reports whether it changed anything.
func (m *Member) completeFlush() bool {
	od := &m.ord
	// Only the decided cut (Finalize): a member may have accepted a
	// proposal that a later round replaced (it was cut off when that
	// round chose), and ordering by rank a cut that is not the outcome
	// would deliver what the survivors order otherwise.
	if !od.cutSet || !od.final || od.safeWaiting || m.pendingLen >= m.cfg.DeliveryQueue {
		return false
	}
	for o := range m.peers {
		if o != m.self && m.peers[o].win.Contiguous() < m.peers[o].limit {
			return false // the cut is not all here yet
		}
	}
	if !od.dead {
		od.dead = true
		m.scanStream() // consume the rest of the stream
		return true
	}
	next, nextHint := -1, uint64(0)
	for o := 0; o < m.n; o++ {
		p := &m.peers[o]
		if p.deliverNext > m.heldUpTo(o) {
			continue
		}
		flags, _, payload, _ := m.held(o, p.deliverNext)
		if flags&wire.OrderMask != wire.OrderTotal || (flags&wire.FlagFrag != 0 && flags&wire.FlagFragLast == 0) {
			continue
		}
		// The head's hint, read from the message itself: the cursor's
		// copy is stale when it has not looked at this head yet (just
		// after the previous head was taken), and the choice must depend
		// on nothing but what the cut holds. A last fragment's hint was
		// read at its first fragment, on the way here.
		hint := p.totalHint
		if flags&wire.FlagFrag == 0 {
			h, _, ok := m.totalHintOf(o, p.deliverNext, payload)
			if !ok {
				continue // malformed: deliverFrom skips it
			}
			hint = h
		}
		if next < 0 || hint < nextHint {
			next, nextHint = o, hint
		}
	}
	if next >= 0 {
		p := &m.peers[next]
		if flags, _, _, _ := m.held(next, p.deliverNext); flags&wire.FlagSafe != 0 && !m.safeReady(next, p.deliverNext, 0) {
			return false
		}
		m.stats.OrderedAtFlush++
		m.takeHead(next)
		return true
	}
	for o := 0; o < m.n; o++ {
		p := &m.peers[o]
		if o != m.self && p.deliverNext <= p.limit && p.limit != noLimit {
			m.stats.Truncated += p.limit - p.deliverNext + 1
			p.limit = p.deliverNext - 1
		}
	}
	return false
}
