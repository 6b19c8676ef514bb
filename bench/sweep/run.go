package sweep

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cohort-vs/cohort/bench"
)

// Result is a sweep's output: what it ran and every point's figures.
type Result struct {
	Sweep  Info  `json:"sweep"`
	Points []Row `json:"points"`
}

// Info describes a sweep: its lists, the machine, and how far it got.
type Info struct {
	Plan      string    `json:"plan"`
	Sizes     []int     `json:"sizes"`
	Members   []int     `json:"members"`
	Senders   []string  `json:"senders"` // counts, or "all"
	Rates     []float64 `json:"rates"`   // per sender; 0: unlimited
	Orders    []string  `json:"orders"`
	Safe      bool      `json:"safe"`
	Base      string    `json:"base,omitempty"` // PlanAxes: the base point, as --base
	DurationS float64   `json:"duration_s"`     // of each phase
	WarmupS   float64   `json:"warmup_s"`
	Procs     int       `json:"procs"` // --procs; 0: each member's share
	CPUs      int       `json:"cpus"`
	CPU       string    `json:"cpu"`
	Go        string    `json:"go"`
	OS        string    `json:"os"`
	Started   time.Time `json:"started"`
	ElapsedS  float64   `json:"elapsed_s"`
	Runs      int       `json:"runs"`   // points planned
	Done      int       `json:"done"`   // points run, failed ones included
	Failed    int       `json:"failed"` // points that failed
}

// Row is one ordering's figures at one point: the engine beside the
// baseline measured on the same processes (shared by the point's rows).
type Row struct {
	Run   int         `json:"run"` // the point's place in the sweep, from 1
	Setup bench.Setup `json:"setup"`
	// Error is why the point failed; its figures are then missing.
	Error    string              `json:"error,omitempty"`
	Engine   *bench.PhaseSummary `json:"engine,omitempty"`
	Baseline *bench.PhaseSummary `json:"baseline,omitempty"`
	Ratio    float64             `json:"ratio"` // engine msgs/s over the baseline's
}

// OK reports whether the row has figures.
func (r *Row) OK() bool { return r.Error == "" && r.Engine != nil && r.Baseline != nil }

// Options are a sweep's plumbing.
type Options struct {
	Child bench.ChildSpec
	// Stderr receives the member processes' standard error; nil:
	// os.Stderr.
	Stderr io.Writer
	// Progress receives a line before the first point and one after each,
	// with the points done and the time left; nil for none.
	Progress io.Writer
	// Done, when set, is called after each point with the results so far;
	// an error from it ends the sweep.
	Done func(*Result) error
}

// NewResult is the empty result of cfg's sweep.
func NewResult(cfg Config) *Result {
	info := Info{
		Plan:      cfg.Plan,
		Sizes:     cfg.Sizes,
		Members:   cfg.Members,
		Rates:     cfg.Rates,
		Orders:    cfg.Orders,
		Safe:      cfg.Safe,
		DurationS: cfg.Duration.Seconds(),
		WarmupS:   cfg.Warmup.Seconds(),
		Procs:     cfg.Procs,
		CPUs:      runtime.NumCPU(),
		CPU:       bench.NewSetup(bench.Config{Members: 2}).CPU,
		Go:        runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		Started:   time.Now().UTC().Truncate(time.Second),
		Runs:      len(cfg.Points()),
	}
	for _, s := range cfg.Senders {
		info.Senders = append(info.Senders, sendersLabel(s, -1))
	}
	if cfg.Plan == PlanAxes {
		b := cfg.Base
		info.Base = fmt.Sprintf("members=%d,size=%d,senders=%s,rate=%s", b.Members, b.Size,
			sendersLabel(b.Senders, -1), strconv.FormatFloat(b.Rate, 'f', -1, 64))
	}
	return &Result{Sweep: info}
}

