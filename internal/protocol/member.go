package protocol

import (
	"math"
	"net/netip"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/ring"
	"github.com/cohort-vs/cohort/udp"
)

// noLimit is a peer's delivery limit outside view changes.
const noLimit = math.MaxUint64

// maxRTX is how many retransmission requests a member keeps at once; a
// requester whose request found no room asks again later.
const maxRTX = 64

// Window marks kept per received message.
const (
	markDelivered uint8 = 1 << iota // handed to the application
	markConsumed                    // the application is done with it
)

// Delivery is one message for the application. Payload aliases the
// member's buffers and stays valid until the delivery is consumed.
type Delivery struct {
	Origin  int    // sender's rank
	Seq     uint64 // sender's sequence number (of the last fragment)
	Flags   uint8  // wire flags: ordering and safe bit
	Payload []byte
}

// Ready is what a member asks its driver to do.
type Ready struct {
	// Datagrams to send. Buffers are reused after Advance.
	Datagrams []udp.Datagram
	// Deliveries to hand to the application, in order. Report each one
	// with Consumed once the application is done with it.
	Deliveries []Delivery
	// Released is true when this round freed room in the send window.
	Released bool
	// More is true when output was held back by MaxOutDatagrams: call Ready
	// again after Advance.
	More bool
}

// peer is what a member keeps about one origin of messages: a rank of the
// view (itself too), or the view's order stream.
type peer struct {
	addr netip.AddrPort
	win  *ring.Window // messages received from this origin (nil for self)

	deliverNext uint64 // next sequence number for in-order delivery
	consumed    uint64 // every message <= consumed is consumed by the application
	knownSent   uint64 // highest sequence number this origin is known to have sent

	// The last status frame received from this rank, about every origin.
	contiguous []uint64
	delivered  []uint64

	// limit is the last sequence number this member may deliver: no
	// limit in normal operation; during a view change, first what it
	// reported when it promised, then the agreed cut.
	limit uint64
	// nakTo is the rank asked for this origin's missing messages: the
	// origin itself, or during a view change a member that holds them.
	nakTo int

	gapSince int64 // tick at which a gap was first seen; -1: none
	nakTick  int64 // tick of the last full NAK to this origin
	nakDue   bool
	// nakEnd is the last sequence number the last full NAK asked for. A
	// gap's head that it asked for and that is still missing a tick
	// later is asked for again every tick, alone (headDue), until the
	// next full NAK.
	nakEnd  uint64
	headDue bool
	// askTick: when the last NAK of either kind went; movedTick: the
	// tick at which Contiguous was last seen to move (movedContig). The
	// head is asked for again only once a whole tick has passed since
	// both: a repair still arriving moves the head, and asking for it
	// again would only make the sender send it twice.
	askTick     int64
	movedTick   int64
	movedContig uint64

	reasm []byte // fragments of the message being reassembled
	// reasmTotal is the size the first fragment announced.
	reasmTotal int

	// Total order (see order.go).
	scanNext    uint64 // next message to examine ahead of delivery: at the sequencer to count total-order messages, everywhere to read the order stream
	totals      uint64 // total-order messages among those scanned
	delivTotals uint64 // total-order messages delivered; the next one is number delivTotals+1
	announced   bool   // the message at deliverNext is total-order and was made available to the orderer
	totalHint   uint64 // order hint of the total-order message at (or being copied at) the cursor
}

// pendingDelivery identifies a delivery the application still holds.
type pendingDelivery struct {
	origin int32
	size   uint32
	seq    uint64
}

type rtxRequest struct {
	to, origin  int
	from, count uint64
	clear       uint64 // messages from..clear-1 were not sent again recently (packRetransmits)
}

