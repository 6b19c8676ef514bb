package bench

import (
	"math"
	"time"
)

// Pacer is a token bucket refilled from elapsed time: it lets a sender
// offer rate messages per second without sleeping per message. The sender
// takes whatever has accrued, sends that many, and sleeps only when
// nothing has (Delay says for how long).
//
// The bucket holds at most burst tokens, so a sender that was held back
// (by flow control or the scheduler) does not catch up with a flood.
// A Pacer is for one goroutine.
type Pacer struct {
	rate   float64 // tokens per second; 0 means unlimited
	burst  float64
	tokens float64
	last   int64 // unix ns of the last refill
}

// DefaultBurst is the bucket size for rate: the tokens of 5 ms (at least
// one), enough to ride over the coarse sleeps of a busy machine.
func DefaultBurst(rate float64) int {
	return max(1, int(rate*0.005))
}

// NewPacer returns a pacer for rate tokens per second (0: unlimited)
// holding at most burst tokens, empty at start.
func NewPacer(rate float64, burst int, start time.Time) *Pacer {
	return &Pacer{rate: rate, burst: float64(max(1, burst)), last: start.UnixNano()}
}

// Unlimited reports whether the pacer lets everything through.
func (p *Pacer) Unlimited() bool { return p.rate <= 0 }

// Take refills the bucket up to now and takes as many whole tokens as are
// there, at most limit. An unlimited pacer returns limit.
func (p *Pacer) Take(now time.Time, limit int) int {
	if p.rate <= 0 {
		return limit
	}
	if ns := now.UnixNano(); ns > p.last {
		p.tokens = min(p.burst, p.tokens+float64(ns-p.last)*p.rate/1e9)
		p.last = ns
	}
	n := int(p.tokens)
	if n > limit {
		n = limit
	}
	p.tokens -= float64(n)
	return n
}

// Delay is how long until the next whole token accrues (0 if one is there
// or the pacer is unlimited).
func (p *Pacer) Delay() time.Duration {
	if p.rate <= 0 || p.tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - p.tokens) / p.rate * 1e9))
}

// Wait sleeps until a token should be there: at least the pacer's Delay,
// though the system may sleep longer (the bucket absorbs that).
func (p *Pacer) Wait() {
	if d := p.Delay(); d > 0 {
		time.Sleep(d)
	}
}
