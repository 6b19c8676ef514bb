package perturb

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// The study's targets (issue 5): with one member slowed to the target
// level, under evict the others recover RecoverShare of their
// unperturbed throughput within RecoverWithin; under block the group's
// throughput never falls below BlockShare of what the slowed member
// alone takes at that level.
const (
	RecoverShare  = 0.9
	RecoverWithin = 3 * time.Second
	BlockShare    = 0.9
)

// checkWindow is the span over which throughput is averaged when judged
// against a target: single intervals of a loaded 2-core machine are
// noisy, and a stop cycle or a CFS period may straddle one.
const checkWindow = time.Second

// Check is one target's verdict.
type Check struct {
	Policy string `json:"policy"`
	Pass   bool   `json:"pass"`
	// Checked is false when the run lacks what the check needs (an
	// unperturbed step, the target step, the policy's run).
	Checked bool   `json:"checked"`
	Text    string `json:"text"`
}

// String is the check's line: "PASS evict: ...".
func (c Check) String() string {
	verdict := "FAIL"
	switch {
	case !c.Checked:
		verdict = "NOT CHECKED"
	case c.Pass:
		verdict = "PASS"
	}
	return verdict + " " + c.Policy + ": " + c.Text
}

// Checks judges each policy's run against its target.
func Checks(r *Result) []Check {
	var out []Check
	for i := range r.Runs {
		run := &r.Runs[i]
		switch run.Policy {
		case PolicyEvict:
			out = append(out, checkEvict(r, run))
		case PolicyBlock:
			out = append(out, checkBlock(r, run))
		}
	}
	return out
}

// windowSize is how many intervals make a check window.
func windowSize(intervalS float64) int {
	return max(1, int(math.Round(checkWindow.Seconds()/intervalS)))
}

// stepPoints returns the run's points whose interval lies in step i.
func stepPoints(run *PolicyRun, i int) []Point {
	var pts []Point
	for _, p := range run.Points {
		if p.Step == i {
			pts = append(pts, p)
		}
	}
	return pts
}

// windowMeans is the mean healthy rate of every run of w consecutive
// points.
func windowMeans(pts []Point, w int) []float64 {
	var means []float64
	for i := 0; i+w <= len(pts); i++ {
		sum := 0.0
		for _, p := range pts[i : i+w] {
			sum += p.Healthy
		}
		means = append(means, sum/float64(w))
	}
	return means
}

