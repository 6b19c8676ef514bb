package netlab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/internal/check"
	"github.com/cohort-vs/cohort/seal"
)

// RunConfig is one replay of a scenario.
type RunConfig struct {
	Scenario *Scenario
	// Program runs `vsbench member` as bench.Lab's Program does: for
	// vsbench, its own executable. Each member runs it inside its node's
	// namespace through `ip netns exec`.
	Program bench.ChildSpec
	Dir     string    // for the logs; "": a temporary directory, removed at the end
	Stderr  io.Writer // the members' standard error; nil: os.Stderr
	// Progress gets a line per step as it is carried out; nil: none.
	Progress io.Writer
	ForceNft bool          // filter with nftables even where BPF works
	Timeout  time.Duration // bound on the first full view; 0: 20 s
	Port     uint16        // every member's UDP port (each has its own address); 0: 7000
}

// Report is what a replay found in the members' logs.
type Report struct {
	Scenario  string  `json:"scenario"`
	Mechanism string  `json:"filter"`
	Members   int     `json:"members"`
	Order     string  `json:"order"`
	Rate      float64 `json:"rate"`
	MTU       int     `json:"mtu"`
	// FullView is the time from the start of the first member to the
	// first view of every initial member, the scenario's time 0.
	FullView time.Duration `json:"full_view_ns"`
	Steps    []StepReport  `json:"steps"`
	Phases   []Phase       `json:"phases"`
	// Sends and Deliveries over the whole run, every incarnation.
	Sends        int               `json:"sends"`
	Deliveries   int               `json:"deliveries"`
	Incarnations int               `json:"incarnations"`
	Violations   []check.Violation `json:"violations,omitempty"`
	BadExits     []string          `json:"bad_exits,omitempty"`
	Dir          string            `json:"log_dir,omitempty"`
}

// OK reports whether the logs passed the checker and every member that
// was not crashed exited cleanly.
func (r *Report) OK() bool { return len(r.Violations) == 0 && len(r.BadExits) == 0 }

// StepReport is one step as it ran, and the views that followed it.
type StepReport struct {
	Step Step          `json:"step"`
	At   time.Duration `json:"at_ns"` // when it was carried out, from time 0
	// Victim: a crash's victim (its member ID).
	Victim string `json:"victim,omitempty"`
	// Views: each member's views installed after the step and before the
	// next one (the end for the last), in order. A partition's are by
	// side.
	Views []MemberViews `json:"views"`
}

// MemberViews is one member's views over a step.
type MemberViews struct {
	Member int        `json:"member"`
	Side   int        `json:"side"` // a partition's side; 0 otherwise
	Views  []ViewSeen `json:"views,omitempty"`
	// LastDelivery is the time from the step to the member's last
	// delivery before the next step; -1: none. A blocked member's stops
	// soon after the step.
	LastDelivery time.Duration `json:"last_delivery_ns"`
}

// ViewSeen is one view a member installed.
type ViewSeen struct {
	After   time.Duration `json:"after_ns"` // from the step
	View    uint64        `json:"view"`
	Self    string        `json:"self"`
	Members []string      `json:"members"`
	// NewIncarnation: Self differs from the member's ID at the step (it
	// rejoined, or joined for the first time).
	NewIncarnation bool `json:"new_incarnation,omitempty"`
	// Restored is the state transferred to it at this view, in bytes
	// (0: none).
	Restored int64 `json:"restored_bytes,omitempty"`
}

// Phase is the time between two steps.
type Phase struct {
	From  time.Duration `json:"from_ns"`
	To    time.Duration `json:"to_ns"`
	After string        `json:"after,omitempty"` // the step that began it ("" for the first)
	// Delivered is each member's deliveries per second over the phase (by
	// member number; -1: not running).
	Delivered []float64 `json:"delivered_per_s"`
	Sent      float64   `json:"sent_per_s"` // messages sent per second, all members
}

// nodeLog is what the report needs of one node's log.
type nodeLog struct {
	views   []ViewSeen // After: absolute Unix ns here
	viewT   []int64
	deliver []int64
	send    []int64
}