// Member is the protocol state of one member in one group view.
//
// Origins of messages are the view's ranks 0..n-1 and, as origin n, the
// view's order stream: the sequencer's total-order records, sent, held,
// repaired and flushed exactly like a member's messages.
type Member struct {
	cfg     Config
	self    int
	n       int // ranks
	origins int // ranks and the order stream
	stream  int // origin of the order stream (n)
	seqRank int // rank of the sequencer
	sender  *Sender
	peers   []peer
	now     int64

	sentUpTo uint64 // own messages up to here have been multicast once
	// seqBase is the stash's sequence number just before this view's first
	// own message: the stash outlives views, sequence numbers on the wire
	// start at 1 in every view.
	seqBase    uint64
	frozen     bool // a view change is under way: send no new own messages
	retired    bool // the view is over: the Sender belongs to the next view's member
	frozenOnce bool // delivery limits were set by the first Freeze

	// Application deliveries not yet consumed, oldest first (a ring).
	pending     []pendingDelivery
	pendingHead int
	pendingLen  int
	ownPending  int // how many of them are this member's own messages
	// deliverFirst is the origin that goes first in the next deliverAll
	// (it rotates).
	deliverFirst int
	holdOthers   bool              // see HoldOthers
	heldReports  []pendingDelivery // others' messages consumed and not reported yet

	rtx        []rtxRequest // retransmission requests to serve
	rtxBase    []rtxRequest // rtx's backing array: maxRTX requests, or nil
	lastRunEnd uint64

	// Safe reports (safe.go).
	reportDue  []bool   // per rank: a report is owed to it
	reportSent []int64  // per rank: tick of the last report it has not answered; -1: none
	stableDue  bool     // a report came in: the stable vector is owed
	stableSent []uint64 // the last stable vector sent

	statusDue      bool
	lastStatusTick int64
	lastTrim       int64
	statusDirty    bool   // something changed since the last status frame
	answerDue      bool   // a member asked for this one's status (FrameStatusAsk)
	progress       uint64 // messages consumed since the last status frame
	progressBytes  uint64 // and their bytes

	// Output of the current round.
	bufs       [][]byte
	bufsUsed   int
	out        []udp.Datagram
	deliveries []Delivery
	released   bool

	// Scratch for decoding.
	frames  wire.FrameReader
	data    wire.DataReader
	naks    wire.NAKReader
	statusC []uint64
	statusD []uint64
	touched []bool // origins that received data in this datagram

	ord ordering

	stats Stats
}

// Stats are a member's counters, cumulative.
type Stats struct {
	DatagramsSent      uint64
	DatagramsReceived  uint64
	MessagesSent       uint64 // own messages multicast (first transmission)
	MessagesReceived   uint64 // new messages stored from other members
	Delivered          uint64 // deliveries handed to the application
	Duplicates         uint64 // messages received again
	BeyondWindow       uint64 // messages dropped: past the receive window
	NoRoom             uint64 // messages dropped: receive arena full
	Displaced          uint64 // messages beyond a gap dropped to make room for the one that fills it
	Overflowed         uint64 // gap fillers kept outside a full receive window (see ring.Window.Put)
	Retransmits        uint64 // messages sent again after a NAK
	RetransmitBytes    uint64 // their payload bytes
	RetransmitsSkipped uint64 // messages asked for again while their retransmission to that member was still on its way: not sent
	NAKsSent           uint64
	NAKsReceived       uint64
	StatusSent         uint64
	ReportsSent        uint64 // statuses sent to one member for safe delivery (safe.go)
	Malformed          uint64 // datagrams or frames that failed to decode
	Foreign            uint64 // datagrams of another group or instance, or from a non-member
	OtherEpoch         uint64 // datagrams of another view
	OrderRecords       uint64 // order records received (or made, at the sequencer)
	OrderedAtFlush     uint64 // total-order messages a view change ordered by rank (their records were lost with the sequencer)
	Truncated          uint64 // messages of a failed sender left out of a view: their causal past was lost with it
}

func (s *Stats) add(o Stats) {
	s.DatagramsSent += o.DatagramsSent
	s.DatagramsReceived += o.DatagramsReceived
	s.MessagesSent += o.MessagesSent
	s.MessagesReceived += o.MessagesReceived
	s.Delivered += o.Delivered
	s.Duplicates += o.Duplicates
	s.BeyondWindow += o.BeyondWindow
	s.NoRoom += o.NoRoom
	s.Displaced += o.Displaced
	s.Overflowed += o.Overflowed
	s.Retransmits += o.Retransmits
	s.RetransmitBytes += o.RetransmitBytes
	s.RetransmitsSkipped += o.RetransmitsSkipped
	s.NAKsSent += o.NAKsSent
	s.NAKsReceived += o.NAKsReceived
	s.StatusSent += o.StatusSent
	s.ReportsSent += o.ReportsSent
	s.Malformed += o.Malformed
	s.Foreign += o.Foreign
	s.OtherEpoch += o.OtherEpoch
	s.OrderRecords += o.OrderRecords
	s.OrderedAtFlush += o.OrderedAtFlush
	s.Truncated += o.Truncated
}

