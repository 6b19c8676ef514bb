package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/bench/sweep"
)

// readSweep reads a sweep.json; a sweep that did not run every point, or
// a point that failed, is an error.
func readSweep(path string) (*sweep.Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r sweep.Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: not a vsbench sweep's %s: %w", path, sweep.JSONFile, err)
	}
	switch {
	case r.Sweep.Runs == 0 || len(r.Points) == 0:
		return nil, fmt.Errorf("%s: no point", path)
	case r.Sweep.Done != r.Sweep.Runs:
		return nil, fmt.Errorf("%s: %d of %d points run", path, r.Sweep.Done, r.Sweep.Runs)
	case r.Sweep.Failed > 0:
		return nil, fmt.Errorf("%s: %d points failed", path, r.Sweep.Failed)
	}
	for i := range r.Points {
		if p := &r.Points[i]; !p.OK() {
			return nil, fmt.Errorf("%s: point %d (%s) failed: %s", path, p.Run, setupText(p.Setup), p.Error)
		}
	}
	return &r, nil
}

// sweepTable renders a sweep: a row per point (one run of vsbench),
// each ordering's rate and its ratio to the baseline measured beside it,
// and its median and p99 latency.
func sweepTable(path string) (string, error) {
	r, err := readSweep(path)
	if err != nil {
		return "", err
	}
	orders := r.Sweep.Orders
	head := []string{"members", "size", "offered load per sender", "raw UDP msgs/s"}
	for _, o := range orders {
		if r.Sweep.Safe {
			o += "+safe"
		}
		head = append(head, o+" msgs/s (of raw UDP); p50 / p99 µs")
	}
	lines := []string{header(head...)}
	byRun := map[int]map[string]*sweep.Row{}
	var runs []int
	for i := range r.Points {
		p := &r.Points[i]
		if byRun[p.Run] == nil {
			byRun[p.Run] = map[string]*sweep.Row{}
			runs = append(runs, p.Run)
		}
		byRun[p.Run][p.Setup.Order] = p
	}
	for _, run := range runs {
		pts := byRun[run]
		var first *sweep.Row
		for _, o := range orders {
			if pts[o] != nil {
				first = pts[o]
				break
			}
		}
		if first == nil {
			return "", fmt.Errorf("%s: point %d has none of the orderings %s", path, run, strings.Join(orders, ", "))
		}
		s := first.Setup
		load := "unpaced"
		if s.Rate > 0 {
			load = grouped(s.Rate) + " msgs/s"
		}
		senders := ""
		if s.Senders > 1 {
			senders = fmt.Sprintf(" (%d sending)", s.Senders)
		}
		cs := []string{fmt.Sprintf("%d%s", s.Members, senders), size(s.Size), load, short(first.Baseline.MsgsPerSec)}
		for _, o := range orders {
			p := pts[o]
			if p == nil {
				cs = append(cs, "-")
				continue
			}
			cs = append(cs, sweepCell(p.Engine, p.Ratio, s))
		}
		lines = append(lines, row(cs...))
	}
	return strings.Join(lines, "\n"), nil
}

func sweepCell(e *bench.PhaseSummary, rat float64, s bench.Setup) string {
	rate := short(e.MsgsPerSec)
	if s.Size >= 1024 {
		rate += " (" + grouped(e.MBPerSec) + " MB/s)"
	}
	return fmt.Sprintf("%s (%s); %s / %s", rate, ratio(rat), grouped(float64(e.Latency.P50)), grouped(float64(e.Latency.P99)))
}
