// Package perturb runs `vsbench perturb`, the slow-member study: a group
// of member processes under load, one of which is slowed in steps while
// the others run, once per slow-member policy of the engine (block:
// flow control waits for the slowest member; evict: a member that lags
// too far for too long is removed). It reports the healthy members'
// throughput and latency over time, checks the study's targets, and
// writes CSV, JSON and PNG charts.
//
// A member can be slowed four ways (Method):
//
//   - delay: every delivery at the slowed member takes a delay, set live
//     by the coordinator; by default slept off (DelaySleep), so that the
//     slowed member does not take CPU from the healthy ones;
//   - stop: the slowed member's process is stopped (SIGSTOP) and
//     continued (SIGCONT) every period, stopped for the share of the
//     period its level leaves out;
//   - cpu: the slowed member's process runs in a cgroup whose CPU quota
//     is its level's share (cgroup v2 cpu.max or v1 cpu.cfs_quota_us);
//   - loss: a share of the UDP packets sent to the slowed member's
//     engine port on loopback is dropped (netlab's BPF filter, or
//     nftables); it needs root.
//
// A level is a share of the slowed member's capacity, and it is
// calibrated, not computed: before the study a group of two (the sender
// and the member to be slowed, as the only receiver) measures the slowed
// member's unperturbed rate and then, for every level, searches the
// perturbation's setting (delay, duty cycle, quota) at which the slowed
// member alone takes that share of it. Those rates ("what the slow
// member alone can take") are also the block policy's yardstick.
//
// The slowed member runs at a higher CPU priority (nice -10 by default,
// Config.SlowNice), in the calibration and the study alike: it stands
// for a member on a host of its own, and on a machine with fewer cores
// than members it would otherwise share its cores, in the bursts in
// which it runs, with the healthy members (which the calibration's two
// processes would not show).
package perturb

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cohort-vs/cohort/bench"
)

// Command is the vsbench subcommand that runs the study.
const Command = "perturb"

// Methods of slowing a member.
const (
	MethodDelay = "delay"
	MethodStop  = "stop"
	MethodCPU   = "cpu"
	MethodLoss  = "loss"
)

// Methods lists the methods.
var Methods = []string{MethodDelay, MethodStop, MethodCPU, MethodLoss}

// Policies, as engine.ParseSlowMemberPolicy reads them.
const (
	PolicyBlock = "block"
	PolicyEvict = "evict"
)

// Config describes one study.
type Config struct {
	Members int     // group size, one process each
	Senders int     // members 0..Senders-1 send
	Slow    int     // the slowed member's index; it must not send
	Size    int     // message size, bytes
	Order   string  // one of bench.OrderNames
	Rate    float64 // messages/s offered per sender; 0: as fast as flow control allows
	Procs   int     // GOMAXPROCS of each member process; 0: its share

	Method   string   // one of Methods
	Policies []string // PolicyBlock and/or PolicyEvict, each run in turn
	// Levels are the steps' shares of the slowed member's capacity, in
	// order (1: unperturbed), each held for Hold.
	Levels   []float64
	Hold     time.Duration
	Interval time.Duration // reporting interval
	Warmup   time.Duration // unperturbed, unreported lead-in
	// Period is the cycle of the stop method (stopped for 1-level of it)
	// and the CFS period of the cpu method.
	Period    time.Duration
	DelayMode string // bench.DelaySleep or bench.DelayBusy
	// SlowNice is the slowed member's nice value, in the calibration and
	// the study alike (0: left as it is); see prioritize.
	SlowNice int

	// The engine's eviction bounds (0: its defaults), and whether an
	// evicted member rejoins at once as a new incarnation.
	EvictLag   float64
	EvictAfter time.Duration
	Rejoin     bool

	// Calibration: each measurement's length, and the most measurements
	// per level in the search for its setting.
	CalibrateFor    time.Duration
	CalibrateRounds int

	// Target is the level whose step the study's targets are checked on
	// (0.1: slowed to 10% of its capacity).
	Target float64
	Out    string // directory for the files
}

