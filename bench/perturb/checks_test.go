package perturb

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// synthetic is a study of 2 steps (100%, then 10%) of 4 s in 250 ms
// intervals: under block the group runs at blockAt10 in the 10% step;
// under evict the member is removed evictAt into it and the healthy
// rate returns to 1.2M, above the unperturbed 1M.
func synthetic(blockAt10 float64, evictAt time.Duration) *Result {
	const interval = 250 * time.Millisecond
	r := &Result{
		Setup: Setup{Members: 4, Senders: 1, Slow: 3, Method: MethodDelay, DelayMode: "sleep", IntervalS: interval.Seconds(),
			HoldS: 4, Target: 0.1, Levels: []float64{1, 0.1}, Policies: []string{PolicyBlock, PolicyEvict}, CPUs: 2, GOMAXPROCS: 1},
		Steps: Schedule([]float64{1, 0.1}, 4*time.Second),
		Calibration: &Calibration{Unperturbed: 4e6, Levels: []LevelCalibration{
			{Level: 1, Alone: 4e6, Describe: "unperturbed"},
			{Level: 0.1, Setting: 2250, Alone: 4e5, Target: 4e5, Describe: "delay 2.25µs per delivery"},
		}},
	}
	block := PolicyRun{Policy: PolicyBlock, RemovedS: -1}
	evict := PolicyRun{Policy: PolicyEvict, RemovedS: -1}
	for seq := 1; seq <= 32; seq++ {
		end := time.Duration(seq) * interval
		mid := end - interval/2
		step := StepAt(r.Steps, mid)
		p := Point{Seq: seq, T: end.Seconds(), Step: step, Level: r.Steps[step].Level, Healthy: 1e6, Slow: 1e6, P50: 100, P99: 900, ViewSize: 4, SlowIncarnations: 1}
		b, e := p, p
		if step == 1 {
			b.Healthy, b.Slow = blockAt10, blockAt10
			since := mid - r.Steps[1].Start
			if since < evictAt {
				e.Healthy, e.Slow = 4e5, 4e5
			} else {
				e.Healthy, e.Slow, e.SlowRemoved, e.ViewSize = 1.2e6, 0, true, 3
				if evict.RemovedS < 0 {
					evict.RemovedS = mid.Seconds()
				}
			}
		}
		block.Points = append(block.Points, b)
		evict.Points = append(evict.Points, e)
	}
	r.Runs = []PolicyRun{block, evict}
	r.Checks = Checks(r)
	return r
}

func TestChecks(t *testing.T) {
	r := synthetic(3.8e5, 1250*time.Millisecond)
	if u, ok := Unperturbed(r, &r.Runs[0]); !ok || u != 1e6 {
		t.Fatalf("unperturbed %v %v", u, ok)
	}
	if len(r.Checks) != 2 {
		t.Fatalf("checks %v", r.Checks)
	}
	block, evict := r.Checks[0], r.Checks[1]
	if !block.Checked || !block.Pass || !strings.Contains(block.String(), "PASS block") || !strings.Contains(block.Text, "95%") {
		t.Errorf("block: %v", block)
	}
	// Removed 1.25 s into the step: the first full interval at 1.2M
	// starts then.
	if !evict.Checked || !evict.Pass || !strings.Contains(evict.Text, "from 1.25s after") {
		t.Errorf("evict: %v", evict)
	}

	r = synthetic(3.2e5, 3500*time.Millisecond)
	block, evict = r.Checks[0], r.Checks[1]
	if !block.Checked || block.Pass || !strings.Contains(block.String(), "FAIL block") || !strings.Contains(block.Text, "80%") {
		t.Errorf("block below 90%%: %v", block)
	}
	// Removed 3.5 s into a 4 s step: no full window shows it recovered.
	if !evict.Checked || evict.Pass || !strings.Contains(evict.Text, "did not recover") || !strings.Contains(evict.Text, "removed 3.62s into") {
		t.Errorf("evict after 3.5 s: %v", evict)
	}
	r = synthetic(3.2e5, 3*time.Second)
	if evict := r.Checks[1]; !evict.Checked || !evict.Pass || !strings.Contains(evict.Text, "from 3.00s after") {
		t.Errorf("evict after 3 s: %v", evict)
	}

	// Never removed: never recovered.
	r = synthetic(3.8e5, time.Hour)
	if evict := r.Checks[1]; evict.Pass || !strings.Contains(evict.Text, "did not recover") || !strings.Contains(evict.Text, "never removed") {
		t.Errorf("never removed: %v", evict)
	}

	// Removed in an earlier step: nothing to check at the target level.
	r = synthetic(3.8e5, 1250*time.Millisecond)
	r.Runs[1].RemovedS = 3.5
	if evict := Checks(r)[1]; evict.Checked || !strings.Contains(evict.Text, "3.50s into the 100% step") || !strings.Contains(evict.Text, "--steps 100,10") {
		t.Errorf("removed before the target step: %v", evict)
	}

	// Without an unperturbed step there is nothing to compare with.
	r = synthetic(3.8e5, time.Second)
	r.Steps[0].Level = 0.5
	if evict := Checks(r)[1]; evict.Checked || !strings.Contains(evict.String(), "NOT CHECKED") {
		t.Errorf("no unperturbed step: %v", evict)
	}
	r.Runs[0].Error = "boom"
	if block := Checks(r)[0]; block.Checked || !strings.Contains(block.Text, "boom") {
		t.Errorf("failed run: %v", block)
	}
}

