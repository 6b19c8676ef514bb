package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/bench/perturb"
	"github.com/cohort-vs/cohort/bench/sweep"
	"github.com/cohort-vs/cohort/internal/netlab"
)

// write writes data (a string, or a value as JSON) to a file in dir.
func write(t *testing.T, dir, name string, data any) string {
	t.Helper()
	path := filepath.Join(dir, name)
	var b []byte
	switch d := data.(type) {
	case string:
		b = []byte(d)
	default:
		var err error
		if b, err = json.Marshal(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func wantContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
}

func wantError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{grouped(2981234.4), "2,981,234"}, {grouped(999), "999"}, {grouped(-1234), "-1,234"},
		{short(2981234), "2.98M"}, {short(452000), "452k"}, {short(9999.7), "10.0k"}, {short(999999), "1.00M"},
		{short(34), "34"}, {short(34.5), "34.5"}, {short(1.5e9), "1.50G"},
		{size(64), "64 B"}, {size(1024), "1 KiB"}, {size(16 << 20), "16 MiB"}, {size(1500), "1500 B"},
		{millis(466 * time.Millisecond), "466 ms"}, {millis(1034 * time.Millisecond), "1,034 ms"}, {millis(400 * time.Microsecond), "0.4 ms"},
		{grouped1(1327.44), "1,327.4"}, {grouped1(0.96), "1.0"}, {grouped1(-2.25), "-2.3"},
		{ratio(0.3456), "0.35"}, {percent(0.987), "99%"},
		{cell("a|b\nc"), `a\|b c`}, {code("a`b"), "`` a`b ``"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if m := median([]float64{3, 1, 2, 4}); m != 2 {
		t.Errorf("median %v, want the lower middle 2", m)
	}
}

func phase(rate, mb float64, p50, p99 int64) bench.PhaseSummary {
	return bench.PhaseSummary{MsgsPerSec: rate, MBPerSec: mb, Latency: bench.Latency{P50: p50, P90: p50 * 2, P99: p99, Count: 1000}}
}

func report(order string, engine, baseline float64) *bench.Report {
	return &bench.Report{
		Setup:    bench.Setup{Members: 3, Senders: 1, Size: 64, Order: order, DurationS: 5},
		Engine:   phase(engine, engine*64/1e6, 50, 200),
		Baseline: phase(baseline, baseline*64/1e6, 40, 120),
		Ratio:    engine / baseline,
	}
}

func TestVsbenchRowMedianRun(t *testing.T) {
	dir := t.TempDir()
	// Three runs of --order fifo,total: the median fifo run is the second
	// (2.9M), whose baseline is 8M: the row shows that run's ratio.
	runs := [][2]float64{{3.1e6, 9e6}, {2.9e6, 8e6}, {2.5e6, 7e6}}
	var files []string
	for i, r := range runs {
		files = append(files, write(t, dir, "r"+string(rune('1'+i))+".json",
			[]*bench.Report{report("fifo", r[0], r[1]), report("total", r[0]*0.9, r[1])}))
	}
	got, err := vsbenchRow("FIFO throughput", metricMsgs, "fifo", false, "go run ./cmd/vsbench --order fifo,total --json", files)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "| FIFO throughput | fifo, 64 B, 3 members, 1 sender, unpaced |", "| 2,900,000 msgs/s | 8,000,000 msgs/s | 0.36 |",
		"3.10M, 2.90M, 2.50M msgs/s", "`go run ./cmd/vsbench --order fifo,total --json`")
	if _, err := vsbenchRow("x", metricMsgs, "causal", false, "c", files); err == nil {
		t.Fatal("no error for an ordering the runs lack")
	} else {
		wantError(t, err, "no causal report (the output has fifo, total)")
	}
	if _, err := vsbenchRow("x", metricMsgs, "", false, "c", files); err == nil {
		t.Fatal("no error for an output of two orderings and no -order")
	}
}

func TestVsbenchRowMetrics(t *testing.T) {
	dir := t.TempDir()
	r := report("fifo", 99990, 99995)
	r.Setup.Rate = 100000
	lat := write(t, dir, "lat.json", r)
	got, err := vsbenchRow("latency", metricLatency, "", false, "c", []string{lat})
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "100,000 msgs/s offered", "p50 / p90 / p99 50 / 100 / 200 µs", "p50 / p90 / p99 40 / 80 / 120 µs", "1.67 (p99)", "200 µs p99")

	k := report("fifo", 2.8e6, 8e6)
	kr := 0.95
	kp := phase(2.66e6, 0, 55, 300)
	k.Keyed, k.KeyedRatio, k.Setup.Keyed = &kp, &kr, true
	keyed := write(t, dir, "keyed.json", k)
	got, err = vsbenchRow("keyed", metricKeyed, "", false, "c", []string{keyed})
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "2,660,000 msgs/s keyed, 0.95 of keyless (2,800,000)", "| 8,000,000 msgs/s | 0.33 |", "0.95 keyed / keyless")
	got, err = vsbenchRow("keyed latency", metricKeyedLatency, "", false, "c", []string{keyed})
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "p50 / p99 keyed 55 / 300 µs, keyless 50 / 200 µs", "2.50 (keyed p99)")

	big := report("fifo", 34, 80)
	big.Setup.Size = 16 << 20
	big.Engine.MBPerSec, big.Baseline.MBPerSec = 570.4, 1350.9
	got, err = vsbenchRow("16 MiB", metricMB, "", false, "c", []string{write(t, dir, "big.json", big)})
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "16 MiB", "570.4 MB/s (34 msgs/s)", "1,350.9 MB/s", "0.42", "570 MB/s")
}

