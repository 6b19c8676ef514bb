package perturb

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/cohort-vs/cohort/bench"
)

// Calibration is what the study measured of the slowed member alone: a
// group of the senders and the slowed member, its only other receiver,
// under the block policy (a member alone behind is never evicted).
type Calibration struct {
	// Unperturbed is the slowed member's delivered msgs/s alone and
	// unperturbed: its capacity; CPUs its CPU use then.
	Unperturbed float64            `json:"unperturbed_msgs_per_sec"`
	CPUs        float64            `json:"cpus"`
	Levels      []LevelCalibration `json:"levels"`
}

// LevelCalibration is the setting found for one level and what the
// slowed member alone takes under it.
type LevelCalibration struct {
	Level   float64 `json:"level"`
	Setting float64 `json:"setting"` // the method's (see method)
	// Describe says what Setting means.
	Describe string `json:"describe"`
	// Alone is the slowed member's msgs/s alone under Setting: "what the
	// slow member alone can take" at this level.
	Alone  float64 `json:"alone_msgs_per_sec"`
	Target float64 `json:"target_msgs_per_sec"` // Level × Unperturbed
	Tries  []Try   `json:"tries"`
}

// Try is one calibration measurement.
type Try struct {
	Setting float64 `json:"setting"`
	Rate    float64 `json:"msgs_per_sec"`
}

// Good enough: a setting whose rate is within this share of the target
// ends the search.
const calibrationTolerance = 0.05

// Settle is the unreported lead-in of a calibration measurement, after
// the setting changed.
const calibrationSettle = 500 * time.Millisecond

// nextSetting runs the search for a level: it returns the setting to try
// after tries, or done when the best of them is close enough or the
// rounds are spent. The result's Setting and Alone are the best try's.
func nextSetting(m method, lc *LevelCalibration, capacity float64, rounds int) (next float64, done bool) {
	best := -1
	for i, t := range lc.Tries {
		if best < 0 || math.Abs(t.Rate/lc.Target-1) < math.Abs(lc.Tries[best].Rate/lc.Target-1) {
			best = i
		}
	}
	if best >= 0 {
		lc.Setting, lc.Alone = lc.Tries[best].Setting, lc.Tries[best].Rate
	}
	if best >= 0 && math.Abs(lc.Alone/lc.Target-1) <= calibrationTolerance || len(lc.Tries) >= rounds {
		return lc.Setting, true
	}
	if len(lc.Tries) == 0 {
		return lc.Setting, false // the guess, set by the caller
	}
	if next, ok := bracket(lc.Tries, lc.Target); ok {
		return next, false
	}
	last := lc.Tries[len(lc.Tries)-1]
	if !(last.Rate > 0) {
		// Nothing delivered: back off halfway toward unperturbed.
		return (last.Setting + m.unperturbed()) / 2, false
	}
	return m.adjust(last.Setting, last.Rate, lc.Target, capacity), false
}