// Unperturbed is the median healthy rate over the run's first
// unperturbed step, its first interval left out (the group settling).
func Unperturbed(r *Result, run *PolicyRun) (float64, bool) {
	for i, st := range r.Steps {
		if st.Level < 1 {
			continue
		}
		pts := stepPoints(run, i)
		if len(pts) < 2 {
			return 0, false
		}
		var rates []float64
		for _, p := range pts[1:] {
			rates = append(rates, p.Healthy)
		}
		return median(rates), true
	}
	return 0, false
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func targetStep(r *Result) int {
	for i, st := range r.Steps {
		if st.Level == r.Setup.Target {
			return i
		}
	}
	return -1
}

// checkEvict: from the start of the target step, how long until every
// 1-s window of the healthy members' throughput, through the step's end,
// holds RecoverShare of the unperturbed rate. A member evicted before
// the target step (at a milder level) leaves nothing to check there: the
// verdict is then "not checked", with where it was removed; a schedule
// that goes straight to the target level (--steps 100,10) checks it.
func checkEvict(r *Result, run *PolicyRun) Check {
	c := Check{Policy: run.Policy}
	target := targetStep(r)
	u, ok := Unperturbed(r, run)
	switch {
	case run.Error != "":
		c.Text = "the run failed: " + run.Error
		return c
	case target < 0:
		c.Text = "no step at the target level"
		return c
	case !ok:
		c.Text = "no unperturbed step to compare with (start --steps with 100)"
		return c
	}
	ref := target
	removedAt := time.Duration(run.RemovedS * float64(time.Second))
	if run.RemovedS >= 0 && removedAt < r.Steps[target].Start {
		s := StepAt(r.Steps, removedAt)
		c.Text = fmt.Sprintf("the slowed member was removed %.2fs into the %s step, before the %s step began (the healthy members' median there: %s msgs/s, %.0f%% of their unperturbed %s); run --steps 100,%g to check the target",
			(removedAt - r.Steps[s].Start).Seconds(), levelLabel(r.Steps[s].Level), levelLabel(r.Steps[target].Level),
			shortRate(medianHealthy(stepPoints(run, target))), 100*medianHealthy(stepPoints(run, target))/u, shortRate(u),
			100*r.Steps[target].Level)
		return c
	}
	var pts []Point
	for s := ref; s <= target; s++ {
		pts = append(pts, stepPoints(run, s)...)
	}
	w := windowSize(r.Setup.IntervalS)
	means := windowMeans(pts, w)
	c.Checked = true
	from := r.Steps[ref].Start
	where := fmt.Sprintf("the %s step", levelLabel(r.Steps[ref].Level))
	removed := "the slowed member was never removed"
	if run.RemovedS >= 0 {
		removed = fmt.Sprintf("the slowed member was removed %.2fs into %s", (removedAt - from).Seconds(), where)
	}
	// Recovered at the first interval that holds the share itself and
	// from which every window does.
	recovered := -1
	for i := len(means) - 1; i >= 0 && means[i] >= RecoverShare*u; i-- {
		if pts[i].Healthy >= RecoverShare*u {
			recovered = i
		}
	}
	if recovered < 0 {
		c.Text = fmt.Sprintf("the %d healthy members did not recover %.0f%% of their unperturbed %s msgs/s by the end of the %s step (last 1-s window %s, %.0f%%); %s",
			r.Setup.Members-1, 100*RecoverShare, shortRate(u), levelLabel(r.Steps[target].Level), shortRate(lastOr(means, 0)), 100*lastOr(means, 0)/u, removed)
		return c
	}
	took := time.Duration(float64(pts[recovered].Seq-1)*r.Setup.IntervalS*float64(time.Second)) - from
	c.Pass = took <= RecoverWithin
	c.Text = fmt.Sprintf("the %d healthy members held ≥ %.0f%% of their unperturbed %s msgs/s (in every 1-s window) from %.2fs after the start of %s (target ≤ %v); %s",
		r.Setup.Members-1, 100*RecoverShare, shortRate(u), took.Seconds(), where, RecoverWithin, removed)
	return c
}

func lastOr(xs []float64, def float64) float64 {
	if len(xs) == 0 {
		return def
	}
	return xs[len(xs)-1]
}

// checkBlock: in the target step, the lowest 1-s window of the group's
// throughput against what the slowed member alone takes at that level.
func checkBlock(r *Result, run *PolicyRun) Check {
	c := Check{Policy: run.Policy}
	target := targetStep(r)
	switch {
	case run.Error != "":
		c.Text = "the run failed: " + run.Error
		return c
	case target < 0 || r.Calibration == nil:
		c.Text = "no step at the target level"
		return c
	}
	lc, ok := r.Calibration.level(r.Steps[target].Level)
	means := windowMeans(stepPoints(run, target), windowSize(r.Setup.IntervalS))
	if !ok || len(means) == 0 {
		c.Text = "the target step has no full 1-s window"
		return c
	}
	low := slices.Min(means)
	c.Checked = true
	c.Pass = low >= BlockShare*lc.Alone
	c.Text = fmt.Sprintf("at %s of the slowed member's capacity the group's throughput fell at worst to %s msgs/s (1-s window), %.0f%% of the %s msgs/s the slowed member alone takes there (target ≥ %.0f%%)",
		levelLabel(lc.Level), shortRate(low), 100*low/lc.Alone, shortRate(lc.Alone), 100*BlockShare)
	return c
}

// StepSummary is one step of one policy's run, summarized.
type StepSummary struct {
	Policy string  `json:"policy"`
	Level  float64 `json:"level"`
	// Median and Low are the healthy members' median interval rate and
	// lowest 1-s window; Alone the calibrated rate of the slowed member
	// alone at this level.
	Median float64 `json:"median_msgs_per_sec"`
	Low    float64 `json:"low_msgs_per_sec"`
	Alone  float64 `json:"alone_msgs_per_sec"`
	P50    int64   `json:"median_p50_us"`
	P99    int64   `json:"median_p99_us"`
	// Removed: the slowed member was out of the group at the step's end.
	Removed bool `json:"removed"`
}

// Summaries summarizes every step of every run.
func Summaries(r *Result) []StepSummary {
	var out []StepSummary
	for i := range r.Runs {
		run := &r.Runs[i]
		for s, st := range r.Steps {
			pts := stepPoints(run, s)
			if len(pts) == 0 {
				continue
			}
			sum := StepSummary{Policy: run.Policy, Level: st.Level, Removed: pts[len(pts)-1].SlowRemoved}
			var rates, p50, p99 []float64
			for _, p := range pts {
				rates = append(rates, p.Healthy)
				if p.P50 > 0 {
					p50 = append(p50, float64(p.P50))
					p99 = append(p99, float64(p.P99))
				}
			}
			sum.Median = median(rates)
			if means := windowMeans(pts, windowSize(r.Setup.IntervalS)); len(means) > 0 {
				sum.Low = slices.Min(means)
			}
			if r.Calibration != nil {
				if lc, ok := r.Calibration.level(st.Level); ok {
					sum.Alone = lc.Alone
				}
			}
			sum.P50, sum.P99 = int64(median(p50)), int64(median(p99))
			out = append(out, sum)
		}
	}
	return out
}

// WriteSummary prints the calibration, each step of each run and the
// checks, for people.
func WriteSummary(w io.Writer, r *Result) error {
	s := r.Setup
	how := fmt.Sprintf("nice %d", s.SlowNice)
	if s.DisableGSO {
		how += ", GSO off"
	}
	fmt.Fprintf(w, "vsbench perturb: %d members, %d sender(s), member %d slowed by %s (%s), %d B %s messages, rate %s; %s, %d CPUs, GOMAXPROCS %d per member\n",
		s.Members, s.Senders, s.Slow, s.Method, how, s.Size, s.Order, rateText(s.Rate), s.Go, s.CPUs, s.GOMAXPROCS)
	if c := r.Calibration; c != nil {
		fmt.Fprintf(w, "\nthe slowed member alone (calibration): capacity %s msgs/s\n", shortRate(c.Unperturbed))
		for _, lc := range c.Levels {
			fmt.Fprintf(w, "  %-5s %-45s takes %s msgs/s (%.0f%% of capacity)\n", levelLabel(lc.Level), lc.Describe,
				shortRate(lc.Alone), 100*lc.Alone/c.Unperturbed)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tlevel\thealthy msgs/s (median)\tlowest 1-s window\tslowed alone\tp50\tp99\tslowed member\t")
	for _, sum := range Summaries(r) {
		state := "in the view"
		if sum.Removed {
			state = "removed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sum.Policy, levelLabel(sum.Level), shortRate(sum.Median),
			shortRate(sum.Low), shortRate(sum.Alone), microseconds(sum.P50), microseconds(sum.P99), state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		fmt.Fprintln(w, c)
	}
	return nil
}

func rateText(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return shortRate(r) + " msgs/s per sender"
}

func medianHealthy(pts []Point) float64 {
	var rates []float64
	for _, p := range pts {
		rates = append(rates, p.Healthy)
	}
	return median(rates)
}
