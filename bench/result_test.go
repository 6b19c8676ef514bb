package bench

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func encodeHist(t *testing.T, values ...int64) string {
	t.Helper()
	h := newHistogram()
	for _, v := range values {
		if err := h.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSummarizeMerges(t *testing.T) {
	var a, b []int64
	for v := int64(1); v <= 500; v++ {
		a = append(a, v)
		b = append(b, v+500)
	}
	results := []MemberResult{
		{Index: 0, Delivered: 2000, ElapsedNs: 1e9, CPUNs: 1e6, Mallocs: 10, Retransmits: 1, KernelDrops: 2, Histogram: encodeHist(t, a...)},
		{Index: 1, Delivered: 1000, ElapsedNs: 1e9, CPUNs: 2e6, Mallocs: 20, Retransmits: 3, KernelDrops: 4, Histogram: encodeHist(t, b...)},
		{Index: 2, Delivered: 3000, ElapsedNs: 2e9, CPUNs: 9e6, Sent: 3000, Mallocs: 0},
	}
	s, err := Summarize(results, 100)
	if err != nil {
		t.Fatal(err)
	}
	// The slowest member sets the rate: member 1's 1000/s (member 2 has
	// 3000 in 2s = 1500/s).
	if s.MsgsPerSec != 1000 {
		t.Errorf("msgs_per_sec %v, want 1000 (the lowest member)", s.MsgsPerSec)
	}
	if want := []float64{2000, 1000, 1500}; !equalFloats(s.MemberMsgsPerSec, want) {
		t.Errorf("member rates %v, want %v", s.MemberMsgsPerSec, want)
	}
	if s.MBPerSec != 0.1 {
		t.Errorf("mb_per_sec %v, want 0.1", s.MBPerSec)
	}
	if s.AllocsPerMsg != 30.0/6000 {
		t.Errorf("allocs_per_msg %v, want %v", s.AllocsPerMsg, 30.0/6000)
	}
	// CPU: 12 ms over 6000 deliveries; each member its own.
	if s.CPUUsPerMsg != 2 {
		t.Errorf("cpu_us_per_msg %v, want 2", s.CPUUsPerMsg)
	}
	if want := []float64{0.5, 2, 3}; !equalFloats(s.MemberCPUUsPerMsg, want) {
		t.Errorf("member cpu_us_per_msg %v, want %v", s.MemberCPUUsPerMsg, want)
	}
	if s.Retransmits != 4 || s.KernelDrops != 6 || s.Delivered != 6000 || s.Sent != 3000 {
		t.Errorf("sums: %+v", s)
	}
	// Merged 1..1000: percentiles over both members (within the
	// histogram's 3 digits).
	l := s.Latency
	check := func(name string, got, want int64) {
		if math.Abs(float64(got-want)) > float64(want)/500+1 {
			t.Errorf("%s = %d, want about %d", name, got, want)
		}
	}
	check("p50", l.P50, 500)
	check("p90", l.P90, 900)
	check("p99", l.P99, 990)
	check("p999", l.P999, 999)
	check("max", l.Max, 1000)
	if l.Count != 1000 {
		t.Errorf("count %d, want 1000", l.Count)
	}
	// Each member's own figures: 1..500, 501..1000, none.
	if len(s.MemberLatency) != 3 {
		t.Fatalf("%d member latencies, want 3", len(s.MemberLatency))
	}
	check("member 0 p50", s.MemberLatency[0].P50, 250)
	check("member 1 p50", s.MemberLatency[1].P50, 750)
	if s.MemberLatency[0].Count != 500 || s.MemberLatency[2] != (Latency{}) {
		t.Errorf("member latencies %+v", s.MemberLatency)
	}
}

func TestSummarizeErrors(t *testing.T) {
	if _, err := Summarize(nil, 8); err == nil {
		t.Error("no results summarized")
	}
	if _, err := Summarize([]MemberResult{{Histogram: "not a histogram"}}, 8); err == nil {
		t.Error("a corrupt histogram was accepted")
	}
	s, err := Summarize([]MemberResult{{Delivered: 0, ElapsedNs: 0, CPUNs: 5e6}}, 8)
	if err != nil || s.MsgsPerSec != 0 || s.AllocsPerMsg != 0 || s.CPUUsPerMsg != 0 || s.MemberCPUUsPerMsg[0] != 0 || s.Latency != (Latency{}) {
		t.Errorf("empty result: %+v, %v", s, err)
	}
}

func TestReportJSONShape(t *testing.T) {
	cfg := DefaultConfig()
	mk := func(rate uint64) []MemberResult {
		var rs []MemberResult
		for i := 0; i < cfg.Members; i++ {
			rs = append(rs, MemberResult{Index: i, Delivered: rate, ElapsedNs: 1e9, CPUNs: int64(i+1) * 1e6, Histogram: encodeHist(t, 10, 20, 30)})
		}
		return rs
	}
	rep, err := NewReport(cfg, mk(4000), mk(1000))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ratio != 0.25 {
		t.Errorf("ratio %v, want 0.25", rep.Ratio)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	checkReportJSON(t, b)

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	// CPU: members 1, 2 and 3 ms over 1000 (engine) or 4000 (baseline)
	// deliveries each.
	for _, want := range []string{"engine", "baseline", "1,000", "4,000", "25.0%", "CPU µs/msg", "2.00",
		"CPU µs per delivered message, per member: engine 1.00 / 2.00 / 3.00; baseline 0.250 / 0.500 / 0.750",
		"latency of 1 message in 64 per sender"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// checkReportJSON checks that b is one report object with every key the
// team's tools read, of the right kind.
func checkReportJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("report is not a JSON object: %v\n%s", err, b)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value:\n%s", b)
	}
	obj := func(m map[string]any, key string) map[string]any {
		v, ok := m[key].(map[string]any)
		if !ok {
			t.Fatalf("key %q is not an object in %s", key, b)
		}
		return v
	}
	num := func(m map[string]any, where, key string) float64 {
		n, ok := m[key].(json.Number)
		if !ok {
			t.Fatalf("%s.%s is not a number in %s", where, key, b)
		}
		f, err := n.Float64()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	setup := obj(m, "setup")
	for _, k := range []string{"members", "senders", "size", "duration_s", "rate", "gomaxprocs", "sample_every"} {
		num(setup, "setup", k)
	}
	for _, k := range []string{"order", "go", "cpu"} {
		if s, ok := setup[k].(string); !ok || s == "" {
			t.Fatalf("setup.%s is not a non-empty string in %s", k, b)
		}
	}
	for _, phase := range []string{"engine", "baseline"} {
		p := obj(m, phase)
		for _, k := range []string{"msgs_per_sec", "mb_per_sec", "allocs_per_msg", "cpu_us_per_msg", "retransmits", "kernel_drops"} {
			num(p, phase, k)
		}
		if _, ok := p["member_cpu_us_per_msg"].([]any); !ok {
			t.Fatalf("%s.member_cpu_us_per_msg is not an array in %s", phase, b)
		}
		l := obj(p, "latency_us")
		for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
			num(l, phase+".latency_us", k)
		}
	}
	num(m, "", "ratio")
	return m
}

// checkKeyedJSON checks a keyed report's additions: a "keyed" phase with
// the keys an engine phase has, "keyed_ratio" and setup.keyed.
func checkKeyedJSON(t *testing.T, m map[string]any, b []byte) {
	t.Helper()
	k, ok := m["keyed"].(map[string]any)
	if !ok {
		t.Fatalf("no keyed object in %s", b)
	}
	for _, key := range []string{"msgs_per_sec", "mb_per_sec", "allocs_per_msg", "cpu_us_per_msg", "retransmits", "kernel_drops", "latency_us", "member_msgs_per_sec"} {
		if _, ok := k[key]; !ok {
			t.Errorf("keyed.%s missing in %s", key, b)
		}
	}
	if _, ok := m["keyed_ratio"].(json.Number); !ok {
		t.Errorf("keyed_ratio is not a number in %s", b)
	}
	if m["setup"].(map[string]any)["keyed"] != true {
		t.Errorf("setup.keyed is not true in %s", b)
	}
}

// A keyed run's report: the keyed phase beside the engine and the
// baseline, in the table (a row and the keyed/engine line, per ordering)
// and in JSON; a report without one keeps the shape of before.
func TestReportKeyed(t *testing.T) {
	cfg := DefaultConfig()
	mk := func(rate uint64, lat int64) []MemberResult {
		var rs []MemberResult
		for i := 0; i < cfg.Members; i++ {
			rs = append(rs, MemberResult{Index: i, Delivered: rate, ElapsedNs: 1e9, Histogram: encodeHist(t, lat, lat, lat)})
		}
		return rs
	}
	base := mk(4000, 10)
	var reps []*Report
	for i, o := range []string{"fifo", "total"} {
		c := cfg
		c.Order = o
		rep, err := NewReport(c, base, mk(uint64(2000/(i+1)), 20))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			b, _ := json.Marshal(rep)
			if m := checkReportJSON(t, b); m["keyed"] != nil || m["keyed_ratio"] != nil || m["setup"].(map[string]any)["keyed"] != nil {
				t.Errorf("keyed keys in a keyless report: %s", b)
			}
			var table bytes.Buffer
			rep.WriteTable(&table)
			if strings.Contains(table.String(), "keyed") {
				t.Errorf("keyless table mentions keyed:\n%s", table.String())
			}
		}
		keyed := mk(uint64(1500/(i+1)), 25)
		keyed[1].AuthFailed = 2
		if err := rep.AddKeyed(keyed); err != nil {
			t.Fatal(err)
		}
		if rep.KeyedRatio == nil || *rep.KeyedRatio != 0.75 || rep.Keyed.AuthFailed != 2 {
			t.Errorf("%s: keyed ratio %v, auth failed %d", o, rep.KeyedRatio, rep.Keyed.AuthFailed)
		}
		reps = append(reps, rep)
	}
	b, err := json.Marshal(reps[0])
	if err != nil {
		t.Fatal(err)
	}
	checkKeyedJSON(t, checkReportJSON(t, b), b)
	// A keyed phase that delivered nothing still has its ratio, 0.
	zero, err := NewReport(cfg, base, mk(2000, 20))
	if err != nil {
		t.Fatal(err)
	}
	stalled := mk(1500, 25)
	stalled[2] = MemberResult{Index: 2, ElapsedNs: 1e9}
	if err := zero.AddKeyed(stalled); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(zero)
	if m := checkReportJSON(t, b); m["keyed_ratio"] != json.Number("0") {
		t.Errorf("keyed_ratio of a stalled keyed phase: %v", m["keyed_ratio"])
	}

	var one, two bytes.Buffer
	if err := reps[0].WriteTable(&one); err != nil {
		t.Fatal(err)
	}
	if err := WriteTables(&two, reps); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s\n%s", one.String(), two.String())
	for _, want := range []string{"keyed engine", "    keyed  ", "1,500", "keyed/engine: 75.0%", "keyed/baseline 37.5%", "p50 +5 µs",
		"auth failed 2"} {
		if !strings.Contains(one.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	for _, want := range []string{"keyed fifo", "keyed total", "750", "keyed fifo/engine fifo: 75.0%", "keyed total/engine total: 75.0%"} {
		if !strings.Contains(two.String(), want) {
			t.Errorf("table of two orderings lacks %q", want)
		}
	}
}

func TestRecorderWindow(t *testing.T) {
	r := newRecorder()
	now := time.Now()
	r.window(stampOf(now.Add(-time.Second)), stampOf(now.Add(time.Hour)))
	msg := make([]byte, 8)
	binary.LittleEndian.PutUint64(msg, uint64(stampOf(now.Add(-250*time.Millisecond))))
	r.deliver(msg)
	binary.LittleEndian.PutUint64(msg, uint64(stampOf(now.Add(time.Minute)))) // from the future: clamped
	r.deliver(msg)
	r.deliver(msg[:4]) // too short for a timestamp: counted only
	if n := r.delivered.Load(); n != 3 {
		t.Fatalf("delivered %d, want 3", n)
	}
	s, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if h.TotalCount() != 2 || h.Min() != 1 || h.Max() < 250000 || h.Max() > 400000 {
		t.Fatalf("histogram: count %d min %d max %d", h.TotalCount(), h.Min(), h.Max())
	}
	// Outside the window: counted, not recorded.
	r.window(stampOf(now.Add(time.Hour)), stampOf(now.Add(2*time.Hour)))
	r.deliver(msg)
	if s, _ := r.encode(); s == "" {
		t.Fatal("empty encoding")
	} else if h, _ := hdrhistogram.Decode([]byte(s)); h.TotalCount() != 0 {
		t.Fatalf("recorded %d outside the window", h.TotalCount())
	}
	// Inside the window again: recording allocates nothing.
	r.window(stampOf(now.Add(-time.Second)), stampOf(now.Add(time.Hour)))
	binary.LittleEndian.PutUint64(msg, uint64(stampOf(now)))
	allocs := testing.AllocsPerRun(1000, func() { r.deliver(msg) })
	if allocs != 0 {
		t.Fatalf("deliver allocates %v times", allocs)
	}
}

func TestGroupDigits(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -1500: "-1,500"} {
		if got := groupDigits(v); got != want {
			t.Errorf("groupDigits(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestParseSenders(t *testing.T) {
	if n, err := ParseSenders("all", 5); n != 5 || err != nil {
		t.Errorf("all: %d %v", n, err)
	}
	if n, err := ParseSenders("1", 5); n != 1 || err != nil {
		t.Errorf("1: %d %v", n, err)
	}
	for _, bad := range []string{"0", "-1", "some", ""} {
		if _, err := ParseSenders(bad, 5); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	cfg := DefaultConfig()
	cfg.Size = 7
	if cfg.Validate() == nil {
		t.Error("size 7 accepted")
	}
	cfg = DefaultConfig()
	cfg.Senders = 4
	if cfg.Validate() == nil {
		t.Error("4 senders of 3 members accepted")
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9 {
			return false
		}
	}
	return true
}

func TestParseOrders(t *testing.T) {
	for list, want := range map[string][]string{
		"fifo":                       {"fifo"},
		"total":                      {"total"},
		"fifo,total":                 {"fifo", "total"},
		" unordered , causal,total ": {"unordered", "causal", "total"},
	} {
		got, err := ParseOrders(list)
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%q: %v, %v; want %v", list, got, err, want)
		}
	}
	for _, bad := range []string{"", "fifo,", "fifo,fifo", "sequenced", "fifo,safe", "FIFO"} {
		if _, err := ParseOrders(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else {
			t.Logf("%q: %v", bad, err)
		}
	}
	for i, name := range OrderNames {
		o, err := ParseOrder(name, true)
		if err != nil || int(o&3) != i || o&4 == 0 || o.String() != name+"+safe" {
			t.Errorf("%s: %v %v", name, o, err)
		}
	}
	cfg := DefaultConfig()
	cfg.Order = "fifo,total"
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	cfg.Order = "fifo,lifo"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "unordered, fifo, causal or total") {
		t.Errorf("bad order list: %v", err)
	}
	if got := baselineOrder([]string{"unordered"}); got != "unordered" {
		t.Errorf("baseline of unordered packs as %s", got)
	}
	if got := baselineOrder([]string{"unordered", "total"}); got != "fifo" {
		t.Errorf("baseline of unordered,total packs as %s", got)
	}
}

func TestParseVictim(t *testing.T) {
	if n, err := ParseVictim("coordinator"); n != VictimCoordinator || err != nil {
		t.Errorf("coordinator: %d %v", n, err)
	}
	if n, err := ParseVictim("2"); n != 2 || err != nil {
		t.Errorf("2: %d %v", n, err)
	}
	for _, bad := range []string{"-1", "sequencer", ""} {
		if _, err := ParseVictim(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	cfg := DefaultCrashConfig()
	cfg.Victim, cfg.Order, cfg.Safe = VictimCoordinator, "total", true
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	for _, edit := range []func(c *CrashConfig){
		func(c *CrashConfig) { c.Victim = 5 },
		func(c *CrashConfig) { c.Victim = -2 },
		func(c *CrashConfig) { c.Order = "fifo,total" },
	} {
		c := DefaultCrashConfig()
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// Several orderings: one report each, sharing the baseline; the table
// has a row per ordering and their ratios; --json prints an array of
// single-ordering reports.
func TestReportsSeveralOrders(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Safe = true
	mk := func(rate uint64) []MemberResult {
		var rs []MemberResult
		for i := 0; i < cfg.Members; i++ {
			rs = append(rs, MemberResult{Index: i, Delivered: rate, ElapsedNs: 1e9, Histogram: encodeHist(t, 10, 20, 30)})
		}
		return rs
	}
	base := mk(4000)
	var reps []*Report
	for i, o := range []string{"fifo", "total"} {
		c := cfg
		c.Order = o
		rep, err := NewReport(c, base, mk(uint64(2000/(i+1))))
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	var table bytes.Buffer
	if err := WriteTables(&table, reps); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	for _, want := range []string{"fifo+safe, total+safe", "engine fifo+safe", "engine total+safe", "baseline",
		"engine fifo+safe/baseline: 50.0%", "engine total+safe/baseline: 25.0%, 50.0% of fifo+safe"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	b, err := json.Marshal(reps)
	if err != nil {
		t.Fatal(err)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(b, &arr); err != nil || len(arr) != 2 {
		t.Fatalf("not an array of 2: %v\n%s", err, b)
	}
	for i, raw := range arr {
		m := checkReportJSON(t, raw)
		setup := m["setup"].(map[string]any)
		if setup["order"] != []string{"fifo", "total"}[i] || setup["safe"] != true {
			t.Errorf("report %d: setup %v", i, setup)
		}
	}
	// One ordering, not safe: the shape and table of before.
	rep, err := NewReport(DefaultConfig(), base, mk(1000))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(rep)
	if m := checkReportJSON(t, b); m["setup"].(map[string]any)["safe"] != nil {
		t.Errorf("safe key without --safe: %s", b)
	}
}