func TestVsbenchRowFailures(t *testing.T) {
	dir := t.TempDir()
	good := write(t, dir, "good.json", report("fifo", 3e6, 8e6))
	other := report("fifo", 3e6, 8e6)
	other.Setup.Size = 1024
	zero := report("fifo", 0, 8e6)
	for _, tc := range []struct {
		name   string
		metric string
		files  []string
		want   string
	}{
		{"invalid JSON", metricMsgs, []string{write(t, dir, "bad.json", `{"setup": {`)}, "not vsbench --json output"},
		{"empty output", metricMsgs, []string{write(t, dir, "empty.json", "\n")}, "empty"},
		{"other JSON", metricMsgs, []string{write(t, dir, "other.json", `{"mode":"kill"}`)}, "no setup"},
		{"missing file", metricMsgs, []string{filepath.Join(dir, "missing.json")}, "no such file"},
		{"no file", metricMsgs, nil, "no vsbench output"},
		{"different setups", metricMsgs, []string{good, write(t, dir, "1k.json", other)}, "a different setup"},
		{"nothing delivered", metricMsgs, []string{write(t, dir, "zero.json", zero)}, "the engine delivered nothing"},
		{"keyed without a key", metricKeyed, []string{good}, "no keyed phase"},
		{"unknown metric", "speed", []string{good}, "-metric"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := vsbenchRow("x", tc.metric, "", false, "c", tc.files)
			wantError(t, err, tc.want)
			if got != "" {
				t.Fatalf("a row with an error: %s", got)
			}
		})
	}
}

