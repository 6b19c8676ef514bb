package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// childEnv makes the test binary run as a benchmark child instead of
// running tests: the end-to-end test spawns its members from the test
// binary itself, so it needs nothing built.
const childEnv = "VSBENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(ChildMain())
	}
	os.Exit(m.Run())
}

// runSelf runs vsbench with cfg, this test binary as its member
// processes; it returns the report and the progress lines.
func runSelf(t *testing.T, cfg Config) (*Report, *bytes.Buffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var progress, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg, Options{
		Child:    ChildSpec{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{childEnv + "=1"}},
		Progress: &progress,
		Stderr:   &stderr,
	})
	if err != nil {
		t.Fatalf("run: %v\nchildren's stderr:\n%s", err, stderr.String())
	}
	return rep, &progress
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes and runs for a few seconds")
	}
	cfg := DefaultConfig()
	cfg.Members = 2
	cfg.Duration = time.Second
	cfg.Warmup = 100 * time.Millisecond
	rep, progress := runSelf(t, cfg)
	for name, p := range map[string]PhaseSummary{"engine": rep.Engine, "baseline": rep.Baseline} {
		if p.MsgsPerSec <= 0 {
			t.Errorf("%s: msgs_per_sec %v", name, p.MsgsPerSec)
		}
		if len(p.MemberMsgsPerSec) != 2 || len(p.MemberLatency) != 2 || len(p.MemberCPUUsPerMsg) != 2 {
			t.Fatalf("%s: %d member rates, %d latencies, %d CPU figures; want 2 each", name,
				len(p.MemberMsgsPerSec), len(p.MemberLatency), len(p.MemberCPUUsPerMsg))
		}
		if p.Latency.Count == 0 || p.Latency.P50 <= 0 || p.Latency.Max < p.Latency.P99 {
			t.Errorf("%s: latency %+v", name, p.Latency)
		}
		if p.Sent == 0 {
			t.Errorf("%s: nothing sent", name)
		}
		// The receiver (member 1) timed 1 message in K of those it
		// delivered in the window (by send time, not by the snapshots':
		// a few more or less at the edges).
		k := float64(rep.Setup.SampleEvery)
		if want := p.MemberMsgsPerSec[1] * cfg.Duration.Seconds() / k; math.Abs(float64(p.MemberLatency[1].Count)-want) > 0.1*want {
			t.Errorf("%s: receiver timed %d messages at K=%v, want about %.0f", name, p.MemberLatency[1].Count, k, want)
		}
		// Every member's process used CPU for its deliveries, and no more
		// than the machine has: at most all its cores for the window.
		if p.CPUUsPerMsg <= 0 {
			t.Errorf("%s: cpu_us_per_msg %v", name, p.CPUUsPerMsg)
		}
		for i, us := range p.MemberCPUUsPerMsg {
			if cpuPerSec := us * p.MemberMsgsPerSec[i]; cpuPerSec <= 0 || cpuPerSec > float64(runtime.NumCPU())*1.05e6 {
				t.Errorf("%s: member %d: %v µs/msg at %v msgs/s is %v µs of CPU a second", name, i, us, p.MemberMsgsPerSec[i], cpuPerSec)
			}
		}
	}
	if rep.Setup.SampleEvery != peakSampleEvery {
		t.Errorf("sample_every %d at an unlimited rate, want %d", rep.Setup.SampleEvery, peakSampleEvery)
	}
	if rep.Ratio <= 0 {
		t.Errorf("ratio %v", rep.Ratio)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	m := checkReportJSON(t, b)
	if setup := m["setup"].(map[string]any); setup["members"] != json.Number("2") {
		t.Errorf("setup.members = %v", setup["members"])
	}
	for _, phase := range Phases {
		if !strings.Contains(progress.String(), phase+" ") {
			t.Errorf("no progress line for %s:\n%s", phase, progress.String())
		}
	}
	t.Logf("%s", b)
}

func TestRunFailsCleanly(t *testing.T) {
	// A child program that is not a benchmark child: Run must fail fast,
	// not hang, and leave nothing running (it waits for its children).
	cfg := DefaultConfig()
	cfg.Members = 2
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Run(ctx, cfg, Options{
		// Runs no test and exits at once.
		Child:  ChildSpec{Path: exe, Args: []string{"-test.run=^$"}},
		Stderr: &bytes.Buffer{},
	})
	if err == nil {
		t.Fatal("run with children that exit succeeded")
	}
	t.Logf("error as expected: %v", err)
	if time.Since(start) > 10*time.Second {
		t.Fatalf("failing took %v", time.Since(start))
	}
}

