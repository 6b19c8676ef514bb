package engine

import (
	"errors"
	"fmt"
	"github.com/cohort-vs/cohort/batch"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/cohort-vs/cohort/internal/protocol"
	"github.com/cohort-vs/cohort/seal"
	"github.com/cohort-vs/cohort/udp"
)

// Config holds an engine's settings. Start from DefaultConfig and change
// what you need; New rejects values that cannot work, saying what to fix.
// Members of one group must agree on MaxDatagram and use a MaxMessageSize
// at least as large as any member sends.
type Config struct {
	// ListenAddr is the UDP address to bind, "host:port". Default
	// "127.0.0.1:0" (loopback, a free port): safe for tests; set a routable
	// address to talk to other hosts.
	ListenAddr string
	// AdvertiseAddr is the address the other members reach this engine
	// at, "ip" or "ip:port" (port 0 or none: the bound port), when it is
	// not ListenAddr: a wildcard bind (0.0.0.0 or ::), or an address
	// translated on the way. Default "": ListenAddr's; with a wildcard
	// ListenAddr, the first address of an interface that is up (not
	// loopback), and New fails if there is none. An unspecified address is
	// never advertised.
	AdvertiseAddr string

	// MaxDatagram is the largest datagram sent, in bytes, header included.
	// Default 8192: about 120 small messages share one system call on
	// loopback or a jumbo-frame LAN. On a 1500-byte-MTU network with loss,
	// 1472 avoids IP fragmentation (a lost fragment loses the datagram).
	MaxDatagram int

	// MaxMessageSize is the largest message Send accepts, in bytes.
	// Default 16 MiB. Larger messages are split into fragments of about
	// MaxDatagram and reassembled; Send returns ErrTooLarge above it.
	MaxMessageSize int

	// WindowMessages and WindowBytes bound, per sender and group, the
	// messages sent but not yet consumed by every member (flow control).
	// A sender blocks when either is reached. Defaults 32768 messages and
	// 4 MiB: enough to keep a loopback or LAN path busy across the few
	// milliseconds a status round takes. Each member reserves twice these
	// for every other sender's receive window.
	WindowMessages int
	WindowBytes    int
	// EngineWindowBytes bounds the same across the engine's groups: the
	// bytes all their senders hold not yet consumed everywhere, together.
	// A Send to a group that holds some waits while the total is above
	// it (handlers never wait: see "Sends from handlers"). Without it, a
	// sender spreading its messages over 1,000 groups has 1,000 windows
	// in flight, more than a receiver's socket buffer holds: it drops
	// them and asks for them again. 0, the default: twice WindowBytes;
	// at least WindowBytes.
	EngineWindowBytes int

	// MemoryBudget bounds, across every group of the engine, the memory
	// their send and receive windows grow to: windows take memory as
	// traffic needs it (an idle group holds next to none; a group at full
	// speed with the default windows up to about 60 MiB with 3 members)
	// and give it back once idle for a second. At the budget, windows
	// stop growing: senders wait (flow control) and receivers have
	// messages sent again, so groups slow down rather than the process
	// running out of memory; a group can always send and receive one
	// message at a time. Default 1 GiB.
	MemoryBudget int64

	// Quorum is the rule a view change needs to go on (see Quorum).
	// Default QuorumMajority. Every member of a group must use the same.
	Quorum Quorum
	// QuorumWindow is how long a view must have been stable for
	// QuorumLastManStanding to break a tie. Default 10 s.
	QuorumWindow time.Duration

	// MaxMembers bounds a group's views: joins beyond it are refused
	// (Stats.JoinsRefused), and a view announced larger is not
	// believed. Default 256 (a view's membership messages must fit one
	// datagram: about 250 members at the default MaxDatagram); at most
	// 1024. Every member of a group should use the same value.
	MaxMembers int

	// DeliveryQueue bounds the messages handed to the delivery goroutine
	// and not yet returned by the handler. Default 4096. When it is full,
	// the member stops delivering and its senders are held back by flow
	// control; nothing is dropped.
	DeliveryQueue int

	// SequencerRank is the rank, in every view, of the member that orders
	// Total messages: 0 (the default) is the coordinator, the oldest
	// member, which changes least often. In a view with no member of that
	// rank the coordinator orders. Every member of a group must use the
	// same value. Moving the work off the coordinator helps when it is
	// also a busy sender.
	SequencerRank int

	// StateBufferBytes bounds the message payloads a joining member keeps
	// while its Handlers.Restore runs (state transfer): the group goes on
	// meanwhile, and its messages are delivered after Restore returns.
	// When the buffer is full the joiner stops taking messages and flow
	// control holds the senders back until Restore is done. Default
	// 256 MiB.
	StateBufferBytes int

	// TickInterval is the protocol's clock resolution. Default 1 ms.
	TickInterval time.Duration
	// StatusInterval is how often a member gossips its reception status
	// (stability, flow control, loss detection at the tail) while anything
	// changes; it also reports early after every quarter window consumed.
	// Default 2 ms.
	StatusInterval time.Duration
	// NAKInterval spaces retransmission requests to one sender. Default
	// 4 ms: a few loopback or LAN round trips, so a lost retransmission is
	// asked for again soon, without storms.
	NAKInterval time.Duration

	// DiscoverTimeout is how long a process starting a group listens for
	// an existing one through its seeds before the lowest-addressed of the
	// processes starting together forms it. Default 300 ms: several
	// retries on a LAN, so a lost datagram does not split the group.
	DiscoverTimeout time.Duration
	// SuspectTimeout is how long a member may be silent before it is
	// probed (directly and through two other members), and ProbeTimeout
	// how long the probes may go unanswered before it is suspected and
	// removed. Defaults 300 ms and 150 ms: a crash is detected and the new
	// view installed within 1 s on a LAN, while a process stalled for
	// 200 ms is not suspected. Members send a heartbeat at least every
	// SuspectTimeout/5 when idle.
	SuspectTimeout time.Duration
	ProbeTimeout   time.Duration
	// RetryInterval spaces resends of unanswered membership messages.
	// Default 20 ms.
	RetryInterval time.Duration
	// RoundTimeout is how long a view change waits for the members' answers
	// before it takes the silent ones as failed and starts over. Default
	// 500 ms.
	RoundTimeout time.Duration
	// BlockTimeout: when the group has been unable to install a new view
	// for this long (this member is cut off from the majority), Send
	// fails with ErrBlocked instead of queueing. Default 5 s.
	BlockTimeout time.Duration
	// Rejoin makes a member that was removed from its group (suspected by
	// mistake, on the losing side of a merge, or evicted as too slow) join
	// again as a new incarnation. Default false: the Ended handler
	// decides.
	Rejoin bool
	// RejoinBackoff and RejoinBackoffMax pace Rejoin after evictions. A
	// member removed otherwise (falsely suspected, or its instance merged
	// into another) rejoins at once; one evicted as too slow waits
	// RejoinBackoff (joining again at once, with a state transfer, only
	// makes the group change views again a second later), and each
	// further eviction of a membership that lasted less than
	// RejoinBackoffMax doubles the wait, up to RejoinBackoffMax; a
	// membership that lasts longer starts afresh. Defaults 1 s and 1 min.
	RejoinBackoff    time.Duration
	RejoinBackoffMax time.Duration

	// SlowMember is what the group does about a member that consumes
	// more slowly than the others send. SlowMemberBlock (the default):
	// flow control holds every sender to the slowest member's pace; no
	// member is ever removed for being slow, and the group runs only as
	// fast as its slowest member. SlowMemberEvict: a member that trails
	// the member furthest ahead by at least EvictLag of a sender's
	// flow-control window for EvictAfter (counted so that a member
	// stalling in bursts is caught too; see EvictAfter) is removed from
	// the view as if it had failed, and the others go on at their own
	// pace; with Rejoin it joins again as a new incarnation, with state
	// transfer. Eviction never removes a member when the rest would not
	// be a majority of the view (a 2-member group blocks instead). Every
	// member of a group should use the same policy; lag is measured by
	// senders, on their own messages.
	SlowMember SlowMemberPolicy
	// EvictLag is the lag, as a share of the flow-control window
	// (WindowMessages or WindowBytes, whichever is reached first), beyond
	// which a member counts as lagging. Default 0.5: a member holding half
	// the window on its own is well behind the others, not briefly late.
	EvictLag float64
	// EvictAfter is how long a member may lag beyond EvictLag before it
	// is evicted. Its lag time grows while it lags and shrinks four times
	// as fast while it keeps up: a member lagging all the time goes after
	// EvictAfter, one stalling 9/10 of the time (paused, held by a CPU
	// quota, catching up in between) after twice that, one lagging less
	// than 4/5 of the time (the busiest member of a loaded group on a
	// crowded machine) never. Default 1 s: long enough to ride out
	// scheduling hiccups and a garbage collection, short next to a slow
	// member's damage.
	EvictAfter time.Duration

	// SocketBufferBytes is asked of the kernel for the socket's receive and
	// send buffers. Default 8 MiB; the kernel may grant less (see Stats).
	SocketBufferBytes int
	// ReadBatch is how many datagrams one receive system call may return.
	// Default 64. (16 made one group's small messages about 5% faster on
	// loopback, but 1,000 groups about 37% slower: more rounds, each
	// touching every group.)
	ReadBatch int
	// PortableSockets forces one datagram per system call even where
	// batched calls exist. Default false.
	PortableSockets bool
	// DisableGSO sends every datagram as a packet of its own, where the
	// engine would otherwise hand the kernel a run of same-size datagrams
	// to one address as one UDP GSO message. Default false. A GSO message
	// stays one packet on loopback, so a filter that drops packets there
	// to emulate a lossy link drops a whole run at once; a real link
	// loses the datagrams one by one.
	DisableGSO bool
	// Linger lets small datagrams wait up to this long after the
	// protocol round that made them, for datagrams of other groups bound
	// for the same process to share theirs (package batch). 0, the
	// default, sends what a round made at its end: under load rounds
	// have much to send, and the groups share datagrams anyway. At most
	// 1ms.
	Linger time.Duration

	// Keys, when set, seals every datagram this engine sends and refuses
	// every one it receives that a key of the ring did not seal
	// (AES-256-GCM, replays refused; package seal, docs/SECURITY.md). A
	// process without the key gets no answer at all. Every member of a
	// group needs a key in common; rotate with Keys.Install, Keys.Use and
	// Keys.Remove while running. Sealing takes seal.Overhead (36) bytes of
	// each MaxDatagram. Default nil: datagrams are neither authenticated
	// nor encrypted, which New allows only on loopback unless Insecure.
	Keys *seal.Keyring
	// Insecure lets an engine without Keys bind an address that is not
	// loopback: anyone who can send it a datagram can then disrupt its
	// groups, and read their traffic. For trusted, isolated networks only.
	Insecure bool

	// Conn, when set, is used instead of opening a socket (for example an
	// in-memory network in tests). ListenAddr is then ignored.
	Conn udp.Conn

	// MeasureLatency fills Stats.Latency, a histogram of the time from
	// Send to this member's own delivery, timing one own message in 64.
	// Default false.
	MeasureLatency bool

	// Logger receives the engine's rare events (errors, warnings). Default:
	// slog.Default().
	Logger *slog.Logger
}