// RunScenario builds the network, runs the members, replays the
// scenario, stops the members, and checks their logs. It removes the
// network on return, also when ctx ends (a signal). An error means the
// replay could not be carried out; what it found is in the report.
func RunScenario(ctx context.Context, cfg RunConfig) (*Report, error) {
	sc := cfg.Scenario
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.Port == 0 {
		cfg.Port = 7000
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	// One bench.Lab per namespace, each serialising only its own
	// member's lines: one lock over them all.
	cfg.Stderr = bench.NewLockedWriter(cfg.Stderr)
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", args...)
		}
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return nil, errors.New("the lab needs the ip command (iproute2)")
	}
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "vsbench-lab-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	nodes := sc.Nodes()
	n, err := New(nodes, Options{MTU: sc.MTU, ForceNft: cfg.ForceNft})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	rep := &Report{Scenario: sc.Name, Mechanism: n.Mechanism(), Members: sc.Members, Order: sc.Order, Rate: sc.Rate, MTU: sc.MTU}
	if sc.Safe {
		rep.Order += "+safe"
	}
	if cfg.Dir != "" {
		rep.Dir = cfg.Dir
	}
	progress("lab: %d namespaces, MTU %d, packets filtered by %s, logs in %s", nodes, sc.MTU, n.Mechanism(), dir)

	addr := func(i int) string { return netip.AddrPortFrom(n.Addr(i), cfg.Port).String() }
	var seeds []string
	for i := 0; i < sc.Members; i++ {
		seeds = append(seeds, addr(i))
	}
	safety := sc.End + sc.LeaveTimeout + 2*cfg.Timeout + time.Minute // a member orphaned by a killed lab still exits
	flags := []string{
		"--rejoin", "--order", sc.Order, "--rate", strconv.FormatFloat(sc.Rate, 'g', -1, 64),
		"--size", strconv.Itoa(sc.Size), "--state-size", strconv.Itoa(sc.StateSize),
		"--duration", safety.String(), "--leave-timeout", sc.LeaveTimeout.String(),
	}
	if sc.Safe {
		flags = append(flags, "--safe")
	}
	if sc.MaxDatagram != 0 {
		flags = append(flags, "--max-datagram", strconv.Itoa(sc.MaxDatagram))
	}
	if sc.Quorum != "" {
		flags = append(flags, "--quorum", sc.Quorum)
	}
	if sc.QuorumWindow != 0 {
		flags = append(flags, "--quorum-window", sc.QuorumWindow.String())
	}
	// The namespaces' addresses are not loopback: the members run keyed,
	// as on a real network, with a key made for this run.
	keyFile, err := writeKeyFile(dir)
	if err != nil {
		return nil, err
	}
	flags = append(flags, "--key-file", keyFile)
	members := make([]*bench.LabMember, nodes)
	var labs []*bench.Lab
	defer func() {
		for _, l := range labs {
			l.Close()
		}
	}()
	start := func(i int) error {
		prog := bench.ChildSpec{
			Path: ipPath,
			Args: append([]string{"netns", "exec", n.Namespace(i), cfg.Program.Path}, cfg.Program.Args...),
			Env:  cfg.Program.Env,
		}
		l := bench.NewLab(ctx, prog, dir)
		l.Stderr, l.Expected = cfg.Stderr, nodes
		labs = append(labs, l)
		s := seeds
		if i >= sc.Members {
			s = append(append([]string(nil), seeds...), addr(i))
		}
		m, err := l.Start(fmt.Sprintf("m%d", i), addr(i), s, flags...)
		if err != nil {
			return err
		}
		members[i] = m
		return nil
	}
	began := time.Now()
	for i := 0; i < sc.Members; i++ {
		if err := start(i); err != nil {
			return nil, err
		}
	}
	if err := labs[0].WaitUntil(cfg.Timeout, "the full view", members[:sc.Members], func(_ *bench.LabMember, vs []check.LogEvent) bool {
		return len(vs) > 0 && len(vs[len(vs)-1].Members) == sc.Members
	}); err != nil {
		return nil, err
	}
	t0 := time.Now()
	rep.FullView = t0.Sub(began)
	progress("lab: full view of %d after %v; time 0", sc.Members, rep.FullView.Round(time.Millisecond))

	var killed []string
	crashed := make([]bool, nodes)
	wait := func(at time.Duration) error {
		t := time.NewTimer(time.Until(t0.Add(at)))
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, st := range sc.Steps {
		if err := wait(st.At); err != nil {
			return nil, err
		}
		sr := StepReport{Step: st, At: time.Since(t0)}
		switch st.Kind {
		case StepPartition:
			err = n.Partition(st.Sides...)
		case StepHeal:
			err = n.Heal()
		case StepLoss:
			if st.Member == AllLinks {
				err = n.SetLossAll(st.Percent)
			} else {
				err = n.SetLoss(st.Member, st.Percent)
			}
		case StepCrash:
			victim := st.Member
			if victim == Coordinator {
				victim, err = coordinator(members, n)
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", st.Line, err)
				}
			}
			m := members[victim]
			if m == nil || m.Exited() {
				return nil, fmt.Errorf("line %d: crash m%d: it is not running", st.Line, victim)
			}
			sr.Victim = m.Self()
			_, err = m.Kill()
			killed = append(killed, m.Log)
			crashed[victim] = true
			sr.Step.Member = victim
		case StepJoin:
			err = start(st.Member)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", st.Line, st, err)
		}
		progress("lab: %v: %s", sr.At.Round(time.Millisecond), sr.Step)
		rep.Steps = append(rep.Steps, sr)
	}
	if err := wait(sc.End); err != nil {
		return nil, err
	}
	endAt := time.Since(t0)
	// The members leave over a clean network: what the scenario measures
	// ends here, and a leave cut off by a fault would time out.
	if err := errors.Join(n.Heal(), n.SetLossAll(0)); err != nil {
		return nil, err
	}
	progress("lab: %v: end; network healed, stopping the members", endAt.Round(time.Millisecond))
	for i, m := range members {
		if m != nil && !crashed[i] {
			m.Signal(syscall.SIGTERM)
		}
	}
	for i, m := range members {
		if m == nil || crashed[i] {
			continue
		}
		code, err := m.Wait(sc.LeaveTimeout + cfg.Timeout)
		if err != nil {
			return nil, err
		}
		if code != bench.ExitOK {
			rep.BadExits = append(rep.BadExits, fmt.Sprintf("m%d exited %d", i, code))
		}
	}

	// The logs.
	var paths []string
	logs := make([]*nodeLog, nodes)
	for i, m := range members {
		if m == nil {
			continue
		}
		paths = append(paths, m.Log)
		if logs[i], err = readNodeLog(m.Log); err != nil {
			return nil, err
		}
	}
	checked, err := check.LoadLogs(check.LogOptions{Stopped: true, Killed: killed}, paths...)
	if err != nil {
		return nil, err
	}
	rep.Violations = append(checked.History().Check(20), checked.CheckStates(20)...)
	rep.Incarnations = len(checked.Incarnations)
	for _, in := range checked.Incarnations {
		rep.Sends += in.Sends
		rep.Deliveries += in.Deliveries
	}
	rep.analyse(logs, t0, endAt)
	return rep, nil
}

