package perturb

import (
	"math"
	"testing"
	"time"
)

// search runs nextSetting's loop against a model of the slowed member:
// rate(setting) stands in for a measurement.
func search(m method, level, capacity, cpus float64, rounds int, rate func(float64) float64) LevelCalibration {
	lc := LevelCalibration{Level: level, Target: level * capacity}
	setting := m.guess(level, capacity, cpus)
	for {
		lc.Tries = append(lc.Tries, Try{Setting: setting, Rate: rate(setting)})
		var done bool
		if setting, done = nextSetting(m, &lc, capacity, rounds); done {
			return lc
		}
	}
}

func TestCalibrationDelay(t *testing.T) {
	const capacity = 4e6 // msgs/s: 250 ns of its own per message
	// A member whose own cost is as measured: the first guess is right.
	exact := func(d float64) float64 { return 1e9 / (1e9/capacity + d) }
	lc := search(delayMethod{}, 0.1, capacity, 0.5, 3, exact)
	if len(lc.Tries) != 1 || math.Abs(lc.Alone/lc.Target-1) > 1e-9 {
		t.Errorf("exact model: %+v", lc)
	}
	if want := 9 * 250.0; math.Abs(lc.Setting-want) > 1e-6 {
		t.Errorf("delay %v ns, want %v", lc.Setting, want)
	}
	// A member whose delay costs 60% more than asked (timer overshoot):
	// the search corrects it within the rounds.
	slow := func(d float64) float64 { return 1e9 / (1e9/capacity + 1.6*d) }
	lc = search(delayMethod{}, 0.1, capacity, 0.5, 3, slow)
	if math.Abs(lc.Alone/lc.Target-1) > calibrationTolerance || len(lc.Tries) < 2 {
		t.Errorf("overshooting model: %+v", lc)
	}
	// Out of rounds: the best try is kept, not the last.
	noisy := []float64{0.6, 0.97, 1.5}
	i := 0
	lc = search(delayMethod{}, 0.1, capacity, 0.5, 3, func(float64) float64 { v := noisy[i] * 4e5; i++; return v })
	if lc.Alone != 0.97*4e5 || lc.Setting != lc.Tries[1].Setting {
		t.Errorf("best of noisy tries: %+v", lc)
	}
}

func TestCalibrationStop(t *testing.T) {
	m := stopMethod{period: 100 * time.Millisecond}
	// The member catches up after each stop: a run share of r gives
	// more than r of its capacity.
	rate := func(run float64) float64 { return 1e6 * math.Min(1, 1.5*run) }
	lc := search(m, 0.1, 1e6, 1, 3, rate)
	if math.Abs(lc.Alone/lc.Target-1) > calibrationTolerance {
		t.Errorf("stop: %+v", lc)
	}
	// Stops never reach the engine's suspicion timeout, whatever the
	// measurements ask for.
	long := stopMethod{period: time.Second}
	for _, run := range []float64{0.001, 0.5, 0.81} {
		if got := long.clamp(run); time.Duration((1-got)*float64(time.Second)) > maxStop+time.Microsecond {
			t.Errorf("clamp(%v) = %v: stops for more than %v", run, got, maxStop)
		}
	}
	if got := m.clamp(0); got != 0.02 {
		t.Errorf("clamp(0) = %v, want 0.02", got)
	}
}

func TestCalibrationCPU(t *testing.T) {
	m := cpuMethod{period: 100 * time.Millisecond}
	if got := m.guess(0.1, 1e6, 0.5); math.Abs(got-0.05) > 1e-12 {
		t.Errorf("guess %v, want 10%% of the 0.5 CPUs it used", got)
	}
	if got := m.guess(0.001, 1e6, 0.5); got != 0.01 {
		t.Errorf("guess %v, want the kernel's least quota, 1ms per 100ms", got)
	}
	rate := func(q float64) float64 { return 1e6 * math.Min(1, q/0.5) * 0.8 }
	lc := search(m, 0.25, 1e6, 0.5, 4, rate)
	if math.Abs(lc.Alone/lc.Target-1) > calibrationTolerance {
		t.Errorf("cpu: %+v", lc)
	}
}

// A try that delivered nothing backs off toward unperturbed rather than
// dividing by zero.
func TestCalibrationNothingDelivered(t *testing.T) {
	lc := LevelCalibration{Level: 0.1, Target: 1e5, Tries: []Try{{Setting: 8000, Rate: 0}}}
	next, done := nextSetting(delayMethod{}, &lc, 1e6, 3)
	if done || next != 4000 {
		t.Errorf("next %v done %v, want 4000 and more tries", next, done)
	}
}

// Loss: the rate falls off steeply; once tries lie on both sides of the
// target the search interpolates between them instead of jumping.
func TestCalibrationLossBrackets(t *testing.T) {
	rate := func(loss float64) float64 { return 4e6 * math.Exp(-loss/20) }
	lc := search(lossMethod{}, 0.1, 4e6, 1, 6, rate)
	if math.Abs(lc.Alone/lc.Target-1) > calibrationTolerance {
		t.Errorf("loss: %+v", lc)
	}
	next, ok := bracket([]Try{{Setting: 45, Rate: 1.6e6}, {Setting: 90, Rate: 8e4}, {Setting: 10, Rate: 3e6}}, 4e5)
	if !ok || !(next > 45 && next < 90) {
		t.Errorf("bracket: %v %v", next, ok)
	}
	if _, ok := bracket([]Try{{Setting: 45, Rate: 1.6e6}}, 4e5); ok {
		t.Error("bracket from one side")
	}
}

// Loss: the first guess follows the measured curve of loopback, and a
// curve somewhat steeper or flatter is met within the default 3 rounds.
func TestCalibrationLossModel(t *testing.T) {
	for _, exp := range []float64{1.0, 1.3, 1.6} {
		rate := func(loss float64) float64 { return 4e6 * math.Pow(1-loss/100, exp) }
		for _, level := range []float64{0.5, 0.25, 0.1} {
			lc := search(lossMethod{}, level, 4e6, 1, 3, rate)
			if math.Abs(lc.Alone/lc.Target-1) > calibrationTolerance {
				t.Errorf("exponent %v, level %v: %+v", exp, level, lc)
			}
		}
	}
}