// DefaultLocalConfig is DefaultConfig: members on one host (loopback) or
// a jumbo-frame LAN with next to no loss: 8 KiB datagrams, a crash seen
// within half a second.
func DefaultLocalConfig() Config { return DefaultConfig() }

// DefaultLANConfig suits members on several hosts of one LAN with a
// 1500-byte MTU: 1472-byte datagrams (no IP fragmentation, so a lost
// packet loses one datagram, not a whole run), and failure detection
// that rides out a second of silence (a host's pause, a switch's hiccup).
// Set ListenAddr (or AdvertiseAddr) and Keys.
func DefaultLANConfig() Config {
	c := DefaultConfig()
	c.MaxDatagram = 1472
	c.DiscoverTimeout = time.Second
	c.SuspectTimeout, c.ProbeTimeout = time.Second, 500*time.Millisecond
	c.RetryInterval, c.RoundTimeout = 50*time.Millisecond, 2*time.Second
	c.BlockTimeout = 10 * time.Second
	return c
}

// DefaultWANConfig suits members in several sites, tens of milliseconds
// apart: 1200-byte datagrams (they pass any path, IPv6's minimum MTU
// included), windows that cover a bandwidth-delay product of about
// 100 Mbit/s x 200 ms, a slower clock and status gossip, and timeouts
// in seconds (a lost route or a congested link is not a crash). Set
// ListenAddr (or AdvertiseAddr) and Keys.
func DefaultWANConfig() Config {
	c := DefaultConfig()
	c.MaxDatagram = 1200
	c.WindowMessages, c.WindowBytes = 65536, 16<<20
	c.TickInterval, c.StatusInterval, c.NAKInterval = 5*time.Millisecond, 20*time.Millisecond, 100*time.Millisecond
	c.DiscoverTimeout = 3 * time.Second
	c.SuspectTimeout, c.ProbeTimeout = 5*time.Second, 2*time.Second
	c.RetryInterval, c.RoundTimeout = 250*time.Millisecond, 10*time.Second
	c.BlockTimeout = 60 * time.Second
	return c
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		ListenAddr:        "127.0.0.1:0",
		MaxDatagram:       8192,
		MaxMembers:        256,
		QuorumWindow:      10 * time.Second,
		MaxMessageSize:    16 << 20,
		WindowMessages:    32768,
		WindowBytes:       4 << 20,
		MemoryBudget:      1 << 30,
		DeliveryQueue:     4096,
		StateBufferBytes:  256 << 20,
		TickInterval:      time.Millisecond,
		StatusInterval:    2 * time.Millisecond,
		NAKInterval:       4 * time.Millisecond,
		SocketBufferBytes: 8 << 20,
		ReadBatch:         64,
		DiscoverTimeout:   300 * time.Millisecond,
		SuspectTimeout:    300 * time.Millisecond,
		ProbeTimeout:      150 * time.Millisecond,
		RetryInterval:     20 * time.Millisecond,
		RoundTimeout:      500 * time.Millisecond,
		BlockTimeout:      5 * time.Second,
		RejoinBackoff:     time.Second,
		RejoinBackoffMax:  time.Minute,
		SlowMember:        SlowMemberBlock,
		EvictLag:          0.5,
		EvictAfter:        time.Second,
	}
}

