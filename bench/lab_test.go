package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/engine"
	"github.com/cohort-vs/cohort/internal/check"
)

// The lab tests run real `vsbench member` processes on loopback, built
// once per test into its temporary directory, inject faults and check
// the members' logs. COHORT_LAB_RUNS=N repeats each scenario N times.

// buildVsbench builds cmd/vsbench and returns how to run it.
func buildVsbench(t *testing.T) ChildSpec {
	t.Helper()
	if testing.Short() {
		t.Skip("builds vsbench and runs member processes")
	}
	if runtime.GOOS == "windows" {
		t.Skip("uses SIGSTOP and SIGKILL")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to build vsbench with")
	}
	bin := filepath.Join(t.TempDir(), "vsbench")
	out, err := exec.Command(goTool, "build", "-o", bin, "github.com/cohort-vs/cohort/cmd/vsbench").CombinedOutput()
	if err != nil {
		t.Fatalf("building vsbench: %v\n%s", err, out)
	}
	return ChildSpec{Path: bin}
}

func labRuns(t *testing.T) int {
	s := os.Getenv("COHORT_LAB_RUNS")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("COHORT_LAB_RUNS=%q: want a positive number", s)
	}
	return n
}

// newLab starts a lab in a fresh directory; the processes are killed and
// waited for when the test ends, and their standard error shown if it
// failed.
func newLab(t *testing.T, program ChildSpec, expected int) *Lab {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	lab := NewLab(ctx, program, t.TempDir())
	lab.Expected = expected
	var stderr bytes.Buffer
	lab.Stderr = &stderr // written under the lab's lock, read after Close
	t.Cleanup(func() {
		lab.Close()
		cancel()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("members' standard error:\n%s", stderr.String())
		}
	})
	return lab
}

// viewOf reports whether v lists exactly the given member IDs.
func viewOf(v check.LogEvent, ids ...string) bool {
	if len(v.Members) != len(ids) {
		return false
	}
	for _, id := range ids {
		if !hasMember(v, id) {
			return false
		}
	}
	return true
}

// TestLabKillAndJoin: 4 members send 2,000 msg/s each; one is killed -9,
// a fresh member joins; everyone leaves on SIGTERM; the logs must hold no
// violation, and the survivors must have seen the kill within a second.
func TestLabKillAndJoin(t *testing.T) {
	program := buildVsbench(t)
	for i := 0; i < labRuns(t); i++ {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) { labKillAndJoin(t, program) })
	}
}