// New makes the member described by cfg with a new Sender.
func New(cfg Config) (*Member, error) { return NewWithSender(cfg, nil) }

// NewWithSender makes the member described by cfg. A view's member takes
// over the previous view's Sender: the messages queued in it and not sent
// in the previous view are this view's first ones.
func NewWithSender(cfg Config, sender *Sender) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := len(cfg.Members)
	m := &Member{
		cfg:        cfg,
		self:       cfg.Self,
		n:          n,
		origins:    n + 1,
		stream:     n,
		seqRank:    cfg.Sequencer,
		sender:     sender,
		peers:      make([]peer, n+1),
		statusC:    make([]uint64, n+1),
		statusD:    make([]uint64, n+1),
		touched:    make([]bool, n+1),
		reportDue:  make([]bool, n),
		reportSent: make([]int64, n),
		stableSent: make([]uint64, n+1),
	}
	if m.sender == nil {
		m.sender = newSender(&cfg)
	}
	m.seqBase = m.sender.stash.Tail()
	// The previous view's Retire freed room in the window: the first Ready
	// says so, or senders waiting for room would wait for good.
	m.released = true
	for i := range m.reportSent {
		m.reportSent[i] = -1
	}
	for i := range m.peers {
		p := &m.peers[i]
		owner := i
		if i == m.stream {
			owner = m.seqRank
		}
		p.addr = cfg.Members[owner]
		p.deliverNext = 1
		p.scanNext = 1
		p.contiguous = make([]uint64, n+1)
		p.delivered = make([]uint64, n+1)
		p.gapSince = -1
		p.limit = noLimit
		p.nakTo = owner
		if i != m.self {
			// Twice the sender's window: the sender may learn of stability
			// a little before this member does. The sequencer keeps its
			// own order stream in a window too.
			p.win = ring.NewWindow(2*cfg.WindowMessages, 2*cfg.WindowBytes)
			p.win.SetBudget(cfg.Budget)
		}
	}
	m.ord.init(m)
	return m, nil
}

// growPending doubles the ring of deliveries not yet consumed (at most
// DeliveryQueue are).
func (m *Member) growPending() {
	p := make([]pendingDelivery, min(max(2*len(m.pending), 64), max(m.cfg.DeliveryQueue, len(m.pending)+1)))
	n := copy(p, m.pending[m.pendingHead:])
	copy(p[n:], m.pending[:m.pendingHead])
	m.pending, m.pendingHead = p, 0
}

// StatusNow makes the next Ready send this member's status.
func (m *Member) StatusNow() { m.statusDue = true }

// trim gives back the memory of the stores that hold nothing: an idle
// group keeps next to none.
func (m *Member) trim() {
	if m.pendingLen == 0 {
		m.pending, m.pendingHead = nil, 0
	}
	// Nothing waiting for the next Ready: deliveries are gathered as
	// datagrams come in, and a tick may fall between those and the Ready
	// (dropping them lost deliveries the application never saw, and held
	// the delivery queue full for good).
	if len(m.out) == 0 && m.bufsUsed == 0 && len(m.deliveries) == 0 {
		m.bufs, m.out, m.deliveries = nil, nil, nil
	}
	if len(m.rtx) == 0 {
		m.rtx, m.rtxBase = nil, nil
	}
	for i := range m.peers {
		if w := m.peers[i].win; w != nil {
			w.Trim()
		}
	}
	m.sender.stash.Trim()
}

// StoreBytes is the memory this member's windows and stash hold now.
func (m *Member) StoreBytes() int {
	n := m.sender.stash.Bytes()
	for i := range m.peers {
		if w := m.peers[i].win; w != nil {
			n += w.Bytes()
		}
	}
	return n
}

// owner is the rank that sends origin o's messages.
func (m *Member) owner(o int) int {
	if o == m.stream {
		return m.seqRank
	}
	return o
}

// Sender is where the application appends messages.
func (m *Member) Sender() *Sender { return m.sender }