// coordinator finds the member that is rank 0 of the newest view any
// running member logged.
func coordinator(members []*bench.LabMember, n *Net) (int, error) {
	var cur check.LogEvent
	for _, m := range members {
		if m == nil || m.Exited() {
			continue
		}
		v, ok, err := m.LastView()
		if err != nil {
			return 0, err
		}
		if ok && v.View > cur.View {
			cur = v
		}
	}
	if len(cur.Members) == 0 {
		return 0, errors.New("crash coordinator: no view logged yet")
	}
	for i, m := range members {
		if m != nil && !m.Exited() && m.Self() == cur.Members[0] {
			return i, nil
		}
	}
	return 0, fmt.Errorf("crash coordinator: no running member is %s", cur.Members[0])
}

// readNodeLog reads what the report needs from a member log, including
// the state event's restored_bytes, which check.LogEvent leaves out.
func readNodeLog(path string) (*nodeLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	nl := &nodeLog{}
	r := bufio.NewReaderSize(f, 1<<16)
	var ev struct {
		T        int64    `json:"t"`
		Ev       string   `json:"ev"`
		View     uint64   `json:"view"`
		Self     string   `json:"self"`
		Members  []string `json:"members"`
		Restored int64    `json:"restored_bytes"`
	}
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			break // a last line without its newline is ignored
		}
		if err != nil {
			return nil, err
		}
		head := line[:min(len(line), 48)]
		switch {
		case bytes.Contains(head, []byte(`"ev":"deliver"`)):
			if t, ok := lineTime(line); ok {
				nl.deliver = append(nl.deliver, t)
			}
			continue
		case bytes.Contains(head, []byte(`"ev":"send"`)):
			if t, ok := lineTime(line); ok {
				nl.send = append(nl.send, t)
			}
			continue
		}
		ev.Members, ev.Self, ev.Restored = nil, "", 0
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		switch ev.Ev {
		case check.EvView:
			nl.views = append(nl.views, ViewSeen{After: time.Duration(ev.T), View: ev.View, Self: ev.Self, Members: ev.Members})
			nl.viewT = append(nl.viewT, ev.T)
		case check.EvState:
			if k := len(nl.views) - 1; k >= 0 && nl.views[k].View == ev.View {
				nl.views[k].Restored = ev.Restored
			}
		}
	}
	return nl, nil
}

