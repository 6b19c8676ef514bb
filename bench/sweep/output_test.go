package sweep

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cohort-vs/cohort/bench"
)

// synthetic is the result of a --quick-like sweep with made-up figures:
// throughput falls with size and members, latency rises with load; the
// point at 6 members failed.
func synthetic(t *testing.T) *Result {
	t.Helper()
	cfg := parse(t, "--quick", "--members", "2,3,4,6")
	res := NewResult(cfg)
	for i, p := range cfg.Points() {
		bc := cfg.benchConfig(p)
		if p.Members == 6 {
			res.addPoint(i+1, bc, cfg.Orders, nil, errors.New("member 5 exited unexpectedly waiting for result: signal: killed"))
			continue
		}
		var reps []*bench.Report
		base := 4e6 / math.Sqrt(float64(p.Size)) / float64(p.Members)
		if p.Rate > 0 {
			base = min(base, p.Rate)
		}
		lat := func(f float64) bench.Latency {
			l := int64(20*f + p.Rate/1000*f)
			return bench.Latency{P50: l, P90: 2 * l, P99: 5 * l, P999: 9 * l, Max: 10 * l, Count: 1000}
		}
		for j, o := range cfg.Orders {
			c := bc
			c.Order = o
			eng := base * (0.6 - 0.1*float64(j))
			reps = append(reps, &bench.Report{
				Setup:    bench.NewSetup(c),
				Engine:   bench.PhaseSummary{MsgsPerSec: eng, MBPerSec: eng * float64(p.Size) / 1e6, Latency: lat(1.5 + float64(j)), Sent: 100, Delivered: 300},
				Baseline: bench.PhaseSummary{MsgsPerSec: base, MBPerSec: base * float64(p.Size) / 1e6, Latency: lat(1), KernelDrops: 7},
				Ratio:    0.6 - 0.1*float64(j),
			})
		}
		res.addPoint(i+1, bc, cfg.Orders, reps, nil)
	}
	return res
}

func TestWriteCSV(t *testing.T) {
	res := synthetic(t)
	var b bytes.Buffer
	if err := WriteCSV(&b, res); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], CSVHeader()) {
		t.Fatalf("header %v", recs[0])
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	if len(recs) != 1+12*3 {
		t.Fatalf("%d lines, want a header and 36 rows", len(recs))
	}
	failed := 0
	for _, rec := range recs[1:] {
		if len(rec) != len(recs[0]) {
			t.Fatalf("row of %d fields: %v", len(rec), rec)
		}
		if rec[col["error"]] != "" {
			failed++
			if rec[col["members"]] != "6" || rec[col["engine_msgs_per_sec"]] != "" || rec[col["baseline_p99_us"]] != "" || rec[col["ratio"]] != "" {
				t.Errorf("failed row %v", rec)
			}
			continue
		}
		eng, err1 := strconv.ParseFloat(rec[col["engine_msgs_per_sec"]], 64)
		base, err2 := strconv.ParseFloat(rec[col["baseline_msgs_per_sec"]], 64)
		if err1 != nil || err2 != nil || eng <= 0 || base <= eng {
			t.Errorf("row %v: engine %q baseline %q", rec, rec[col["engine_msgs_per_sec"]], rec[col["baseline_msgs_per_sec"]])
		}
		if rec[col["cpus"]] == "" || rec[col["go"]] == "" || rec[col["warmup_s"]] != "0.3" || rec[col["baseline_kernel_drops"]] != "7" {
			t.Errorf("row %v", rec)
		}
	}
	if failed != 3 {
		t.Errorf("%d failed rows, want 3 (one per ordering of the failed point)", failed)
	}
}

func TestWriteJSON(t *testing.T) {
	res := synthetic(t)
	var b bytes.Buffer
	if err := WriteJSON(&b, res); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Sweep.Plan != PlanAxes || back.Sweep.Runs != 12 || back.Sweep.Done != 12 || back.Sweep.Failed != 1 ||
		back.Sweep.Base != "members=3,size=64,senders=1,rate=0" || !slices.Equal(back.Sweep.Senders, []string{"1"}) {
		t.Errorf("sweep %+v", back.Sweep)
	}
	if len(back.Points) != 36 {
		t.Fatalf("%d points", len(back.Points))
	}
	for i, row := range back.Points {
		want := res.Points[i]
		if row.Setup != want.Setup || row.Error != want.Error || row.OK() != want.OK() {
			t.Errorf("row %d: %+v, want %+v", i, row, want)
		}
		if row.OK() && (row.Engine.MsgsPerSec != want.Engine.MsgsPerSec || row.Baseline.Latency != want.Baseline.Latency) {
			t.Errorf("row %d figures differ", i)
		}
	}
	// A failed point's rows carry its error and no figures.
	var raw struct {
		Points []map[string]any `json:"points"`
	}
	if err := json.Unmarshal(b.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, p := range raw.Points {
		_, hasEngine := p["engine"]
		if e, failed := p["error"]; failed == hasEngine || (failed && !strings.Contains(e.(string), "exited")) {
			t.Errorf("point %v", p)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	res := synthetic(t)
	for range 2 { // a sweep rewrites them after every point
		if err := WriteFiles(dir, res); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o644 || info.Size() == 0 {
			t.Errorf("%s: mode %v, %d bytes", e.Name(), info.Mode(), info.Size())
		}
	}
	if !slices.Equal(names, []string{CSVFile, JSONFile}) {
		t.Errorf("files %v", names)
	}
	if err := WriteFiles(filepath.Join(dir, "missing"), res); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
