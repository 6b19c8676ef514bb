package protocol

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/ring"
)

// Config describes one member's view of its group and its limits. The
// engine derives it from engine.Config; every member of a group must use
// the same MaxDatagram and a MaxMessageSize at least as large as any
// sender's.
type Config struct {
	Group    uint64           // group id carried in every datagram
	Instance uint64           // the group instance (wire.InstanceID of its founder)
	Epoch    uint64           // view number
	Self     int              // this member's rank in Members
	Members  []netip.AddrPort // the view's members, by rank

	MaxDatagram    int // bytes per datagram, header included
	MaxMessageSize int // largest application message, bytes
	WindowMessages int // per sender: messages sent but not yet stable
	WindowBytes    int // per sender: payload bytes sent but not yet stable
	DeliveryQueue  int // deliveries handed to the application and not yet consumed

	// StatusTicks: send a status frame at least every StatusTicks ticks
	// while anything changes, or while another member's last status
	// says less than this member's would.
	StatusTicks int
	// HeartbeatTicks: send a status frame at least this often even when
	// nothing changes, so that silence means trouble. 0: 10*StatusTicks;
	// negative: never (the process's heartbeats stand for it).
	HeartbeatTicks  int
	NAKTicks        int // ask again for a missing message at most every NAKTicks ticks
	MaxOutDatagrams int // datagrams produced by one Ready, at most
	// Sequencer is the rank that orders total-order messages (0: the
	// coordinator, the oldest member).
	Sequencer int
	// Budget, shared by the stores of every group of a process, bounds
	// the memory their windows and stash grow to (nil: no bound).
	Budget *ring.Budget
	// TrimTicks: every TrimTicks ticks, windows and the stash that hold
	// nothing give their memory back (0: 1000).
	TrimTicks int
}

// MaxMembers is the largest view the wire format addresses (ranks are 16
// bits; status frames must fit a datagram).
const MaxMembers = 1024

// Validate reports the first field that is out of range, with a message
// that says what to fix.
func (c *Config) Validate() error {
	switch {
	case len(c.Members) == 0 || len(c.Members) > MaxMembers:
		return fmt.Errorf("protocol: a view needs 1 to %d members, not %d", MaxMembers, len(c.Members))
	case c.Self < 0 || c.Self >= len(c.Members):
		return fmt.Errorf("protocol: Self rank %d is not in the view of %d members", c.Self, len(c.Members))
	case c.Sequencer < 0 || c.Sequencer >= len(c.Members):
		return fmt.Errorf("protocol: Sequencer rank %d is not in the view of %d members", c.Sequencer, len(c.Members))
	case c.MaxDatagram < 512 || c.MaxDatagram > 65507:
		return fmt.Errorf("protocol: MaxDatagram %d must be between 512 and 65507 bytes", c.MaxDatagram)
	case wire.StatusSize(len(c.Members)+1)+wire.HeaderSize > c.MaxDatagram:
		return fmt.Errorf("protocol: MaxDatagram %d cannot hold a status frame for %d members", c.MaxDatagram, len(c.Members))
	case c.MaxMessageSize < 1:
		return errors.New("protocol: MaxMessageSize must be positive")
	case c.WindowMessages < 16:
		return fmt.Errorf("protocol: WindowMessages %d is below the minimum of 16", c.WindowMessages)
	case c.WindowBytes < 2*c.MaxDatagram:
		return fmt.Errorf("protocol: WindowBytes %d must be at least two datagrams (%d)", c.WindowBytes, 2*c.MaxDatagram)
	case c.DeliveryQueue < 1:
		return errors.New("protocol: DeliveryQueue must be positive")
	case c.StatusTicks < 1 || c.NAKTicks < 1:
		return errors.New("protocol: StatusTicks and NAKTicks must be at least 1")
	case c.MaxOutDatagrams < 1:
		return errors.New("protocol: MaxOutDatagrams must be positive")
	}
	for i, a := range c.Members {
		if !a.IsValid() {
			return fmt.Errorf("protocol: member %d has no address", i)
		}
		for _, b := range c.Members[:i] {
			if a == b {
				return fmt.Errorf("protocol: address %v appears twice in the view", a)
			}
		}
	}
	return nil
}

// FragmentSize is the largest payload sent as one message; larger ones are
// split into fragments of this size.
func (c *Config) FragmentSize() int {
	return c.MaxDatagram - wire.HeaderSize - wire.DataHeadSize - 1 - 2*10
}