// SlowMemberPolicy says what a group does about a member that cannot keep
// up (see Config.SlowMember).
type SlowMemberPolicy int

const (
	// SlowMemberBlock: flow control waits for the slowest member.
	SlowMemberBlock SlowMemberPolicy = iota
	// SlowMemberEvict: a member lagging too far for too long is removed.
	SlowMemberEvict
)

func (p SlowMemberPolicy) String() string {
	switch p {
	case SlowMemberBlock:
		return "block"
	case SlowMemberEvict:
		return "evict"
	}
	return fmt.Sprintf("SlowMemberPolicy(%d)", int(p))
}

// Quorum is the rule by which a view change goes on: which members of
// the current view must take part for the next view to be installed.
// Each lets at most one side of any partition go on; the others block
// (Send fails with ErrBlocked after BlockTimeout) until they can rejoin.
type Quorum int

const (
	// QuorumMajority (the default): more than half of the view. A group
	// of 2 cannot outlive either member, and of an exact half split
	// neither half goes on.
	QuorumMajority Quorum = iota
	// QuorumTieBreaker: more than half, or exactly half when that half
	// holds the view's oldest member (rank 0, the coordinator): a group
	// of 2 outlives the crash of its younger member, and of an exact half
	// split (2|2 of 4) the half with the oldest member goes on. The price:
	// if the oldest member's half is the one cut off from the clients,
	// the group goes on where it is not useful.
	QuorumTieBreaker
	// QuorumLastManStanding: as QuorumTieBreaker, but a tie is broken
	// only for a view that has been stable for QuorumWindow: the group
	// shrinks one failure at a time, each after a stable window, down to
	// its oldest member alone, while a flapping network that splits a
	// fresh view evenly blocks both halves as under QuorumMajority.
	QuorumLastManStanding
)

