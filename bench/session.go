package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// A Session is a group of child processes (one per member, as Run starts
// them) kept for a caller that drives its own experiment: vsbench
// perturb runs timelines on it while it slows one member down. Member 0
// founds the group, as in Run.
type Session struct {
	r         *run
	engines   []string // the members' engine addresses, by index
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// SessionConfig is a session's group: Config's members, senders, size,
// ordering, rate and GOMAXPROCS (its durations are the timelines'), and
// the engine's slow-member settings.
type SessionConfig struct {
	Config
	// SlowMember is the engine's slow-member policy, "block" or "evict"
	// ("": the engine's default); EvictLag and EvictAfter its bounds (0:
	// the engine's defaults); Rejoin sets engine.Config.Rejoin.
	SlowMember string
	EvictLag   float64
	EvictAfter time.Duration
	Rejoin     bool
	// DelayMode is how SetDelay's delays are spent: DelaySleep ("") or
	// DelayBusy.
	DelayMode string
	// DisableGSO sets every member's engine.Config.DisableGSO.
	DisableGSO bool
}

// Interval is one member's counters over one interval of a timeline.
type Interval struct {
	Index     int    `json:"index"`      // the member
	Seq       int    `json:"seq"`        // 1, 2, ...: the interval ending Seq intervals after the window's start
	ElapsedNs int64  `json:"elapsed_ns"` // real time between the interval's snapshots
	Delivered uint64 `json:"delivered"`  // messages delivered in the interval (own included)
	Sent      uint64 `json:"sent"`       // messages this member sent in it
	// Histogram holds the one-way latencies (µs) of the interval's
	// deliveries, as MemberResult.Histogram.
	Histogram string `json:"histogram"`
	// The member's view of its membership at the interval's end: the
	// size of its last view, whether it was removed (and not yet back),
	// and its incarnations so far (1, plus one per rejoin).
	ViewSize     int  `json:"view_size"`
	Removed      bool `json:"removed,omitempty"`
	Incarnations int  `json:"incarnations"`
}

// Rate is the interval's delivered messages per second.
func (iv *Interval) Rate() float64 {
	if iv.ElapsedNs <= 0 {
		return 0
	}
	return float64(iv.Delivered) / (float64(iv.ElapsedNs) / 1e9)
}

// StartSession starts cfg.Members child processes, has them join one
// group, and returns once the group holds them all. Close ends them; so
// does the end of ctx (they are killed).
func StartSession(ctx context.Context, cfg SessionConfig, opt Options) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	orders, err := cfg.Orders()
	if err != nil {
		return nil, err
	}
	if len(orders) != 1 {
		return nil, fmt.Errorf("order %q lists %d orderings; a session runs one", cfg.Order, len(orders))
	}
	if _, err := ParseOrder(orders[0], cfg.Safe); err != nil {
		return nil, err
	}
	if cfg.KeyFile != "" {
		return nil, errors.New("bench: a session runs the keyless engine; it takes no key file")
	}
	if cfg.GroupCount() > 1 {
		return nil, errors.New("bench: a session runs one group")
	}
	if opt.Child.Path == "" {
		return nil, errors.New("bench: no child program")
	}
	if opt.Stderr == nil {
		opt.Stderr = os.Stderr
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &run{
		cfg:    cfg.Config,
		opt:    opt,
		ctx:    ctx,
		events: make(chan childEvent, 4*cfg.Members),
		quit:   make(chan struct{}),
	}
	s := &Session{r: r, cancel: cancel}
	ok := false
	defer func() {
		if !ok {
			r.shutdown(false, cancel)
		}
	}()
	engines, err := r.startGroup(func(i int) *childSetup {
		return &childSetup{
			Index: i, Members: cfg.Members, Sending: i < cfg.Senders,
			Size: cfg.Size, Order: orders[0], Safe: cfg.Safe, Rate: cfg.Rate,
			SlowMember: cfg.SlowMember, EvictLag: cfg.EvictLag, EvictAfterNs: cfg.EvictAfter.Nanoseconds(),
			Rejoin: cfg.Rejoin, DelayMode: cfg.DelayMode, DisableGSO: cfg.DisableGSO,
		}
	})
	if err != nil {
		return nil, err
	}
	ok = true
	s.engines = engines
	return s, nil
}

// Members is the session's group size.
func (s *Session) Members() int { return len(s.r.kids) }

// Pid is member i's process id.
func (s *Session) Pid(i int) int { return s.r.kids[i].cmd.Process.Pid }

// EngineAddr is member i's engine address, "ip:port".
func (s *Session) EngineAddr(i int) string { return s.engines[i] }

// Process is member i's process.
func (s *Session) Process(i int) *os.Process { return s.r.kids[i].cmd.Process }

// SetDelay makes each of member i's deliveries from now on take d (0: no
// delay), spent as the session's DelayMode says. It may be called while
// a timeline runs.
func (s *Session) SetDelay(i int, d time.Duration) error {
	return s.r.kids[i].send(command{Cmd: cmdSlow, DelayNs: d.Nanoseconds()})
}

// TimelineSpec is one timeline: the senders send from Start (at least
// phaseLead from now is safest) for Warmup and Duration; every member
// reports its counters for each Interval of the Duration.
type TimelineSpec struct {
	Start    time.Time
	Warmup   time.Duration
	Duration time.Duration
	Interval time.Duration
}

// Intervals is how many intervals the timeline reports per member.
func (t TimelineSpec) Intervals() int {
	if t.Interval <= 0 {
		return 0
	}
	return int(t.Duration / t.Interval)
}

// Timeline runs one timeline on every member, passing each member's
// interval to on as it arrives (on the calling goroutine; intervals of
// different members arrive in any order), and returns once every member
// has reported its last.
func (s *Session) Timeline(spec TimelineSpec, on func(Interval)) error {
	if spec.Interval <= 0 || spec.Duration < spec.Interval || spec.Warmup < 0 {
		return fmt.Errorf("timeline: duration %v, interval %v, warm-up %v: want 0 < interval <= duration and warm-up >= 0",
			spec.Duration, spec.Interval, spec.Warmup)
	}
	r := s.r
	for _, k := range r.kids {
		if err := k.send(command{Cmd: cmdTimeline, StartNs: spec.Start.UnixNano(), WarmupNs: spec.Warmup.Nanoseconds(),
			DurationNs: spec.Duration.Nanoseconds(), IntervalNs: spec.Interval.Nanoseconds()}); err != nil {
			return err
		}
	}
	r.onInterval = on
	defer func() { r.onInterval = nil }()
	timeout := time.Until(spec.Start) + spec.Warmup + spec.Duration + resultGrace
	if err := r.await(evTimelineDone, timeout, nil); err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	return nil
}

// Close tells the members to exit and waits for them (killing those that
// do not exit in time). It may be called more than once.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		for _, k := range s.r.kids {
			k.send(command{Cmd: cmdExit}) // one that is gone is killed below
		}
		s.r.shutdown(true, s.cancel)
	})
}
