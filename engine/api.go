package engine

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Ordering says in what order a message is delivered relative to others.
//
// One group may mix every ordering. Whatever their orderings, one
// sender's messages are delivered at every member in the order it sent
// them: a message waits for the conditions of every earlier message of
// its sender. Beyond that:
//
//   - Unordered and FIFO messages wait for nothing else.
//   - A Causal message waits for every message, of any ordering, that its
//     sender had delivered before it sent it.
//   - Total messages are delivered in one order at every member, which
//     extends each sender's order and is causal among Total messages (a
//     Total message sent after delivering another comes after it). Total
//     messages are not ordered against other senders' messages of the
//     other orderings.
//   - Safe, or-ed with any ordering, delays delivery until every member
//     holds the message and everything the member delivered before it. If
//     any member delivers a Safe message, even one that crashes right
//     after, every member that survives the view delivers it, and a Safe
//     Total message comes in the same place of the order everywhere.
//
// At a view change every survivor delivers the same messages of the old
// view before the new view. If the member that orders Total messages (the
// sequencer) fails, what some survivor had already ordered is delivered in
// that order and the rest of the old view's Total messages by sender rank,
// identically at every survivor.
type Ordering uint8

// Orderings. Safe may be or-ed with any of them.
const (
	// Unordered: reliable; no order promised beyond the sender's.
	Unordered Ordering = 0
	// FIFO: delivered in the sender's send order.
	FIFO Ordering = 1
	// Causal: delivered after every message its sender had delivered
	// before sending it. Its vector timestamp costs a few bytes per
	// message; see Config.MaxCausalMembers for the largest view.
	Causal Ordering = 2
	// Total: one delivery order at every member, set by a sequencer
	// (Config.SequencerRank) that orders ranges of messages without
	// waiting for anyone.
	Total Ordering = 3
	// Safe delays delivery until every member holds the message (uniform
	// delivery). It costs about one more network hop of latency.
	Safe Ordering = 4
)

func (o Ordering) String() string {
	s := [...]string{"unordered", "fifo", "causal", "total"}[o&3]
	if o&Safe != 0 {
		s += "+safe"
	}
	return s
}

// MemberID identifies one incarnation of a member process: its address
// and a number that changes every time the process (re)joins.
type MemberID struct {
	Addr        netip.AddrPort
	Incarnation uint64
}

func (m MemberID) String() string { return fmt.Sprintf("%v/%d", m.Addr, m.Incarnation) }

// View is a group's membership: its epoch and members, oldest first (the
// first is the coordinator), and what changed since the previous view.
type View struct {
	Group   string
	Epoch   uint64
	Members []MemberID
	Self    int        // this member's index in Members
	Joined  []MemberID // members new in this view (this member too, in its first)
	Left    []MemberID // members that left gracefully
	Failed  []MemberID // members removed: crashed, or suspected
	Evicted []MemberID // members removed as too slow (SlowMemberEvict)
}

// Message is one delivered message. Payload is a slice of the engine's
// receive buffers: it is valid only until the Deliver handler returns.
// Copy it to keep it.
type Message struct {
	Sender   MemberID
	Rank     int    // sender's index in the current view
	Seq      uint64 // sender's sequence number in the view
	Ordering Ordering
	Payload  []byte
}