func (q Quorum) String() string {
	switch q {
	case QuorumMajority:
		return "majority"
	case QuorumTieBreaker:
		return "tiebreaker"
	case QuorumLastManStanding:
		return "laststanding"
	}
	return fmt.Sprintf("Quorum(%d)", int(q))
}

// ParseQuorum reads "majority", "tiebreaker" or "laststanding".
func ParseQuorum(s string) (Quorum, error) {
	for _, q := range []Quorum{QuorumMajority, QuorumTieBreaker, QuorumLastManStanding} {
		if q.String() == s {
			return q, nil
		}
	}
	return 0, fmt.Errorf("quorum %q: use majority, tiebreaker or laststanding", s)
}

// ParseSlowMemberPolicy reads "block" or "evict".
func ParseSlowMemberPolicy(s string) (SlowMemberPolicy, error) {
	switch s {
	case "block":
		return SlowMemberBlock, nil
	case "evict":
		return SlowMemberEvict, nil
	}
	return 0, fmt.Errorf("slow-member policy %q: use block or evict", s)
}

func (c *Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("engine: config: "+format, args...)
	}
	switch {
	case c.MaxDatagram < 512 || c.MaxDatagram > 65507:
		return bad("MaxDatagram is %d; use 512 to 65507 bytes (8192 is the default)", c.MaxDatagram)
	case c.MaxMessageSize < 1 || c.MaxMessageSize > 1<<30:
		return bad("MaxMessageSize is %d; use 1 byte to 1 GiB", c.MaxMessageSize)
	case c.WindowMessages < 16 || c.WindowMessages > 1<<24:
		return bad("WindowMessages is %d; use 16 to 16777216", c.WindowMessages)
	case c.WindowBytes < 2*c.MaxDatagram || c.WindowBytes > 1<<30:
		return bad("WindowBytes is %d; use at least 2*MaxDatagram (%d) and at most 1 GiB", c.WindowBytes, 2*c.MaxDatagram)
	case c.MemoryBudget < int64(4*c.WindowBytes):
		return bad("MemoryBudget is %d; use at least 4*WindowBytes (%d): one group's windows at full speed (1 GiB is the default)", c.MemoryBudget, 4*c.WindowBytes)
	case c.Quorum < QuorumMajority || c.Quorum > QuorumLastManStanding:
		return bad("Quorum is %v; use QuorumMajority, QuorumTieBreaker or QuorumLastManStanding", c.Quorum)
	case c.Quorum == QuorumLastManStanding && c.QuorumWindow < c.TickInterval:
		return bad("QuorumWindow %v is shorter than TickInterval %v", c.QuorumWindow, c.TickInterval)
	case c.MaxMembers < 2 || c.MaxMembers > protocol.MaxMembers:
		return bad("MaxMembers is %d; use 2 to %d (256 is the default)", c.MaxMembers, protocol.MaxMembers)
	case c.DeliveryQueue < 1 || c.DeliveryQueue > 1<<20:
		return bad("DeliveryQueue is %d; use 1 to 1048576", c.DeliveryQueue)
	case c.SequencerRank < 0 || c.SequencerRank >= protocol.MaxMembers:
		return bad("SequencerRank is %d; use 0 (the coordinator) to %d", c.SequencerRank, protocol.MaxMembers-1)
	case c.StateBufferBytes < 0:
		return bad("StateBufferBytes is negative")
	case c.TickInterval < 100*time.Microsecond || c.TickInterval > time.Second:
		return bad("TickInterval is %v; use 100µs to 1s", c.TickInterval)
	case c.StatusInterval < c.TickInterval:
		return bad("StatusInterval %v is shorter than TickInterval %v", c.StatusInterval, c.TickInterval)
	case c.NAKInterval < c.TickInterval:
		return bad("NAKInterval %v is shorter than TickInterval %v", c.NAKInterval, c.TickInterval)
	case c.DiscoverTimeout < c.TickInterval || c.SuspectTimeout < c.TickInterval || c.ProbeTimeout < c.TickInterval ||
		c.RetryInterval < c.TickInterval || c.RoundTimeout < c.TickInterval || c.BlockTimeout < c.TickInterval:
		return bad("DiscoverTimeout, SuspectTimeout, ProbeTimeout, RetryInterval, RoundTimeout and BlockTimeout must each be at least TickInterval (%v)", c.TickInterval)
	case c.SuspectTimeout < 5*c.StatusInterval:
		return bad("SuspectTimeout %v must be at least 5*StatusInterval (%v): members heartbeat at SuspectTimeout/5", c.SuspectTimeout, 5*c.StatusInterval)
	case c.Rejoin && (c.RejoinBackoff <= 0 || c.RejoinBackoffMax < c.RejoinBackoff):
		return bad("RejoinBackoff %v and RejoinBackoffMax %v: with Rejoin, use a positive RejoinBackoff and a RejoinBackoffMax at least as long (1s and 1m are the defaults)", c.RejoinBackoff, c.RejoinBackoffMax)
	case c.SlowMember != SlowMemberBlock && c.SlowMember != SlowMemberEvict:
		return bad("SlowMember is %v; use SlowMemberBlock or SlowMemberEvict", c.SlowMember)
	case c.SlowMember == SlowMemberEvict && !(c.EvictLag > 0 && c.EvictLag <= 1):
		return bad("EvictLag is %v; use a share of the window above 0 and at most 1 (0.5 is the default)", c.EvictLag)
	case c.SlowMember == SlowMemberEvict && c.EvictAfter < c.TickInterval:
		return bad("EvictAfter %v is shorter than TickInterval %v", c.EvictAfter, c.TickInterval)
	case c.SocketBufferBytes < 0:
		return bad("SocketBufferBytes is negative")
	case c.ReadBatch < 1 || c.ReadBatch > 1024:
		return bad("ReadBatch is %d; use 1 to 1024", c.ReadBatch)
	case c.EngineWindowBytes != 0 && c.EngineWindowBytes < c.WindowBytes:
		return bad("EngineWindowBytes is %d; use 0 (twice WindowBytes) or at least WindowBytes (%d)", c.EngineWindowBytes, c.WindowBytes)
	case c.Linger < 0 || c.Linger > batch.MaxLinger:
		return bad("Linger is %v; use 0 (the default) to %v", c.Linger, batch.MaxLinger)
	}
	if c.Conn == nil {
		a, err := netip.ParseAddrPort(c.ListenAddr)
		if err != nil {
			return bad("ListenAddr %q is not an IP:port address: %v", c.ListenAddr, err)
		}
		if c.AdvertiseAddr != "" {
			if _, err := parseAdvertise(c.AdvertiseAddr); err != nil {
				return bad("AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
			}
		}
		if c.Keys == nil && !c.Insecure && !a.Addr().IsLoopback() {
			return bad("ListenAddr %s is not loopback and Keys is not set: anyone on the network could disrupt or read the groups; set Keys (a 32-byte key shared by the members, see docs/SECURITY.md), or Insecure on a trusted, isolated network", c.ListenAddr)
		}
	}
	if c.Keys != nil && c.frameDatagram() < 512 {
		return bad("MaxDatagram %d leaves %d bytes once sealed; use at least %d with Keys", c.MaxDatagram, c.frameDatagram(), 512+seal.Overhead)
	}
	return nil
}

