package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cohort-vs/cohort/bench"
)

// groupsHeader heads the table of vsbench --groups runs.
func groupsHeader() string {
	return header("groups", "total msgs/s (slowest member)", "of 1 group's", "per group msgs/s: mean / min; groups delivering",
		"idle datagrams/s per process (per group)", "heap / RSS per group", "CPU µs/msg", "engine / raw UDP", "each run")
}

// failedRun is what bench/report.sh writes in place of a vsbench --json
// output when a run of the groups section failed: a failure at many
// groups is a result, not a reason to stop.
type failedRun struct {
	Failed string `json:"failed"` // why: the run's last line of standard error
	Groups int    `json:"groups"`
}

// groupsRun is one run of vsbench --groups N: its report, or why it
// failed.
type groupsRun struct {
	groups int
	rep    *bench.Report
	failed string
}

// readGroupsRun reads one run's output: a single-ordering report, or a
// failedRun.
func readGroupsRun(path string) (groupsRun, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return groupsRun{}, err
	}
	var f failedRun
	if json.Unmarshal(bytes.TrimSpace(data), &f) == nil && f.Failed != "" {
		if f.Groups < 1 {
			return groupsRun{}, fmt.Errorf("%s: a failed run of %d groups", path, f.Groups)
		}
		return groupsRun{groups: f.Groups, failed: f.Failed}, nil
	}
	reps, err := readReports(path)
	if err != nil {
		return groupsRun{}, err
	}
	if len(reps) != 1 {
		return groupsRun{}, fmt.Errorf("%s: %d orderings; the groups table takes runs of one", path, len(reps))
	}
	r := reps[0]
	return groupsRun{groups: max(1, r.Setup.Groups), rep: r}, nil
}

// groupsTable is the table of vsbench --groups runs, a row per number of
// groups in increasing order: the run with the median total msgs/s of
// that number's runs, beside each run's figure; "of 1 group's" is that
// median over the median of the runs of one group given with them.
func groupsTable(files []string) (string, error) {
	if len(files) == 0 {
		return "", errors.New("no runs")
	}
	byN := map[int][]groupsRun{}
	for _, f := range files {
		r, err := readGroupsRun(f)
		if err != nil {
			return "", err
		}
		byN[r.groups] = append(byN[r.groups], r)
	}
	ns := make([]int, 0, len(byN))
	for n := range byN {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	// The median run of each number of groups, among those that ran.
	medians := map[int]*bench.Report{}
	for _, n := range ns {
		var ok []*bench.Report
		for _, r := range byN[n] {
			if r.rep != nil {
				ok = append(ok, r.rep)
			}
		}
		if len(ok) == 0 {
			continue
		}
		slices.SortFunc(ok, func(a, b *bench.Report) int {
			return cmpFloat(a.Engine.MsgsPerSec, b.Engine.MsgsPerSec)
		})
		medians[n] = ok[medianIndex(len(ok))]
	}
	one := medians[1]
	lines := []string{groupsHeader()}
	for _, n := range ns {
		var each []string
		failures := 0
		for _, r := range byN[n] {
			if r.rep == nil {
				failures++
				continue
			}
			each = append(each, short(r.rep.Engine.MsgsPerSec))
		}
		m := medians[n]
		if m == nil {
			why := byN[n][len(byN[n])-1].failed
			lines = append(lines, row(grouped(float64(n)), "every run failed: "+why, "", "", "", "", "", "", plural(failures, "run")+" failed"))
			continue
		}
		e := m.Engine
		rel := ""
		if one != nil && one.Engine.MsgsPerSec > 0 {
			rel = ratio(e.MsgsPerSec / one.Engine.MsgsPerSec)
		}
		perGroup, idle, mem := "", "", ""
		if g := e.Groups; g != nil {
			perGroup = fmt.Sprintf("%s / %s; %s of %s", grouped(g.MeanMsgsPerSec), grouped(g.MinMsgsPerSec), grouped(float64(g.Delivering)), grouped(float64(g.Count)))
		}
		if g := m.Groups; g != nil {
			idle = fmt.Sprintf("%s (%s)", grouped(g.IdleDatagramsPerSec), strconv.FormatFloat(roundSig(g.IdleDatagramsPerSecPerGroup), 'f', -1, 64))
			mem = fmt.Sprintf("%s / %s", kib(g.HeapBytesPerGroup), kib(g.RSSBytesPerGroup))
		}
		eachText := strings.Join(each, ", ") + " msgs/s"
		if failures > 0 {
			eachText += fmt.Sprintf("; %s failed: %s", plural(failures, "run"), lastFailure(byN[n]))
		}
		lines = append(lines, row(grouped(float64(n)), grouped(e.MsgsPerSec), rel, perGroup, idle, mem,
			strconv.FormatFloat(roundSig(e.CPUUsPerMsg), 'f', -1, 64), ratio(m.Ratio), eachText))
	}
	return strings.Join(lines, "\n"), nil
}

func lastFailure(runs []groupsRun) string {
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].failed != "" {
			return runs[i].failed
		}
	}
	return ""
}

// kib formats bytes as KiB, 3 significant digits: 98.2 KiB, 1,210 KiB.
func kib(b float64) string {
	v := roundSig(b / 1024)
	if v >= 1000 {
		return grouped(v) + " KiB"
	}
	return strconv.FormatFloat(v, 'f', -1, 64) + " KiB"
}
