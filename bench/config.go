// Package bench measures cohort's throughput and latency against a raw-UDP
// baseline. A coordinator (Run) starts one child process per group member,
// each running RunChild, and drives them over their standard input and
// output with JSON lines:
//
//	parent -> child   {"cmd":"setup",...}        child opens its engine and a raw socket
//	child -> parent   {"type":"hello",...}       with both addresses
//	parent -> child   {"cmd":"join",...}         the full member list
//	child -> parent   {"type":"ready"}           joined the group
//	parent -> child   {"cmd":"phase",...}        start time, warm-up and duration
//	child -> parent   {"type":"progress",...}    once a second
//	child -> parent   {"type":"result",...}      the phase's counters and histogram
//	parent -> child   {"cmd":"exit"}
//
// Each run measures two phases on the same processes: "baseline" (messages
// bundled into datagrams the way the engine bundles them, or fragmented as
// it fragments those larger than a datagram, and sent with sendmmsg, no
// protocol at all) and "engine" (Group.Send and the Deliver handler).
// Every member counts every message it delivers; a sample of them
// (every Kth of each sender, the same K in both phases: sampleEvery)
// carries its send time in its first 8 bytes, the others 0, and
// receivers record the sample's one-way latency. Each member also
// reports its process's CPU time over the window. With a key file
// (Config.KeyFile) each child also runs a keyed engine in a second
// group, and every engine phase is followed by a "keyed" one on that
// engine.
//
// For correctness tests rather than measurements, RunMember runs one
// member process (`vsbench member`) that logs every view, send and
// delivery (docs/LOGS.md); Lab starts such processes on loopback and
// follows their logs, and RunCrash (`vsbench crash`) kills or pauses one
// member of a loaded group and reports, from the logs, how long the
// survivors took to install a view without it.
package bench

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cohort-vs/cohort/seal"
)

// Phase names, in the order Run measures them. PhaseKeyed, measured only
// with Config.KeyFile, is the keyed engine (engine.Config.Keys): each
// child runs it beside the keyless one, in a group of its own.
const (
	PhaseBaseline = "baseline"
	PhaseEngine   = "engine"
	PhaseKeyed    = "keyed"
	// PhaseIdle, measured only with several groups (Config.Groups), is
	// the groups without traffic: the datagrams each process sends, its
	// heap and RSS.
	PhaseIdle = "idle"
)

// Phases lists the phases measured without a key file, in order.
var Phases = []string{PhaseBaseline, PhaseEngine}

// GroupName is the group every child joins.
const GroupName = "vsbench"

// GroupNames names the n groups a child joins (Config.Groups): GroupName
// alone for one, else GroupName-0 to GroupName-(n-1).
func GroupNames(n int) []string { return groupNames(GroupName, n) }

// groupNames is name for one group, else name-0 ... name-(n-1).
func groupNames(name string, n int) []string {
	if n <= 1 {
		return []string{name}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = name + "-" + strconv.Itoa(i)
	}
	return out
}

// MinSize is the smallest message: the send timestamp.
const MinSize = 8

// MaxSize is the largest message: the engine's default MaxMessageSize.
const MaxSize = 16 << 20

// Config describes one benchmark run.
type Config struct {
	Members int // group size (one process each)
	Senders int // members 0..Senders-1 send
	Size    int // message size in bytes, at least MinSize
	// Order is the ordering of the engine's messages: one of OrderNames,
	// or a comma-separated list of them, each measured in its own engine
	// phase on the same processes (RunOrders).
	Order    string
	Safe     bool          // or engine.Safe into the ordering
	Duration time.Duration // measured window of each phase
	Warmup   time.Duration // unmeasured lead-in of each phase
	Rate     float64       // messages/s offered per sender; 0 = unlimited
	// Procs is GOMAXPROCS for each member process; 0 means its share of
	// the machine, max(1, CPUs/Members). The members stand in for hosts:
	// on a machine with fewer cores than members, more Ps per process
	// than cores per process only adds idle spinning and wake-up delays
	// (on 2 cores with 3 members, 1 P each is faster and has a shorter
	// latency tail than 2).
	Procs int

	// CPUProfile, when set, makes every child write a CPU profile of each
	// phase's measured window to CPUProfile.<phase>.m<index>.
	CPUProfile string

	// KeyFile, when set, names a key file (seal.ReadKeyFile: 32 bytes in
	// base64): every engine phase is then measured twice on the same
	// processes, by the keyless engine and right after it by a keyed one
	// (PhaseKeyed) sealing with this key.
	KeyFile string

	// Groups is the number of groups every member process joins (0 or 1:
	// one, as before). With more, each sending member sends its messages
	// to the groups in turn (message k to group k mod Groups), so every
	// group carries an equal share of the traffic and Rate stays the
	// member's rate over all its groups; throughput counts deliveries in
	// every group. Before the baseline, an idle phase (PhaseIdle) of Idle
	// measures, with no traffic, the datagrams each process sends and
	// its heap and RSS (Report.Groups).
	Groups int
	// Light makes the Groups light groups (package light) carried by one
	// engine group that every member process joins: one stream, one
	// window and one failure detector for all of them.
	Light bool
	// Idle is the idle phase's measured window, after idleSettle (Groups
	// above 1 only); 0 leaves the phase out.
	Idle time.Duration
}

