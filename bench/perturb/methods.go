package perturb

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/internal/netlab"
)

// A method slows a member one way. Its setting is one number whose
// meaning is the method's: a delay per delivery in ns (delay), the share
// of each period the process runs (stop), a CPU quota in CPUs (cpu), the
// percentage of packets to it dropped (loss).
// A member runs unperturbed with the setting Unperturbed returns.
type method interface {
	// guess is the first setting to try for level, given the slowed
	// member's unperturbed rate alone and its CPU use then (in CPUs).
	guess(level, rate, cpus float64) float64
	// adjust is the next setting to try after setting gave measured
	// msgs/s where target was wanted.
	adjust(setting, measured, target, rate float64) float64
	// unperturbed is the setting that leaves the member alone.
	unperturbed() float64
	// describe says what setting means: "delay 2.1µs per delivery".
	describe(setting float64) string
	// attach starts slowing member i of s (at the unperturbed setting).
	attach(s *bench.Session, i int) (perturber, error)
}

// A perturber slows one member of a running session.
type perturber interface {
	set(setting float64) error
	// close returns the member to normal and releases what attach made
	// (a cgroup, a goroutine); the member may have exited.
	close() error
}

// newMethod returns cfg's method, or why it cannot run here.
func newMethod(cfg *Config) (method, error) {
	switch cfg.Method {
	case MethodDelay:
		return delayMethod{}, nil
	case MethodStop:
		return stopMethod{period: cfg.Period}, nil
	case MethodCPU:
		cg, err := findCgroup()
		if err != nil {
			return nil, err
		}
		return cpuMethod{root: cg, period: cfg.Period}, nil
	case MethodLoss:
		return lossMethod{}, nil
	}
	return nil, fmt.Errorf("method %q: use one of delay, stop, cpu, loss", cfg.Method)
}

// delayMethod: each delivery takes setting ns.
type delayMethod struct{}

// A member's own cost per message is 1/rate; a delay d makes it about
// 1/rate + d, so a level's first guess is (1/level - 1)/rate, and each
// measurement corrects the total cost by the ratio it missed by.
func (delayMethod) guess(level, rate, _ float64) float64 {
	return math.Max(0, (1/level-1)/rate*1e9)
}

func (delayMethod) adjust(d, measured, target, rate float64) float64 {
	own := 1e9 / rate
	return math.Max(0, (own+d)*measured/target-own)
}

func (delayMethod) unperturbed() float64 { return 0 }

func (delayMethod) describe(d float64) string {
	return fmt.Sprintf("delay %v per delivery", time.Duration(d).Round(time.Nanosecond))
}

func (delayMethod) attach(s *bench.Session, i int) (perturber, error) {
	return &delayPerturber{s: s, i: i}, nil
}

type delayPerturber struct {
	s *bench.Session
	i int
}

func (p *delayPerturber) set(d float64) error { return p.s.SetDelay(p.i, time.Duration(d)) }
func (p *delayPerturber) close() error        { return p.s.SetDelay(p.i, 0) }

// stopMethod: the process runs for setting of each period and is
// stopped for the rest.
type stopMethod struct{ period time.Duration }

// The most a stop may last: well below the engine's 300 ms suspicion
// timeout, so the study measures slowness, not failure detection.
const maxStop = 200 * time.Millisecond

func (m stopMethod) clamp(run float64) float64 {
	lo := 1 - float64(maxStop)/float64(m.period)
	return math.Min(1, math.Max(math.Max(lo, 0.02), run))
}

func (m stopMethod) guess(level, _, _ float64) float64 { return m.clamp(level) }

func (m stopMethod) adjust(run, measured, target, _ float64) float64 {
	return m.clamp(run * target / measured)
}

func (stopMethod) unperturbed() float64 { return 1 }

func (m stopMethod) describe(run float64) string {
	stop := time.Duration((1 - run) * float64(m.period)).Round(100 * time.Microsecond)
	return fmt.Sprintf("stopped %v of every %v", stop, m.period)
}