// The flags' defaults.
var defaultFlags = map[string]string{
	"members":     "4",
	"senders":     "1",
	"slow":        "last",
	"size":        "64",
	"order":       "fifo",
	"rate":        "0",
	"procs":       "0",
	"method":      MethodDelay,
	"policy":      "both",
	"steps":       "100,50,25,10",
	"hold":        "5s",
	"interval":    "250ms",
	"warmup":      "1s",
	"period":      "100ms",
	"delay-mode":  bench.DelaySleep,
	"slow-nice":   "-10",
	"evict-lag":   "0",
	"evict-after": "0s",
	"rejoin":      "false",
	"calibrate":   "2s",
	"rounds":      "3",
	"target":      "10",
	"out":         "perturb-out",
}

// ErrUsage marks a ParseArgs error that the flag package has already
// written to output, with the usage.
var ErrUsage = errors.New("bad flags")

// ParseArgs reads vsbench perturb's flags (without the subcommand's
// name) into a validated Config. Usage and the flag package's errors
// (wrapping ErrUsage) go to output; the other errors say what to fix. It
// returns flag.ErrHelp for -h or --help.
func ParseArgs(args []string, output io.Writer) (Config, error) {
	fs := flag.NewFlagSet("vsbench perturb", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: vsbench perturb [flags]

The slow-member study: a group of member processes under load, one
member slowed in steps (--steps, shares of its capacity, each held for
--hold) while the others run, once per policy. It reports the healthy
members' throughput and latency every --interval, checks the targets
(PASS/FAIL lines) and writes perturb_<method>.csv and .json and PNG
charts into --out. Levels are calibrated first, with the slowed member as the
only receiver. Exit status 1 when a target fails or the run does.

`)
		fs.PrintDefaults()
	}
	v := map[string]*string{}
	for _, f := range []struct{ name, usage string }{
		{"members", "group size: one process per member"},
		{"senders", "sending members (0..senders-1); the slowed member must not be one"},
		{"slow", `the slowed member's index, or "last"`},
		{"size", "message size in bytes"},
		{"order", "ordering: unordered, fifo, causal or total"},
		{"rate", "messages/s offered per sender (0: as fast as flow control allows)"},
		{"procs", "GOMAXPROCS of each member process (0: max(1, CPUs/members))"},
		{"method", "how the member is slowed: delay (per delivery), stop (SIGSTOP/SIGCONT), cpu (cgroup quota) or loss"},
		{"policy", "the engine's slow-member policy: block, evict or both (run in turn)"},
		{"steps", "the steps' levels, in percent of the slowed member's capacity (100: unperturbed)"},
		{"hold", "how long each step is held"},
		{"interval", "reporting interval (divides --hold)"},
		{"warmup", "unperturbed lead-in before the first step, not reported"},
		{"period", "stop: the stop/continue cycle; cpu: the CFS period (at most 1s)"},
		{"delay-mode", "delay: sleep (owed delay slept off; takes no CPU) or busy (spin in every delivery)"},
		{"slow-nice", "the slowed member's nice value, -20 to 19 (0: unchanged): a higher priority keeps the CPU in its bursts as a host of its own would; below 0 needs root or CAP_SYS_NICE"},
		{"evict-lag", "evict: lag bound, share of the flow-control window (0: the engine's default, 0.5)"},
		{"evict-after", "evict: how long a member may lag beyond the bound (0: the engine's default, 1s)"},
		{"rejoin", "an evicted member rejoins at once as a new incarnation (engine Config.Rejoin)"},
		{"calibrate", "length of each calibration measurement"},
		{"rounds", "most calibration measurements per level"},
		{"target", "the level, in percent, whose step the targets are checked on"},
		{"out", "directory for the CSV, JSON and charts"},
	} {
		v[f.name] = fs.String(f.name, defaultFlags[f.name], f.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return configFromFlags(v)
}

func configFromFlags(v map[string]*string) (Config, error) {
	var c Config
	var err error
	ints := []struct {
		name string
		to   *int
	}{{"members", &c.Members}, {"senders", &c.Senders}, {"size", &c.Size}, {"procs", &c.Procs}, {"rounds", &c.CalibrateRounds},
		{"slow-nice", &c.SlowNice}}
	for _, f := range ints {
		if *f.to, err = strconv.Atoi(*v[f.name]); err != nil {
			return c, fmt.Errorf("--%s %q: want a whole number", f.name, *v[f.name])
		}
	}
	if s := *v["slow"]; s == "last" {
		c.Slow = c.Members - 1
	} else if c.Slow, err = strconv.Atoi(s); err != nil {
		return c, fmt.Errorf("--slow %q: want a member's index or \"last\"", s)
	}
	durations := []struct {
		name string
		to   *time.Duration
	}{{"hold", &c.Hold}, {"interval", &c.Interval}, {"warmup", &c.Warmup}, {"period", &c.Period},
		{"evict-after", &c.EvictAfter}, {"calibrate", &c.CalibrateFor}}
	for _, f := range durations {
		if *f.to, err = time.ParseDuration(*v[f.name]); err != nil {
			return c, fmt.Errorf("--%s %q: want a duration such as 5s or 250ms", f.name, *v[f.name])
		}
	}
	if c.Rate, err = strconv.ParseFloat(*v["rate"], 64); err != nil {
		return c, fmt.Errorf("--rate %q: want messages/s (0: unlimited)", *v["rate"])
	}
	if c.EvictLag, err = strconv.ParseFloat(*v["evict-lag"], 64); err != nil {
		return c, fmt.Errorf("--evict-lag %q: want a share of the window such as 0.5 (0: the engine's default)", *v["evict-lag"])
	}
	if c.Rejoin, err = strconv.ParseBool(*v["rejoin"]); err != nil {
		return c, fmt.Errorf("--rejoin %q: want true or false", *v["rejoin"])
	}
	if c.Levels, err = ParseSteps(*v["steps"]); err != nil {
		return c, err
	}
	target, err := parsePercent("target", *v["target"])
	if err != nil {
		return c, err
	}
	c.Target = target
	if c.Policies, err = ParsePolicies(*v["policy"]); err != nil {
		return c, err
	}
	c.Order, c.Method, c.DelayMode, c.Out = *v["order"], *v["method"], *v["delay-mode"], *v["out"]
	return c, c.Validate()
}

// ParseSteps reads --steps: levels in percent of capacity, in order,
// each above 0 and at most 100 ("100,50,25,10").
func ParseSteps(s string) ([]float64, error) {
	var levels []float64
	for _, x := range strings.Split(s, ",") {
		l, err := parsePercent("steps", strings.TrimSpace(x))
		if err != nil {
			return nil, err
		}
		levels = append(levels, l)
	}
	return levels, nil
}

func parsePercent(flagName, x string) (float64, error) {
	p, err := strconv.ParseFloat(strings.TrimSuffix(x, "%"), 64)
	if err != nil || !(p > 0 && p <= 100) {
		return 0, fmt.Errorf("--%s %q: want a percentage of capacity above 0 and at most 100", flagName, x)
	}
	return p / 100, nil
}

// ParsePolicies reads --policy: block, evict or both.
func ParsePolicies(s string) ([]string, error) {
	switch s {
	case PolicyBlock, PolicyEvict:
		return []string{s}, nil
	case "both":
		return []string{PolicyBlock, PolicyEvict}, nil
	}
	return nil, fmt.Errorf("--policy %q: use block, evict or both", s)
}

// Validate reports a study that cannot run, saying what to fix.
func (c *Config) Validate() error {
	bc := c.benchConfig(c.Members)
	if err := bc.Validate(); err != nil {
		return err
	}
	if _, err := bench.ParseOrder(c.Order, false); err != nil {
		return err
	}
	switch {
	case c.Members < 3:
		return fmt.Errorf("members is %d; use at least 3 (a sender, the slowed member and a healthy one)", c.Members)
	case c.Senders >= c.Members:
		return fmt.Errorf("senders is %d; use 1 to members-1 (%d): the slowed member must not send", c.Senders, c.Members-1)
	case c.Slow < c.Senders || c.Slow >= c.Members:
		return fmt.Errorf("slow is %d; use a member that does not send: %d to %d", c.Slow, c.Senders, c.Members-1)
	case !slices.Contains(Methods, c.Method):
		return fmt.Errorf("method %q: use one of %s", c.Method, strings.Join(Methods, ", "))
	case !slices.Contains(bench.DelayModes, c.DelayMode):
		return fmt.Errorf("delay-mode %q: use %s", c.DelayMode, strings.Join(bench.DelayModes, " or "))
	case len(c.Policies) == 0:
		return errors.New("no policy; use block, evict or both")
	case len(c.Levels) == 0:
		return errors.New("no steps; list levels in percent, e.g. 100,50,25,10")
	case c.Interval < 50*time.Millisecond:
		return fmt.Errorf("interval is %v; use at least 50ms", c.Interval)
	case c.Hold < c.Interval || c.Hold%c.Interval != 0:
		return fmt.Errorf("hold %v is not a whole number of intervals (%v); make it one", c.Hold, c.Interval)
	case c.Warmup < 0:
		return errors.New("warmup is negative")
	case c.Period < 10*time.Millisecond || c.Period > time.Second:
		return fmt.Errorf("period is %v; use 10ms to 1s (a stop must stay well below the engine's 300ms suspicion timeout)", c.Period)
	case c.EvictLag < 0 || c.EvictLag > 1:
		return fmt.Errorf("evict-lag is %v; use a share of the window above 0 and at most 1, or 0 for the engine's default", c.EvictLag)
	case c.EvictAfter < 0:
		return errors.New("evict-after is negative")
	case c.CalibrateFor < 4*c.Interval:
		return fmt.Errorf("calibrate is %v; use at least 4 intervals (%v)", c.CalibrateFor, 4*c.Interval)
	case c.SlowNice < -20 || c.SlowNice > 19:
		return fmt.Errorf("slow-nice is %d; use a nice value from -20 to 19 (0 leaves the member as it is)", c.SlowNice)
	case c.CalibrateRounds < 1 || c.CalibrateRounds > 10:
		return fmt.Errorf("rounds is %d; use 1 to 10", c.CalibrateRounds)
	case c.Out == "":
		return errors.New("out is empty; name a directory")
	}
	if c.Method == MethodStop {
		for _, l := range c.Levels {
			if stop := time.Duration((1 - l) * float64(c.Period)); stop > 200*time.Millisecond {
				return fmt.Errorf("a %g%% step stops the member for %v of each %v period: beyond 200ms the engine suspects it (300ms); use a shorter --period", 100*l, stop, c.Period)
			}
		}
	}
	if !slices.Contains(c.Levels, c.Target) {
		return fmt.Errorf("target %g%% is not one of the steps; add it to --steps or change --target", 100*c.Target)
	}
	return nil
}

// benchConfig is a session's bench settings with members members.
func (c *Config) benchConfig(members int) bench.Config {
	bc := bench.DefaultConfig()
	bc.Members, bc.Senders, bc.Size, bc.Order, bc.Rate = members, c.Senders, c.Size, c.Order, c.Rate
	bc.Procs = c.Procs
	if bc.Procs == 0 && members > 0 {
		// Calibration runs 2 processes but must measure the slowed
		// member as the study runs it: with the study's share.
		full := bc
		full.Members = c.Members
		bc.Procs = full.MemberProcs()
	}
	return bc
}

// Step is one step of the perturbation.
type Step struct {
	Level float64       `json:"level"`    // share of the slowed member's capacity
	Start time.Duration `json:"start_ns"` // from the start of the reported window
	End   time.Duration `json:"end_ns"`
}

// Schedule lays the steps out in time, each held for hold, from 0.
func Schedule(levels []float64, hold time.Duration) []Step {
	steps := make([]Step, len(levels))
	for i, l := range levels {
		steps[i] = Step{Level: l, Start: time.Duration(i) * hold, End: time.Duration(i+1) * hold}
	}
	return steps
}

// StepAt is the index of the step holding time t (from the window's
// start), or -1 when t is outside every step.
func StepAt(steps []Step, t time.Duration) int {
	for i, s := range steps {
		if t >= s.Start && t < s.End {
			return i
		}
	}
	return -1
}

// levelLabel names a level: "10%".
func levelLabel(l float64) string {
	return strconv.FormatFloat(100*l, 'g', 4, 64) + "%"
}
