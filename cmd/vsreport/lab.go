package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cohort-vs/cohort/internal/netlab"
)

// readLab reads vsbench lab --json output: one report per scenario, one
// JSON object a line. A report whose logs did not pass the checker, or
// whose members did not all exit cleanly, is an error.
func readLab(path string) ([]*netlab.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*netlab.Report
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r netlab.Report
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s:%d: not vsbench lab --json output: %w", path, n, err)
		}
		if r.Scenario == "" || r.Members == 0 {
			return nil, fmt.Errorf("%s:%d: not vsbench lab --json output: no scenario", path, n)
		}
		if !r.OK() {
			return nil, fmt.Errorf("%s: scenario %s: %d violations, bad exits %v", path, r.Scenario, len(r.Violations), r.BadExits)
		}
		out = append(out, &r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty: no scenario reported", path)
	}
	return out, nil
}

// sideViews sums up, for one run, what the members of one side (of a
// partition; all members otherwise) saw after a step: how many installed
// a view, the view the slowest of them ended the step in and when, new
// incarnations and state transferred, and the last delivery.
func sideViews(mvs []netlab.MemberViews) (views, last string) {
	n, with := 0, 0
	var slowest time.Duration
	size, fresh := 0, 0
	var restored int64
	lastDelivery := time.Duration(-1)
	for _, mv := range mvs {
		n++
		lastDelivery = max(lastDelivery, mv.LastDelivery)
		if len(mv.Views) == 0 {
			continue
		}
		with++
		v := mv.Views[len(mv.Views)-1]
		if v.After >= slowest {
			slowest, size = v.After, len(v.Members)
		}
		for _, x := range mv.Views {
			if x.NewIncarnation {
				fresh++
				break
			}
		}
		for _, x := range mv.Views {
			restored = max(restored, x.Restored)
		}
	}
	switch {
	case with == 0:
		views = "none"
	default:
		views = fmt.Sprintf("view of %d by %s", size, millis(slowest))
		if with < n {
			views = fmt.Sprintf("%d of %d: %s", with, n, views)
		}
		if fresh > 0 {
			views += fmt.Sprintf(", %d as new incarnations", fresh)
		}
		if restored > 0 {
			views += fmt.Sprintf(", %s B of state", grouped(float64(restored)))
		}
	}
	last = "none"
	if lastDelivery >= 0 {
		last = millis(lastDelivery)
	}
	return views, last
}

// sides splits a step's members by side, in side order.
func sides(sr netlab.StepReport) [][]netlab.MemberViews {
	var out [][]netlab.MemberViews
	for _, mv := range sr.Views {
		for len(out) <= mv.Side {
			out = append(out, nil)
		}
		out[mv.Side] = append(out[mv.Side], mv)
	}
	return out
}

func sideLabel(sr netlab.StepReport, side int, mvs []netlab.MemberViews) string {
	var ms []string
	for _, mv := range mvs {
		ms = append(ms, fmt.Sprintf("m%d", mv.Member))
	}
	label := strings.Join(ms, ", ")
	if sr.Step.Kind == netlab.StepPartition {
		label = fmt.Sprintf("side %d: %s", side+1, label)
	}
	return label
}

// labTables renders the runs of the fault lab's scenarios (each file one
// run of vsbench lab --json, holding one or more scenarios): a table of
// the views each side installed after each step, and one of the
// deliveries in each phase, each cell listing every run.
func labTables(files []string) (string, error) {
	if len(files) == 0 {
		return "", errors.New("no vsbench lab output named")
	}
	byScenario := map[string][]*netlab.Report{}
	var names []string
	for _, f := range files {
		reps, err := readLab(f)
		if err != nil {
			return "", err
		}
		for _, r := range reps {
			if byScenario[r.Scenario] == nil {
				names = append(names, r.Scenario)
			}
			byScenario[r.Scenario] = append(byScenario[r.Scenario], r)
		}
	}
	views := []string{header("scenario (runs)", "step", "members", "views after the step: the slowest member's last, each run", "last delivery after the step, each run")}
	phases := []string{header("scenario", "phase", "deliveries/s per member, lowest – highest, each run", "sends/s, all members, each run")}
	for _, name := range names {
		runs := byScenario[name]
		first := runs[0]
		for _, r := range runs[1:] {
			if len(r.Steps) != len(first.Steps) || len(r.Phases) != len(first.Phases) {
				return "", fmt.Errorf("scenario %s: runs with different steps", name)
			}
		}
		scen := fmt.Sprintf("`%s` (%d)", name, len(runs))
		for k, sr := range first.Steps {
			for side, mvs := range sides(sr) {
				if len(mvs) == 0 {
					continue
				}
				var vs, ls []string
				quiet := true // a step after which nobody installed a view and everyone delivered on
				for _, r := range runs {
					srk := r.Steps[k]
					ss := sides(srk)
					if side >= len(ss) {
						return "", fmt.Errorf("scenario %s: runs with different sides", name)
					}
					v, l := sideViews(ss[side])
					vs, ls = append(vs, v), append(ls, l)
					if v != "none" {
						quiet = false
					}
				}
				if quiet && sr.Step.Kind == netlab.StepLoss {
					vs, ls = []string{"none in any run"}, []string{"-"}
				}
				views = append(views, row(scen, sr.Step.String(), sideLabel(sr, side, mvs), strings.Join(vs, "; "), strings.Join(ls, "; ")))
				scen = ""
			}
		}
		scen = fmt.Sprintf("`%s`", name)
		for p, ph := range first.Phases {
			var ds, ss []string
			for _, r := range runs {
				var rates []float64
				for _, d := range r.Phases[p].Delivered {
					if d >= 0 {
						rates = append(rates, d)
					}
				}
				if len(rates) == 0 {
					ds = append(ds, "none running")
				} else {
					ds = append(ds, grouped(slices.Min(rates))+" – "+grouped(slices.Max(rates)))
				}
				ss = append(ss, grouped(r.Phases[p].Sent))
			}
			label := fmt.Sprintf("%.1f–%.1f s", ph.From.Seconds(), ph.To.Seconds())
			if ph.After != "" {
				label += ", after " + ph.After
			}
			phases = append(phases, row(scen, label, strings.Join(ds, "; "), strings.Join(ss, "; ")))
			scen = ""
		}
	}
	total := 0
	for _, name := range names {
		total += len(byScenario[name])
	}
	return strings.Join(views, "\n") + "\n\n" + strings.Join(phases, "\n") +
		fmt.Sprintf("\n\nIn every run of every scenario (%d in all) the checker found no violation in the members' logs, and every member still running at the end left cleanly.", total), nil
}
