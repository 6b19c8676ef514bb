package protocol

import "github.com/cohort-vs/cohort/internal/wire"

// Safe delivery needs every member to learn that every member holds a
// message. Members used to multicast their status to everyone on every
// datagram that brought a safe message: with n members, (n-1)² datagrams
// per data datagram, and each status woke the sender, which then sent
// what its stash held at that moment in a datagram of its own, and so on.
// Now:
//
//   - A member that stores new safe messages reports (its status, as a
//     FrameReport) to the owner of their origin only, and to the
//     sequencer for total-order ones, whose records must be stable too.
//   - The owner answers every report with its stable vector (FrameStable:
//     per origin, what every member holds), in its next datagram: with its
//     data when it is sending, on its own otherwise. Members take the
//     vector as known stability (a fact, whoever says it).
//   - A member sends one report to an owner and waits for the answer
//     before the next (or for a tick, in case either was lost): under load
//     reports go once per round trip, not once per datagram, and the
//     traffic clocks itself.
//
// During a view change nothing of this is needed: safe messages of the
// old view are delivered once the install is decided.

// requestReport notes that owner t should hear this member's status.
func (m *Member) requestReport(t int) {
	if t != m.self {
		m.reportDue[t] = true
	}
}

// noteSafeStored is called for each safe message stored from origin o.
func (m *Member) noteSafeStored(o int, flags uint8) {
	m.requestReport(m.owner(o))
	if flags&wire.OrderMask == wire.OrderTotal {
		// Its record must be held by everyone too: the sequencer says when.
		m.ord.safeTotals = true
		m.requestReport(m.seqRank)
	}
}

// packReports sends the reports that are due and not held back by an
// unanswered one. It reports false when it ran out of datagrams.
func (m *Member) packReports() bool {
	if m.frozen {
		return true
	}
	for t := 0; t < m.n; t++ {
		if !m.reportDue[t] || m.reportSent[t] >= 0 && m.now-m.reportSent[t] < 1 {
			continue
		}
		if m.bufsUsed == m.cfg.MaxOutDatagrams {
			return false
		}
		b := m.startDatagram()
		m.fillStatus()
		n := wire.HeaderSize + wire.PutReport(b[wire.HeaderSize:], m.statusC, m.statusD)
		m.unicast(b, n, t)
		m.reportDue[t] = false
		m.reportSent[t] = m.now
		m.stats.ReportsSent++
	}
	return true
}

// receiveReport takes a report as a status, and owes the sender an answer.
func (m *Member) receiveReport(sender int, body []byte) {
	if m.receiveStatus(sender, body) && !m.frozen {
		m.stableDue = true
	}
}

// stableReady: a stable vector is owed, and says something new. Never
// during a view change: this member's own holdings count in it, and a
// frozen member must not speak for more than its delivery limit.
//
// A report that moved nothing (another member has not reported yet) gets
// no answer of its own: the answer to the report that completes the
// picture, a moment later, answers both. The one that moved nothing may
// report again a tick later at the latest.
func (m *Member) stableReady() bool {
	if !m.stableDue || m.frozen {
		return false
	}
	for o, s := range m.stableVector() {
		if s > m.stableSent[o] {
			return true
		}
	}
	m.stableDue = false
	return false
}

// putStable writes the stable vector.
func (m *Member) putStable(b []byte) int {
	m.stableDue = false
	copy(m.stableSent, m.stableVector())
	return wire.PutStable(b, m.stableSent)
}

// packStable multicasts a due stable vector that rode in no data datagram.
func (m *Member) packStable() bool {
	if !m.stableReady() {
		return true
	}
	if m.bufsUsed == m.cfg.MaxOutDatagrams {
		return false
	}
	b := m.startDatagram()
	n := wire.HeaderSize + m.putStable(b[wire.HeaderSize:])
	m.multicast(b, n)
	return true
}

// receiveStable merges what the sender knows to be stable, and lets a
// report it answered be followed by the next one.
func (m *Member) receiveStable(sender int, body []byte) {
	n, err := wire.ReadStable(body, m.statusC)
	if err != nil || n != m.origins {
		m.stats.Malformed++
		return
	}
	m.reportSent[sender] = -1
	if m.frozen {
		return // a cut is being agreed: only its outcome makes things safe
	}
	for o := 0; o < n; o++ {
		if m.statusC[o] > m.ord.relayed[o] {
			m.ord.relayed[o] = m.statusC[o]
			m.ord.stableDirty = true
		}
	}
}
