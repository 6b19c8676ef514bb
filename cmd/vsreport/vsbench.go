package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cohort-vs/cohort/bench"
)

// The figures a vsbench row can show (-metric).
const (
	metricMsgs         = "msgs"          // msgs/s of the slowest member
	metricMB           = "mb"            // MB/s of the slowest member (large messages)
	metricLatency      = "latency"       // one-way latency p50 / p90 / p99
	metricKeyed        = "keyed"         // the keyed engine's msgs/s, and its ratio to the keyless one's
	metricKeyedLatency = "keyed-latency" // the keyed and keyless engines' p50 / p99
)

var metrics = []string{metricMsgs, metricMB, metricLatency, metricKeyed, metricKeyedLatency}

// vsbenchHeader heads a table of vsbench rows.
func vsbenchHeader() string {
	return header("figure", "setup", "engine", "raw UDP (same run)", "engine / raw UDP", "each run", "command")
}

// readReports reads one vsbench --json output: one report (one ordering)
// or an array of them (--order with a list).
func readReports(path string) ([]*bench.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: empty: the run printed no report", path)
	}
	var reps []*bench.Report
	if data[0] == '[' {
		err = json.Unmarshal(data, &reps)
	} else {
		var r bench.Report
		err = json.Unmarshal(data, &r)
		reps = []*bench.Report{&r}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not vsbench --json output: %w", path, err)
	}
	for _, r := range reps {
		if r == nil || r.Setup.Members == 0 || r.Setup.Order == "" {
			return nil, fmt.Errorf("%s: not vsbench --json output: no setup", path)
		}
	}
	return reps, nil
}

// pickReport is the report of the ordering asked for (order "": the only
// one).
func pickReport(reps []*bench.Report, order string, safe bool) (*bench.Report, error) {
	if order == "" {
		if len(reps) != 1 {
			return nil, fmt.Errorf("%d orderings in one output: name one with -order", len(reps))
		}
		return reps[0], nil
	}
	var have []string
	for _, r := range reps {
		if r.Setup.Order == order && r.Setup.Safe == safe {
			return r, nil
		}
		have = append(have, orderLabel(r.Setup))
	}
	want := order
	if safe {
		want += "+safe"
	}
	return nil, fmt.Errorf("no %s report (the output has %s)", want, strings.Join(have, ", "))
}

func orderLabel(s bench.Setup) string {
	if s.Safe {
		return s.Order + "+safe"
	}
	return s.Order
}

// setupText describes a run's setup: ordering, size, group, load.
func setupText(s bench.Setup) string {
	senders := fmt.Sprintf("%d senders", s.Senders)
	switch {
	case s.Senders == s.Members:
		senders = "all sending"
	case s.Senders == 1:
		senders = "1 sender"
	}
	load := "unpaced"
	if s.Rate > 0 {
		load = grouped(s.Rate) + " msgs/s offered"
		if s.Senders > 1 {
			load += " per sender"
		}
	}
	return fmt.Sprintf("%s, %s, %d members, %s, %s", orderLabel(s), size(s.Size), s.Members, senders, load)
}

// sameSetup reports whether two runs measured the same thing.
func sameSetup(a, b bench.Setup) bool {
	return a.Members == b.Members && a.Senders == b.Senders && a.Size == b.Size && a.Order == b.Order &&
		a.Safe == b.Safe && a.Keyed == b.Keyed && a.Rate == b.Rate && a.DurationS == b.DurationS
}

// vsbenchRun is one run's report and the value its median is taken by.
type vsbenchRun struct {
	rep *bench.Report
	key float64
}

