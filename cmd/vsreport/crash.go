package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/cohort-vs/cohort/bench"
)

// checksHeader heads a table of experiments that report a result, not a
// rate: vsbench crash runs, go tests, simulator campaigns.
func checksHeader() string { return header("experiment", "command", "result") }

// readCrash reads vsbench crash --json output: one result per line.
func readCrash(path string) ([]bench.CrashResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []bench.CrashResult
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r bench.CrashResult
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s:%d: not vsbench crash --json output: %w", path, n, err)
		}
		if r.Mode != "kill" && r.Mode != "pause" {
			return nil, fmt.Errorf("%s:%d: not vsbench crash --json output: mode %q", path, n, r.Mode)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty: no run reported", path)
	}
	return out, nil
}

// crashRow renders the runs of one vsbench crash command: for kills, the
// time from the kill to the new view at the slowest survivor of each run
// and to the first delivery in it; for pauses, the view changes. A run
// that is not clean (a violation, a bad exit, a survivor that never saw
// the kill, a view change after a pause) is an error.
func crashRow(what, command, path string) (string, error) {
	runs, err := readCrash(path)
	if err != nil {
		return "", err
	}
	var views, firsts []time.Duration
	sends, deliveries, pauses := 0, 0, 0
	for i := range runs {
		r := &runs[i]
		if !r.OK() {
			return "", fmt.Errorf("%s: run %d is not clean: %s", path, i+1, r.Summary())
		}
		if r.Mode != runs[0].Mode {
			return "", fmt.Errorf("%s: kills and pauses mixed", path)
		}
		sends += r.Sends
		deliveries += r.Deliveries
		switch r.Mode {
		case "kill":
			views = append(views, r.MaxDetection())
			firsts = append(firsts, r.MaxFirstDelivery()) // 0: a survivor delivered nothing in it
		case "pause":
			pauses++
		}
	}
	n := len(runs)
	var res string
	switch runs[0].Mode {
	case "kill":
		slices.Sort(views)
		if n == 1 {
			res = fmt.Sprintf("1 run; kill to new view at the slowest survivor: %s", millis(views[0]))
		} else {
			res = fmt.Sprintf("%d runs; kill to new view at the slowest survivor: min %s, median %s, max %s",
				n, millis(views[0]), millis(views[medianIndex(n)]), millis(views[n-1]))
		}
		if within := countBelow(views, time.Second); within < n {
			res += fmt.Sprintf(" (%d of %d within 1 s)", within, n)
		}
		if slices.Contains(firsts, 0) {
			res += "; in some run a survivor delivered nothing in the new view"
		} else {
			res += fmt.Sprintf("; first delivery in it at most %s after the kill", millis(slices.Max(firsts)))
		}
	case "pause":
		res = fmt.Sprintf("%s; no view change in %d of %d", plural(n, "run"), pauses, n)
	}
	res += fmt.Sprintf("; 0 violations (%s sends, %s deliveries checked)", short(float64(sends)), short(float64(deliveries)))
	return row(what, code(command), res), nil
}

// plural is "1 run", "3 runs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func countBelow(ds []time.Duration, bound time.Duration) int {
	n := 0
	for _, d := range ds {
		if d <= bound {
			n++
		}
	}
	return n
}
