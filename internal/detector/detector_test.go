package detector

import "testing"

func TestSilenceThenProbeThenSuspect(t *testing.T) {
	d := New(Config{SilentTicks: 10, ProbeTicks: 5, Helpers: 2}, 4, 0, 0)
	var probes []Probe
	var suspects []int
	for i := 0; i < 9; i++ {
		d.Heard(1)
		d.Heard(2)
		probes, suspects = d.Tick(probes[:0], suspects[:0])
		if len(probes)+len(suspects) > 0 {
			t.Fatalf("tick %d: %v %v", i, probes, suspects)
		}
	}
	probes, _ = d.Tick(probes[:0], suspects[:0])
	if len(probes) != 1 || probes[0].Target != 3 || len(probes[0].Helpers) != 2 {
		t.Fatalf("want a probe of 3 through 2 helpers, got %+v", probes)
	}
	for _, h := range probes[0].Helpers {
		if h == 0 || h == 3 {
			t.Fatalf("bad helper %d", h)
		}
	}
	for i := 0; i < 4; i++ {
		d.Heard(1)
		d.Heard(2)
		if _, s := d.Tick(nil, nil); len(s) > 0 {
			t.Fatalf("suspected too early: %v", s)
		}
	}
	d.Heard(1)
	d.Heard(2)
	if _, s := d.Tick(nil, nil); len(s) != 1 || s[0] != 3 || !d.Suspected(3) {
		t.Fatalf("want 3 suspected, got %v", s)
	}
}

func TestAnswerDuringProbeClears(t *testing.T) {
	d := New(Config{SilentTicks: 3, ProbeTicks: 3, Helpers: 1}, 2, 0, 0)
	for i := 0; i < 3; i++ {
		d.Tick(nil, nil)
	}
	d.Tick(nil, nil)
	d.Heard(1) // the probe was answered
	for i := 0; i < 2; i++ {
		if _, s := d.Tick(nil, nil); len(s) > 0 {
			t.Fatal("suspected after an answer")
		}
	}
}