// lineTime reads the "t" that starts every log line.
func lineTime(line []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"t":`))
	if !ok {
		return 0, false
	}
	i := bytes.IndexByte(rest, ',')
	if i < 0 {
		return 0, false
	}
	t, err := strconv.ParseInt(string(rest[:i]), 10, 64)
	return t, err == nil
}

func (r *Report) analyse(logs []*nodeLog, t0 time.Time, end time.Duration) {
	abs := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
	for k := range r.Steps {
		sr := &r.Steps[k]
		from := abs(sr.At)
		to := abs(end)
		if k+1 < len(r.Steps) {
			to = abs(r.Steps[k+1].At)
		}
		side := map[int]int{}
		for s, ms := range sr.Step.Sides {
			for _, m := range ms {
				side[m] = s
			}
		}
		for i, nl := range logs {
			if nl == nil {
				continue
			}
			mv := MemberViews{Member: i, Side: side[i], LastDelivery: -1}
			if c := countIn(nl.deliver, from, to); c > 0 {
				first := len(nl.deliver) - countIn(nl.deliver, from, math.MaxInt64)
				mv.LastDelivery = time.Duration(nl.deliver[first+c-1] - from)
			}
			self := "" // its ID at the step
			for j, v := range nl.views {
				if nl.viewT[j] < from {
					self = v.Self
				}
			}
			for j, v := range nl.views {
				t := nl.viewT[j]
				if t < from || t >= to {
					continue
				}
				v.After = time.Duration(t - from)
				v.NewIncarnation = v.Self != self
				mv.Views = append(mv.Views, v)
			}
			sr.Views = append(sr.Views, mv)
		}
	}
	bounds := []time.Duration{0}
	names := []string{""}
	for _, sr := range r.Steps {
		if sr.At > bounds[len(bounds)-1] {
			bounds = append(bounds, sr.At)
			names = append(names, sr.Step.String())
		} else {
			names[len(names)-1] += "; " + sr.Step.String()
		}
	}
	bounds = append(bounds, end)
	for p := 0; p+1 < len(bounds); p++ {
		a, b := abs(bounds[p]), abs(bounds[p+1])
		secs := (bounds[p+1] - bounds[p]).Seconds()
		ph := Phase{From: bounds[p], To: bounds[p+1], After: names[p]}
		sent := 0
		for _, nl := range logs {
			if nl == nil || len(nl.viewT) == 0 || nl.viewT[0] >= b {
				ph.Delivered = append(ph.Delivered, -1)
				continue
			}
			ph.Delivered = append(ph.Delivered, float64(countIn(nl.deliver, a, b))/secs)
			sent += countIn(nl.send, a, b)
		}
		ph.Sent = float64(sent) / secs
		r.Phases = append(r.Phases, ph)
	}
}

// countIn counts the times in [a, b) of a sorted list.
func countIn(ts []int64, a, b int64) int {
	lo, hi := 0, len(ts)
	for lo < hi {
		m := (lo + hi) / 2
		if ts[m] < a {
			lo = m + 1
		} else {
			hi = m
		}
	}
	c := 0
	for _, t := range ts[lo:] {
		if t >= b {
			break
		}
		c++
	}
	return c
}

// Print writes the report as text.
func (r *Report) Print(w io.Writer) {
	rate := "as fast as flow control allows"
	if r.Rate > 0 {
		rate = strconv.FormatFloat(r.Rate, 'g', -1, 64) + " msg/s each"
	}
	fmt.Fprintf(w, "scenario %s: %d members, %s, %s; MTU %d; packets filtered by %s\n", r.Scenario, r.Members, r.Order, rate, r.MTU, r.Mechanism)
	fmt.Fprintf(w, "full view after %v (time 0)\n", r.FullView.Round(time.Millisecond))
	for _, sr := range r.Steps {
		fmt.Fprintf(w, "%s (done at %v)", sr.Step, sr.At.Round(time.Millisecond))
		if sr.Victim != "" {
			fmt.Fprintf(w, ": killed %s", sr.Victim)
		}
		fmt.Fprintln(w)
		for _, mv := range sr.Views {
			if len(mv.Views) == 0 && sr.Step.Kind == StepLoss {
				continue
			}
			label := fmt.Sprintf("m%d", mv.Member)
			if sr.Step.Kind == StepPartition {
				label = fmt.Sprintf("side %d: m%d", mv.Side, mv.Member)
			}
			last := "no delivery"
			if mv.LastDelivery >= 0 {
				last = fmt.Sprintf("last delivery after %v", mv.LastDelivery.Round(time.Millisecond))
			}
			if len(mv.Views) == 0 {
				fmt.Fprintf(w, "  %s: no view; %s\n", label, last)
				continue
			}
			fmt.Fprintf(w, "  %s: %s\n", label, last)
			for _, v := range mv.Views {
				fmt.Fprintf(w, "  %s: view %d of %d after %v", label, v.View, len(v.Members), v.After.Round(time.Millisecond))
				if v.NewIncarnation {
					fmt.Fprintf(w, ", as new incarnation %s", v.Self)
				}
				if v.Restored > 0 {
					fmt.Fprintf(w, ", %d B state transferred", v.Restored)
				}
				fmt.Fprintln(w)
			}
		}
	}
	fmt.Fprintln(w, "throughput (deliveries/s at each member; sends/s of all):")
	for _, ph := range r.Phases {
		fmt.Fprintf(w, "  %5.1fs-%5.1fs", ph.From.Seconds(), ph.To.Seconds())
		for i, d := range ph.Delivered {
			if d < 0 {
				fmt.Fprintf(w, "  m%d -", i)
			} else {
				fmt.Fprintf(w, "  m%d %.0f", i, d)
			}
		}
		fmt.Fprintf(w, "  sent %.0f", ph.Sent)
		if ph.After != "" {
			fmt.Fprintf(w, "  (after %s)", ph.After)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d incarnations, %d sends, %d deliveries; %d violations\n", r.Incarnations, r.Sends, r.Deliveries, len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  violation: %v\n", v)
	}
	for _, e := range r.BadExits {
		fmt.Fprintf(w, "  bad exit: %s\n", e)
	}
	if r.Dir != "" {
		fmt.Fprintf(w, "logs in %s\n", filepath.Clean(r.Dir))
	}
}

// writeKeyFile writes a new random key (seal's key file format) under dir.
func writeKeyFile(dir string) (string, error) {
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "cohort.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return "", err
	}
	return path, nil
}
