package engine

// The counters' fields mirror the protocol's own (a conversion between the
// two types checks at compile time that they stay the same), so that this
// package's API names none of its internal types.

// Stats are a group member's counters: traffic summed over its views, and
// membership.
type Stats struct {
	Traffic
	Membership
	Epoch uint64 // the current view's number
	// Rejoins and TimesEvicted count, over the incarnations that
	// Config.Rejoin made of this membership, how often it joined again
	// and how often it was evicted as too slow.
	Rejoins      uint64
	TimesEvicted uint64
	// SendWindow is this member's messages in its send window: sent or
	// queued, and not yet stable at every member.
	SendWindow int
	// MaxLag is how far the slowest member trails the one furthest ahead
	// in consuming this member's messages, as a share of the window (the
	// larger of messages' and bytes'): at 1 it holds the window full on
	// its own and this member's Sends wait for it.
	MaxLag float64
	// Latency: with Config.MeasureLatency, how long this member's own
	// messages took from Send to its own delivery (sampled).
	Latency Latency
}

// Traffic counts a member's datagrams and messages, summed over its views.
type Traffic struct {
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
	ReportsSent        uint64 // statuses sent to one member for safe delivery (Safe messages)
	Malformed          uint64 // datagrams or frames that failed to decode
	Foreign            uint64 // datagrams of another group or instance, or from a non-member
	OtherEpoch         uint64 // datagrams of another view
	OrderRecords       uint64 // order records received (or made, at the sequencer)
	OrderedAtFlush     uint64 // total-order messages a view change ordered by rank (their records were lost with the sequencer)
	Truncated          uint64 // messages of a failed sender left out of a view: their causal past was lost with it
}

// Membership counts a member's view changes, suspicions and the control
// messages they took.
type Membership struct {
	Views       uint64 // views installed
	ViewChanges uint64 // view changes this member coordinated
	Rounds      uint64 // ballot rounds started
	Suspicions  uint64
	Evictions   uint64 // members this one suspected for lagging (slow-member policy evict)
	// SuspicionsRefuted: suspicions from other members that this one,
	// coordinating, ignored because it had just heard from the suspect.
	SuspicionsRefuted uint64
	ControlSent       uint64
	ControlDropped    uint64 // control messages that failed to decode or were out of place
	// ControlRefused: control messages from a process not allowed to
	// send them (not a member of the view they concern, a process
	// speaking for another), or whose view does not fit this member's.
	ControlRefused uint64
	// InstallsResent: installs sent again to members of the view still
	// speaking from an older one (they missed it).
	InstallsResent uint64
	// OtherInstance: membership messages and group traffic of another
	// instance of the group (a restarted group, or another deployment
	// that uses the same name): only discovery, joins and merges cross
	// instances.
	OtherInstance uint64
	// AnswersWithheld: answers to possible non-members not sent because
	// they would have been larger than the question (an amplification guard).
	AnswersWithheld uint64
	// JoinsRefused: joins that would make the view larger than
	// Config.MaxMembers.
	JoinsRefused uint64
}
