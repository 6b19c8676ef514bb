package bench

import (
	"testing"
	"time"
)

func TestPacerRate(t *testing.T) {
	start := time.Unix(100, 0)
	p := NewPacer(1000, DefaultBurst(1000), start)
	total := 0
	// One second in 1 ms steps: exactly the rate, never more than what
	// has accrued.
	for ms := 1; ms <= 1000; ms++ {
		now := start.Add(time.Duration(ms) * time.Millisecond)
		total += p.Take(now, 1<<30)
		if total > ms {
			t.Fatalf("after %d ms took %d tokens at 1000/s", ms, total)
		}
	}
	if total < 999 || total > 1000 {
		t.Fatalf("took %d tokens in 1s at 1000/s, want 1000", total)
	}
}

func TestPacerCoarseSteps(t *testing.T) {
	// Sleeps far longer than a token's interval still yield the rate, as
	// long as they stay within the burst.
	start := time.Unix(100, 0)
	rate := 100000.0
	p := NewPacer(rate, DefaultBurst(rate), start)
	total := 0
	now := start
	for now.Before(start.Add(time.Second)) {
		now = now.Add(1100 * time.Microsecond)
		total += p.Take(now, 1<<30)
	}
	want := rate * now.Sub(start).Seconds()
	if d := float64(total) - want; d < -1 || d > 0.001 {
		t.Fatalf("took %d tokens, want %.0f", total, want)
	}
}

func TestPacerBurstAndLimit(t *testing.T) {
	start := time.Unix(100, 0)
	p := NewPacer(1000, 10, start)
	// A long stall accrues at most the burst.
	if n := p.Take(start.Add(time.Hour), 1<<30); n != 10 {
		t.Fatalf("after a stall took %d, want the burst of 10", n)
	}
	if n := p.Take(start.Add(time.Hour), 1<<30); n != 0 {
		t.Fatalf("took %d from an empty bucket", n)
	}
	// The limit caps one Take; the rest stays for the next.
	now := start.Add(time.Hour + 8*time.Millisecond)
	if n := p.Take(now, 3); n != 3 {
		t.Fatalf("limited take gave %d, want 3", n)
	}
	if n := p.Take(now, 100); n != 5 {
		t.Fatalf("second take gave %d, want the remaining 5", n)
	}
	if d := p.Delay(); d != time.Millisecond {
		t.Fatalf("delay %v, want 1ms for one token at 1000/s", d)
	}
	// Time going backwards takes nothing and breaks nothing.
	if n := p.Take(start, 100); n != 0 {
		t.Fatalf("took %d when time went back", n)
	}
}

func TestPacerUnlimited(t *testing.T) {
	p := NewPacer(0, 0, time.Now())
	if !p.Unlimited() {
		t.Fatal("rate 0 is not unlimited")
	}
	if n := p.Take(time.Now(), 77); n != 77 {
		t.Fatalf("unlimited take gave %d, want the limit 77", n)
	}
	if d := p.Delay(); d != 0 {
		t.Fatalf("unlimited delay %v", d)
	}
}

func TestPacerNoAllocs(t *testing.T) {
	start := time.Now()
	p := NewPacer(1e6, DefaultBurst(1e6), start)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		p.Take(start.Add(time.Duration(i)*time.Microsecond), 100)
	})
	if allocs != 0 {
		t.Fatalf("Take allocates %v times", allocs)
	}
}
