package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cohort-vs/cohort/bench/perturb"
)

// readPerturb reads a perturb_<method>.json; a study that did not run to
// its end, or a policy run that failed, is an error.
func readPerturb(path string) (*perturb.Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r perturb.Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: not a vsbench perturb study's JSON: %w", path, err)
	}
	switch {
	case r.Setup.Method == "" || len(r.Steps) == 0:
		return nil, fmt.Errorf("%s: not a vsbench perturb study's JSON: no setup", path)
	case r.Calibration == nil:
		return nil, fmt.Errorf("%s: the calibration did not complete", path)
	case len(r.Runs) != len(r.Setup.Policies):
		return nil, fmt.Errorf("%s: %d of %d policies ran", path, len(r.Runs), len(r.Setup.Policies))
	}
	for _, run := range r.Runs {
		if run.Error != "" {
			return nil, fmt.Errorf("%s: the %s run failed: %s", path, run.Policy, run.Error)
		}
		if len(run.Points) == 0 {
			return nil, fmt.Errorf("%s: the %s run has no interval", path, run.Policy)
		}
	}
	return &r, nil
}

// methodText names the way the member was slowed.
func methodText(s perturb.Setup) string {
	var how []string
	if s.DelayMode != "" {
		how = append(how, s.DelayMode)
	}
	if s.DisableGSO {
		how = append(how, "GSO off")
	}
	if len(how) == 0 {
		return s.Method
	}
	return s.Method + " (" + strings.Join(how, ", ") + ")"
}

func levelText(l float64) string { return strconv.FormatFloat(100*l, 'g', 4, 64) + "%" }

// calibrated is the calibration of a level.
func calibrated(r *perturb.Result, level float64) (perturb.LevelCalibration, bool) {
	for _, lc := range r.Calibration.Levels {
		if lc.Level == level {
			return lc, true
		}
	}
	return perturb.LevelCalibration{}, false
}

// summary is a policy's summary of a level's step.
func summary(sums []perturb.StepSummary, policy string, level float64) (perturb.StepSummary, bool) {
	for _, s := range sums {
		if s.Policy == policy && s.Level == level {
			return s, true
		}
	}
	return perturb.StepSummary{}, false
}

func policyRun(r *perturb.Result, policy string) *perturb.PolicyRun {
	for i := range r.Runs {
		if r.Runs[i].Policy == policy {
			return &r.Runs[i]
		}
	}
	return nil
}

// recovered reads the time to recovery from an evict check's text.
var recovered = regexp.MustCompile(`from ([0-9.]+)s after the start`)

func perturbTargetsHeader() string {
	return header("method", "setting at the target level (median run)", "slowed member alone there",
		"block: worst 1-s window / alone, each run", "block: median / alone, each run", "block target met",
		"evict: removed, then ≥ 90% again, s into the step, each run", "evict target met", "command")
}

// verdicts counts the passing checks of a policy: "PASS, 3 of 3", "1 of 3".
func verdicts(results []*perturb.Result, policy string) string {
	pass, unchecked := 0, 0
	for _, r := range results {
		for _, c := range perturb.Checks(r) {
			if c.Policy != policy {
				continue
			}
			switch {
			case !c.Checked:
				unchecked++
			case c.Pass:
				pass++
			}
		}
	}
	s := fmt.Sprintf("%d of %d", pass, len(results))
	if pass == len(results) {
		s = "**PASS**, " + s
	}
	if unchecked > 0 {
		s += fmt.Sprintf(" (%d not checked)", unchecked)
	}
	return s
}

