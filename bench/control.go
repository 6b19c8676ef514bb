package bench

// The coordinator and its children exchange one JSON object per line.

// command is a line from the coordinator to a child.
type command struct {
	Cmd string `json:"cmd"` // cmdSetup, cmdJoin, cmdPhase, cmdTimeline, cmdSlow, cmdExit

	// setup
	Setup *childSetup `json:"setup,omitempty"`

	// join: the members' engine and baseline addresses, by index, and
	// their keyed engines' (with childSetup.KeyFile).
	Members  []string `json:"members,omitempty"`
	Baseline []string `json:"baseline,omitempty"`
	Keyed    []string `json:"keyed,omitempty"`

	// phase: senders start at StartNs (unix ns); the measured window is
	// [StartNs+WarmupNs, StartNs+WarmupNs+DurationNs). Order is an engine
	// phase's ordering ("": the setup's); Label, when set, names the
	// phase in profile file names instead of Phase.
	Phase      string `json:"phase,omitempty"`
	Order      string `json:"order,omitempty"`
	Label      string `json:"label,omitempty"`
	StartNs    int64  `json:"start_ns,omitempty"`
	WarmupNs   int64  `json:"warmup_ns,omitempty"`
	DurationNs int64  `json:"duration_ns,omitempty"`

	// timeline: as phase (an engine phase), reporting every IntervalNs
	// of the window (evInterval) instead of once a second, then
	// evTimelineDone.
	IntervalNs int64 `json:"interval_ns,omitempty"`

	// slow: the busy delay of each delivery from now on, in ns (0: none).
	// The child acts on it at once, even during a phase.
	DelayNs int64 `json:"delay_ns,omitempty"`
}

const (
	cmdSetup    = "setup"
	cmdJoin     = "join"
	cmdPhase    = "phase"
	cmdTimeline = "timeline"
	cmdSlow     = "slow"
	cmdExit     = "exit"
)

// childSetup is what one child needs to know about the run.
type childSetup struct {
	Index      int     `json:"index"`
	Members    int     `json:"members"`
	Sending    bool    `json:"sending"`
	Size       int     `json:"size"`
	Order      string  `json:"order"` // the baseline's packing; engine phases' default
	Safe       bool    `json:"safe,omitempty"`
	Rate       float64 `json:"rate"`
	CPUProfile string  `json:"cpuprofile,omitempty"`
	// KeyFile, when set, makes the child run a second, keyed engine
	// (sealing with the key in this file) in a group of its own, for
	// PhaseKeyed.
	KeyFile string `json:"key_file,omitempty"`

	// The engine's slow-member policy (engine.ParseSlowMemberPolicy;
	// "": the default), its bounds (0: the defaults) and Config.Rejoin.
	SlowMember   string  `json:"slow_member,omitempty"`
	EvictLag     float64 `json:"evict_lag,omitempty"`
	EvictAfterNs int64   `json:"evict_after_ns,omitempty"`
	Rejoin       bool    `json:"rejoin,omitempty"`
	// DelayMode is how a delivery delay (cmdSlow) is spent: DelaySleep or
	// DelayBusy ("": DelaySleep).
	DelayMode string `json:"delay_mode,omitempty"`
	// DisableGSO sets engine.Config.DisableGSO.
	DisableGSO bool `json:"disable_gso,omitempty"`
	// Groups is the number of groups the child joins (0: one), named
	// GroupNames(Groups); a sender sends to them in turn.
	Groups int `json:"groups,omitempty"`
	// Light: the groups are light groups over one carrier (Config.Light).
	Light bool `json:"light,omitempty"`
}

// event is a line from a child to the coordinator.
type event struct {
	Type string `json:"type"` // evHello, evReady, evProgress, evResult, evError

	// hello
	Engine   string `json:"engine,omitempty"`
	Baseline string `json:"baseline,omitempty"`
	Keyed    string `json:"keyed,omitempty"` // the keyed engine's, with a key file

	// progress: the delivered rate over the last second of the window.
	Phase    string  `json:"phase,omitempty"`
	Seq      int     `json:"seq,omitempty"`
	ElapsedS float64 `json:"elapsed_s,omitempty"`
	Rate     float64 `json:"rate,omitempty"`

	Result   *MemberResult `json:"result,omitempty"`
	Interval *Interval     `json:"interval,omitempty"`
	Err      string        `json:"err,omitempty"`
}

const (
	evHello    = "hello"
	evReady    = "ready"
	evJoined   = "joined" // the member installed its first view
	evProgress = "progress"
	evResult   = "result"
	evError    = "error"

	evInterval     = "interval"      // one interval of a timeline
	evTimelineDone = "timeline_done" // the timeline's last interval was sent
)
