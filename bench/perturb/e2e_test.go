package perturb

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/bench"
)

// childEnv makes the test binary run as a benchmark child (or, with
// idleEnv, as an idle process for the cgroup test) instead of running
// tests.
const (
	childEnv = "VSBENCH_TEST_CHILD"
	idleEnv  = "VSBENCH_TEST_IDLE"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(bench.ChildMain())
	}
	if os.Getenv(idleEnv) == "1" {
		time.Sleep(time.Minute) // killed by the test long before
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testChild(t *testing.T) bench.ChildSpec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bench.ChildSpec{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{childEnv + "=1"}}
}

// A short study, delay method, block policy, 3 members: the slowed member
// is calibrated to 5% of its capacity, and under block the group follows
// it down.
func TestPerturbEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns member processes for about 10 seconds")
	}
	runEndToEnd(t, "--members", "3", "--policy", "block", "--steps", "100,5", "--target", "5",
		"--hold", "2s", "--warmup", "500ms", "--calibrate", "1s", "--rounds", "2")
}

// Longer studies, opt-in: COHORT_PERTURB_LONG=1 runs both policies with
// every method this machine allows, 4 members, the default steps.
func TestPerturbLong(t *testing.T) {
	if os.Getenv("COHORT_PERTURB_LONG") == "" {
		t.Skip("set COHORT_PERTURB_LONG=1 to run full studies (minutes)")
	}
	for _, m := range []string{MethodDelay, MethodStop, MethodCPU, MethodLoss} {
		t.Run(m, func(t *testing.T) {
			if m == MethodCPU {
				if _, err := findCgroup(); err != nil {
					t.Skip(err)
				}
			}
			res := runEndToEnd(t, "--method", m)
			for _, c := range res.Checks {
				t.Log(c)
			}
		})
	}
}

func runEndToEnd(t *testing.T, args ...string) *Result {
	t.Helper()
	cfg, err := ParseArgs(append(args, "--out", t.TempDir()), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var progress, stderr bytes.Buffer
	res, err := Run(ctx, cfg, Options{Child: testChild(t), Progress: &progress, Stderr: &stderr})
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s\nchildren's stderr:\n%s", err, progress.String(), stderr.String())
	}
	cal := res.Calibration
	if cal == nil || !(cal.Unperturbed > 0) || len(cal.Levels) != len(distinctLevels(cfg.Levels)) {
		t.Fatalf("calibration %+v", cal)
	}
	target, _ := cal.level(cfg.Target)
	if !(target.Alone > 0) || target.Alone > 2*cfg.Target*cal.Unperturbed {
		t.Errorf("calibrated %v: alone %v msgs/s, capacity %v", cfg.Target, target.Alone, cal.Unperturbed)
	}
	perStep := int(cfg.Hold / cfg.Interval)
	for _, run := range res.Runs {
		if len(run.Points) != perStep*len(cfg.Levels) {
			t.Fatalf("%s: %d points, want %d", run.Policy, len(run.Points), perStep*len(cfg.Levels))
		}
		sums := map[float64]StepSummary{}
		for _, s := range Summaries(res) {
			if s.Policy == run.Policy {
				sums[s.Level] = s
			}
		}
		if !(sums[1].Median > 0) {
			t.Errorf("%s: nothing delivered unperturbed: %+v", run.Policy, sums[1])
		}
		if run.Policy == PolicyBlock {
			// The group waits for the slowed member: well below its
			// unperturbed rate, and the slowed member stays in.
			if s := sums[cfg.Target]; !(s.Median < 0.5*sums[1].Median) || s.Removed {
				t.Errorf("block: healthy median %v at %v, %v unperturbed; removed %v\n%s", s.Median, cfg.Target, sums[1].Median, s.Removed, progress.String())
			}
		}
	}
	dir := t.TempDir()
	if err := WriteFiles(dir, res); err != nil {
		t.Fatal(err)
	}
	files, err := WriteCharts(dir, res)
	if err != nil || len(files) != 2 {
		t.Fatalf("charts %v: %v", files, err)
	}
	return res
}

// The cpu method's cgroup: made, the process moved in, the quota set,
// and everything removed again.
func TestCgroupAttach(t *testing.T) {
	root, err := findCgroup()
	if err != nil {
		t.Skip(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), idleEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	p, err := root.attach(cmd.Process.Pid, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	g := p.(*cgroupPerturber)
	closed := false
	defer func() {
		if !closed {
			p.close()
		}
	}()
	procs, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
	if err != nil || !strings.Contains(string(procs), strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("cgroup.procs %q: %v", procs, err)
	}
	if err := p.set(0.2); err != nil {
		t.Fatal(err)
	}
	quota := "cpu.cfs_quota_us"
	want := "10000"
	if root.v2 {
		quota, want = "cpu.max", "10000 50000"
	}
	if b, err := os.ReadFile(filepath.Join(g.dir, quota)); err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("%s = %q (%v), want %q", quota, b, err, want)
	}
	closed = true
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.dir); !os.IsNotExist(err) {
		t.Errorf("cgroup %s still there: %v", g.dir, err)
	}
}

// A cgroup left by a study whose process is gone is removed; one of a
// live process is not.
func TestCgroupStaleRemoved(t *testing.T) {
	root, err := findCgroup()
	if err != nil {
		t.Skip(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), idleEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait() // gone, and reaped
	dead := filepath.Join(root.dir, "cohort-perturb-"+strconv.Itoa(cmd.Process.Pid)+"-1")
	live := filepath.Join(root.dir, "cohort-perturb-"+strconv.Itoa(os.Getppid())+"-1")
	for _, d := range []string{dead, live} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(d)
	}
	root.removeStale()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("stale cgroup %s kept: %v", dead, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("live process's cgroup %s removed: %v", live, err)
	}
}
