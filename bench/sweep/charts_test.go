package sweep

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cohort-vs/cohort/bench"
)

func TestWriteCharts(t *testing.T) {
	dir := t.TempDir()
	res := synthetic(t)
	files, err := WriteCharts(dir, res)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	want := []string{
		"throughput-size_m3_s1_unlimited.png",
		"throughput-members_64B_s1_unlimited.png",
		"latency-load_m3_s1_64B_fifo.png",
		"latency-load_m3_s1_64B_causal.png",
		"latency-load_m3_s1_64B_total.png",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("charts\n got %v\nwant %v", names, want)
	}
	for _, f := range files {
		checkPNG(t, f)
	}
}

// checkPNG checks that path holds a PNG of the charts' size.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != 864 || b.Dy() != 528 {
		t.Errorf("%s: %v", path, b)
	}
}

// Charts from a grid sweep: one per slice; figures that a log axis can
// not show (zeros) and failed points are left out, not fatal.
func TestWriteChartsGrid(t *testing.T) {
	cfg := parse(t, "--members", "2,3", "--senders", "1", "--size", "64,1024", "--rate", "1000,0", "--order", "total", "--safe")
	res := NewResult(cfg)
	for i, p := range cfg.Points() {
		bc := cfg.benchConfig(p)
		bc.Order = "total"
		rep := &bench.Report{Setup: bench.NewSetup(bc),
			Engine:   bench.PhaseSummary{MsgsPerSec: 1000},
			Baseline: bench.PhaseSummary{MsgsPerSec: 2000, Latency: bench.Latency{P50: 10, P99: 100, P999: 1000}}}
		if i == 0 {
			rep.Engine.MsgsPerSec = 0 // measured nothing
		}
		res.addPoint(i+1, bc, cfg.Orders, []*bench.Report{rep}, nil)
	}
	dir := t.TempDir()
	files, err := WriteCharts(dir, res)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		checkPNG(t, f)
	}
	want := []string{
		"throughput-size_m2_s1_r1000.png", "throughput-size_m2_s1_unlimited.png",
		"throughput-size_m3_s1_r1000.png", "throughput-size_m3_s1_unlimited.png",
		"throughput-members_64B_s1_r1000.png", "throughput-members_64B_s1_unlimited.png",
		"throughput-members_1024B_s1_r1000.png", "throughput-members_1024B_s1_unlimited.png",
	}
	// One rate above zero: no latency chart.
	if !slices.Equal(names, want) {
		t.Errorf("charts\n got %v\nwant %v", names, want)
	}

	// Charts of an earlier sweep go; other files stay.
	other := filepath.Join(dir, "notes.png")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RemoveCharts(dir); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if !slices.Equal(left, []string{other}) {
		t.Errorf("left after RemoveCharts: %v", left)
	}
}

func TestLogTicks(t *testing.T) {
	ticks := logTicks{format: shortCount}.Ticks(math.Log10(30), math.Log10(2e7))
	var labels []string
	for _, tk := range ticks {
		if v := math.Pow(10, tk.Value); v < 30*0.999 || v > 2e7*1.001 {
			t.Errorf("tick %v outside the range", tk.Value)
		}
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if !slices.Equal(labels, []string{"100", "1k", "10k", "100k", "1M", "10M"}) {
		t.Errorf("labels %v", labels)
	}
	// Less than three decades: 2 and 5 are labelled too.
	labels = nil
	for _, tk := range (logTicks{format: microseconds}).Ticks(math.Log10(15), math.Log10(900)) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if !slices.Equal(labels, []string{"20 µs", "50 µs", "100 µs", "200 µs", "500 µs"}) {
		t.Errorf("labels %v", labels)
	}
	if ticks := (logTicks{format: shortCount}).Ticks(math.Inf(-1), 1); ticks != nil {
		t.Errorf("ticks for a range from 0: %v", ticks)
	}
}

func TestLabelTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   []string
	}{
		{0, 275000, []string{"0", "50k", "100k", "150k", "200k", "250k"}},
		{0, 4.4e6, []string{"0", "1M", "2M", "3M", "4M"}},
		{0, 11, []string{"0", "2", "4", "6", "8", "10"}},
	} {
		var labels []string
		for _, tk := range (labelTicks{format: shortCount}).Ticks(c.lo, c.hi) {
			labels = append(labels, tk.Label)
		}
		if !slices.Equal(labels, c.want) {
			t.Errorf("ticks for %v..%v: %v, want %v", c.lo, c.hi, labels, c.want)
		}
	}
}
