package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cohort-vs/cohort/internal/check"
)

// CrashCommand is the subcommand that measures crash detection
// (RunCrash).
const CrashCommand = "crash"

// CrashConfig describes one fault-injection run: Members member processes
// on loopback under load, one of which (the victim) is killed with
// SIGKILL, or, when Pause is set, stopped with SIGSTOP for Pause and then
// continued. The members' logs are checked afterwards.
type CrashConfig struct {
	Members int
	// Victim is the victim's rank in the full view: 0 is the coordinator
	// (the oldest member), or VictimCoordinator.
	Victim int
	Rate   float64 // messages/s per member; 0: as fast as flow control allows
	Order  string  // one of OrderNames
	Safe   bool    // members send safe messages
	Size   int
	Warmup time.Duration // load before the fault
	// After is how long the load goes on after the new view (kill) or
	// after the victim is continued (pause).
	After time.Duration
	Pause time.Duration // 0: kill -9; otherwise SIGSTOP for this long
	// Timeout bounds each wait: for the full view, the view after the
	// kill, the members' exits.
	Timeout time.Duration
	Dir     string // for the logs; "": a temporary directory, removed at the end
	// Procs is each member's GOMAXPROCS; 0: max(1, CPUs/Members).
	Procs int
	// Groups is the number of groups every member process joins (0 or
	// 1: one, as above). With more (vsbench member --groups), the
	// members start one after another, each once the ones before it are
	// in every group (as vsbench --groups joins them): the first founds
	// every group, so a member's rank is the same in each, and Timeout
	// bounds each member's joins. Rate stays each member's total, split
	// evenly over the groups that Load names. Victim names a process: its rank in group
	// 0 (or the coordinator of group 0's current view). The result's
	// Groups gives the time from the kill to the new view over every
	// group at every survivor, read from the members' views logs
	// (MemberConfig.ViewsLog); the checker reads the logs of Sample
	// groups, spread evenly, the first and the last among them. The
	// members run with --rejoin, so that a membership removed by mistake
	// while thousands of groups join comes back (the result counts
	// them), and with Timeout as their --leave-timeout. A pause is not
	// supported with several groups.
	Groups int
	// Sample is the number of groups whose logs are checked (Groups
	// above 1); 0: DefaultCrashSample.
	Sample int
	// Load says which groups carry Rate (Groups above 1): LoadAll ("" too),
	// every group, each member's rate split evenly over its N groups; or
	// LoadSample, only the groups of the sample, the others idle.
	Load string
	// Light makes the groups light groups over one carrier group
	// (MemberConfig.Light).
	Light bool
}

// The groups that carry the load in a run over many groups
// (CrashConfig.Load).
const (
	LoadAll    = "all"
	LoadSample = "sample"
)

// sample is Sample or its default.
func (c *CrashConfig) sample() int {
	if c.Sample > 0 {
		return c.Sample
	}
	return DefaultCrashSample
}

// VictimCoordinator as CrashConfig.Victim picks the coordinator of the
// view current at the fault (rank 0, the oldest member, which also
// sequences total-order messages), read from the members' logs just
// before the fault rather than from the full view.
const VictimCoordinator = -1

// ParseVictim reads the --victim flag: "coordinator" (VictimCoordinator)
// or a rank in the full view.
func ParseVictim(s string) (int, error) {
	if s == "coordinator" {
		return VictimCoordinator, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("victim %q: want a rank in the full view (0: the coordinator) or \"coordinator\" (the coordinator at the time of the fault)", s)
	}
	return n, nil
}

// DefaultCrashConfig is what `vsbench crash` runs with no flags.
func DefaultCrashConfig() CrashConfig {
	return CrashConfig{
		Members: 5,
		Victim:  1,
		Rate:    2000,
		Order:   "fifo",
		Size:    64,
		Warmup:  time.Second,
		After:   500 * time.Millisecond,
		Timeout: 10 * time.Second,
	}
}