func labKillAndJoin(t *testing.T, program ChildSpec) {
	start := time.Now()
	lab := newLab(t, program, 5)
	addrs, err := FreeAddrs(5)
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--rate", "2000", "--duration", "60s", "--state-size", "1048576"}
	var members []*LabMember
	for i := 0; i < 4; i++ {
		m, err := lab.Start(fmt.Sprintf("m%d", i), addrs[i], addrs[:4], flags...)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	if err := lab.WaitUntil(10*time.Second, "a view of 4 at every member", members, func(_ *LabMember, vs []check.LogEvent) bool {
		return len(vs) > 0 && len(vs[len(vs)-1].Members) == 4
	}); err != nil {
		t.Fatal(err)
	}
	gathered := time.Since(start)
	time.Sleep(time.Second)

	victim, survivors := members[1], []*LabMember{members[0], members[2], members[3]}
	victimID := victim.Self()
	killAt, err := victim.Kill()
	if err != nil {
		t.Fatal(err)
	}
	joiner, err := lab.Start("m4", addrs[4], addrs, flags...)
	if err != nil {
		t.Fatal(err)
	}
	after := append(append([]*LabMember(nil), survivors...), joiner)
	if err := lab.WaitUntil(10*time.Second, "a view of the survivors and the joiner", after, func(_ *LabMember, vs []check.LogEvent) bool {
		if len(vs) == 0 {
			return false
		}
		last := vs[len(vs)-1]
		return viewOf(last, survivors[0].Self(), survivors[1].Self(), survivors[2].Self(), joiner.Self())
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)

	stopAt := time.Now()
	for _, m := range after {
		if err := m.Signal(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
	}
	for _, m := range after {
		code, err := m.Wait(15 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code != ExitOK {
			t.Errorf("%s exited with status %d", m.Name, code)
		}
	}
	stopped := time.Since(stopAt)

	var paths []string
	for _, m := range append(members, joiner) {
		paths = append(paths, m.Log)
	}
	logs, err := check.LoadLogs(check.LogOptions{Killed: []string{victim.Log}}, paths...)
	if err != nil {
		t.Fatal(err)
	}
	vs := append(logs.History().Check(20), logs.CheckStates(20)...)
	for _, v := range vs {
		t.Error(v)
	}
	sends, deliveries := 0, 0
	for _, in := range logs.Incarnations {
		sends += in.Sends
		deliveries += in.Deliveries
		switch {
		case in.Name == victimID:
			if !in.Crashed {
				t.Errorf("the killed member %s is not taken as crashed", in.Name)
			}
		case in.Ended != "left":
			t.Errorf("%s: ended %q, want left", in.Name, in.Ended)
		}
	}
	var detect []string
	for _, m := range survivors {
		in := logs.Incarnation(m.Self())
		v, ok := FirstViewWithout(in.Views, victimID, killAt)
		if !ok {
			t.Errorf("%s never logged a view without the killed member", m.Name)
			continue
		}
		d := time.Duration(v.T - killAt.UnixNano())
		detect = append(detect, fmt.Sprintf("%s %s (view %d)", m.Name, ms(d), v.View))
		if d > 2*time.Second {
			t.Errorf("%s: %v from the kill to the view without it", m.Name, d)
		}
	}
	t.Logf("gathered in %v; kill→first view without the killed member: %s; leave of all took %v; %d sends, %d deliveries, %d violations; total %v",
		gathered.Round(time.Millisecond), strings.Join(detect, ", "), stopped.Round(time.Millisecond),
		sends, deliveries, len(vs), time.Since(start).Round(time.Millisecond))
}

// TestLabPause: a member stopped (SIGSTOP) for 200 ms under full load, then
// continued, must not be suspected: no member logs a view change.
func TestLabPause(t *testing.T) {
	program := buildVsbench(t)
	for i := 0; i < labRuns(t); i++ {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) {
			cfg := DefaultCrashConfig()
			cfg.Members = 4
			cfg.Rate = 0 // full load
			cfg.Pause = 200 * time.Millisecond
			cfg.Warmup = 500 * time.Millisecond
			cfg.After = 500 * time.Millisecond
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := RunCrash(ctx, cfg, program, &stderr)
			if err != nil {
				t.Fatalf("%v\nmembers' standard error:\n%s", err, stderr.String())
			}
			t.Log(res.Summary())
			for _, v := range res.ViewsAfterPause {
				t.Errorf("view change after the pause: %s", v)
			}
			for _, v := range res.Violations {
				t.Error(v)
			}
			for _, e := range res.Exits {
				t.Error(e)
			}
			if t.Failed() {
				t.Logf("members' standard error:\n%s", stderr.String())
			}
		})
	}
}

// TestLabCrash runs `vsbench crash` itself: kill -9 of a member of 5.
func TestLabCrash(t *testing.T) {
	program := buildVsbench(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, program.Path, CrashCommand, "--members", "5", "--warmup", "500ms", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("vsbench crash: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{`"mode":"kill"`, `"detections":[`, `"sends":`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %s:\n%s", want, stdout.String())
		}
	}
	t.Logf("%s", stdout.String())
}

// engineSupports reports whether the engine sends with ordering o (causal,
// total and safe delivery come in stages): it forms a group alone and
// sends one message.
func engineSupports(t *testing.T, o engine.Ordering) bool {
	t.Helper()
	e, err := engine.New(engine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := e.Join(ctx, "probe", []string{e.Addr().String()}, engine.Handlers{Deliver: func(engine.Message) {}})
	if err != nil {
		t.Fatal(err)
	}
	err = g.Send(ctx, o, []byte("probe"))
	if errors.Is(err, engine.ErrUnsupported) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// TestLabOrders: kill -9 under full load with causal, total and safe
// messages, the coordinator (total order's sequencer) among the victims;
// the logs must satisfy every rule, the new ones included. Each case is
// skipped while the engine does not support its ordering.
func TestLabOrders(t *testing.T) {
	program := buildVsbench(t)
	cases := []struct {
		order  string
		safe   bool
		victim int
	}{
		{"total", false, VictimCoordinator},
		{"causal", false, 1},
		{"total", true, VictimCoordinator},
		{"fifo", true, 2},
	}
	for _, c := range cases {
		name := orderLabel(c.order, c.safe)
		o, err := ParseOrder(c.order, c.safe)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			if !engineSupports(t, o) {
				t.Skipf("the engine does not support %v yet", o)
			}
			for i := 0; i < labRuns(t); i++ {
				cfg := DefaultCrashConfig()
				cfg.Members, cfg.Rate = 4, 0
				cfg.Order, cfg.Safe, cfg.Victim = c.order, c.safe, c.victim
				cfg.Warmup, cfg.After = 500*time.Millisecond, 500*time.Millisecond
				var stderr bytes.Buffer
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				res, err := RunCrash(ctx, cfg, program, &stderr)
				cancel()
				if err != nil {
					t.Fatalf("%v\nmembers' standard error:\n%s", err, stderr.String())
				}
				t.Log(res.Summary())
				if c.victim == VictimCoordinator && res.Victim != res.Members[0] {
					t.Errorf("victim %s is not the coordinator of %v", res.Victim, res.Members)
				}
				if len(res.Detections) != len(res.Members)-1 {
					t.Errorf("%d of %d survivors saw the kill", len(res.Detections), len(res.Members)-1)
				}
				for _, v := range res.Violations {
					t.Error(v)
				}
				for _, e := range res.Exits {
					t.Error(e)
				}
				if t.Failed() {
					t.Logf("members' standard error:\n%s", stderr.String())
					return
				}
			}
		})
	}
}

// TestLabRemoved: two members of five are stopped long enough to be
// removed. After they are continued, the one without --rejoin logs
// "removed" and exits with status 3; the one with --rejoin joins again as
// a new incarnation (its log then holds two member IDs) and leaves at the
// end like the others. The logs must check clean.
func TestLabRemoved(t *testing.T) {
	program := buildVsbench(t)
	lab := newLab(t, program, 5)
	addrs, err := FreeAddrs(5)
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--rate", "1000", "--duration", "60s"}
	var members []*LabMember
	for i := 0; i < 5; i++ {
		f := flags
		if i == 4 {
			f = append(f, "--rejoin")
		}
		m, err := lab.Start(fmt.Sprintf("m%d", i), addrs[i], addrs, f...)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	if err := lab.WaitUntil(10*time.Second, "a view of 5 at every member", members, func(_ *LabMember, vs []check.LogEvent) bool {
		return len(vs) > 0 && len(vs[len(vs)-1].Members) == 5
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	plain, rejoiner := members[3], members[4]
	oldID := rejoiner.Self()
	if err := stopProcess(plain.cmd.Process); err != nil {
		t.Fatal(err)
	}
	if _, err := rejoiner.Pause(1500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := continueProcess(plain.cmd.Process); err != nil {
		t.Fatal(err)
	}
	code, err := plain.Wait(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != ExitRemoved {
		t.Errorf("%s (no --rejoin) exited with status %d, want %d", plain.Name, code, ExitRemoved)
	}
	rest := []*LabMember{members[0], members[1], members[2], rejoiner}
	if err := lab.WaitUntil(10*time.Second, "a view of 4 with the rejoined member", rest, func(_ *LabMember, vs []check.LogEvent) bool {
		if len(vs) == 0 {
			return false
		}
		self := rejoiner.Self()
		return self != oldID && len(vs[len(vs)-1].Members) == 4 && hasMember(vs[len(vs)-1], self)
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, m := range rest {
		m.Signal(syscall.SIGTERM)
	}
	for _, m := range rest {
		code, err := m.Wait(15 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code != ExitOK {
			t.Errorf("%s exited with status %d", m.Name, code)
		}
	}
	var paths []string
	for _, m := range members {
		paths = append(paths, m.Log)
	}
	logs, err := check.LoadLogs(check.LogOptions{Stopped: true}, paths...)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range append(logs.History().Check(20), logs.CheckStates(20)...) {
		t.Error(v)
	}
	var summary []string
	for _, in := range logs.Incarnations {
		summary = append(summary, fmt.Sprintf("%s %s: ended %q, %d views, %d sends, %d deliveries",
			filepath.Base(in.File), in.Name, in.Ended, len(in.Views), in.Sends, in.Deliveries))
		want := "left"
		if in.Name == plain.Self() || in.Name == oldID {
			want = "removed"
		}
		if in.Ended != want || in.Crashed {
			t.Errorf("%s: ended %q (crashed %v), want %q", in.Name, in.Ended, in.Crashed, want)
		}
	}
	if len(logs.Incarnations) != 6 {
		t.Errorf("%d member incarnations, want 6", len(logs.Incarnations))
	}
	t.Logf("incarnations:\n%s", strings.Join(summary, "\n"))
}

// readNewLines hands over whole lines only, each once, the ones holding
// the marker (or every one), a line written in two pieces once whole.
func TestReadNewLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type follower struct {
		marker []byte
		off    int64
		part   []byte
		got    []string
	}
	all, views := &follower{}, &follower{marker: viewMarker}
	poll := func(want map[*follower][]string) {
		t.Helper()
		for _, fl := range []*follower{all, views} {
			fl.got = nil
			err := readNewLines(path, &fl.off, &fl.part, fl.marker, func(line []byte) error {
				fl.got = append(fl.got, string(line))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(fl.got) != fmt.Sprint(want[fl]) {
				t.Errorf("marker %q: got %q, want %q", fl.marker, fl.got, want[fl])
			}
		}
	}
	poll(nil)
	write := func(s string) {
		t.Helper()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	send := `{"t":1,"ev":"send","id":"a#1"}`
	view1 := `{"t":2,"ev":"view","view":1}`
	deliver := `{"t":3,"ev":"deliver","id":"a#1"}`
	view2 := `{"t":4,"ev":"view","view":2}`
	write(send + "\n" + view1 + "\n" + deliver[:10])
	poll(map[*follower][]string{all: {send, view1}, views: {view1}})
	write(deliver[10:] + "\n" + view2[:12])
	poll(map[*follower][]string{all: {deliver}})
	poll(nil)
	write(view2[12:] + "\n")
	poll(map[*follower][]string{all: {view2}, views: {view2}})
}