// vsbenchRow renders one row from the runs' outputs (one file per run):
// the run with the median figure, its raw-UDP baseline and their ratio,
// each run's figure, and the command.
func vsbenchRow(figure, metric, order string, safe bool, command string, files []string) (string, error) {
	if !slices.Contains(metrics, metric) {
		return "", fmt.Errorf("-metric %q: want one of %s", metric, strings.Join(metrics, ", "))
	}
	if len(files) == 0 {
		return "", errors.New("no vsbench output named")
	}
	var runs []vsbenchRun
	for _, f := range files {
		reps, err := readReports(f)
		if err != nil {
			return "", err
		}
		r, err := pickReport(reps, order, safe)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
		if err := usable(r, metric); err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
		if len(runs) > 0 && !sameSetup(runs[0].rep.Setup, r.Setup) {
			return "", fmt.Errorf("%s: a different setup (%s) from %s's (%s)", f, setupText(r.Setup), files[0], setupText(runs[0].rep.Setup))
		}
		runs = append(runs, vsbenchRun{rep: r, key: sortKey(r, metric)})
	}
	order0 := slices.Clone(runs)
	slices.SortStableFunc(runs, func(a, b vsbenchRun) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	m := runs[medianIndex(len(runs))].rep
	engine, base, rat := cells(m, metric)
	each := join(order0, func(r vsbenchRun) string { return eachText(r.rep, metric) })
	if u := eachUnit(metric); u != "" {
		each += " " + u
	}
	return row(figure, setupText(m.Setup), engine, base, rat, each, code(command)), nil
}

// usable checks that a report has what the metric needs.
func usable(r *bench.Report, metric string) error {
	switch {
	case r.Engine.MsgsPerSec <= 0:
		return errors.New("the engine delivered nothing")
	case r.Baseline.MsgsPerSec <= 0:
		return errors.New("the raw-UDP baseline delivered nothing")
	case (metric == metricKeyed || metric == metricKeyedLatency) && (r.Keyed == nil || r.KeyedRatio == nil):
		return errors.New("no keyed phase (run vsbench with --key-file)")
	case metric == metricKeyed && r.Keyed.MsgsPerSec <= 0:
		return errors.New("the keyed engine delivered nothing")
	case (metric == metricLatency || metric == metricKeyedLatency) && (r.Engine.Latency.Count == 0 || r.Baseline.Latency.Count == 0):
		return errors.New("no latency recorded")
	case metric == metricKeyedLatency && r.Keyed.Latency.Count == 0:
		return errors.New("no keyed latency recorded")
	}
	return nil
}

func sortKey(r *bench.Report, metric string) float64 {
	switch metric {
	case metricLatency:
		return float64(r.Engine.Latency.P99)
	case metricKeyed:
		return *r.KeyedRatio
	case metricKeyedLatency:
		return float64(r.Keyed.Latency.P50)
	}
	return r.Engine.MsgsPerSec
}

func eachText(r *bench.Report, metric string) string {
	switch metric {
	case metricMB:
		return fmt.Sprintf("%.0f", r.Engine.MBPerSec)
	case metricLatency:
		return grouped(float64(r.Engine.Latency.P99))
	case metricKeyed:
		return ratio(*r.KeyedRatio)
	case metricKeyedLatency:
		return grouped(float64(r.Keyed.Latency.P50))
	}
	return short(r.Engine.MsgsPerSec)
}

func eachUnit(metric string) string {
	switch metric {
	case metricMB:
		return "MB/s"
	case metricLatency:
		return "µs p99"
	case metricKeyed:
		return "keyed / keyless"
	case metricKeyedLatency:
		return "µs p50 keyed"
	}
	return "msgs/s"
}

func latencyText(l bench.Latency) string {
	return fmt.Sprintf("p50 / p90 / p99 %s / %s / %s µs", grouped(float64(l.P50)), grouped(float64(l.P90)), grouped(float64(l.P99)))
}

// cells are the engine's figure, the baseline's and their ratio.
func cells(r *bench.Report, metric string) (engine, base, rat string) {
	e, b := r.Engine, r.Baseline
	switch metric {
	case metricMB:
		return fmt.Sprintf("%s MB/s (%s msgs/s)", grouped1(e.MBPerSec), grouped(e.MsgsPerSec)),
			grouped1(b.MBPerSec) + " MB/s", ratio(e.MBPerSec / b.MBPerSec)
	case metricLatency:
		return latencyText(e.Latency), latencyText(b.Latency),
			ratio(float64(e.Latency.P99)/float64(max(b.Latency.P99, 1))) + " (p99)"
	case metricKeyed:
		k := r.Keyed
		return fmt.Sprintf("%s msgs/s keyed, %s of keyless (%s)", grouped(k.MsgsPerSec), ratio(*r.KeyedRatio), grouped(e.MsgsPerSec)),
			grouped(b.MsgsPerSec) + " msgs/s", ratio(k.MsgsPerSec / b.MsgsPerSec)
	case metricKeyedLatency:
		k := r.Keyed
		return fmt.Sprintf("p50 / p99 keyed %s / %s µs, keyless %s / %s µs", grouped(float64(k.Latency.P50)), grouped(float64(k.Latency.P99)),
				grouped(float64(e.Latency.P50)), grouped(float64(e.Latency.P99))),
			fmt.Sprintf("p50 / p99 %s / %s µs", grouped(float64(b.Latency.P50)), grouped(float64(b.Latency.P99))),
			ratio(float64(k.Latency.P99)/float64(max(b.Latency.P99, 1))) + " (keyed p99)"
	}
	return grouped(e.MsgsPerSec) + " msgs/s", grouped(b.MsgsPerSec) + " msgs/s", ratio(e.MsgsPerSec / b.MsgsPerSec)
}
