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

	"github.com/cohort-vs/cohort/check"
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
	// (the oldest member).
	Victim int
	Rate   float64 // messages/s per member; 0: as fast as flow control allows
	Order  string
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
	case c.Victim < 0 || c.Victim >= c.Members:
		return fmt.Errorf("victim rank is %d; use 0 (the coordinator) to %d", c.Victim, c.Members-1)
	case c.Rate < 0:
		return fmt.Errorf("rate is %v", c.Rate)
	case c.Order != "fifo" && c.Order != "unordered":
		return fmt.Errorf("order is %q; use fifo or unordered", c.Order)
	case c.Warmup < 0 || c.After < 0 || c.Pause < 0:
		return errors.New("negative duration")
	case c.Timeout <= 0:
		return fmt.Errorf("timeout is %v", c.Timeout)
	}
	return nil
}

// Detection is one survivor's view of a kill.
type Detection struct {
	Member string        `json:"member"` // the survivor's ID
	View   uint64        `json:"view"`   // its first view without the victim
	After  time.Duration `json:"after_ns"`
}

// CrashResult is what a run found in the members' logs.
type CrashResult struct {
	Mode    string    `json:"mode"` // "kill" or "pause"
	Victim  string    `json:"victim"`
	Rank    int       `json:"victim_rank"`
	Members []string  `json:"members"` // the full view before the fault
	FaultAt time.Time `json:"fault_at"`
	// Kill: each survivor's first view without the victim, in order of
	// the full view.
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
}

// MaxDetection is the longest kill-to-view time over the survivors.
func (r *CrashResult) MaxDetection() time.Duration {
	var d time.Duration
	for _, x := range r.Detections {
		d = max(d, x.After)
	}
	return d
}

// OK reports whether the run found nothing wrong: no violation, no bad
// exit, every survivor saw the kill, and no view changed after a pause.
func (r *CrashResult) OK() bool {
	return len(r.Violations) == 0 && len(r.Exits) == 0 && len(r.ViewsAfterPause) == 0 &&
		(r.Mode != "kill" || len(r.Detections) == len(r.Members)-1)
}

// Summary is the result in one line.
func (r *CrashResult) Summary() string {
	var b strings.Builder
	switch r.Mode {
	case "kill":
		fmt.Fprintf(&b, "kill -9 of rank %d (%s): kill→view", r.Rank, r.Victim)
		for _, d := range r.Detections {
			fmt.Fprintf(&b, " %s", ms(d.After))
		}
		fmt.Fprintf(&b, " (max %s)", ms(r.MaxDetection()))
	case "pause":
		fmt.Fprintf(&b, "SIGSTOP of rank %d (%s): %d view changes after it", r.Rank, r.Victim, len(r.ViewsAfterPause))
	}
	fmt.Fprintf(&b, "; %d sends, %d deliveries, %d violations", r.Sends, r.Deliveries, len(r.Violations))
	if len(r.Exits) > 0 {
		fmt.Fprintf(&b, "; bad exits: %s", strings.Join(r.Exits, ", "))
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
	res := &CrashResult{Mode: "kill", Members: full.Members, Rank: cfg.Victim, Victim: full.Members[cfg.Victim]}
	if cfg.Dir != "" {
		res.Dir = cfg.Dir
	}
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
	sleepFor(ctx, cfg.Warmup)

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
	for _, id := range full.Members {
		in := logs.Incarnation(id)
		if in == nil || id == res.Victim {
			continue
		}
		if res.Mode == "kill" {
			if v, ok := FirstViewWithout(in.Views, res.Victim, res.FaultAt); ok {
				res.Detections = append(res.Detections, Detection{Member: id, View: v.View, After: time.Duration(v.T - res.FaultAt.UnixNano())})
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
