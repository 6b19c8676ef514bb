package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cohort-vs/cohort/internal/check"
)

// DefaultCrashSample is how many groups' logs a kill among processes
// sharing many groups checks by default (CrashConfig.Sample).
const DefaultCrashSample = 20

// spreadStep is the width of GroupsCrash.Spread's buckets.
const spreadStep = 100 * time.Millisecond

// groupsPoll is how often a run over many groups reads the members'
// views logs: the times come from the logs, so reading them more often
// would only take CPU from the members.
const groupsPoll = 100 * time.Millisecond

// GroupsCrash is what a kill among member processes that share many
// groups found (CrashConfig.Groups above 1). Times are from the
// survivors' logs: each view's "t" is when its View handler ran.
type GroupsCrash struct {
	Groups int    `json:"groups"`
	Load   string `json:"load"` // CrashConfig.Load: which groups sent
	// Joined is the time from the first member's start to the last view
	// that completed every group at every member (the members join one
	// after another: see CrashConfig.Groups).
	Joined time.Duration `json:"joined_ns"`
	// JoinCPU is each member's CPU time, user and system, when every
	// group was complete (0 where the system does not say).
	JoinCPU []time.Duration `json:"join_cpu_ns,omitempty"`
	// WarmupCPU is each member's CPU time over the warmup, from the end
	// of the joins to the kill (Warmup on the wall clock): what the
	// groups cost with every member in, under the load.
	WarmupCPU []time.Duration `json:"warmup_cpu_ns,omitempty"`
	Warmup    time.Duration   `json:"warmup_ns"`
	// Rejoins counts the member incarnations that followed a removal
	// (the members run with --rejoin): a member that a group removed,
	// by mistake, joined it again. RejoinsAfter counts those logged after
	// the kill, at the survivors.
	Rejoins      int `json:"rejoins"`
	RejoinsAfter int `json:"rejoins_after_kill"`
	// Coordinated counts the groups whose coordinator at the kill (rank
	// 0 of the survivors' last view before it) was the victim.
	Coordinated int `json:"victim_coordinated"`
	// Installed counts the groups in which every survivor logged a view
	// without the victim within CrashConfig.Timeout of the kill.
	Installed int `json:"installed"`
	// Absent counts the groups that, at some survivor, no longer held
	// the victim just before the kill (removed during the warmup); they
	// are left out of the figures below.
	Absent int `json:"absent,omitempty"`
	// Over the groups installed: the time from the kill to the view
	// without the victim at the group's last survivor to install it.
	Median time.Duration `json:"median_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
	// Survivors: each survivor's figures over its groups.
	Survivors []SurvivorGroups `json:"survivors"`
	// Spread counts the installs (a group's new view at one survivor) in
	// each 100 ms after the kill, up to the last.
	Spread []int `json:"installs_per_100ms"`
	// Sample names the groups whose logs the checker read.
	Sample []string `json:"sample"`
	// ReadViews is the time spent reading the views logs over the run,
	// Check the time spent reading and checking the sample's logs.
	ReadViews time.Duration `json:"read_views_ns"`
	Check     time.Duration `json:"check_ns"`
}

// SurvivorGroups is one survivor's part of GroupsCrash.
type SurvivorGroups struct {
	Member    string `json:"member"` // the lab's name for it ("m0", ...)
	Addr      string `json:"addr"`
	Installed int    `json:"installed"` // groups with a view without the victim
	// Over those groups: kill→view.
	First  time.Duration `json:"first_ns"`
	Median time.Duration `json:"median_ns"`
	Max    time.Duration `json:"max_ns"`
	// CPU is the survivor's CPU time from the kill until the run saw
	// every group installed at every survivor (or gave up), Window that
	// time on the wall clock (the run reads the logs every 100 ms).
	CPU    time.Duration `json:"cpu_ns"`
	Window time.Duration `json:"window_ns"`
}

// sampleGroups picks k of n groups, spread evenly, the first and the
// last among them (all of them if n <= k).
func sampleGroups(n, k int) []int {
	if k >= n {
		k = n
	}
	if k <= 1 {
		return []int{0}
	}
	out := make([]int, 0, k)
	for i := 0; i < k; i++ {
		g := i * (n - 1) / (k - 1)
		if len(out) == 0 || out[len(out)-1] != g {
			out = append(out, g)
		}
	}
	return out
}

// quantile is the q-quantile of sorted ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds))*q+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// addrOf is the address part of a member ID ("ip:port/incarnation").
func addrOf(id string) string {
	a, _, _ := strings.Cut(id, "/")
	return a
}

// hasAddr reports whether a view lists a member at addr (an incarnation
// of that process in the group).
func hasAddr(v check.LogEvent, addr string) bool {
	for _, m := range v.Members {
		if addrOf(m) == addr {
			return true
		}
	}
	return false
}

// groupViews follows one member's views log (MemberConfig.ViewsLog):
// the views of every group it joined.
type groupViews struct {
	m     *LabMember
	path  string
	off   int64
	part  []byte
	index map[string]int     // group name → index
	views [][]check.LogEvent // by group, in order
	took  time.Duration      // spent reading
}

func newGroupViews(m *LabMember, path string, index map[string]int) *groupViews {
	return &groupViews{m: m, path: path, index: index, views: make([][]check.LogEvent, len(index))}
}

// poll reads the lines added since the last poll.
func (t *groupViews) poll() error {
	start := time.Now()
	defer func() { t.took += time.Since(start) }()
	return readNewLines(t.path, &t.off, &t.part, nil, func(line []byte) error {
		var ev check.LogEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("%s: %w", t.path, err)
		}
		g, ok := t.index[ev.Group]
		if !ok || ev.Ev != check.EvView {
			return fmt.Errorf("%s: a %q line of group %q", t.path, ev.Ev, ev.Group)
		}
		t.views[g] = append(t.views[g], ev)
		return nil
	})
}

// count is the number of groups whose views satisfy ok.
func (t *groupViews) count(ok func(vs []check.LogEvent) bool) int {
	n := 0
	for _, vs := range t.views {
		if ok(vs) {
			n++
		}
	}
	return n
}

// lastBefore is the last view of vs logged before at (false: none).
func lastBefore(vs []check.LogEvent, at int64) (check.LogEvent, bool) {
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].T < at {
			return vs[i], true
		}
	}
	return check.LogEvent{}, false
}

// firstWithout is the first view of vs logged at or after at that has
// no member at addr.
func firstWithout(vs []check.LogEvent, addr string, at int64) (check.LogEvent, bool) {
	for _, v := range vs {
		if v.T >= at && !hasAddr(v, addr) {
			return v, true
		}
	}
	return check.LogEvent{}, false
}

// errTimedOut is waitGroups' error when the time is up.
var errTimedOut = errors.New("timed out")

// groupsProgress is how often a wait over many groups says how far it
// got.
const groupsProgress = 10 * time.Second

// waitGroups polls the views logs every groupsPoll until done(t) is
// every group for each of ts, a member exits, or timeout. Every
// groupsProgress it notes how many groups are done at each member and
// the CPU time each member has used.
func (l *Lab) waitGroups(timeout time.Duration, what string, ts []*groupViews, done func(t *groupViews) int) error {
	start := time.Now()
	deadline := start.Add(timeout)
	progress := start.Add(groupsProgress)
	for {
		all := true
		var counts []string
		for _, t := range ts {
			if err := t.poll(); err != nil {
				return err
			}
			n := done(t)
			counts = append(counts, fmt.Sprintf("%s %d", t.m.Name, n))
			if n < len(t.views) {
				all = false
				if t.m.Exited() {
					return fmt.Errorf("%s exited (%v) before %s", t.m.Name, t.m.waitErr, what)
				}
			}
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v waiting for %s; groups done: %s of %d", errTimedOut, timeout, what, strings.Join(counts, ", "), len(ts[0].views))
		}
		if now := time.Now(); now.After(progress) {
			progress = now.Add(groupsProgress)
			var cpu []string
			for _, t := range ts {
				cpu = append(cpu, fmt.Sprintf("%s %.1f s", t.m.Name, childCPU(t.m.cmd.Process.Pid).Seconds()))
			}
			l.note("%v waiting for %s: groups done %s of %d; CPU %s", now.Sub(start).Round(time.Second), what, strings.Join(counts, ", "), len(ts[0].views), strings.Join(cpu, ", "))
		}
		select {
		case <-time.After(groupsPoll):
		case <-l.ctx.Done():
			return l.ctx.Err()
		}
	}
}

// note writes a progress line to the lab's standard error.
func (l *Lab) note(format string, args ...any) {
	w := l.Stderr
	if w == nil {
		w = os.Stderr
	}
	l.errMu.Lock()
	defer l.errMu.Unlock()
	fmt.Fprintf(w, "vsbench crash: "+format+"\n", args...)
}

// runCrashGroups is RunCrash with cfg.Groups above 1 (a kill; Validate
// refuses a pause): see CrashConfig.Groups.
func runCrashGroups(ctx context.Context, cfg CrashConfig, program ChildSpec, stderr io.Writer, dir string) (*CrashResult, error) {
	lab := NewLab(ctx, program, dir)
	lab.Stderr, lab.Expected, lab.Procs = stderr, cfg.Members, cfg.Procs
	defer lab.Close()

	names := groupNames(GroupName, cfg.Groups)
	index := make(map[string]int, len(names))
	for i, n := range names {
		index[n] = i
	}
	addrs, err := FreeAddrs(cfg.Members)
	if err != nil {
		return nil, err
	}
	// The members join one after another, so the wait for each is a
	// timeout of its own, and the safety bound grows with them.
	safety := 2*(cfg.Warmup+cfg.After) + time.Duration(cfg.Members+5)*cfg.Timeout
	flags := []string{
		"--rate", strconv.FormatFloat(cfg.Rate, 'g', -1, 64), "--order", cfg.Order,
		"--size", strconv.Itoa(cfg.Size), "--duration", safety.String(),
		"--groups", strconv.Itoa(cfg.Groups), "--rejoin",
		// Leaving thousands of groups at once takes longer than the
		// default 5 s on a busy machine.
		"--leave-timeout", cfg.Timeout.String(),
	}
	if cfg.Safe {
		flags = append(flags, "--safe")
	}
	if cfg.Light {
		flags = append(flags, "--light")
	}
	sample := sampleGroups(cfg.Groups, cfg.sample())
	if cfg.Load == LoadSample {
		var list []string
		for _, g := range sample {
			list = append(list, strconv.Itoa(g))
		}
		flags = append(flags, "--send-groups", strings.Join(list, ","))
	}
	start := time.Now()
	var members []*LabMember
	var ts []*groupViews
	for i, a := range addrs {
		name := fmt.Sprintf("m%d", i)
		views := filepath.Join(dir, name+".views.log")
		m, err := lab.Start(name, a, addrs, append(flags, "--views-log", views)...)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
		ts = append(ts, newGroupViews(m, views, index))
		// Every member so far in every group, at each of them.
		size := i + 1
		err = lab.waitGroups(cfg.Timeout, fmt.Sprintf("every group to hold %d members", size), ts, func(t *groupViews) int {
			return t.count(func(vs []check.LogEvent) bool {
				return len(vs) > 0 && len(vs[len(vs)-1].Members) == size
			})
		})
		if err != nil {
			return nil, err
		}
		lab.note("%s in all %d groups after %v", name, cfg.Groups, time.Since(start).Round(time.Millisecond))
	}
	gc := &GroupsCrash{Groups: cfg.Groups, Load: cfg.Load}
	if gc.Load == "" {
		gc.Load = LoadAll
	}
	var lastFull int64
	for _, t := range ts {
		for _, vs := range t.views {
			lastFull = max(lastFull, vs[len(vs)-1].T)
		}
		gc.JoinCPU = append(gc.JoinCPU, childCPU(t.m.cmd.Process.Pid))
	}
	gc.Joined = time.Duration(lastFull - start.UnixNano())
	warmupStart := time.Now()

	// The victim, from group 0: its rank in the first member's full view
	// of it (the first member founded every group and the others joined
	// in turn, so a member's rank is the same in every group), or the
	// coordinator of group 0's latest view.
	full := ts[0].views[0][len(ts[0].views[0])-1]
	res := &CrashResult{Mode: "kill", Order: orderLabel(cfg.Order, cfg.Safe), Members: full.Members, Rank: cfg.Victim, Groups: gc}
	if cfg.Dir != "" {
		res.Dir = cfg.Dir
	}
	sleepFor(ctx, cfg.Warmup)
	if cfg.Victim == VictimCoordinator {
		var cur check.LogEvent
		for _, t := range ts {
			if err := t.poll(); err != nil {
				return nil, err
			}
			if vs := t.views[0]; vs[len(vs)-1].View > cur.View {
				cur = vs[len(vs)-1]
			}
		}
		res.Members, res.Rank = cur.Members, 0
	}
	res.Victim = res.Members[res.Rank]
	victimAddr := addrOf(res.Victim)
	var victim *LabMember
	var others []*groupViews
	for _, t := range ts {
		if t.m.Addr == victimAddr {
			victim = t.m
		} else {
			others = append(others, t)
		}
	}
	if victim == nil {
		return nil, fmt.Errorf("no member listens at %s, the victim's address", victimAddr)
	}
	cpuBefore := make([]time.Duration, len(others))
	for i, t := range others {
		cpuBefore[i] = childCPU(t.m.cmd.Process.Pid)
	}
	for i, t := range ts {
		gc.WarmupCPU = append(gc.WarmupCPU, childCPU(t.m.cmd.Process.Pid)-gc.JoinCPU[i])
	}
	gc.Warmup = time.Since(warmupStart)
	if res.FaultAt, err = victim.Kill(); err != nil {
		return nil, err
	}
	fault := res.FaultAt.UnixNano()
	lab.note("killed %s (%s) at %s", victim.Name, victimAddr, res.FaultAt.Format("15:04:05.000"))
	// A group is done at a survivor once it logged a view without the
	// victim, or if the victim had left it before the kill.
	done := func(t *groupViews) int {
		return t.count(func(vs []check.LogEvent) bool {
			if _, ok := firstWithout(vs, victimAddr, fault); ok {
				return true
			}
			v, ok := lastBefore(vs, fault)
			return ok && !hasAddr(v, victimAddr)
		})
	}
	err = lab.waitGroups(cfg.Timeout, "a view without the victim in every group", others, done)
	window := time.Since(res.FaultAt)
	for i, t := range others {
		gc.Survivors = append(gc.Survivors, SurvivorGroups{
			Member: t.m.Name, Addr: t.m.Addr,
			CPU: childCPU(t.m.cmd.Process.Pid) - cpuBefore[i], Window: window,
		})
	}
	switch {
	case err == nil:
		lab.note("every group installed a view without %s at every survivor; seen after %v", victim.Name, window.Round(time.Millisecond))
	case errors.Is(err, errTimedOut):
		// Reported in Installed; the logs are still checked.
		lab.note("%v", err)
	default:
		return nil, err
	}
	sleepFor(ctx, cfg.After)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, t := range others {
		t.m.Signal(syscall.SIGTERM)
	}
	for _, t := range others {
		code, err := t.m.Wait(2 * cfg.Timeout)
		if err != nil {
			return nil, err
		}
		if code != ExitOK {
			res.Exits = append(res.Exits, fmt.Sprintf("%s exited %d", t.m.Name, code))
		}
	}

	// Every line is in now.
	for _, t := range others {
		if err := t.poll(); err != nil {
			return nil, err
		}
	}
	var groupMax []time.Duration // per group installed: its slowest survivor
	var spread []int
	per := make([][]time.Duration, len(others))
	for g := range names {
		var slowest time.Duration
		installed, absent, coordinated := true, false, false
		for i, t := range others {
			vs := t.views[g]
			if v, ok := lastBefore(vs, fault); ok {
				if !hasAddr(v, victimAddr) {
					absent = true
				} else if addrOf(v.Members[0]) == victimAddr {
					coordinated = true
				}
			}
			v, ok := firstWithout(vs, victimAddr, fault)
			d := time.Duration(v.T - fault)
			if !ok || d > cfg.Timeout {
				installed = false
				continue
			}
			per[i] = append(per[i], d)
			slowest = max(slowest, d)
			b := int(d / spreadStep)
			for len(spread) <= b {
				spread = append(spread, 0)
			}
			spread[b]++
		}
		switch {
		case absent:
			gc.Absent++
		case installed:
			gc.Installed++
			groupMax = append(groupMax, slowest)
		}
		if coordinated {
			gc.Coordinated++
		}
	}
	slices.Sort(groupMax)
	gc.Median, gc.P99, gc.Max = quantile(groupMax, 0.5), quantile(groupMax, 0.99), quantile(groupMax, 1)
	gc.Spread = spread
	for i, ds := range per {
		slices.Sort(ds)
		s := &gc.Survivors[i]
		s.Installed = len(ds)
		s.First, s.Median, s.Max = quantile(ds, 0), quantile(ds, 0.5), quantile(ds, 1)
	}
	for _, t := range ts {
		gc.ReadViews += t.took
		for _, vs := range t.views {
			for i := 1; i < len(vs); i++ {
				if vs[i].Self != vs[i-1].Self {
					if vs[i].T < fault {
						gc.Rejoins++
					} else {
						gc.RejoinsAfter++
					}
				}
			}
		}
	}

	// The checker on a sample of the groups, each group's logs on their
	// own.
	checkStart := time.Now()
	for _, g := range sample {
		gc.Sample = append(gc.Sample, names[g])
		var paths, killed []string
		for _, m := range members {
			p := MemberLogs(m.Log, cfg.Groups)[g]
			paths = append(paths, p)
			if m == victim {
				killed = append(killed, p)
			}
		}
		logs, err := check.LoadLogs(check.LogOptions{Stopped: true, Killed: killed}, paths...)
		if err != nil {
			return nil, err
		}
		for _, v := range append(logs.History().Check(20), logs.CheckStates(20)...) {
			v.Detail = names[g] + ": " + v.Detail
			res.Violations = append(res.Violations, v)
		}
		for _, in := range logs.Incarnations {
			res.Sends += in.Sends
			res.Deliveries += in.Deliveries
		}
	}
	gc.Check = time.Since(checkStart)
	return res, nil
}

// summary is the groups' part of CrashResult.Summary.
func (g *GroupsCrash) summary(b *strings.Builder) {
	fmt.Fprintf(b, ": %d groups (load on %s) joined in %.1f s", g.Groups, g.Load, g.Joined.Seconds())
	if g.Rejoins > 0 {
		fmt.Fprintf(b, " (%d removals by mistake, each followed by a rejoin)", g.Rejoins)
	}
	if len(g.WarmupCPU) > 0 {
		var cpu []string
		for _, c := range g.WarmupCPU {
			cpu = append(cpu, fmt.Sprintf("%.2f", c.Seconds()))
		}
		fmt.Fprintf(b, "; CPU s per member over the %.1f s warmup: %s", g.Warmup.Seconds(), strings.Join(cpu, ", "))
	}
	fmt.Fprintf(b, "; new view in %d of %d groups", g.Installed, g.Groups)
	if g.Absent > 0 {
		fmt.Fprintf(b, " (%d had lost the victim before the kill)", g.Absent)
	}
	fmt.Fprintf(b, "; kill→view at a group's last survivor: median %s, p99 %s, max %s", ms(g.Median), ms(g.P99), ms(g.Max))
	fmt.Fprintf(b, "; the victim was the coordinator of %d groups", g.Coordinated)
	if g.RejoinsAfter > 0 {
		fmt.Fprintf(b, "; %d survivors' memberships removed after the kill, then rejoined", g.RejoinsAfter)
	}
	for _, s := range g.Survivors {
		fmt.Fprintf(b, "; %s: %d groups, first %s, median %s, max %s, CPU %.2f s in %.2f s",
			s.Member, s.Installed, ms(s.First), ms(s.Median), ms(s.Max), s.CPU.Seconds(), s.Window.Seconds())
	}
}
