package sweep

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/bench"
)

// childEnv makes the test binary run as a benchmark member instead of
// running tests, so the real sweep needs nothing built.
const childEnv = "VSBENCH_SWEEP_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(bench.ChildMain())
	}
	os.Exit(m.Run())
}

func testChild(t *testing.T, member bool) bench.ChildSpec {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := bench.ChildSpec{Path: exe, Args: []string{"-test.run=^$"}}
	if member {
		spec.Env = []string{childEnv + "=1"}
	}
	return spec
}

// Points whose members exit at once fail; the sweep records each one's
// error in its rows and goes on to the next.
func TestRunRecordsFailures(t *testing.T) {
	cfg := parse(t, "--members", "2", "--senders", "1", "--size", "64,128", "--order", "fifo,total", "--duration", "1s",
		"--out", t.TempDir())
	var progress bytes.Buffer
	calls := 0
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg, Options{
		Child:    testChild(t, false), // runs no test and exits
		Stderr:   &bytes.Buffer{},
		Progress: &progress,
		Done: func(r *Result) error {
			calls++
			return WriteFiles(cfg.Out, r)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed() != 2 || res.Sweep.Done != 2 || len(res.Points) != 4 || calls != 2 {
		t.Fatalf("failed %d, done %d, %d rows, %d calls: %+v", res.Failed(), res.Sweep.Done, len(res.Points), calls, res)
	}
	for _, row := range res.Points {
		if row.OK() || !strings.Contains(row.Error, "member") {
			t.Errorf("row %+v", row)
		}
	}
	out := progress.String()
	for _, want := range []string{"sweep: 2 points", "sweep 1/2 (50%)", "sweep 2/2 (100%)", "FAILED", "left]"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	csv, err := os.ReadFile(filepath.Join(cfg.Out, CSVFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(csv), "\n"); n != 5 {
		t.Errorf("CSV has %d lines, want 5:\n%s", n, csv)
	}
}

// A tiny real sweep: two points of one ordering, 1 s per phase, then its
// files and charts.
func TestRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs member processes for about 6 seconds")
	}
	dir := t.TempDir()
	cfg := parse(t, "--members", "2", "--senders", "1", "--size", "64,16KiB", "--order", "fifo",
		"--duration", "1s", "--warmup", "100ms", "--out", dir)
	var progress, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg, Options{Child: testChild(t, true), Stderr: &stderr, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("progress:\n%s", progress.String())
	if res.Failed() != 0 || len(res.Points) != 2 {
		t.Fatalf("%d failed, %d rows; members' stderr:\n%s\nrows: %+v", res.Failed(), len(res.Points), stderr.String(), res.Points)
	}
	for _, row := range res.Points {
		if !row.OK() || row.Engine.MsgsPerSec <= 0 || row.Baseline.MsgsPerSec <= 0 || row.Engine.Latency.P99 <= 0 || row.Ratio <= 0 {
			t.Errorf("row %+v engine %+v baseline %+v", row, row.Engine, row.Baseline)
		}
	}
	if err := WriteFiles(dir, res); err != nil {
		t.Fatal(err)
	}
	charts, err := WriteCharts(dir, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(charts) != 1 || filepath.Base(charts[0]) != "throughput-size_m2_s1_unlimited.png" {
		t.Fatalf("charts %v", charts)
	}
	checkPNG(t, charts[0])
	for _, f := range []string{CSVFile, JSONFile} {
		if info, err := os.Stat(filepath.Join(dir, f)); err != nil || info.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