// Validate reports a setting that cannot run.
func (c *CrashConfig) Validate() error {
	switch {
	case c.Members < 2 || c.Members > 64:
		return fmt.Errorf("members is %d; use 2 to 64", c.Members)
	case c.Victim != VictimCoordinator && (c.Victim < 0 || c.Victim >= c.Members):
		return fmt.Errorf("victim rank is %d; use 0 (the coordinator) to %d, or coordinator", c.Victim, c.Members-1)
	case c.Rate < 0:
		return fmt.Errorf("rate is %v", c.Rate)
	case c.Warmup < 0 || c.After < 0 || c.Pause < 0:
		return errors.New("negative duration")
	case c.Timeout <= 0:
		return fmt.Errorf("timeout is %v", c.Timeout)
	case c.Groups < 0 || c.Groups > MaxGroups:
		return fmt.Errorf("groups is %d; use 1 to %d", c.Groups, MaxGroups)
	case c.Sample < 0:
		return fmt.Errorf("sample is %d; use 1 or more (0: %d)", c.Sample, DefaultCrashSample)
	case c.Load != "" && c.Load != LoadAll && c.Load != LoadSample:
		return fmt.Errorf("load %q: want %s or %s", c.Load, LoadAll, LoadSample)
	case c.Groups > 1 && c.Pause > 0:
		return errors.New("a pause with several groups is not supported: kill only")
	case c.Groups > 1 && c.Rate == 0:
		return errors.New("with several groups, give a rate (each member's total, split evenly over its groups): thousands of unpaced senders would measure the overload, not the view change")
	}
	_, err := ParseOrder(c.Order, c.Safe)
	return err
}

// Detection is one survivor's view of a kill.
type Detection struct {
	Member string        `json:"member"` // the survivor's ID
	View   uint64        `json:"view"`   // its first view without the victim
	After  time.Duration `json:"after_ns"`
	// FirstDelivery is the time from the kill to the survivor's first
	// delivery in that view (0: none logged): with total order and the
	// coordinator killed, when ordered delivery resumed.
	FirstDelivery time.Duration `json:"first_delivery_ns,omitempty"`
}

// CrashResult is what a run found in the members' logs.
type CrashResult struct {
	Mode    string    `json:"mode"` // "kill" or "pause"
	Order   string    `json:"order"`
	Victim  string    `json:"victim"`
	Rank    int       `json:"victim_rank"`
	Members []string  `json:"members"` // the view before the fault
	FaultAt time.Time `json:"fault_at"`
	// Kill: each survivor's first view without the victim, in the order
	// of Members.
	Detections []Detection `json:"detections,omitempty"`
	// Pause: the views any member logged between the stop and the end of
	// the load; none when the pause went unsuspected.
	ViewsAfterPause []string `json:"views_after_pause,omitempty"`
	// Exits lists members that exited with a status other than 0 (the
	// victim of a kill excepted).
	Exits      []string          `json:"bad_exits,omitempty"`
	Sends      int               `json:"sends"`
	Deliveries int               `json:"deliveries"`
	Violations []check.Violation `json:"violations,omitempty"`
	Dir        string            `json:"log_dir,omitempty"` // kept logs
	// Groups: with several groups (CrashConfig.Groups), the kill over
	// all of them; Detections is then empty, and Sends, Deliveries and
	// Violations are those of the sample of groups checked.
	Groups *GroupsCrash `json:"groups,omitempty"`
}

// MaxDetection is the longest kill-to-view time over the survivors (over
// every group installed, with several groups).
func (r *CrashResult) MaxDetection() time.Duration {
	if r.Groups != nil {
		return r.Groups.Max
	}
	var d time.Duration
	for _, x := range r.Detections {
		d = max(d, x.After)
	}
	return d
}

// silent counts the survivors that logged no delivery in their new view.
func (r *CrashResult) silent() int {
	n := 0
	for _, x := range r.Detections {
		if x.FirstDelivery == 0 {
			n++
		}
	}
	return n
}

// MaxFirstDelivery is the longest time from the kill to a survivor's
// first delivery in its new view (0 if a survivor logged none).
func (r *CrashResult) MaxFirstDelivery() time.Duration {
	var d time.Duration
	for _, x := range r.Detections {
		if x.FirstDelivery == 0 {
			return 0
		}
		d = max(d, x.FirstDelivery)
	}
	return d
}

