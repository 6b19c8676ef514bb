package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cohort-vs/cohort/engine"
)

// How a slowed member spends its delay per delivery (vsbench perturb
// --delay-mode).
const (
	// DelaySleep owes the delay and sleeps it off once a millisecond is
	// owed: the member's deliveries take their time, as they would behind
	// a slow disk or a remote call, but it takes no CPU from the others.
	// On a machine with fewer cores than members this isolates the
	// slowness from CPU contention.
	DelaySleep = "sleep"
	// DelayBusy spins for the delay in every delivery: a member slowed by
	// its own computation. On a machine with fewer cores than member
	// processes the spin takes CPU from the healthy members too.
	DelayBusy = "busy"
)

// DelayModes lists the delay modes.
var DelayModes = []string{DelaySleep, DelayBusy}

// Sleep-mode bounds: the debt slept off at once (small enough that
// deliveries still flow between sleeps, large enough that the timer's
// overshoot is a small share), and the credit an overslept sleep leaves.
const (
	sleepQuantum = time.Millisecond
	sleepCredit  = 2 * time.Millisecond
)

// slowDelivery delays each delivery of a child by delayNs (set at any
// time, from the command reader). deliver runs on the delivery goroutine.
type slowDelivery struct {
	delayNs atomic.Int64
	busy    bool // set at setup, before any delivery

	mu   sync.Mutex // the delivery goroutine of the current incarnation
	debt time.Duration
}

func (s *slowDelivery) setMode(mode string) error {
	switch mode {
	case "", DelaySleep:
		s.busy = false
	case DelayBusy:
		s.busy = true
	default:
		return fmt.Errorf("delay mode %q: use %s or %s", mode, DelaySleep, DelayBusy)
	}
	return nil
}

// deliver spends one delivery's delay, if any.
func (s *slowDelivery) deliver() {
	d := time.Duration(s.delayNs.Load())
	if d <= 0 {
		return
	}
	if s.busy {
		for end := time.Now().Add(d); time.Now().Before(end); {
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.debt += d
	if s.debt < sleepQuantum {
		return
	}
	t0 := time.Now()
	time.Sleep(s.debt)
	s.debt -= time.Since(t0)
	s.debt = max(s.debt, -sleepCredit)
}

// applySlowMember sets the engine's slow-member policy and bounds from
// the setup ("" and zero keep the engine's defaults).
func (s *childSetup) applySlowMember(cfg *engine.Config) error {
	if s.SlowMember != "" {
		p, err := engine.ParseSlowMemberPolicy(s.SlowMember)
		if err != nil {
			return err
		}
		cfg.SlowMember = p
	}
	if s.EvictLag > 0 {
		cfg.EvictLag = s.EvictLag
	}
	if s.EvictAfterNs > 0 {
		cfg.EvictAfter = time.Duration(s.EvictAfterNs)
	}
	cfg.Rejoin = s.Rejoin
	return nil
}