// MaxGroups bounds Config.Groups: 10,000 groups of 3 members take one to
// two minutes to join on 2 cores, and their idle costs are what the idle
// phase measures; beyond, joining alone dominates a run.
const MaxGroups = 10_000

// DefaultConfig is what vsbench runs with no flags.
func DefaultConfig() Config {
	return Config{
		Members:  3,
		Senders:  1,
		Size:     64,
		Order:    "fifo",
		Duration: 5 * time.Second,
		Warmup:   300 * time.Millisecond,
		Groups:   1,
		Idle:     2 * time.Second,
	}
}

// GroupCount is the number of groups each member joins: Groups, at
// least 1.
func (c *Config) GroupCount() int { return max(1, c.Groups) }

// MemberProcs is the GOMAXPROCS each member process runs with.
func (c *Config) MemberProcs() int {
	if c.Procs > 0 {
		return c.Procs
	}
	return max(1, runtime.NumCPU()/c.Members)
}

// ParseSenders reads the --senders flag: "all" or a count of members.
func ParseSenders(s string, members int) (int, error) {
	if strings.EqualFold(s, "all") {
		return members, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("senders %q: want \"all\" or a number of members (1..%d)", s, members)
	}
	return n, nil
}

// Validate reports a setting that cannot run, saying what to fix.
func (c *Config) Validate() error {
	switch {
	case c.Members < 2 || c.Members > 64:
		return fmt.Errorf("members is %d; use 2 to 64", c.Members)
	case c.Senders < 1 || c.Senders > c.Members:
		return fmt.Errorf("senders is %d; use 1 to members (%d) or all", c.Senders, c.Members)
	case c.Size < MinSize:
		return fmt.Errorf("size is %d; the smallest message is %d bytes (its send timestamp)", c.Size, MinSize)
	case c.Size > MaxSize:
		return fmt.Errorf("size is %d; use at most %d (16 MiB, the engine's default MaxMessageSize)", c.Size, MaxSize)
	case c.Duration < 100*time.Millisecond:
		return fmt.Errorf("duration is %v; use at least 100ms", c.Duration)
	case c.Warmup < 0:
		return errors.New("warm-up is negative")
	case c.Procs < 0:
		return fmt.Errorf("procs is %d; use 0 (each member's share of the CPUs) or a positive number", c.Procs)
	case c.Rate < 0:
		return fmt.Errorf("rate is %v; use 0 (unlimited) or a positive rate", c.Rate)
	case c.Groups < 0 || c.Groups > MaxGroups:
		return fmt.Errorf("groups is %d; use 1 to %d", c.Groups, MaxGroups)
	case c.Idle < 0:
		return fmt.Errorf("idle is %v; use 0 (no idle phase) or more", c.Idle)
	case c.GroupCount() > 1 && c.KeyFile != "":
		return errors.New("groups and a key file together: the keyed engine runs one group; measure it without --groups")
	}
	if _, err := c.Orders(); err != nil {
		return err
	}
	if c.KeyFile != "" {
		if _, err := seal.ReadKeyFile(c.KeyFile); err != nil {
			return fmt.Errorf("key file: %w", err)
		}
	}
	return nil
}

// Orders returns the orderings Order lists, in order.
func (c *Config) Orders() ([]string, error) { return ParseOrders(c.Order) }