// OK reports whether the run found nothing wrong: no violation, no bad
// exit, every survivor saw the kill (in every group), and no view
// changed after a pause.
func (r *CrashResult) OK() bool {
	if r.Groups != nil {
		return len(r.Violations) == 0 && len(r.Exits) == 0 && r.Groups.Absent == 0 && r.Groups.RejoinsAfter == 0 &&
			r.Groups.Installed == r.Groups.Groups
	}
	return len(r.Violations) == 0 && len(r.Exits) == 0 && len(r.ViewsAfterPause) == 0 &&
		(r.Mode != "kill" || len(r.Detections) == len(r.Members)-1)
}

// Summary is the result in one line.
func (r *CrashResult) Summary() string {
	var b strings.Builder
	who := fmt.Sprintf("rank %d", r.Rank)
	if r.Rank == 0 {
		who += ", the coordinator"
	}
	switch {
	case r.Groups != nil:
		fmt.Fprintf(&b, "%s: kill -9 of %s in group 0 (%s)", r.Order, who, addrOf(r.Victim))
		r.Groups.summary(&b)
	case r.Mode == "kill":
		fmt.Fprintf(&b, "%s: kill -9 of %s (%s): kill→view", r.Order, who, r.Victim)
		for _, d := range r.Detections {
			fmt.Fprintf(&b, " %s", ms(d.After))
		}
		fmt.Fprintf(&b, " (max %s)", ms(r.MaxDetection()))
		if d := r.MaxFirstDelivery(); d > 0 {
			fmt.Fprintf(&b, ", kill→first delivery in it max %s", ms(d))
		} else if n := r.silent(); n > 0 {
			fmt.Fprintf(&b, "; %d survivors delivered nothing in it", n)
		}
	case r.Mode == "pause":
		fmt.Fprintf(&b, "%s: SIGSTOP of %s (%s): %d view changes after it", r.Order, who, r.Victim, len(r.ViewsAfterPause))
	}
	if r.Groups != nil {
		fmt.Fprintf(&b, "; the logs of %d groups (%s to %s) checked:", len(r.Groups.Sample), r.Groups.Sample[0], r.Groups.Sample[len(r.Groups.Sample)-1])
	} else {
		b.WriteString(";")
	}
	fmt.Fprintf(&b, " %d sends, %d deliveries, %d violations", r.Sends, r.Deliveries, len(r.Violations))
	if len(r.Exits) > 0 {
		fmt.Fprintf(&b, "; bad exits: %s", strings.Join(r.Exits, ", "))
	}
	if r.Groups != nil {
		fmt.Fprintf(&b, "; reading the views logs took %v, checking the sample %v", r.Groups.ReadViews.Round(time.Millisecond), r.Groups.Check.Round(time.Millisecond))
	}
	return b.String()
}