func TestCrashRow(t *testing.T) {
	dir := t.TempDir()
	kill := func(views ...time.Duration) string {
		r := bench.CrashResult{Mode: "kill", Members: make([]string, len(views)+1), Sends: 1000, Deliveries: 3000}
		for _, v := range views {
			r.Detections = append(r.Detections, bench.Detection{After: v, FirstDelivery: v + time.Millisecond})
		}
		b, _ := json.Marshal(r)
		return string(b) + "\n"
	}
	ms := time.Millisecond
	path := write(t, dir, "kill.json", kill(450*ms, 470*ms)+kill(460*ms, 1100*ms)+kill(480*ms, 455*ms))
	got, err := crashRow("kill", "go run ./cmd/vsbench crash --runs 3", path)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "3 runs; kill to new view at the slowest survivor: min 470 ms, median 480 ms, max 1,100 ms (2 of 3 within 1 s)",
		"first delivery in it at most 1,101 ms after the kill", "0 violations (3.00k sends, 9.00k deliveries checked)")

	pause, _ := json.Marshal(bench.CrashResult{Mode: "pause", Members: []string{"a", "b"}})
	got, err = crashRow("pause", "c", write(t, dir, "pause.json", string(pause)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "1 run; no view change in 1 of 1")

	bad, _ := json.Marshal(bench.CrashResult{Mode: "kill", Members: []string{"a", "b"}, Detections: []bench.Detection{{After: ms}}, Exits: []string{"b: status 4"}})
	_, err = crashRow("x", "c", write(t, dir, "bad.json", string(bad)+"\n"))
	wantError(t, err, "run 1 is not clean")
	_, err = crashRow("x", "c", write(t, dir, "junk.json", "run 1: kill\n"))
	wantError(t, err, "not vsbench crash --json output")
	_, err = crashRow("x", "c", write(t, dir, "none.json", ""))
	wantError(t, err, "no run reported")
}

