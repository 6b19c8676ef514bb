package main

import (
	"strings"
	"testing"

	"github.com/cohort-vs/cohort/bench"
)

// The groups table: a row per number of groups, each the median run,
// its ratio to one group's median; a failed run is shown, and a number
// whose every run failed says why.
func TestGroupsTable(t *testing.T) {
	dir := t.TempDir()
	withGroups := func(n int, engine float64) *bench.Report {
		r := report("fifo", engine, 9e6)
		r.Engine.CPUUsPerMsg = 0.25
		if n > 1 {
			r.Setup.Groups = n
			r.Engine.Groups = &bench.GroupRates{Count: n, MeanMsgsPerSec: engine / float64(n), MinMsgsPerSec: engine / float64(n) / 2, Delivering: n}
			r.Groups = &bench.GroupsSummary{Count: n, IdleDatagramsPerSec: 60, IdleDatagramsPerSecPerGroup: 60 / float64(n),
				HeapBytesPerGroup: 100 << 10, RSSBytesPerGroup: 400 << 10}
		}
		return r
	}
	files := []string{
		write(t, dir, "g1.1.json", withGroups(1, 3e6)),
		write(t, dir, "g1.2.json", withGroups(1, 2e6)),
		write(t, dir, "g1.3.json", withGroups(1, 2.5e6)),
		write(t, dir, "g10.1.json", withGroups(10, 2.5e6)),
		write(t, dir, "g10.2.json", failedRun{Failed: "member 2: join timed out", Groups: 10}),
		write(t, dir, "g1000.1.json", failedRun{Failed: "timed out waiting for ready", Groups: 1000}),
	}
	got, err := groupsTable(files)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(got, "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want a header, its separator and 3 rows:\n%s", len(lines), got)
	}
	wantContains(t, lines[2], "| 1 | 2,500,000 | 1.00 |", "| 0.25 | 0.28 |", "3.00M, 2.00M, 2.50M msgs/s")
	wantContains(t, lines[3], "| 10 | 2,500,000 | 1.00 | 250,000 / 125,000; 10 of 10 | 60 (6) | 100 KiB / 400 KiB |",
		"2.50M msgs/s; 1 run failed: member 2: join timed out")
	wantContains(t, lines[4], "| 1,000 | every run failed: timed out waiting for ready |", "| 1 run failed |")

	if got := kib(1210 << 10); got != "1,210 KiB" {
		t.Errorf("kib: %q", got)
	}
	if _, err := groupsTable([]string{write(t, dir, "bad.json", failedRun{Failed: "x"})}); err == nil {
		t.Error("a failed run without its number of groups was read")
	}
	if _, err := groupsTable([]string{write(t, dir, "two.json", []*bench.Report{report("fifo", 1, 2), report("total", 1, 2)})}); err == nil {
		t.Error("a run of two orderings was read")
	}
}