// Stats returns the counters.
func (m *Member) Stats() Stats {
	s := m.stats
	for o := range m.peers {
		if w := m.peers[o].win; w != nil {
			s.Displaced += w.Displaced
			s.Overflowed += w.Overflowed
		}
	}
	return s
}

// Config returns the member's configuration.
func (m *Member) Config() *Config { return &m.cfg }

// Tick advances the member's logical clock by one tick.
func (m *Member) Tick() {
	m.now++
	trim := int64(m.cfg.TrimTicks)
	if trim <= 0 {
		trim = 1000
	}
	if m.now-m.lastTrim >= trim {
		m.lastTrim = m.now
		m.trim()
	}
	heartbeat := int64(m.cfg.HeartbeatTicks)
	switch {
	case heartbeat < 0:
		heartbeat = math.MaxInt64 // none: an idle member is silent
	case heartbeat == 0:
		heartbeat = 10 * int64(m.cfg.StatusTicks)
	}
	if m.now-m.lastStatusTick >= int64(m.cfg.StatusTicks) && (m.statusDirty || m.answerDue || m.unheard() || m.now-m.lastStatusTick >= heartbeat) {
		m.statusDue = true
	}
	for o := range m.peers {
		p := &m.peers[o]
		if o == m.self || p.gapSince < 0 {
			continue
		}
		// A gap must outlive one full tick (it may be reordering) and NAKs
		// for one origin are spaced NAKTicks apart.
		if m.now-p.gapSince < 2 {
			continue
		}
		if c := p.win.Contiguous(); c != p.movedContig {
			p.movedTick, p.movedContig = m.now, c
		}
		if m.now-p.nakTick >= int64(m.cfg.NAKTicks) {
			p.nakDue = true
		} else if m.now >= p.askTick+2 && m.now >= p.movedTick+2 && p.win.Contiguous() < p.nakEnd {
			// The repair of the head was lost too (or is late: the head
			// has not moved for a whole tick): everything behind it waits
			// for it, so ask again now rather than a NAK interval later.
			// Only the first missing run: a member losing most of what it
			// receives then moves its window every other tick, and the
			// cost is one run per such tick.
			p.headDue = true
		}
	}
}

// Idle reports whether the member has nothing timed to do: no own
// message unstable or unsent, nothing to deliver, repair, report or
// serve, no status owed, and every member's last status agrees with
// this one's (see unheard). Until something arrives or the application
// sends, its ticks do nothing but age its clock: they may come
// coarsely (Skip).
func (m *Member) Idle() bool {
	if m.frozen || m.statusDue || m.statusDirty || m.answerDue || m.stableDue ||
		m.pendingLen > 0 || len(m.rtx) > 0 || len(m.heldReports) > 0 || m.sender.Pending() > 0 || m.unheard() {
		return false
	}
	for r := range m.peers {
		p := &m.peers[r]
		if p.gapSince >= 0 || p.nakDue || p.headDue || len(p.reasm) > 0 {
			return false
		}
	}
	for r := range m.reportDue {
		if m.reportDue[r] || m.reportSent[r] >= 0 {
			return false
		}
	}
	return true
}

// Skip moves an idle member's clock n ticks on at once; the next Tick
// does what came due meanwhile (all its timers compare with the clock).
func (m *Member) Skip(n int64) { m.now += n }

// unheard reports whether some member's last status says less than
// this member's next one would: that member lacks messages this one
// holds (for its own messages, that it sent), or has not heard how far
// this one has consumed. A member that loses most of what it receives
// then hears of it every status interval, not every heartbeat: it
// learns of the last datagrams of a burst it lost (a sender whose
// window is full sends nothing later that would tell), and of the
// others' consumption, without which it cannot free its copies and its
// receive window fills. A group whose members agree is quiet again.
func (m *Member) unheard() bool {
	for r := 0; r < m.n; r++ {
		if r == m.self {
			continue
		}
		c, d := m.peers[r].contiguous, m.peers[r].delivered
		for o := range m.peers {
			p := &m.peers[o]
			has := m.sentUpTo
			if o != m.self {
				has = min(p.win.Contiguous(), p.limit)
			}
			if c[o] < has || o != r && d[o] < p.consumed {
				return true
			}
		}
	}
	return false
}

