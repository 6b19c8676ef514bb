package bench

// The coordinator and its children exchange one JSON object per line.

// command is a line from the coordinator to a child.
type command struct {
	Cmd string `json:"cmd"` // cmdSetup, cmdJoin, cmdPhase, cmdExit

	// setup
	Setup *childSetup `json:"setup,omitempty"`

	// join: the members' engine and baseline addresses, by index.
	Members  []string `json:"members,omitempty"`
	Baseline []string `json:"baseline,omitempty"`

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
}

const (
	cmdSetup = "setup"
	cmdJoin  = "join"
	cmdPhase = "phase"
	cmdExit  = "exit"
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
}

// event is a line from a child to the coordinator.
type event struct {
	Type string `json:"type"` // evHello, evReady, evProgress, evResult, evError

	// hello
	Engine   string `json:"engine,omitempty"`
	Baseline string `json:"baseline,omitempty"`

	// progress: the delivered rate over the last second of the window.
	Phase    string  `json:"phase,omitempty"`
	Seq      int     `json:"seq,omitempty"`
	ElapsedS float64 `json:"elapsed_s,omitempty"`
	Rate     float64 `json:"rate,omitempty"`

	Result *MemberResult `json:"result,omitempty"`
	Err    string        `json:"err,omitempty"`
}

const (
	evHello    = "hello"
	evReady    = "ready"
	evJoined   = "joined" // the member installed its first view
	evProgress = "progress"
	evResult   = "result"
	evError    = "error"
)
