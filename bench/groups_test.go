package bench

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestGroupNames(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []string
	}{
		{0, []string{"g"}},
		{1, []string{"g"}},
		{3, []string{"g-0", "g-1", "g-2"}},
	} {
		if got := groupNames("g", c.n); !reflect.DeepEqual(got, c.want) {
			t.Errorf("groupNames(g, %d) = %v, want %v", c.n, got, c.want)
		}
	}
	if got := GroupNames(2); !reflect.DeepEqual(got, []string{GroupName + "-0", GroupName + "-1"}) {
		t.Errorf("GroupNames(2) = %v", got)
	}
}

func TestGroupsValidate(t *testing.T) {
	cfg := DefaultConfig()
	for _, n := range []int{0, 1, 3, MaxGroups} {
		cfg.Groups = n
		if err := cfg.Validate(); err != nil {
			t.Errorf("groups %d: %v", n, err)
		}
	}
	for _, n := range []int{-1, MaxGroups + 1} {
		cfg.Groups = n
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "groups") {
			t.Errorf("groups %d: %v, want an error naming groups", n, err)
		}
	}
	cfg.Groups, cfg.KeyFile = 3, writeKey(t)
	if err := cfg.Validate(); err == nil {
		t.Error("groups with a key file accepted")
	}
	cfg.Groups, cfg.KeyFile, cfg.Idle = 3, "", -time.Second
	if err := cfg.Validate(); err == nil {
		t.Error("a negative idle phase accepted")
	}
}

// Per-group rates: each group's slowest member, then mean, min and max
// over the groups; a group with a silent member does not count as
// delivering.
func TestGroupRates(t *testing.T) {
	results := []MemberResult{
		{Index: 0, Delivered: 600, ElapsedNs: 1e9, Groups: []uint64{300, 200, 100}},
		{Index: 1, Delivered: 500, ElapsedNs: 2e9, Groups: []uint64{400, 100, 0}},
	}
	s, err := Summarize(results, 64)
	if err != nil {
		t.Fatal(err)
	}
	g := s.Groups
	if g == nil {
		t.Fatal("no per-group rates")
	}
	// Group rates: min(300, 200) = 200, min(200, 50) = 50, min(100, 0) = 0.
	want := GroupRates{Count: 3, MeanMsgsPerSec: 250.0 / 3, MinMsgsPerSec: 0, MaxMsgsPerSec: 200, Delivering: 2}
	if *g != want {
		t.Errorf("group rates %+v, want %+v", *g, want)
	}
	// The total stays the slowest member's over every group.
	if s.MsgsPerSec != 250 {
		t.Errorf("msgs_per_sec %v, want 250", s.MsgsPerSec)
	}
	if s, err := Summarize([]MemberResult{{Delivered: 5, ElapsedNs: 1e9}}, 64); err != nil || s.Groups != nil {
		t.Errorf("one group: %+v, %v", s.Groups, err)
	}
	results[1].Groups = results[1].Groups[:2]
	if _, err := Summarize(results, 64); err == nil {
		t.Error("members with different group counts summarized")
	}
}

func TestSummarizeIdle(t *testing.T) {
	results := []MemberResult{
		{Index: 0, Phase: PhaseIdle, ElapsedNs: 2e9, CPUNs: 4e6, Datagrams: 200,
			HeapBytes: 30 << 20, RSSBytes: 60 << 20, BaseHeapBytes: 10 << 20, BaseRSSBytes: 20 << 20},
		{Index: 1, Phase: PhaseIdle, ElapsedNs: 2e9, CPUNs: 2e6, Datagrams: 100,
			HeapBytes: 20 << 20, RSSBytes: 70 << 20, BaseHeapBytes: 10 << 20, BaseRSSBytes: 20 << 20},
	}
	g, err := SummarizeIdle(results, 10)
	if err != nil {
		t.Fatal(err)
	}
	// 100 and 50 datagrams/s: a mean of 75, 7.5 per group; CPU 2 and 1
	// ms/s: 150 µs/s per group.
	if g.Count != 10 || g.IdleS != 2 || g.IdleDatagramsPerSec != 75 || g.IdleDatagramsPerSecPerGroup != 7.5 ||
		g.IdleCPUUsPerSecPerGroup != 150 || !reflect.DeepEqual(g.MemberIdleDatagramsPerSec, []float64{100, 50}) {
		t.Errorf("idle: %+v", g)
	}
	// The largest process, and the largest growth over 10 groups.
	if g.HeapBytes != 30<<20 || g.RSSBytes != 70<<20 || g.HeapBytesPerGroup != 2<<20 || g.RSSBytesPerGroup != 5<<20 {
		t.Errorf("memory: %+v", g)
	}
	if _, err := SummarizeIdle(nil, 3); err == nil {
		t.Error("no results summarized")
	}
	if _, err := SummarizeIdle([]MemberResult{{}}, 3); err == nil {
		t.Error("an empty window summarized")
	}
}

