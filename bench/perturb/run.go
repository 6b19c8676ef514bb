package perturb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/bench/sweep"
)

// Options are the study's plumbing.
type Options struct {
	Child    bench.ChildSpec
	Progress io.Writer // progress lines; nil for none
	Stderr   io.Writer // the children's standard error; nil: os.Stderr
}

// Result is a study's outcome: perturb.json holds it.
type Result struct {
	Setup       Setup        `json:"setup"`
	Steps       []Step       `json:"steps"`
	Calibration *Calibration `json:"calibration"`
	Runs        []PolicyRun  `json:"runs"`
	Checks      []Check      `json:"checks"`
}

// Setup describes the study and the machine.
type Setup struct {
	Members    int       `json:"members"`
	Senders    int       `json:"senders"`
	Slow       int       `json:"slow"`
	Size       int       `json:"size"`
	Order      string    `json:"order"`
	Rate       float64   `json:"rate"`
	Method     string    `json:"method"`
	DelayMode  string    `json:"delay_mode,omitempty"`
	SlowNice   int       `json:"slow_nice"` // the slowed member's nice value (0: unchanged)
	DisableGSO bool      `json:"disable_gso,omitempty"`
	PeriodNs   int64     `json:"period_ns,omitempty"`
	Policies   []string  `json:"policies"`
	Levels     []float64 `json:"levels"`
	HoldS      float64   `json:"hold_s"`
	IntervalS  float64   `json:"interval_s"`
	EvictLag   float64   `json:"evict_lag,omitempty"`
	EvictAfter float64   `json:"evict_after_s,omitempty"`
	Rejoin     bool      `json:"rejoin"`
	Target     float64   `json:"target"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	CPUs       int       `json:"cpus"`
	Go         string    `json:"go"`
	Started    time.Time `json:"started"`
}

// PolicyRun is the timeline of one policy.
type PolicyRun struct {
	Policy string  `json:"policy"`
	Points []Point `json:"points"`
	// RemovedS is when the slowed member was first seen out of the view
	// (at member 0, or by itself), in s from the window's start, to the
	// middle of the interval; negative if never.
	RemovedS float64 `json:"removed_s"`
	Error    string  `json:"error,omitempty"`
}

// Point is one interval of a timeline over the members.
type Point struct {
	Seq   int     `json:"seq"`
	T     float64 `json:"t_s"` // the interval's end, s from the window's start
	Step  int     `json:"step"`
	Level float64 `json:"level"`
	// Healthy is the lowest delivered rate over the members not slowed;
	// Sent the senders' rate of sending; Slow the slowed member's
	// delivered rate.
	Healthy float64 `json:"healthy_msgs_per_sec"`
	Sent    float64 `json:"sent_msgs_per_sec"`
	Slow    float64 `json:"slow_msgs_per_sec"`
	// Latency percentiles (µs) over the healthy members that do not send
	// (all healthy ones when every one sends); 0 when nothing arrived.
	P50 int64 `json:"p50_us"`
	P99 int64 `json:"p99_us"`
	// Membership: the view size at member 0, whether the slowed member
	// was out of the group, and its incarnations so far.
	ViewSize         int  `json:"view_size"`
	SlowRemoved      bool `json:"slow_removed"`
	SlowIncarnations int  `json:"slow_incarnations"`
}

// Run calibrates the levels and runs the study once per policy. It
// returns what it measured even with an error (nil only when nothing
// could be measured).
func Run(ctx context.Context, cfg Config, opt Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMethod(&cfg)
	if err != nil {
		return nil, err
	}
	if opt.Progress != nil {
		// The step driver writes progress too.
		opt.Progress = bench.NewLockedWriter(opt.Progress)
	}
	res := &Result{Setup: newSetup(&cfg), Steps: Schedule(cfg.Levels, cfg.Hold)}
	cal, err := calibrate(ctx, &cfg, m, opt)
	if err != nil {
		return nil, err
	}
	res.Calibration = cal
	res.Setup.SlowNice = cfg.SlowNice // 0 if the system refused it
	var errs []error
	for _, policy := range cfg.Policies {
		pr, err := runPolicy(ctx, &cfg, policy, m, cal, res.Steps, opt)
		if err != nil {
			pr.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", policy, err))
		}
		res.Runs = append(res.Runs, pr)
		if ctx.Err() != nil {
			break
		}
	}
	res.Checks = Checks(res)
	return res, errors.Join(errs...)
}

// prioritize gives the slowed member, process pid, the study's nice
// value. On a machine with fewer cores than members, a member that runs
// in bursts (stopped and continued, held by a quota, waiting on repairs)
// shares its cores in each burst with the healthy members, which a
// member on a host of its own would not; and the calibration, with two
// processes, would not show that loss: the group would be measured
// against a member alone that had the CPU to itself. Where the system
// refuses the value (a negative one needs root or CAP_SYS_NICE), the
// study says so and goes on without it: cfg.SlowNice becomes 0.
func prioritize(cfg *Config, pid int, w io.Writer) error {
	if cfg.SlowNice == 0 {
		return nil
	}
	err := setNice(pid, cfg.SlowNice)
	if err != nil && niceRefused(err) {
		progress(w, "warning: the slowed member keeps its normal priority (nice %d refused: %v); on a machine with fewer cores than members it then loses CPU to the healthy members in its bursts", cfg.SlowNice, err)
		cfg.SlowNice = 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("nice %d for the slowed member: %w", cfg.SlowNice, err)
	}
	return nil
}

func newSetup(cfg *Config) Setup {
	bc := cfg.benchConfig(cfg.Members)
	s := Setup{
		Members: cfg.Members, Senders: cfg.Senders, Slow: cfg.Slow, Size: cfg.Size, Order: cfg.Order, Rate: cfg.Rate,
		Method: cfg.Method, Policies: cfg.Policies, Levels: cfg.Levels, HoldS: cfg.Hold.Seconds(),
		IntervalS: cfg.Interval.Seconds(), EvictLag: cfg.EvictLag, EvictAfter: cfg.EvictAfter.Seconds(),
		Rejoin: cfg.Rejoin, DisableGSO: cfg.disableGSO(), Target: cfg.Target, GOMAXPROCS: bc.MemberProcs(), CPUs: runtime.NumCPU(),
		Go: runtime.Version(), Started: time.Now().UTC().Truncate(time.Second),
	}
	switch cfg.Method {
	case MethodDelay:
		s.DelayMode = cfg.DelayMode
	case MethodStop, MethodCPU:
		s.PeriodNs = cfg.Period.Nanoseconds()
	}
	return s
}

// runPolicy runs one timeline: the full group under policy, the slowed
// member's setting changed at each step's start.
func runPolicy(ctx context.Context, cfg *Config, policy string, m method, cal *Calibration, steps []Step, opt Options) (PolicyRun, error) {
	pr := PolicyRun{Policy: policy, RemovedS: -1}
	progress(opt.Progress, "%s: %d members, member %d slowed (%s), steps %s of %v each", policy, cfg.Members, cfg.Slow,
		cfg.Method, levelsLabel(cfg.Levels), cfg.Hold)
	s, err := bench.StartSession(ctx, bench.SessionConfig{
		Config: cfg.benchConfig(cfg.Members), SlowMember: policy, EvictLag: cfg.EvictLag, EvictAfter: cfg.EvictAfter,
		Rejoin: cfg.Rejoin, DelayMode: cfg.DelayMode, DisableGSO: cfg.disableGSO(),
	}, bench.Options{Child: opt.Child, Stderr: opt.Stderr})
	if err != nil {
		return pr, err
	}
	defer s.Close()
	if err := prioritize(cfg, s.Pid(cfg.Slow), opt.Progress); err != nil {
		return pr, err
	}
	p, err := m.attach(s, cfg.Slow)
	if err != nil {
		return pr, err
	}
	defer p.close()

	spec := bench.TimelineSpec{Start: time.Now().Add(300 * time.Millisecond), Warmup: cfg.Warmup,
		Duration: steps[len(steps)-1].End, Interval: cfg.Interval}
	from := spec.Start.Add(spec.Warmup)

	// The driver sets each step's setting at its start.
	quit := make(chan struct{})
	driverErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, st := range steps {
			t := time.NewTimer(time.Until(from.Add(st.Start)))
			select {
			case <-t.C:
			case <-quit:
				t.Stop()
				return
			}
			lc, _ := cal.level(st.Level)
			if err := p.set(lc.Setting); err != nil {
				driverErr <- fmt.Errorf("setting the %s step: %w", levelLabel(st.Level), err)
				return
			}
			progress(opt.Progress, "  %5.1fs  step %s: %s", st.Start.Seconds(), levelLabel(st.Level), lc.Describe)
		}
	}()

	bySeq := map[int][]bench.Interval{}
	err = s.Timeline(spec, func(iv bench.Interval) {
		bySeq[iv.Seq] = append(bySeq[iv.Seq], iv)
		if len(bySeq[iv.Seq]) == cfg.Members && opt.Progress != nil {
			pt := point(cfg, steps, cfg.Interval, iv.Seq, bySeq[iv.Seq])
			if iv.Seq%int(time.Second/cfg.Interval) == 0 || cfg.Interval >= time.Second {
				progress(opt.Progress, "  %5.2fs  %-5s healthy %s msgs/s  slowed %s  p50 %s  p99 %s  view %d",
					pt.T, levelLabel(pt.Level), shortRate(pt.Healthy), shortRate(pt.Slow),
					sweep.Microseconds(float64(pt.P50)), sweep.Microseconds(float64(pt.P99)), pt.ViewSize)
			}
		}
	})
	close(quit)
	wg.Wait()
	select {
	case derr := <-driverErr:
		err = errors.Join(err, derr)
	default:
	}
	seqs := make([]int, 0, len(bySeq))
	for k := range bySeq {
		seqs = append(seqs, k)
	}
	sort.Ints(seqs)
	for _, k := range seqs {
		pt := point(cfg, steps, cfg.Interval, k, bySeq[k])
		if (pt.SlowRemoved || pt.ViewSize > 0 && pt.ViewSize < cfg.Members) && pr.RemovedS < 0 {
			pr.RemovedS = pt.T - cfg.Interval.Seconds()/2
		}
		pr.Points = append(pr.Points, pt)
	}
	return pr, err
}

// point merges the members' reports of interval seq.
func point(cfg *Config, steps []Step, interval time.Duration, seq int, ivs []bench.Interval) Point {
	end := time.Duration(seq) * interval
	pt := Point{Seq: seq, T: end.Seconds(), Step: StepAt(steps, end-interval/2), Healthy: -1}
	if pt.Step >= 0 {
		pt.Level = steps[pt.Step].Level
	}
	merged := hdrhistogram.New(1, 10_000_000, 3)
	healthyRecv := 0
	for _, iv := range ivs {
		if iv.Index >= cfg.Senders && iv.Index != cfg.Slow {
			healthyRecv++
		}
	}
	for _, iv := range ivs {
		rate := iv.Rate()
		switch {
		case iv.Index == cfg.Slow:
			pt.Slow = rate
			pt.SlowRemoved = iv.Removed
			pt.SlowIncarnations = iv.Incarnations
			continue
		case pt.Healthy < 0 || rate < pt.Healthy:
			pt.Healthy = rate
		}
		if iv.Index < cfg.Senders && iv.ElapsedNs > 0 {
			pt.Sent += float64(iv.Sent) / (float64(iv.ElapsedNs) / 1e9)
		}
		if iv.Index == 0 {
			pt.ViewSize = iv.ViewSize
		}
		if (iv.Index >= cfg.Senders || healthyRecv == 0) && iv.Histogram != "" {
			if h, err := hdrhistogram.Decode([]byte(iv.Histogram)); err == nil {
				merged.Merge(h)
			}
		}
	}
	pt.Healthy = max(pt.Healthy, 0)
	if merged.TotalCount() > 0 {
		pt.P50, pt.P99 = merged.ValueAtPercentile(50), merged.ValueAtPercentile(99)
	}
	return pt
}

func levelsLabel(levels []float64) string {
	s := ""
	for i, l := range levels {
		if i > 0 {
			s += " → "
		}
		s += levelLabel(l)
	}
	return s
}

func shortRate(v float64) string { return sweep.ShortCount(v) }
