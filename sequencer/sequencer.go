package sequencer

// Sequencer assigns global sequence numbers to ranges of the senders'
// total-order messages as they become contiguous at the sequencer member.
// It is not safe for concurrent use.
type Sequencer struct {
	ordered    []uint64 // per sender: highest sequence number ordered
	nextGlobal uint64
	buf        []Record // pending records are buf[head:tail]
	head, tail int
	capacity   int // the most buf grows to
}

// NewSequencer returns a sequencer for senders ranks that holds at most
// capacity undrained records. Global numbers start at 1 and every sender's
// sequence numbers at 1; use Resume to start elsewhere.
func NewSequencer(senders, capacity int) *Sequencer {
	if capacity < 1 {
		capacity = 1
	}
	// The pending list starts small and doubles up to capacity as
	// records come: an idle group's sequencer holds next to nothing.
	return &Sequencer{ordered: make([]uint64, senders), nextGlobal: 1, buf: make([]Record, min(capacity, 16)), capacity: capacity}
}

// Resume restarts the sequencer after a view change: ordered[s] is the
// highest sequence number of sender s already ordered, nextGlobal the next
// global number to assign. Pending records are dropped.
func (s *Sequencer) Resume(ordered []uint64, nextGlobal uint64) {
	copy(s.ordered, ordered)
	s.nextGlobal = nextGlobal
	s.head, s.tail = 0, 0
}

// NextGlobal is the next global number the sequencer will assign.
func (s *Sequencer) NextGlobal() uint64 { return s.nextGlobal }

// Ordered is the highest sequence number of sender ordered so far.
func (s *Sequencer) Ordered(sender int) uint64 { return s.ordered[sender] }

// Observe reports that sender's total-order messages are contiguous up to
// upTo at the sequencer, and orders the ones not yet ordered. Consecutive
// observations of one sender, undrained, extend one record. It returns
// false when the pending list is full and a new record was needed: nothing
// is ordered then, and the caller observes again after draining (Observe
// is cumulative, so repeating it is harmless). Out-of-range senders and
// stale observations are ignored (true).
func (s *Sequencer) Observe(sender int, upTo uint64) bool {
	if sender < 0 || sender >= len(s.ordered) || upTo <= s.ordered[sender] {
		return true
	}
	first := s.ordered[sender] + 1
	n := upTo - s.ordered[sender]
	if s.tail > s.head {
		last := &s.buf[s.tail-1]
		if last.Sender == sender && last.First+last.Count == first {
			last.Count += n
			s.ordered[sender] = upTo
			s.nextGlobal += n
			return true
		}
	}
	if s.tail == len(s.buf) {
		switch {
		case s.head > 0:
			s.tail = copy(s.buf, s.buf[s.head:s.tail])
			s.head = 0
		case len(s.buf) < s.capacity:
			s.buf = append(s.buf, make([]Record, min(len(s.buf), s.capacity-len(s.buf)))...)
		default:
			return false
		}
	}
	s.buf[s.tail] = Record{Global: s.nextGlobal, Sender: sender, First: first, Count: n}
	s.tail++
	s.ordered[sender] = upTo
	s.nextGlobal += n
	return true
}

// Records returns the pending records, oldest first, contiguous in global
// numbers. The slice is valid until the next Observe or Advance. The last
// one may still grow if the caller observes before Advance: encode and
// Advance in one step.
func (s *Sequencer) Records() []Record { return s.buf[s.head:s.tail] }

// Advance drops the first n pending records (they have been sent).
func (s *Sequencer) Advance(n int) {
	s.head += min(n, s.tail-s.head)
	if s.head == s.tail {
		s.head, s.tail = 0, 0
	}
}