// MaxCausalMembers is the largest view in which Causal messages can be
// sent under this configuration (their vector timestamps must fit a
// datagram): 69 at DefaultLANConfig's MaxDatagram, 68 with Keys.
func (c Config) MaxCausalMembers() int {
	return protocol.MaxCausalMembers(c.frameDatagram())
}

// frameDatagram is the datagram size the protocol fills: MaxDatagram,
// less what sealing adds with Keys.
func (c *Config) frameDatagram() int {
	if c.Keys != nil {
		return c.MaxDatagram - seal.Overhead
	}
	return c.MaxDatagram
}

// evictTicks is the protocol's EvictTicks: 0 under SlowMemberBlock.
func (c *Config) evictTicks() int {
	if c.SlowMember != SlowMemberEvict {
		return 0
	}
	return c.ticks(c.EvictAfter)
}

func (c *Config) ticks(d time.Duration) int {
	return max(1, int((d+c.TickInterval-1)/c.TickInterval))
}

// parseAdvertise reads AdvertiseAddr: "ip" or "ip:port", an address that
// is specified (not 0.0.0.0 or ::).
func parseAdvertise(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		a, err2 := netip.ParseAddr(s)
		if err2 != nil {
			return netip.AddrPort{}, fmt.Errorf("want an IP or IP:port: %v", err)
		}
		ap = netip.AddrPortFrom(a, 0)
	}
	if ap.Addr().IsUnspecified() {
		return netip.AddrPort{}, errors.New("an unspecified address cannot be reached; give the address members should use")
	}
	return ap, nil
}

// advertised is the address members reach an engine bound at bound at.
func (c *Config) advertised(bound netip.AddrPort) (netip.AddrPort, error) {
	if c.AdvertiseAddr != "" {
		ap, err := parseAdvertise(c.AdvertiseAddr)
		if err != nil {
			return netip.AddrPort{}, err
		}
		if ap.Port() == 0 {
			ap = netip.AddrPortFrom(ap.Addr(), bound.Port())
		}
		return ap, nil
	}
	if !bound.Addr().IsUnspecified() {
		return bound, nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.AddrPort{}, err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			p, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(p.IP)
			if !ok || ip.IsLinkLocalUnicast() || ip.Unmap().Is4() != bound.Addr().Unmap().Is4() && bound.Addr().Is4() {
				continue
			}
			return netip.AddrPortFrom(ip.Unmap(), bound.Port()), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("bound to %s and no interface has an address to advertise: set AdvertiseAddr", bound)
}

// engineWindow is EngineWindowBytes with its default.
func (c *Config) engineWindow() int64 {
	if c.EngineWindowBytes == 0 {
		return 2 * int64(c.WindowBytes)
	}
	return int64(c.EngineWindowBytes)
}