// Handlers are the application's callbacks for one group. The engine calls
// them from one goroutine per group, one at a time, in delivery order; a
// slow handler delays only its own group's deliveries (and, through flow
// control, that group's senders), never the engine's network loops.
//
// From a handler, Send works as anywhere else and
// never waits for the window: what does not fit waits, in order, in a
// backlog that the group moves into the window as it frees, and while it
// holds more than half a window this member holds the other senders back
// for a while (a handler replying to every message slows the flood rather
// than queue without end); a handler that sends so much that two windows
// wait gets ErrHandlerBacklog. Leave from a handler starts leaving and returns;
// Flush fails at once (ErrInHandler): it would wait on this goroutine.
type Handlers struct {
	// Deliver receives every message of the group, own messages included.
	// Required.
	Deliver func(Message)
	// View is called with each view, before any message of that view.
	// Optional.
	View func(View)
	// Ended is called once when membership ends: ErrLeft after Leave,
	// ErrRemoved when the others installed a view without this member
	// (suspected by mistake, or its side lost a merge), ErrEvicted (which
	// wraps ErrRemoved) when they removed it as too slow. Nothing is
	// delivered after it. Optional. When this member joined and could
	// not restore the group's state (see Restore), it leaves the group and
	// Ended receives an error wrapping ErrStateTransfer.
	Ended func(error)
	// Rejoined is called, with Config.Rejoin, when a removed member has
	// joined the group again as a new incarnation: the new *Group replaces
	// the old one, whose methods now return ErrRemoved. Optional.
	Rejoined func(*Group)

	// Snapshot and Restore move the application's state to members that
	// join (state transfer). Both are optional; without them no state
	// moves: a joiner without Restore starts empty, and a joiner whose
	// donor has no Snapshot reads ErrNoState at once in Restore.
	//
	// In a view with joiners (more precisely, members still restoring
	// their state), the donor is the lowest-ranked member that is not
	// restoring; when every member is new (a member forming a group)
	// there is no donor and nothing is restored. The donor's Snapshot is
	// called after its last delivery of the old view and before its first
	// delivery of the new one (and before the new view's View handler):
	// it writes the state to w. The state is compressed (zstd) into
	// memory as it is written, so the donor holds the compressed state
	// until every joiner has it; its own deliveries wait while Snapshot
	// runs, the group's do not.
	Snapshot func(w io.Writer) error
	// Restore is called at a joiner before its first delivery and before
	// its first View handler (so Join returns after it): it reads the
	// donor's state from r until io.EOF and must replace the whole state.
	// The group keeps running meanwhile: messages arriving during Restore
	// are buffered (up to Config.StateBufferBytes; then flow control holds
	// the senders back) and delivered after it returns. If the donor fails
	// or a new view is installed before the state is complete, r returns
	// an error, and Restore is called again with the state of the new
	// view's donor; the joiner's first View handler then gets that view.
	// If Restore returns an error (other than for such a restart), the
	// donor's Snapshot failed, or no state comes for 30 s, this member
	// leaves the group and Ended receives an error wrapping
	// ErrStateTransfer.
	Restore func(r io.Reader) error
}

// Errors callers can test with errors.Is.
var (
	ErrClosed      = errors.New("engine: closed")
	ErrTooLarge    = errors.New("engine: message larger than MaxMessageSize")
	ErrUnsupported = errors.New("engine: ordering not supported by this version")
	ErrJoined      = errors.New("engine: group already joined")
	// ErrRemoved: the group installed a view without this member. It must
	// not send or deliver under its old identity; it may join again (as a
	// new incarnation), which Config.Rejoin does by itself.
	ErrRemoved = errors.New("engine: removed from the group")
	// ErrEvicted: the group removed this member for being too slow
	// (Config.SlowMember is SlowMemberEvict at its members). It wraps
	// ErrRemoved: errors.Is(err, ErrRemoved) holds for it too.
	ErrEvicted = fmt.Errorf("engine: evicted from the group as too slow: %w", ErrRemoved)
	// ErrLeft: this member left the group.
	ErrLeft = errors.New("engine: left the group")
	// ErrBlocked: this member has been cut off from the group's majority
	// for longer than BlockTimeout, and cannot send.
	ErrBlocked = errors.New("engine: group blocked: no majority reachable")
	// ErrFull: Join was refused: the group has as many members as its
	// Config.MaxMembers allows.
	ErrFull = errors.New("engine: group full")
	// ErrHandlerBacklog: a Send from a handler found the window full and
	// WindowBytes of earlier such Sends still waiting for it; nothing was
	// sent. A handler that sends more than the group takes in must send
	// from another goroutine, where Send waits.
	ErrHandlerBacklog = errors.New("engine: handler sends wait for the window")
	// ErrInHandler: Flush called from a handler; it would wait on the
	// handler's own deliveries.
	ErrInHandler = errors.New("engine: not allowed from a handler")
	// ErrStateTransfer wraps the reason a joiner could not restore the
	// group's state (its Restore failed, the donor's Snapshot failed, or
	// the donor left before the state was complete). Membership then
	// ends: the group's Ended handler receives the wrapped error.
	ErrStateTransfer = errors.New("engine: state transfer failed")
	// ErrNoState is what a joiner's Restore reads when its donor has no
	// Snapshot handler: the joiner starts with whatever Restore left, and
	// an error Restore returns that wraps ErrNoState is not a failure.
	ErrNoState = errors.New("engine: the donor keeps no state (it has no Snapshot handler)")
)