// Consumed reports that the application is done with the oldest n
// deliveries it was given.
func (m *Member) Consumed(n int) {
	for ; n > 0 && m.pendingLen > 0; n-- {
		d := m.pending[m.pendingHead]
		m.pendingHead++
		if m.pendingHead == len(m.pending) {
			m.pendingHead = 0
		}
		m.pendingLen--
		p := &m.peers[d.origin]
		if int(d.origin) == m.self {
			m.ownPending--
			p.consumed = d.seq
		} else if m.holdOthers {
			m.heldReports = append(m.heldReports, d)
			continue
		} else {
			p.win.SetMark(d.seq, markConsumed)
			m.advanceConsumed(p)
		}
		m.noteProgress(uint64(d.size))
	}
}

// HoldOthers, while hold is set, keeps this member from telling the
// other senders that it consumed their messages (their windows do not
// move), while its own messages are consumed as usual: the driver holds
// the others back while handlers' replies wait for this member's window,
// which only its own consumption and the others' can free. Releasing
// reports everything held.
func (m *Member) HoldOthers(hold bool) {
	m.holdOthers = hold
	if hold || len(m.heldReports) == 0 {
		return
	}
	for _, d := range m.heldReports {
		p := &m.peers[d.origin]
		p.win.SetMark(d.seq, markConsumed)
		m.advanceConsumed(p)
		m.noteProgress(uint64(d.size))
	}
	m.heldReports = m.heldReports[:0]
}

// noteProgress counts a message (or a piece of one) consumed. A status
// goes after a quarter window consumed, so that senders never wait on a
// status round while their window still has room.
func (m *Member) noteProgress(bytes uint64) {
	m.progress++
	m.progressBytes += bytes
	if m.progress >= uint64(m.cfg.WindowMessages/4) || m.progressBytes >= uint64(m.cfg.WindowBytes/4) {
		m.statusDue = true
	}
	m.statusDirty = true
}

func (m *Member) advanceConsumed(p *peer) {
	for p.consumed < p.win.Contiguous() && p.win.Mark(p.consumed+1)&markConsumed != 0 {
		p.consumed++
	}
}

// Receive processes one datagram that arrived from addr.
func (m *Member) Receive(from netip.AddrPort, b []byte) {
	h, err := wire.ParseHeader(b)
	if err != nil {
		m.stats.Malformed++
		return
	}
	if h.Group != m.cfg.Group {
		m.stats.Foreign++
		return
	}
	if h.Instance != m.cfg.Instance {
		m.stats.Foreign++ // (Group.Receive counts them first: OtherInstance)
		return
	}
	if h.Epoch != m.cfg.Epoch {
		m.stats.OtherEpoch++
		return
	}
	sender := int(h.Sender)
	if sender >= m.n || sender == m.self || m.peers[sender].addr != from {
		m.stats.Foreign++
		return
	}
	m.stats.DatagramsReceived++
	m.frames.Reset(b[wire.HeaderSize:])
	for m.frames.Next() {
		switch m.frames.Kind {
		case wire.FrameData:
			m.receiveData(m.frames.Body)
		case wire.FrameStatus:
			m.receiveStatus(sender, m.frames.Body)
		case wire.FrameStatusAsk:
			if m.receiveStatus(sender, m.frames.Body) {
				m.answerDue = true
			}
		case wire.FrameNAK:
			m.receiveNAK(sender, m.frames.Body)
		case wire.FrameReport:
			m.receiveReport(sender, m.frames.Body)
		case wire.FrameStable:
			m.receiveStable(sender, m.frames.Body)
		}
	}
	if m.frames.Err() != nil {
		m.stats.Malformed++
	}
	for o, t := range m.touched {
		if t {
			m.touched[o] = false
			m.afterData(o)
		}
	}
}

func (m *Member) receiveData(body []byte) {
	d := &m.data
	if d.Reset(body) != nil || int(d.Origin) >= m.origins || m.owner(int(d.Origin)) == m.self {
		m.stats.Malformed++
		return
	}
	o := int(d.Origin)
	p := &m.peers[o]
	for d.Next() {
		if d.Flags&wire.FlagFragFirst != 0 && d.Total > m.cfg.MaxMessageSize {
			// A sender configured with a larger limit: its message can never
			// be reassembled here. Drop it like a malformed datagram.
			m.stats.Malformed++
			return
		}
		switch p.win.Put(d.Seq, d.Flags, d.Total, d.Payload) {
		case ring.Stored:
			m.stats.MessagesReceived++
			m.touched[o] = true
			if d.Flags&wire.FlagSafe != 0 {
				// Everyone waits to learn that everyone holds it: say so.
				m.noteSafeStored(o, d.Flags)
			} else if o == m.stream && m.ord.safeTotals {
				m.requestReport(m.seqRank)
			}
			if d.Seq > p.knownSent {
				p.knownSent = d.Seq
			}
		case ring.Duplicate:
			m.stats.Duplicates++
		case ring.Beyond:
			m.stats.BeyondWindow++
		case ring.NoRoom:
			m.stats.NoRoom++
		}
	}
	if d.Err() != nil {
		m.stats.Malformed++
	}
}

// afterData delivers what became deliverable from origin o and tracks gaps.
func (m *Member) afterData(o int) {
	p := &m.peers[o]
	if o == m.stream {
		m.scanStream()
	} else {
		if m.ord.seq != nil {
			m.scanRank(o)
		}
		m.deliverFrom(o)
	}
	m.statusDirty = true
	m.ord.stableDirty = true
	m.trackGap(p)
}

func (m *Member) trackGap(p *peer) {
	if p.win.Contiguous() < p.knownSent {
		if p.gapSince < 0 {
			p.gapSince = m.now
		}
	} else {
		p.gapSince = -1
		p.nakDue, p.headDue = false, false
	}
}

// receiveStatus takes in a status frame, and reports whether it was one.
func (m *Member) receiveStatus(sender int, body []byte) bool {
	n, err := wire.ReadStatus(body, m.statusC, m.statusD)
	if err != nil || n != m.origins {
		m.stats.Malformed++
		return false
	}
	p := &m.peers[sender]
	for i := 0; i < n; i++ {
		// Reports only grow; an older status arriving late changes nothing.
		p.contiguous[i] = max(p.contiguous[i], m.statusC[i])
		p.delivered[i] = max(p.delivered[i], m.statusD[i])
	}
	m.ord.stableDirty = true
	// What an origin's sender says it sent is known to exist.
	for o := range m.peers {
		q := &m.peers[o]
		if o != m.self && m.owner(o) == sender && p.contiguous[o] > q.knownSent {
			q.knownSent = p.contiguous[o]
			m.trackGap(q)
		}
	}
	return true
}

// receiveNAK queues retransmissions. Any member answers for any origin
// whose messages it still holds, so a view change can fill gaps left by a
// sender that crashed, and no single member is a bottleneck for repairs.
func (m *Member) receiveNAK(sender int, body []byte) {
	r := &m.naks
	if r.Reset(body) != nil || int(r.Origin) >= m.origins || int(r.Origin) == sender {
		m.stats.Malformed++
		return
	}
	origin := int(r.Origin)
	m.stats.NAKsReceived++
	if m.rtxBase == nil { // taken when requests come; trim gives it back
		m.rtxBase = make([]rtxRequest, maxRTX)
		m.rtx = m.rtxBase[:0]
	}
	for r.Next() {
		if len(m.rtx) == cap(m.rtx) {
			return // the requester asks again later
		}
		m.rtx = append(m.rtx, rtxRequest{to: sender, origin: origin, from: r.From, count: r.Count})
	}
	if r.Err() != nil {
		m.stats.Malformed++
	}
}

// deliver hands one message to the application.
func (m *Member) deliver(origin int, seq uint64, flags uint8, payload []byte) {
	m.deliveries = append(m.deliveries, Delivery{Origin: origin, Seq: seq, Flags: flags &^ (wire.FlagFrag | wire.FlagFragFirst | wire.FlagFragLast), Payload: payload})
	if m.pendingLen == len(m.pending) {
		m.growPending()
	}
	i := m.pendingHead + m.pendingLen
	if i >= len(m.pending) {
		i -= len(m.pending)
	}
	m.pending[i] = pendingDelivery{origin: int32(origin), seq: seq, size: uint32(min(len(payload), 1<<31))}
	m.pendingLen++
	if origin == m.self {
		m.ownPending++
	}
	m.stats.Delivered++
}