// calibrate measures the slowed member alone: unperturbed, then every
// level below 1, searching each level's setting.
func calibrate(ctx context.Context, cfg *Config, m method, opt Options) (*Calibration, error) {
	bc := cfg.benchConfig(cfg.Senders + 1)
	s, err := bench.StartSession(ctx, bench.SessionConfig{Config: bc, SlowMember: PolicyBlock, DelayMode: cfg.DelayMode,
		DisableGSO: cfg.disableGSO()},
		bench.Options{Child: opt.Child, Stderr: opt.Stderr})
	if err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	defer s.Close()
	slow := cfg.Senders
	if err := prioritize(cfg, s.Pid(slow), opt.Progress); err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	p, err := m.attach(s, slow)
	if err != nil {
		return nil, err
	}
	defer p.close()

	measure := func(setting float64) (rate, cpus float64, err error) {
		if err := p.set(setting); err != nil {
			return 0, 0, err
		}
		spec := bench.TimelineSpec{Start: time.Now().Add(200 * time.Millisecond), Warmup: calibrationSettle,
			Duration: cfg.CalibrateFor, Interval: cfg.Interval}
		var delivered uint64
		var elapsed int64
		var cpu0 time.Duration
		started := false
		err = s.Timeline(spec, func(iv bench.Interval) {
			if iv.Index != slow {
				return
			}
			if !started {
				started = true
				cpu0, _ = processCPU(s.Pid(slow))
			}
			delivered += iv.Delivered
			elapsed += iv.ElapsedNs
		})
		if err != nil {
			return 0, 0, err
		}
		if cpu1, err := processCPU(s.Pid(slow)); err == nil && started && elapsed > 0 {
			cpus = float64(cpu1-cpu0) / float64(elapsed)
		}
		if elapsed > 0 {
			rate = float64(delivered) / (float64(elapsed) / 1e9)
		}
		return rate, cpus, nil
	}

	cal := &Calibration{}
	progress(opt.Progress, "calibrating: %d members, the slowed member the only receiver besides the senders", bc.Members)
	if cal.Unperturbed, cal.CPUs, err = measure(m.unperturbed()); err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	if !(cal.Unperturbed > 0) {
		return nil, fmt.Errorf("calibration: the slowed member delivered nothing unperturbed")
	}
	progress(opt.Progress, "  100%%: %s msgs/s (its capacity), %.2f CPUs", shortRate(cal.Unperturbed), cal.CPUs)
	for _, level := range distinctLevels(cfg.Levels) {
		lc := LevelCalibration{Level: level, Target: level * cal.Unperturbed}
		if level >= 1 {
			lc.Setting, lc.Alone = m.unperturbed(), cal.Unperturbed
			lc.Describe = "unperturbed"
			cal.Levels = append(cal.Levels, lc)
			continue
		}
		setting := m.guess(level, cal.Unperturbed, cal.CPUs)
		for {
			rate, _, err := measure(setting)
			if err != nil {
				return nil, fmt.Errorf("calibration at %s: %w", levelLabel(level), err)
			}
			lc.Tries = append(lc.Tries, Try{Setting: setting, Rate: rate})
			progress(opt.Progress, "  %s: %s: %s msgs/s (%.0f%% of the target %s)", levelLabel(level),
				m.describe(setting), shortRate(rate), 100*rate/lc.Target, shortRate(lc.Target))
			var done bool
			if setting, done = nextSetting(m, &lc, cal.Unperturbed, cfg.CalibrateRounds); done {
				break
			}
		}
		lc.Describe = m.describe(lc.Setting)
		cal.Levels = append(cal.Levels, lc)
	}
	if err := p.close(); err != nil {
		return nil, err
	}
	return cal, nil
}

// level returns the calibration of level l.
func (c *Calibration) level(l float64) (LevelCalibration, bool) {
	for _, lc := range c.Levels {
		if lc.Level == l {
			return lc, true
		}
	}
	return LevelCalibration{}, false
}

// distinctLevels lists each level once, in their first order.
func distinctLevels(levels []float64) []float64 {
	var out []float64
	for _, l := range levels {
		seen := false
		for _, o := range out {
			seen = seen || o == l
		}
		if !seen {
			out = append(out, l)
		}
	}
	return out
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// bracket interpolates between the tries closest to target on either
// side (the rate falls or rises with the setting, never both): linearly
// in the rate's logarithm, which suits a rate that falls off steeply. It
// reports false until tries lie on both sides.
func bracket(tries []Try, target float64) (float64, bool) {
	var above, below *Try
	for i := range tries {
		t := &tries[i]
		if !(t.Rate > 0) {
			continue
		}
		if t.Rate >= target && (above == nil || t.Rate < above.Rate) {
			above = t
		}
		if t.Rate < target && (below == nil || t.Rate > below.Rate) {
			below = t
		}
	}
	if above == nil || below == nil || above.Setting == below.Setting {
		return 0, false
	}
	f := (math.Log(above.Rate) - math.Log(target)) / (math.Log(above.Rate) - math.Log(below.Rate))
	return above.Setting + f*(below.Setting-above.Setting), true
}