func TestSummaries(t *testing.T) {
	r := synthetic(3.8e5, 1250*time.Millisecond)
	sums := Summaries(r)
	if len(sums) != 4 {
		t.Fatalf("summaries %+v", sums)
	}
	if s := sums[1]; s.Policy != PolicyBlock || s.Level != 0.1 || s.Median != 3.8e5 || s.Low != 3.8e5 || s.Alone != 4e5 || s.Removed {
		t.Errorf("block 10%%: %+v", s)
	}
	if s := sums[3]; !s.Removed || s.Median != 1.2e6 || s.Low != 4e5 {
		t.Errorf("evict 10%%: %+v", s)
	}
	var buf bytes.Buffer
	if err := WriteSummary(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"capacity 4M msgs/s", "delay 2.25µs per delivery", "PASS block", "PASS evict", "removed"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestWriteFilesAndCharts(t *testing.T) {
	r := synthetic(3.8e5, 1250*time.Millisecond)
	dir := t.TempDir()
	if err := WriteFiles(dir, r); err != nil {
		t.Fatal(err)
	}
	csvPath, jsonPath := Files(dir, MethodDelay)
	if filepath.Base(csvPath) != "perturb_delay.csv" || filepath.Base(jsonPath) != "perturb_delay.json" {
		t.Errorf("files %s %s", csvPath, jsonPath)
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+2*32 || strings.Join(rows[0], ",") != strings.Join(CSVHeader(), ",") {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	// The last evict row: the 10% step, removed, view of 3.
	last := map[string]string{}
	for i, h := range rows[0] {
		last[h] = rows[len(rows)-1][i]
	}
	if last["policy"] != "evict" || last["level"] != "0.1" || last["setting"] != "2250" || last["alone_msgs_per_sec"] != "400000" ||
		last["healthy_msgs_per_sec"] != "1200000" || last["slow_removed"] != "true" || last["view_size"] != "3" || last["t_s"] != "8.000" {
		t.Errorf("last row %v", last)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Runs) != 2 || len(back.Runs[1].Points) != 32 || back.Runs[1].RemovedS != r.Runs[1].RemovedS ||
		back.Steps[1].Start != 4*time.Second || len(back.Checks) != 2 || !back.Checks[0].Pass {
		t.Errorf("JSON round trip: %+v", back)
	}

	files, err := WriteCharts(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"perturb-throughput_delay.png", "perturb-latency_delay.png"}
	if len(files) != len(want) {
		t.Fatalf("charts %v", files)
	}
	for i, path := range files {
		if filepath.Base(path) != want[i] {
			t.Errorf("chart %s, want %s", path, want[i])
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if b := img.Bounds(); b.Dx() != 864 || b.Dy() != 528 {
			t.Errorf("%s: %v", path, b)
		}
	}
}
