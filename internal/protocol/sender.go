package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/ring"
)

// ErrTooLarge is returned for a message over the configured maximum size.
var ErrTooLarge = errors.New("message larger than MaxMessageSize")

// Sender is the application's side of a member's send path. Its methods
// are safe for concurrent use; the messages it accepts are picked up by the
// member's next Ready.
type Sender struct {
	mu       sync.Mutex // keeps the fragments of one message contiguous
	stash    *ring.Stash
	fragSize int
	maxSize  int
}

// newSender sizes the stash for the window plus one largest message: a
// message's fragments stay until the whole message is delivered (a view
// change inside it sends it again whole), so one message may need all of
// its size at once.
func newSender(cfg *Config) *Sender {
	frags := cfg.MaxMessageSize/cfg.FragmentSize() + 1
	s := &Sender{
		stash:    ring.NewStash(cfg.WindowMessages+frags, cfg.WindowBytes+cfg.MaxMessageSize),
		fragSize: cfg.FragmentSize(),
		maxSize:  cfg.MaxMessageSize,
	}
	// A new message starts only within the flow-control window; the extra
	// room is for the fragments of a message already begun.
	s.stash.SetWindow(cfg.WindowMessages, cfg.WindowBytes)
	s.stash.SetBudget(cfg.Budget)
	return s
}

// TrySend appends as much of payload as the window allows. done is how
// many bytes of this payload earlier calls accepted (0 for a new message);
// the result is the new count. A message that fits one datagram is taken
// whole or not at all. When the result is below len(payload) the window is
// full: wait until stable messages are released (the member's Ready
// reports Released) and call again with the result, holding Lock between
// calls so that no other message interleaves with the fragments.
func (s *Sender) TrySend(flags uint8, payload []byte, done int) (int, error) {
	if len(payload) > s.maxSize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), s.maxSize)
	}
	fragSize := s.fragSize
	switch flags & wire.OrderMask {
	case wire.OrderCausal:
		fragSize -= causalReserve(s.fragSize) // room for the timestamp
	case wire.OrderTotal:
		fragSize -= binary.MaxVarintLen64 // room for the order hint
	}
	if len(payload) <= fragSize {
		if _, err := s.stash.Append(flags, 0, payload, true); err != nil {
			return 0, nil
		}
		return len(payload), nil
	}
	for done < len(payload) {
		end := min(done+fragSize, len(payload))
		f := flags | wire.FlagFrag
		if done == 0 {
			f |= wire.FlagFragFirst
		}
		if end == len(payload) {
			f |= wire.FlagFragLast
		}
		if _, err := s.stash.Append(f, len(payload), payload[done:end], done == 0); err != nil {
			return done, nil
		}
		done = end
	}
	return done, nil
}

// Lock and Unlock bracket a message that needs more than one TrySend.
func (s *Sender) Lock()         { s.mu.Lock() }
func (s *Sender) Unlock()       { s.mu.Unlock() }
func (s *Sender) TryLock() bool { return s.mu.TryLock() }

// Pending is the number of messages in the window (sent or not, unstable).
func (s *Sender) Pending() int { return s.stash.Len() }

// ShareCount has c count the bytes the sender holds unstable, with
// other senders sharing c (ring.Stash.ShareCount). Protocol side.
func (s *Sender) ShareCount(c *atomic.Int64) { s.stash.ShareCount(c) }