// A report of several groups: the setup, each phase's per-group rates
// and the idle phase in JSON and the table; one group's report keeps
// the shape of before.
func TestReportGroups(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Groups = 2
	mk := func(groups []uint64) []MemberResult {
		var rs []MemberResult
		for i := 0; i < cfg.Members; i++ {
			r := MemberResult{Index: i, ElapsedNs: 1e9, CPUNs: 1e6, Histogram: encodeHist(t, 10, 20), Groups: groups}
			for _, d := range groups {
				r.Delivered += d
			}
			if groups == nil {
				r.Delivered = 4000
			}
			rs = append(rs, r)
		}
		return rs
	}
	rep, err := NewReport(cfg, mk(nil), mk([]uint64{600, 400}))
	if err != nil {
		t.Fatal(err)
	}
	var idle []MemberResult
	for i := 0; i < cfg.Members; i++ {
		idle = append(idle, MemberResult{Index: i, Phase: PhaseIdle, ElapsedNs: 1e9, Datagrams: 30, CPUNs: 1e5, HeapBytes: 3 << 20, RSSBytes: 9 << 20, BaseHeapBytes: 1 << 20, BaseRSSBytes: 5 << 20})
	}
	if rep.Groups, err = SummarizeIdle(idle, 2); err != nil {
		t.Fatal(err)
	}
	if rep.Engine.MsgsPerSec != 1000 || rep.Baseline.Groups != nil {
		t.Errorf("engine %v msgs/s, baseline groups %+v", rep.Engine.MsgsPerSec, rep.Baseline.Groups)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	m := checkReportJSON(t, b)
	checkGroupsJSON(t, m, b, 2)
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"3 members, 2 groups (each sender's messages to them in turn)",
		"engine per group (2 groups, the slowest member of each): mean 500, min 400, max 600 msgs/s; 2 of 2 groups delivered at every member",
		"idle, no traffic (2 groups, 1.0s): 30 datagrams/s per process, 15.0 per group; CPU 50.0 µs/s per group; heap 3.00 MiB per process, 1.00 MiB per group; RSS 9.00 MiB per process, 2.00 MiB per group",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	// One group: no groups anywhere, and the table as before.
	cfg.Groups = 1
	one, err := NewReport(cfg, mk(nil), mk(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(one)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"groups"`} {
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("one group's report has %s: %s", key, b)
		}
	}
	table.Reset()
	if err := one.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(table.String(), "group") {
		t.Errorf("one group's table speaks of groups:\n%s", table.String())
	}
}

// checkGroupsJSON checks a report of n groups: setup.groups, the engine
// phase's groups object, and the idle phase's.
func checkGroupsJSON(t *testing.T, m map[string]any, b []byte, n int) {
	t.Helper()
	if g := m["setup"].(map[string]any)["groups"]; g != json.Number(strconv.Itoa(n)) {
		t.Errorf("setup.groups = %v, want %d in %s", g, n, b)
	}
	eg, ok := m["engine"].(map[string]any)["groups"].(map[string]any)
	if !ok {
		t.Fatalf("no engine.groups object in %s", b)
	}
	for _, k := range []string{"count", "mean_msgs_per_sec", "min_msgs_per_sec", "max_msgs_per_sec", "delivering"} {
		if _, ok := eg[k].(json.Number); !ok {
			t.Errorf("engine.groups.%s is not a number in %s", k, b)
		}
	}
	ig, ok := m["groups"].(map[string]any)
	if !ok {
		t.Fatalf("no groups object in %s", b)
	}
	for _, k := range []string{"count", "idle_s", "idle_datagrams_per_sec", "idle_datagrams_per_sec_per_group",
		"idle_cpu_us_per_sec_per_group", "heap_bytes", "rss_bytes", "heap_bytes_per_group", "rss_bytes_per_group"} {
		if _, ok := ig[k].(json.Number); !ok {
			t.Errorf("groups.%s is not a number in %s", k, b)
		}
	}
	if _, ok := m["baseline"].(map[string]any)["groups"]; ok {
		t.Errorf("the baseline has groups in %s", b)
	}
}