// goTestJSON is go test -json output of a test with two subtests, each
// logging a line, and a second test.
const goTestJSON = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"run","Package":"p","Test":"TestA/run1"}
{"Action":"output","Package":"p","Test":"TestA/run1","Output":"    a_test.go:10: took 466ms; 3 sends\n"}
{"Action":"pass","Package":"p","Test":"TestA/run1","Elapsed":1.5}
{"Action":"run","Package":"p","Test":"TestA/run2"}
{"Action":"output","Package":"p","Test":"TestA/run2","Output":"    a_test.go:10: took 470ms; 4 sends\n"}
{"Action":"pass","Package":"p","Test":"TestA/run2","Elapsed":1.5}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":3.04}
{"Action":"pass","Package":"p","Elapsed":3.1}
`

func TestGoTest(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "t.json", goTestJSON)
	got, err := checkRow("what", "go test ./p -run 'TestA|TestB' -v", path, "", false)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "| what | `go test ./p -run 'TestA\\|TestB' -v` | pass (2 of 2 subtests), 3.0 s |")
	got, err = checkRow("what", "c", path, "", true)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "3.0 s; took 466ms; 3 sends; took 470ms; 4 sends |")
	got, err = testLog("go test ./p -v", path, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := "```\n$ go test ./p -v\na_test.go:10: took 466ms\na_test.go:10: took 470ms\n--- PASS: TestA (3.0 s)\n```"; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	for _, tc := range []struct{ name, out, want string }{
		{"fail", strings.Replace(goTestJSON, `"Action":"pass","Package":"p","Test":"TestA/run2"`, `"Action":"fail","Package":"p","Test":"TestA/run2"`, 1), "TestA/run2 failed"},
		{"skip", `{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:5: needs root\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
`, "TestB skipped: b_test.go:5: needs root"},
		{"no test", `{"Action":"output","Package":"p","Output":"testing: warning: no tests to run\n"}
{"Action":"pass","Package":"p"}
`, "no test ran"},
		{"cut short", `{"Action":"run","Package":"p","Test":"TestC"}
`, "TestC never ended"},
		{"build error", "# p\n./a.go:3:1: syntax error\n" + `{"Action":"fail","Package":"p"}
`, "go test failed"},
		{"invalid JSON", `{"Action":`, "not go test -json output"},
		{"empty", "", "no event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkRow("w", "c", write(t, dir, tc.name+".json", tc.out), "", false)
			wantError(t, err, tc.want)
		})
	}
	_, err = checkRow("w", "c", "", "", false)
	wantError(t, err, "name the run's output")
	sum := write(t, dir, "sim.txt", "seed 1 ok\n\nruns: 1000  violations: 0  failed runs: 0  (100.2s)\n\n")
	got, err = checkRow("sim", "go run ./cmd/vssim -seeds 1000", "", sum, false)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "| runs: 1000 violations: 0 failed runs: 0 (100.2s) |")
}

func TestLossTable(t *testing.T) {
	var b strings.Builder
	sub := func(name, ratio string) {
		b.WriteString(`{"Action":"run","Package":"e","Test":"TestLargeMessagesUnderLoss/` + name + `"}` + "\n")
		lost := "1"
		if ratio == "0.00" {
			lost = "0"
		}
		b.WriteString(`{"Action":"output","Package":"e","Test":"TestLargeMessagesUnderLoss/` + name + `","Output":"    large_test.go:255: 3 x 1024 B: lost ` + lost + ` datagrams (9000 B), resent 9000 B (` + ratio + `x), skipped 0\n"}` + "\n")
		b.WriteString(`{"Action":"pass","Package":"e","Test":"TestLargeMessagesUnderLoss/` + name + `","Elapsed":0.1}` + "\n")
	}
	b.WriteString(`{"Action":"run","Package":"e","Test":"TestLargeMessagesUnderLoss"}` + "\n")
	sub("loss1%/singly/64KiB", "0.99")
	sub("loss1%/singly/16384KiB", "1.13")
	sub("loss1%/flat-out/64KiB", "1.03")
	sub("loss1%/flat-out/1KiB", "0.00")
	b.WriteString(`{"Action":"pass","Package":"e","Test":"TestLargeMessagesUnderLoss","Elapsed":1}` + "\n")
	got, err := lossTable(write(t, t.TempDir(), "loss.json", b.String()))
	if err != nil {
		t.Fatal(err)
	}
	want := "| loss | mode | 64 KiB | 16 MiB | 1 KiB |\n| --- | --- | --- | --- | --- |\n| 1% | one at a time | 0.99x | 1.13x | - |\n| 1% | flat out | 1.03x | - | none lost |"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	_, err = lossTable(write(t, t.TempDir(), "t.json", goTestJSON))
	wantError(t, err, "no loss subtests")
}

func TestGoBench(t *testing.T) {
	out := `goos: linux
BenchmarkEcho-2   	       1	4000000000 ns/op	         0.65 ratio	   3128532 plain-msgs/s	   2040937 echo-msgs/s
BenchmarkEcho-2   	       1	4000000000 ns/op	         0.71 ratio	   3412696 plain-msgs/s	   2425875 echo-msgs/s
BenchmarkEcho-2   	       1	4000000000 ns/op	         0.66 ratio	   3352554 plain-msgs/s	   2224076 echo-msgs/s
BenchmarkGroup/members=2/size=64-2   300000   1234 ns/op   6970000 msgs/s   0 retransmits   0 allocs/op
PASS
`
	path := write(t, t.TempDir(), "b.txt", out)
	_, err := goBenchTable("go test -bench Echo", path, []string{"ratio", "plain-msgs/s"})
	wantError(t, err, "Group/members=2/size=64 reports no ratio")
	got, err := goBenchTable("go test -bench .", path, []string{"ns/op"})
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "`go test -bench .`:", "| benchmark | ns/op | each run, ns/op |", "| Echo | 4,000,000,000 | 4,000,000,000, 4,000,000,000, 4,000,000,000 |", "| Group/members=2/size=64 | 1,234 | 1,234 |")
	echo := write(t, t.TempDir(), "e.txt", strings.Join(strings.Split(out, "\n")[:4], "\n"))
	got, err = goBenchTable("c", echo, []string{"ratio", "plain-msgs/s", "echo-msgs/s"})
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "| Echo | 0.66 | 3.35M | 2.22M | 0.65, 0.71, 0.66 |")
	_, err = goBenchTable("c", write(t, t.TempDir(), "f.txt", "--- FAIL: BenchmarkEcho\nFAIL\n"), []string{"ratio"})
	wantError(t, err, "the benchmark failed")
	_, err = goBenchTable("c", write(t, t.TempDir(), "n.txt", "PASS\n"), []string{"ratio"})
	wantError(t, err, "no benchmark result")
}

func TestSweepTable(t *testing.T) {
	e := phase(4.68e6, 299.6, 2945, 7235)
	b := phase(9.9e6, 633.8, 11959, 26079)
	setup := func(order string, size int) bench.Setup {
		return bench.Setup{Members: 3, Senders: 1, Size: size, Order: order}
	}
	res := sweep.Result{
		Sweep: sweep.Info{Orders: []string{"fifo", "total"}, Runs: 2, Done: 2},
		Points: []sweep.Row{
			{Run: 1, Setup: setup("fifo", 64), Engine: &e, Baseline: &b, Ratio: 0.47},
			{Run: 1, Setup: setup("total", 64), Engine: &e, Baseline: &b, Ratio: 0.47},
			{Run: 2, Setup: setup("fifo", 1024), Engine: &e, Baseline: &b, Ratio: 0.47},
		},
	}
	dir := t.TempDir()
	got, err := sweepTable(write(t, dir, "sweep.json", res))
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "| 3 | 64 B | unpaced | 9.90M | 4.68M (0.47); 2,945 / 7,235 | 4.68M (0.47); 2,945 / 7,235 |",
		"| 3 | 1 KiB | unpaced | 9.90M | 4.68M (300 MB/s) (0.47); 2,945 / 7,235 | - |")
	res.Points[1].Error, res.Points[1].Engine = "member 2 exited", nil
	_, err = sweepTable(write(t, dir, "failed.json", res))
	wantError(t, err, "failed: member 2 exited")
	res.Sweep.Done = 1
	_, err = sweepTable(write(t, dir, "short.json", res))
	wantError(t, err, "1 of 2 points run")
	_, err = sweepTable(write(t, dir, "bad.json", "{"))
	wantError(t, err, "not a vsbench sweep")
}

// study is a perturb result: 4 intervals a step, the healthy rate
// halved at 10% under block; under evict the member removed 0.3 s into
// the 10% step.
func study(method string) *perturb.Result {
	steps := perturb.Schedule([]float64{1, 0.1}, time.Second)
	r := &perturb.Result{
		Setup: perturb.Setup{Members: 4, Method: method, Policies: []string{"block", "evict"}, Levels: []float64{1, 0.1},
			HoldS: 1, IntervalS: 0.25, Target: 0.1},
		Steps: steps,
		Calibration: &perturb.Calibration{Unperturbed: 4e6, Levels: []perturb.LevelCalibration{
			{Level: 1, Describe: "unperturbed", Alone: 4e6}, {Level: 0.1, Describe: "delay 2µs per delivery", Alone: 4e5}}},
	}
	for _, policy := range []string{"block", "evict"} {
		pr := perturb.PolicyRun{Policy: policy, RemovedS: -1}
		for i := 0; i < 8; i++ {
			p := perturb.Point{Seq: i + 1, T: 0.25 * float64(i+1), Step: i / 4, Level: steps[i/4].Level, Healthy: 2e6, P50: 50, P99: 200}
			if i >= 4 && policy == "block" {
				p.Healthy = 3.96e5
			}
			pr.Points = append(pr.Points, p)
		}
		if policy == "evict" {
			pr.RemovedS = 1.3
		}
		r.Runs = append(r.Runs, pr)
	}
	r.Checks = perturb.Checks(r)
	return r
}

func TestPerturb(t *testing.T) {
	dir := t.TempDir()
	a, b := write(t, dir, "a.json", study("delay")), write(t, dir, "b.json", study("delay"))
	got, err := perturbTargetsRow("go run ./cmd/vsbench perturb --method delay --steps 100,10", []string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "| delay | delay 2µs per delivery (10%) | 400k–400k msgs/s | 99%, 99% | 99%, 99% | **PASS**, 2 of 2 |", "| 0.30 / 0.00, 0.30 / 0.00 | **PASS**, 2 of 2 |")
	got, err = perturbLevelsRows("c", a)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "| delay, delay 2µs per delivery | 100% | 4.00M | 2.00M | 2.00M | yes | `c` |", "|  | 10% | 400k | 396k | 2.00M | removed 0.30 s into the step |  |")

	failed := study("stop")
	failed.Runs[1].Error = "member 3 exited"
	_, err = perturbTargetsRow("c", []string{a, write(t, dir, "failed.json", failed)})
	wantError(t, err, "the evict run failed: member 3 exited")
	_, err = perturbTargetsRow("c", []string{a, write(t, dir, "stop.json", study("stop"))})
	wantError(t, err, "method stop at 10%, not delay")
	noCal := study("delay")
	noCal.Calibration = nil
	_, err = perturbLevelsRows("c", write(t, dir, "nocal.json", noCal))
	wantError(t, err, "the calibration did not complete")
	_, err = perturbLevelsRows("c", write(t, dir, "bad.json", "[]"))
	wantError(t, err, "not a vsbench perturb study")
}

func labReport(cutView time.Duration) *netlab.Report {
	ms := time.Millisecond
	return &netlab.Report{
		Scenario: "partition-3-2", Members: 5, MTU: 9000,
		Steps: []netlab.StepReport{
			{Step: netlab.Step{At: 2 * time.Second, Kind: netlab.StepPartition, Sides: [][]int{{0, 1, 2}, {3, 4}}},
				Views: []netlab.MemberViews{
					{Member: 0, Side: 0, LastDelivery: 3999 * ms, Views: []netlab.ViewSeen{{After: cutView - 10*ms, Members: make([]string, 3)}}},
					{Member: 1, Side: 0, LastDelivery: 3998 * ms, Views: []netlab.ViewSeen{{After: cutView, Members: make([]string, 3)}}},
					{Member: 2, Side: 0, LastDelivery: 3998 * ms, Views: []netlab.ViewSeen{{After: cutView - 5*ms, Members: make([]string, 3)}}},
					{Member: 3, Side: 1, LastDelivery: 460 * ms},
					{Member: 4, Side: 1, LastDelivery: 456 * ms},
				}},
			{Step: netlab.Step{At: 6 * time.Second, Kind: netlab.StepHeal},
				Views: []netlab.MemberViews{
					{Member: 0, LastDelivery: ms, Views: []netlab.ViewSeen{{After: 100 * ms, Members: make([]string, 5)}}},
					{Member: 3, LastDelivery: ms, Views: []netlab.ViewSeen{{After: 90 * ms, Members: make([]string, 5), NewIncarnation: true, Restored: 4112}}},
				}},
		},
		Phases: []netlab.Phase{{From: 0, To: 2 * time.Second, Delivered: []float64{999, 1001, 1000, 1000, 1000}, Sent: 1000},
			{From: 2 * time.Second, To: 6 * time.Second, After: "at 2s partition", Delivered: []float64{530, 541, 535, 60, 58}, Sent: 900}},
	}
}

func TestLabTables(t *testing.T) {
	dir := t.TempDir()
	line := func(r *netlab.Report) string {
		b, _ := json.Marshal(r)
		return string(b) + "\n"
	}
	a := write(t, dir, "1.json", line(labReport(466*time.Millisecond)))
	b := write(t, dir, "2.json", line(labReport(482*time.Millisecond)))
	got, err := labTables([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got,
		"| `partition-3-2` (2) | at 2s partition 0,1,2 \\| 3,4 | side 1: m0, m1, m2 | view of 3 by 466 ms; view of 3 by 482 ms | 3,999 ms; 3,999 ms |",
		"|  | at 2s partition 0,1,2 \\| 3,4 | side 2: m3, m4 | none; none | 460 ms; 460 ms |",
		"| at 6s heal | m0, m3 | view of 5 by 100 ms, 1 as new incarnations, 4,112 B of state;",
		"|  | 2.0–6.0 s, after at 2s partition | 58 – 541; 58 – 541 | 900; 900 |",
		"In every run of every scenario (2 in all)")
	dirty := labReport(time.Second)
	dirty.BadExits = []string{"m3: status 4"}
	_, err = labTables([]string{a, write(t, dir, "dirty.json", line(dirty))})
	wantError(t, err, "bad exits [m3: status 4]")
	_, err = labTables([]string{write(t, dir, "junk.json", "scenario partition-3-2: 5 members\n")})
	wantError(t, err, "not vsbench lab --json output")
	_, err = labTables([]string{write(t, dir, "empty.json", "")})
	wantError(t, err, "no scenario reported")
}

func TestStateRow(t *testing.T) {
	dir := t.TempDir()
	const s = int64(time.Second)
	t0 := int64(1_800_000_000) * s
	var member, joiner strings.Builder
	member.WriteString(`{"t":` + itoa(t0) + `,"ev":"start","group":"big"}` + "\n")
	member.WriteString(`{"t":` + itoa(t0+s/10) + `,"ev":"view","group":"big","view":3,"members":["a","b","c"]}` + "\n")
	// 1,000 deliveries a second for 5 s before the joiner starts, 500 a
	// second for the 1 s it takes, 2,000 a second for 4 s after.
	for i := int64(0); i < 5000; i++ {
		member.WriteString(`{"t":` + itoa(t0+s/5+i*s/1000) + `,"ev":"deliver","group":"big","view":3,"id":"a#1","order":"fifo"}` + "\n")
	}
	j0 := t0 + s/5 + 5*s
	for i := int64(0); i < 500; i++ {
		member.WriteString(`{"t":` + itoa(j0+i*s/500) + `,"ev":"deliver","group":"big","view":3,"id":"a#1","order":"fifo"}` + "\n")
	}
	for i := int64(0); i < 8000; i++ {
		member.WriteString(`{"t":` + itoa(j0+s+i*s/2000) + `,"ev":"deliver","group":"big","view":4,"id":"a#1","order":"fifo"}` + "\n")
	}
	joiner.WriteString(`{"t":` + itoa(j0) + `,"ev":"start","group":"big"}` + "\n")
	joiner.WriteString(`{"t":` + itoa(j0+s) + `,"ev":"view","group":"big","view":4,"members":["a","b","c","d"]}` + "\n")
	joiner.WriteString(`{"t":` + itoa(j0+s) + `,"ev":"state","group":"big","view":4,"hash":"00","restored_bytes":104857600,"restore_ms":342.5}` + "\n")
	m := write(t, dir, "m2.log", member.String())
	j := write(t, dir, "m4.log", joiner.String())
	got, err := stateRow("3 x 20,000 msgs/s offered", "c", j, m)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, got, "| 3 x 20,000 msgs/s offered | 1,000 ms (105 MB at 105 MB/s) | 342 ms | 1,000 / 500 (50%) / 2,000 | `c` |")

	_, err = stateRow("l", "c", m, m)
	wantError(t, err, "the joiner restored no state")
	_, err = stateRow("l", "c", j, j)
	wantError(t, err, "was not in a view 2s before the joiner started")
	_, err = stateRow("l", "c", write(t, dir, "junk.log", "not json\n"), m)
	wantError(t, err, "not a member's event log line")
	_, err = stateRow("l", "c", write(t, dir, "nostart.log", `{"t":1,"ev":"view","group":"g"}`+"\n"), m)
	wantError(t, err, "no start event")
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }
