package protocol

import "github.com/cohort-vs/cohort/internal/wire"

// The Member's part in a view change: it stops sending and delivering at
// what it reports, then delivers exactly up to the agreed cut, fetching
// what it lacks from the members that hold it.

// Freeze stops this member from multicasting new own messages (they stay
// queued in the Sender for the next view) and from delivering beyond what
// it holds now, and returns that: for every rank, the highest sequence
// number it holds with nothing missing below (for itself, the last one it
// sent). Everything it has delivered is at or below what it returns, so a
// cut at or above every survivor's report leaves nothing delivered
// outside the cut.
func (m *Member) Freeze(report []uint64) []uint64 {
	m.frozen = true
	report = report[:0]
	for o := range m.peers {
		p := &m.peers[o]
		c := m.sentUpTo
		if o != m.self {
			c = p.win.Contiguous()
		}
		if !m.frozenOnce {
			p.limit = c
		}
		report = append(report, c)
	}
	m.frozenOnce = true
	return report
}

// Frozen reports whether Freeze was called.
func (m *Member) Frozen() bool { return m.frozen }

// SetCut fixes what this member delivers in its view: every message of
// origin o up to cut[o], and nothing beyond. Missing messages are asked of
// holders[o]. Once the whole cut is here, what the lost members' order
// records and causal pasts left undeliverable is settled (see
// completeFlush). The member must be frozen.
func (m *Member) SetCut(cut []uint64, holders []int) {
	m.ord.cutSet = true
	for o := range m.peers {
		p := &m.peers[o]
		p.limit = cut[o]
		if o == m.self {
			continue
		}
		if cut[o] > p.knownSent {
			p.knownSent = cut[o]
		}
		if h := holders[o]; h >= 0 && h < m.n && h != m.self {
			p.nakTo = h
		}
		m.trackGap(p)
	}
}

// Finalize says that the cut set last is the view's outcome: its install
// was decided, which happens only once every member of the next view held
// the cut. Safe messages of the cut are then held by every survivor and
// may be delivered. Until then a safe message waits for every member of
// the view, failed ones included: a cut proposed but not chosen must not
// let a member deliver a safe message that the chosen outcome leaves out.
func (m *Member) Finalize() { m.ord.final = true }

// CutHeld reports whether this member holds every message up to the cut:
// nobody needs it to retransmit anything of the view any more.
func (m *Member) CutHeld() bool {
	for o := range m.peers {
		p := &m.peers[o]
		if p.limit == noLimit {
			return false
		}
		if o != m.self && p.win.Contiguous() < p.limit {
			return false
		}
	}
	return true
}

// CutConsumed reports whether every message up to the cut has been
// delivered and consumed by the application: the member's part of the
// view is over.
func (m *Member) CutConsumed() bool {
	for o := range m.peers {
		p := &m.peers[o]
		if p.limit == noLimit {
			return false
		}
		if o == m.self {
			if p.deliverNext <= p.limit || m.ownPending > 0 {
				return false
			}
			continue
		}
		if p.consumed < p.limit {
			return false
		}
	}
	return true
}

// MessageBoundary is the last own sequence number at or below seq that
// ends a message: a view that ends inside a fragmented message delivers
// none of it, and the sender sends it whole again in the next view.
func (m *Member) MessageBoundary(seq uint64) uint64 {
	for ; seq > 0; seq-- {
		flags, _, _, ok := m.sender.stash.Get(m.seqBase + seq)
		if !ok || flags&wire.FlagFrag == 0 || flags&wire.FlagFragLast != 0 {
			return seq
		}
	}
	return 0
}

// Retire ends this member's view: own messages up to boundary (a
// MessageBoundary of the cut) are released, and the rest stay queued for
// the next view's member, which owns the Sender from now on. A retired
// member may still answer NAKs for the other origins' messages it holds.
func (m *Member) Retire(boundary uint64) {
	m.sender.stash.Release(m.seqBase + boundary)
	m.retired = true
}

// Stable reports, for every rank, the highest sequence number that every
// member holds (by their last status), and for this member's own rank
// and the others what it has sent or delivered: Flush waits until the
// first covers the second.
func (m *Member) Stable(o int) uint64 {
	p := &m.peers[o]
	s := m.sentUpTo
	if o != m.self {
		s = p.win.Contiguous()
	}
	for r := 0; r < m.n; r++ {
		if r != m.self && r != o {
			s = min(s, m.peers[r].contiguous[o])
		}
	}
	return s
}

// Lags writes into lag[r], for every rank, how far r trails the member
// furthest ahead in consuming this member's own messages, as a share of
// the flow-control window: the larger of the messages' and the bytes'
// share (0 for itself). A member at 1 holds the window full on its own;
// the sender then waits for it alone. lag is grown to the view's size.
func (m *Member) Lags(lag []float64) []float64 {
	if cap(lag) < m.n {
		lag = make([]float64, m.n)
	}
	lag = lag[:m.n]
	clear(lag)
	if m.retired {
		return lag
	}
	best := m.peers[m.self].consumed
	for q := 0; q < m.n; q++ {
		if q != m.self {
			best = max(best, m.peers[q].delivered[m.self])
		}
	}
	stash := m.sender.stash
	for r := 0; r < m.n; r++ {
		if behind := m.peers[r].delivered[m.self]; r != m.self && behind < best {
			msgs := float64(best-behind) / float64(m.cfg.WindowMessages)
			bytes := float64(stash.BytesBetween(m.seqBase+behind, m.seqBase+best)) / float64(m.cfg.WindowBytes)
			lag[r] = max(msgs, bytes)
		}
	}
	return lag
}

// Delivered is the last sequence number of rank o this member delivered
// (for itself: sent).
func (m *Member) Delivered(o int) uint64 {
	if o == m.self {
		return m.sentUpTo
	}
	return m.peers[o].deliverNext - 1
}

// Ranks is the number of members in the view.
func (m *Member) Ranks() int { return m.n }

// Origins is the number of message origins: the ranks and the order
// stream. Reports and cuts have one entry per origin.
func (m *Member) Origins() int { return m.origins }