func (m stopMethod) attach(s *bench.Session, i int) (perturber, error) {
	p := &stopPerturber{proc: s.Process(i), period: m.period, run: 1, quit: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// stopPerturber stops and continues a process in a loop of its own.
type stopPerturber struct {
	proc   *os.Process
	period time.Duration
	mu     sync.Mutex
	run    float64
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func (p *stopPerturber) set(run float64) error {
	p.mu.Lock()
	p.run = run
	p.mu.Unlock()
	return nil
}

func (p *stopPerturber) loop() {
	defer close(p.done)
	defer p.proc.Signal(syscall.SIGCONT) // never leave it stopped
	// On a loaded machine a timer wakes this goroutine milliseconds late,
	// and every late stop lengthens that period's run: measured runs of
	// a 10 ms slot spread from 5 to 15 ms, so the member's pace wandered
	// by half from period to period. A thread of its own at a real-time
	// priority keeps the slots to about 0.1 ms where the system allows.
	sleepUntil := p.sleepUntil
	if preciseThread() {
		sleepUntil = p.sleepUntilPrecise
	}
	next := time.Now()
	for {
		p.mu.Lock()
		run := p.run
		p.mu.Unlock()
		cont := next.Add(p.period)
		if run < 1 {
			stopAt := next.Add(time.Duration(run * float64(p.period)))
			if !sleepUntil(stopAt) {
				return
			}
			if err := p.proc.Signal(syscall.SIGSTOP); err != nil {
				return // gone
			}
			ok := sleepUntil(cont)
			if err := p.proc.Signal(syscall.SIGCONT); err != nil || !ok {
				return
			}
		} else if !sleepUntil(cont) {
			return
		}
		next = cont
	}
}

func (p *stopPerturber) sleepUntil(t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-p.quit:
		return false
	}
}

// sleepUntilPrecise sleeps on the calling thread in slices of at most
// preciseSlice, so that close is noticed within one.
func (p *stopPerturber) sleepUntilPrecise(t time.Time) bool {
	for {
		select {
		case <-p.quit:
			return false
		default:
		}
		d := time.Until(t)
		if d <= 0 {
			return true
		}
		threadSleep(min(d, preciseSlice))
	}
}

const preciseSlice = 5 * time.Millisecond

func (p *stopPerturber) close() error {
	p.once.Do(func() { close(p.quit) })
	<-p.done
	return nil
}

// cpuMethod: the process runs in a cgroup with a quota of setting CPUs
// per period.
type cpuMethod struct {
	root   cgroupRoot
	period time.Duration
}

// The smallest quota the kernel takes is 1 ms per period.
func (m cpuMethod) clamp(cpus float64) float64 {
	return math.Max(cpus, float64(time.Millisecond)/float64(m.period))
}

// A quota caps what the member used unperturbed: a level's first guess
// is that share of its use.
func (m cpuMethod) guess(level, _, cpus float64) float64 {
	if !(cpus > 0) {
		cpus = 1
	}
	return m.clamp(level * cpus)
}

func (m cpuMethod) adjust(q, measured, target, _ float64) float64 {
	return m.clamp(q * target / measured)
}

func (cpuMethod) unperturbed() float64 { return 0 } // no quota

func (m cpuMethod) describe(q float64) string {
	if q <= 0 {
		return "no CPU quota"
	}
	return fmt.Sprintf("CPU quota %.3g CPUs (%v per %v)", q, time.Duration(q*float64(m.period)).Round(10*time.Microsecond), m.period)
}

func (m cpuMethod) attach(s *bench.Session, i int) (perturber, error) {
	return m.root.attach(s.Pid(i), m.period)
}

// disableGSO: the loss method runs the engines without UDP GSO. Its
// filter drops packets at loopback's ingress, where a GSO message (a run
// of same-size datagrams to one address) is one packet. With GSO the
// member alone, sent its fresh data in runs, would lose whole runs, and
// the group, whose multicast alternates addresses, single datagrams: one
// setting, two different losses. Without, both lose datagrams one by
// one, as on a real link.
func (c *Config) disableGSO() bool { return c.Method == MethodLoss }

// lossMethod: setting percent of the UDP packets sent to the member's
// engine port on loopback are dropped (a BPF filter, or nftables), so
// that it keeps asking for retransmissions; it needs root.
type lossMethod struct{}

// Most loss tried: beyond it the member hardly hears heartbeats and is
// suspected, which is failure detection, not slowness.
const maxLoss = 90

// With every datagram lost on its own (GSO off, see disableGSO), a
// member losing a share p of its packets took about (1-p)^1.3 of its
// capacity on loopback (45%: 44%, 78%: 14%, 90%: 6%): the first guess
// inverts that, and each measurement corrects the share that gets
// through by the ratio it missed by, through the same power, at most
// doubling or halving it.
const lossExponent = 1.3

func (lossMethod) guess(level, _, _ float64) float64 {
	return math.Min(maxLoss, math.Max(0.1, 100*(1-math.Pow(level, 1/lossExponent))))
}

func (lossMethod) adjust(loss, measured, target, _ float64) float64 {
	f := math.Min(2, math.Max(0.5, math.Pow(target/measured, 1/lossExponent)))
	through := math.Min(99.9, math.Max(100-maxLoss, (100-loss)*f))
	return 100 - through
}

func (lossMethod) unperturbed() float64 { return 0 }

func (lossMethod) describe(loss float64) string {
	return fmt.Sprintf("%.3g%% of its packets dropped", loss)
}

func (lossMethod) attach(s *bench.Session, i int) (perturber, error) {
	addr, err := netip.ParseAddrPort(s.EngineAddr(i))
	if err != nil {
		return nil, fmt.Errorf("method loss: member %d's address: %w", i, err)
	}
	pl, err := netlab.AttachLoopbackLoss(addr.Port())
	if err != nil {
		return nil, fmt.Errorf("method loss: %w (it needs root, and BPF or nftables)", err)
	}
	return &lossPerturber{pl: pl}, nil
}

type lossPerturber struct{ pl *netlab.PortLoss }

func (p *lossPerturber) set(loss float64) error { return p.pl.SetLoss(loss) }
func (p *lossPerturber) close() error           { return p.pl.Close() }