// RunCrash runs one fault-injection run (see CrashConfig); program runs
// `vsbench member` as Lab.Program does. An error means the run could not
// be carried out (a member did not start or join, a view did not come in
// time); what it found is in the result.
func RunCrash(ctx context.Context, cfg CrashConfig, program ChildSpec, stderr io.Writer) (*CrashResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "vsbench-crash-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if cfg.Groups > 1 {
		return runCrashGroups(ctx, cfg, program, stderr, dir)
	}
	lab := NewLab(ctx, program, dir)
	lab.Stderr, lab.Expected, lab.Procs = stderr, cfg.Members, cfg.Procs
	defer lab.Close()

	addrs, err := FreeAddrs(cfg.Members)
	if err != nil {
		return nil, err
	}
	// A member that outlives this run (its parent killed) still exits.
	safety := 2*(cfg.Warmup+cfg.After+cfg.Pause) + 6*cfg.Timeout
	flags := []string{
		"--rate", strconv.FormatFloat(cfg.Rate, 'g', -1, 64), "--order", cfg.Order,
		"--size", strconv.Itoa(cfg.Size), "--duration", safety.String(),
	}
	if cfg.Safe {
		flags = append(flags, "--safe")
	}
	var members []*LabMember
	for i, a := range addrs {
		m, err := lab.Start(fmt.Sprintf("m%d", i), a, addrs, flags...)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	if err := lab.WaitUntil(cfg.Timeout, "the full view", members, func(_ *LabMember, vs []check.LogEvent) bool {
		return len(vs) > 0 && len(vs[len(vs)-1].Members) == cfg.Members
	}); err != nil {
		return nil, err
	}
	full, _, err := members[0].LastView()
	if err != nil {
		return nil, err
	}
	res := &CrashResult{Mode: "kill", Order: orderLabel(cfg.Order, cfg.Safe), Members: full.Members, Rank: cfg.Victim}
	if cfg.Dir != "" {
		res.Dir = cfg.Dir
	}
	sleepFor(ctx, cfg.Warmup)
	if cfg.Victim == VictimCoordinator {
		// The coordinator now: rank 0 of the latest view any member logged.
		var cur check.LogEvent
		for _, m := range members {
			v, ok, err := m.LastView()
			if err != nil {
				return nil, err
			}
			if ok && v.View > cur.View {
				cur = v
			}
		}
		res.Members, res.Rank = cur.Members, 0
	}
	res.Victim = res.Members[res.Rank]
	var victim *LabMember
	var others []*LabMember
	for _, m := range members {
		if m.Self() == res.Victim {
			victim = m
		} else {
			others = append(others, m)
		}
	}
	if victim == nil {
		return nil, fmt.Errorf("no member logged itself as %s", res.Victim)
	}

	var killed []string
	if cfg.Pause > 0 {
		res.Mode = "pause"
		if res.FaultAt, err = victim.Pause(cfg.Pause); err != nil {
			return nil, err
		}
		sleepFor(ctx, cfg.After)
	} else {
		if res.FaultAt, err = victim.Kill(); err != nil {
			return nil, err
		}
		killed = append(killed, victim.Log)
		err := lab.WaitUntil(cfg.Timeout, "a view without the victim", others, func(_ *LabMember, vs []check.LogEvent) bool {
			_, ok := FirstViewWithout(vs, res.Victim, res.FaultAt)
			return ok
		})
		if err != nil {
			return nil, err
		}
		sleepFor(ctx, cfg.After)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	endAt := time.Now()
	running := others
	if cfg.Pause > 0 {
		running = members
	}
	for _, m := range running {
		m.Signal(syscall.SIGTERM)
	}
	for _, m := range running {
		code, err := m.Wait(DefaultMemberConfig().LeaveTimeout + cfg.Timeout)
		if err != nil {
			return nil, err
		}
		if code != ExitOK {
			res.Exits = append(res.Exits, fmt.Sprintf("%s exited %d", m.Self(), code))
		}
	}

	// Read the logs.
	var paths []string
	for _, m := range members {
		paths = append(paths, m.Log)
	}
	logs, err := check.LoadLogs(check.LogOptions{Stopped: true, Killed: killed}, paths...)
	if err != nil {
		return nil, err
	}
	res.Violations = append(logs.History().Check(20), logs.CheckStates(20)...)
	for _, in := range logs.Incarnations {
		res.Sends += in.Sends
		res.Deliveries += in.Deliveries
	}
	for _, id := range res.Members {
		in := logs.Incarnation(id)
		if in == nil || id == res.Victim {
			continue
		}
		if res.Mode == "kill" {
			if v, ok := FirstViewWithout(in.Views, res.Victim, res.FaultAt); ok {
				d := Detection{Member: id, View: v.View, After: time.Duration(v.T - res.FaultAt.UnixNano())}
				if t, ok, err := firstDelivery(in.File, v); err != nil {
					return nil, err
				} else if ok {
					d.FirstDelivery = time.Duration(t - res.FaultAt.UnixNano())
				}
				res.Detections = append(res.Detections, d)
			}
		}
	}
	if res.Mode == "pause" {
		for _, in := range logs.Incarnations {
			for _, v := range in.Views {
				if v.T >= res.FaultAt.UnixNano() && v.T < endAt.UnixNano() {
					res.ViewsAfterPause = append(res.ViewsAfterPause, fmt.Sprintf("%s: view %d %v (failed %v)", in.Name, v.View, v.Members, v.Failed))
				}
			}
		}
		sort.Strings(res.ViewsAfterPause)
	}
	return res, nil
}

// errFound stops a log scan.
var errFound = errors.New("found")

// firstDelivery returns the time of the first delivery a log holds in
// the view v (a view event of that log), at or after v.
func firstDelivery(path string, v check.LogEvent) (int64, bool, error) {
	var t int64
	err := check.ScanLog(path, func(ev *check.LogEvent) error {
		if ev.Ev == check.EvDeliver && ev.View == v.View && ev.T >= v.T {
			t = ev.T
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return t, true, nil
	case err != nil:
		return 0, false, err
	}
	return 0, false, nil
}