// perturbTargetsRow renders the runs of one method with the schedule that
// goes straight to the target level (--steps 100,10): each policy's
// check, run by run.
func perturbTargetsRow(command string, files []string) (string, error) {
	if len(files) == 0 {
		return "", errors.New("no perturb study named")
	}
	var results []*perturb.Result
	for _, f := range files {
		r, err := readPerturb(f)
		if err != nil {
			return "", err
		}
		if len(results) > 0 && (r.Setup.Method != results[0].Setup.Method || r.Setup.Target != results[0].Setup.Target) {
			return "", fmt.Errorf("%s: method %s at %s, not %s at %s as %s", f, r.Setup.Method, levelText(r.Setup.Target),
				results[0].Setup.Method, levelText(results[0].Setup.Target), files[0])
		}
		if _, ok := calibrated(r, r.Setup.Target); !ok {
			return "", fmt.Errorf("%s: no calibration at the target level %s", f, levelText(r.Setup.Target))
		}
		results = append(results, r)
	}
	target := results[0].Setup.Target
	var alone []float64
	var worst, med, evict []string
	for _, r := range results {
		lc, _ := calibrated(r, target)
		alone = append(alone, lc.Alone)
		sums := perturb.Summaries(r)
		if s, ok := summary(sums, perturb.PolicyBlock, target); ok && s.Alone > 0 {
			worst = append(worst, percent(s.Low/s.Alone))
			med = append(med, percent(s.Median/s.Alone))
		}
		if pr := policyRun(r, perturb.PolicyEvict); pr != nil {
			e := "never removed"
			if pr.RemovedS >= 0 {
				t := time.Duration(pr.RemovedS * float64(time.Second))
				e = "after the steps"
				if i := perturb.StepAt(r.Steps, t); i >= 0 {
					e = strconv.FormatFloat((t - r.Steps[i].Start).Seconds(), 'f', 2, 64)
					if r.Steps[i].Level != target {
						e += " (" + levelText(r.Steps[i].Level) + " step)"
					}
				}
			}
			again := "not again"
			for _, c := range perturb.Checks(r) {
				if m := recovered.FindStringSubmatch(c.Text); c.Policy == perturb.PolicyEvict && m != nil {
					again = m[1]
				}
			}
			evict = append(evict, e+" / "+again)
		}
	}
	sorted := slices.Clone(results)
	slices.SortStableFunc(sorted, func(a, b *perturb.Result) int {
		la, _ := calibrated(a, target)
		lb, _ := calibrated(b, target)
		return cmpFloat(la.Alone, lb.Alone)
	})
	mid := sorted[medianIndex(len(sorted))]
	lc, _ := calibrated(mid, target)
	blockVerdict, evictVerdict := "-", "-"
	if len(worst) > 0 {
		blockVerdict = verdicts(results, perturb.PolicyBlock)
	}
	if len(evict) > 0 {
		evictVerdict = verdicts(results, perturb.PolicyEvict)
	}
	dash := func(xs []string) string {
		if len(xs) == 0 {
			return "-"
		}
		return strings.Join(xs, ", ")
	}
	return row(methodText(mid.Setup), fmt.Sprintf("%s (%s)", lc.Describe, levelText(target)), short(slices.Min(alone))+"–"+short(slices.Max(alone))+" msgs/s",
		dash(worst), dash(med), blockVerdict, dash(evict), evictVerdict, code(command)), nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func perturbLevelsHeader() string {
	return header("method (setting at the lowest level)", "level", "slowed member alone", "block: healthy members' median",
		"evict: healthy members' median", "evict: the slowed member in the group?", "command")
}

// perturbLevelsRows renders one study over time: for each step, what the
// slowed member alone takes at its level, the healthy members' median
// rate under each policy, and when evict removed the slowed member.
func perturbLevelsRows(command, path string) (string, error) {
	r, err := readPerturb(path)
	if err != nil {
		return "", err
	}
	sums := perturb.Summaries(r)
	removedStep, removedAt := -1, time.Duration(0)
	if pr := policyRun(r, perturb.PolicyEvict); pr != nil && pr.RemovedS >= 0 {
		t := time.Duration(pr.RemovedS * float64(time.Second))
		removedStep = perturb.StepAt(r.Steps, t)
		if removedStep >= 0 {
			removedAt = t - r.Steps[removedStep].Start
		}
	}
	lowest := r.Steps[0].Level
	for _, st := range r.Steps {
		lowest = min(lowest, st.Level)
	}
	method := methodText(r.Setup)
	if lc, ok := calibrated(r, lowest); ok {
		method += ", " + lc.Describe
	}
	var lines []string
	for i, st := range r.Steps {
		cs := []string{"", levelText(st.Level)}
		if i == 0 {
			cs[0] = method
		}
		if lc, ok := calibrated(r, st.Level); ok {
			cs = append(cs, short(lc.Alone))
		} else {
			cs = append(cs, "-")
		}
		for _, p := range []string{perturb.PolicyBlock, perturb.PolicyEvict} {
			if s, ok := summary(sums, p, st.Level); ok {
				cs = append(cs, short(s.Median))
			} else {
				cs = append(cs, "-")
			}
		}
		switch {
		case policyRun(r, perturb.PolicyEvict) == nil:
			cs = append(cs, "-")
		case i == removedStep:
			cs = append(cs, fmt.Sprintf("removed %.2f s into the step", removedAt.Seconds()))
		case removedStep >= 0 && i > removedStep:
			cs = append(cs, "no")
		default:
			cs = append(cs, "yes")
		}
		if i == 0 {
			cs = append(cs, code(command))
		} else {
			cs = append(cs, "")
		}
		lines = append(lines, row(cs...))
	}
	return strings.Join(lines, "\n"), nil
}