// Run runs cfg's points in turn. A point that fails is recorded in its
// rows (Row.Error) and the sweep goes on. Run returns an error only when
// ctx ends (or Options.Done fails); the result then holds the points
// finished before.
func Run(ctx context.Context, cfg Config, opt Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.Stderr == nil {
		opt.Stderr = os.Stderr
	}
	res := NewResult(cfg)
	points := cfg.Points()
	phases := 1 + len(cfg.Orders)
	expect := make([]time.Duration, len(points))
	var total time.Duration
	for i, p := range points {
		expect[i] = estimate(p, phases, cfg)
		total += expect[i]
	}
	progress(opt.Progress, "sweep: %d points, each the baseline then the engine with %s, %v + %v warm-up per phase; about %v\n",
		len(points), strings.Join(orderLabels(cfg), ", "), cfg.Duration, cfg.Warmup, roundDuration(total))

	start := time.Now()
	var expectDone time.Duration
	for i, p := range points {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		pointStart := time.Now()
		bc := cfg.benchConfig(p)
		reps, err := bench.RunOrders(ctx, bc, bench.Options{Child: opt.Child, Stderr: opt.Stderr})
		if err != nil && ctx.Err() != nil {
			return res, ctx.Err() // interrupted, not failed
		}
		res.addPoint(i+1, bc, cfg.Orders, reps, err)
		res.Sweep.ElapsedS = time.Since(start).Seconds()

		expectDone += expect[i]
		left := time.Duration(0)
		for _, e := range expect[i+1:] {
			left += e
		}
		// Scale what is left by how the points so far compared with
		// their estimates.
		left = time.Duration(float64(left) * float64(time.Since(start)) / float64(expectDone))
		progress(opt.Progress, "sweep %d/%d (%d%%)  %s: %s  [%v; elapsed %v, about %v left]\n",
			i+1, len(points), 100*(i+1)/len(points), p, pointSummary(reps, err),
			roundDuration(time.Since(pointStart)), roundDuration(time.Since(start)), roundDuration(left))
		if opt.Done != nil {
			if err := opt.Done(res); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// addPoint records one point's reports, or its error in a row per
// ordering.
func (r *Result) addPoint(run int, bc bench.Config, orders []string, reps []*bench.Report, err error) {
	r.Sweep.Done++
	if err != nil {
		r.Sweep.Failed++
		for _, o := range orders {
			c := bc
			c.Order = o
			r.Points = append(r.Points, Row{Run: run, Setup: bench.NewSetup(c), Error: err.Error()})
		}
		return
	}
	for _, rep := range reps {
		eng, base := rep.Engine, rep.Baseline
		r.Points = append(r.Points, Row{Run: run, Setup: rep.Setup, Engine: &eng, Baseline: &base, Ratio: rep.Ratio})
	}
}

// Failed is the number of points that failed.
func (r *Result) Failed() int { return r.Sweep.Failed }

// pointSummary is a point's throughputs for the progress line.
func pointSummary(reps []*bench.Report, err error) string {
	if err != nil {
		return "FAILED: " + err.Error()
	}
	var parts []string
	for _, rep := range reps {
		parts = append(parts, orderLabel(rep.Setup.Order, rep.Setup.Safe)+" "+shortCount(rep.Engine.MsgsPerSec))
	}
	if len(reps) > 0 {
		parts = append(parts, "baseline "+shortCount(reps[0].Baseline.MsgsPerSec))
	}
	return strings.Join(parts, ", ") + " msgs/s"
}

// estimate guesses a point's time: the members' start and join, then
// each phase's lead-in, warm-up, window and results.
func estimate(p Point, phases int, cfg Config) time.Duration {
	startup := 300*time.Millisecond + time.Duration(p.Members)*50*time.Millisecond
	return startup + time.Duration(phases)*(250*time.Millisecond+cfg.Warmup+cfg.Duration)
}

func roundDuration(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

func orderLabel(order string, safe bool) string {
	if safe {
		return order + "+safe"
	}
	return order
}

func orderLabels(cfg Config) []string {
	var out []string
	for _, o := range cfg.Orders {
		out = append(out, orderLabel(o, cfg.Safe))
	}
	return out
}