func TestRunCancelled(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Members = 2
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Run(ctx, cfg, Options{
		Child:  ChildSpec{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{childEnv + "=1"}},
		Stderr: &bytes.Buffer{},
	})
	if err == nil {
		t.Fatal("cancelled run succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
}

// Several orderings in one run: the same processes measure the baseline
// once, then the engine once per ordering.
func TestEndToEndOrders(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes and runs for a few seconds")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Members = 2
	cfg.Order = "unordered,fifo"
	cfg.Rate = 20000
	cfg.Duration = 500 * time.Millisecond
	cfg.Warmup = 100 * time.Millisecond
	var progress, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := ChildSpec{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{childEnv + "=1"}}
	if _, err := Run(ctx, cfg, Options{Child: child, Stderr: &stderr}); err == nil {
		t.Error("Run took a list of orderings")
	}
	reps, err := RunOrders(ctx, cfg, Options{Child: child, Progress: &progress, Stderr: &stderr})
	if err != nil {
		t.Fatalf("run: %v\nchildren's stderr:\n%s", err, stderr.String())
	}
	if len(reps) != 2 {
		t.Fatalf("%d reports", len(reps))
	}
	for i, o := range []string{"unordered", "fifo"} {
		r := reps[i]
		if r.Setup.Order != o || r.Engine.MsgsPerSec <= 0 || r.Engine.Sent == 0 || r.Ratio <= 0 {
			t.Errorf("%s: %+v", o, r)
		}
		if r.Baseline.MsgsPerSec != reps[0].Baseline.MsgsPerSec {
			t.Errorf("%s: not the shared baseline", o)
		}
		if !strings.Contains(progress.String(), "engine/"+o+" ") {
			t.Errorf("no progress line for engine/%s:\n%s", o, progress.String())
		}
	}
	var table bytes.Buffer
	if err := WriteTables(&table, reps); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
}

// With a key file, the same processes measure the keyed engine after the
// keyless one; the report holds both and their ratio.
func TestEndToEndKeyed(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes and runs for a few seconds")
	}
	cfg := DefaultConfig()
	cfg.Members = 2
	cfg.Rate = 20000
	cfg.Duration = 500 * time.Millisecond
	cfg.Warmup = 100 * time.Millisecond
	cfg.KeyFile = writeKey(t)
	rep, progress := runSelf(t, cfg)
	k := rep.Keyed
	if k == nil || !rep.Setup.Keyed {
		t.Fatalf("no keyed phase: %+v", rep)
	}
	if k.MsgsPerSec <= 0 || k.Sent == 0 || k.Latency.Count == 0 || len(k.MemberMsgsPerSec) != 2 {
		t.Errorf("keyed: %+v", k)
	}
	if want := k.MsgsPerSec / rep.Engine.MsgsPerSec; rep.KeyedRatio == nil || *rep.KeyedRatio != want {
		t.Errorf("keyed ratio %v, want %v", rep.KeyedRatio, want)
	}
	if n := k.refusals(); n != 0 {
		t.Errorf("keyed engine refused %d datagrams: %+v", n, k)
	}
	if !strings.Contains(progress.String(), PhaseKeyed+" ") {
		t.Errorf("no progress line for the keyed phase:\n%s", progress.String())
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	checkKeyedJSON(t, checkReportJSON(t, b), b)
	var table bytes.Buffer
	if err := WriteTables(&table, []*Report{rep}); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
}

// Several groups among the same processes: the sender's messages spread
// over them, every group delivers at every member, and the report has
// each group's rate and the idle phase's costs.
func TestEndToEndGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes and runs for a few seconds")
	}
	cfg := DefaultConfig()
	cfg.Groups = 3
	cfg.Rate = 30000
	cfg.Duration = time.Second
	cfg.Warmup = 100 * time.Millisecond
	cfg.Idle = 500 * time.Millisecond
	rep, progress := runSelf(t, cfg)
	if rep.Setup.Groups != 3 {
		t.Errorf("setup.groups %d", rep.Setup.Groups)
	}
	g := rep.Engine.Groups
	if g == nil {
		t.Fatal("no per-group rates")
	}
	// Each group carries a third of the sender's 30,000 msgs/s.
	if g.Count != 3 || g.Delivering != 3 || g.MinMsgsPerSec < 0.5*cfg.Rate/3 || g.MaxMsgsPerSec > 1.5*cfg.Rate/3 {
		t.Errorf("per group: %+v, want 3 groups delivering about %v msgs/s each", *g, cfg.Rate/3)
	}
	if d := rep.Engine.MsgsPerSec - 3*g.MeanMsgsPerSec; d < -0.01*rep.Engine.MsgsPerSec {
		t.Errorf("msgs_per_sec %v below the groups' sum %v", rep.Engine.MsgsPerSec, 3*g.MeanMsgsPerSec)
	}
	if rep.Engine.CPUUsPerMsg <= 0 || rep.Engine.Latency.Count == 0 {
		t.Errorf("engine: cpu_us_per_msg %v, latency %+v", rep.Engine.CPUUsPerMsg, rep.Engine.Latency)
	}
	if rep.Baseline.MsgsPerSec <= 0 || rep.Baseline.Groups != nil {
		t.Errorf("baseline: %v msgs/s, groups %+v", rep.Baseline.MsgsPerSec, rep.Baseline.Groups)
	}
	ig := rep.Groups
	if ig == nil {
		t.Fatal("no idle phase")
	}
	// Idle processes still send heartbeats; joining groups grows the
	// heap and the resident set.
	if ig.Count != 3 || ig.IdleS < 0.4 || ig.IdleDatagramsPerSec <= 0 || len(ig.MemberIdleDatagramsPerSec) != cfg.Members ||
		ig.HeapBytes == 0 || ig.HeapBytesPerGroup <= 0 || ig.IdleCPUUsPerSecPerGroup <= 0 {
		t.Errorf("idle: %+v", *ig)
	}
	if runtime.GOOS == "linux" && (ig.RSSBytes == 0 || ig.RSSBytes < ig.HeapBytes/2) {
		t.Errorf("idle: rss %d with a heap of %d", ig.RSSBytes, ig.HeapBytes)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	checkGroupsJSON(t, checkReportJSON(t, b), b, 3)
	if !strings.Contains(progress.String(), "idle ") {
		t.Errorf("no progress line for the idle phase:\n%s", progress.String())
	}
	var table bytes.Buffer
	if err := WriteTables(&table, []*Report{rep}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 groups", "engine per group", "idle, no traffic"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	t.Logf("\n%s", table.String())
}
