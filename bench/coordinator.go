package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// ChildSpec says how to start one child process: a program that runs
// ChildMain (for vsbench, its own executable with ChildCommand).
type ChildSpec struct {
	Path string
	Args []string // after the program name
	Env  []string // added to the coordinator's environment
}

// Options are the coordinator's plumbing.
type Options struct {
	Child ChildSpec
	// Progress receives one line per phase and second; nil for none.
	Progress io.Writer
	// Stderr receives the children's standard error, each line prefixed
	// with the member index; nil means os.Stderr.
	Stderr io.Writer
}

// Timeouts for the steps that do not scale with the run's duration.
const (
	startTimeout = 20 * time.Second       // children start, open sockets, join
	phaseLead    = 200 * time.Millisecond // between the phase command and its start
	resultGrace  = 20 * time.Second       // after a window ends, for the results
	exitTimeout  = 5 * time.Second        // for children to exit when told
	killWait     = 2 * time.Second        // for pipes to close after a kill
	// joinTimePerGroup is added to startTimeout for each group beyond
	// the first (Config.Groups): joining thousands takes a while.
	joinTimePerGroup = 5 * time.Millisecond
	// idleSettle is the idle phase's unmeasured lead-in: the joins'
	// last messages go out, and windows unused for a second are given
	// back.
	idleSettle = 1500 * time.Millisecond
)

// Run starts one child process per member, measures the baseline and the
// engine phases, and returns the merged report. cfg.Order must name one
// ordering (RunOrders takes a list). The children are killed (their
// whole process group, where the system has them) when ctx ends or
// anything fails, and always waited for before Run returns.
func Run(ctx context.Context, cfg Config, opt Options) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if orders, _ := cfg.Orders(); len(orders) != 1 {
		return nil, fmt.Errorf("order %q lists %d orderings; Run measures one (see RunOrders)", cfg.Order, len(orders))
	}
	reps, err := RunOrders(ctx, cfg, opt)
	if err != nil {
		return nil, err
	}
	return reps[0], nil
}

// RunOrders is Run for every ordering cfg.Order lists: on the same child
// processes and group, it measures the baseline once, then one engine
// phase per ordering, in the order listed, and returns one report per
// ordering, each holding the shared baseline. The baseline packs messages
// as FIFO ones (unordered when only unordered is measured): it has no
// ordering of its own. With cfg.KeyFile, every child also runs a keyed
// engine in a second group, and each ordering's engine phase is followed
// by a keyed phase on it (Report.Keyed). With several groups
// (cfg.Groups), every child joins them all, and an idle phase before the
// baseline measures what they cost without traffic (Report.Groups).
func RunOrders(ctx context.Context, cfg Config, opt Options) ([]*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	orders, err := cfg.Orders()
	if err != nil {
		return nil, err
	}
	for _, o := range orders {
		if _, err := ParseOrder(o, cfg.Safe); err != nil {
			return nil, err
		}
	}
	if opt.Child.Path == "" {
		return nil, errors.New("bench: no child program")
	}
	if opt.Stderr == nil {
		opt.Stderr = os.Stderr
	}
	keyFile := cfg.KeyFile
	if keyFile != "" {
		// The children may not share the coordinator's idea of ".".
		if keyFile, err = filepath.Abs(keyFile); err != nil {
			return nil, fmt.Errorf("key file: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{
		cfg:    cfg,
		opt:    opt,
		ctx:    ctx,
		events: make(chan childEvent, 4*cfg.Members),
		quit:   make(chan struct{}),
		multi:  len(orders) > 1,
	}
	graceful := false
	defer func() { r.shutdown(graceful, cancel) }()

	if _, err := r.startGroup(func(i int) *childSetup {
		return &childSetup{
			Index: i, Members: cfg.Members, Sending: i < cfg.Senders,
			Size: cfg.Size, Order: baselineOrder(orders), Safe: cfg.Safe, Rate: cfg.Rate, CPUProfile: cfg.CPUProfile,
			KeyFile: keyFile, Groups: cfg.GroupCount(), Light: cfg.Light,
		}
	}); err != nil {
		return nil, err
	}

	var groups *GroupsSummary
	if cfg.GroupCount() > 1 && cfg.Idle > 0 {
		idle, err := r.idle()
		if err != nil {
			return nil, err
		}
		if groups, err = SummarizeIdle(idle, cfg.GroupCount()); err != nil {
			return nil, fmt.Errorf("idle: %w", err)
		}
	}

	baseline, err := r.phase(PhaseBaseline, "")
	if err != nil {
		return nil, err
	}
	engineResults := make([][]MemberResult, len(orders))
	keyedResults := make([][]MemberResult, len(orders))
	for i, o := range orders {
		if engineResults[i], err = r.phase(PhaseEngine, o); err == nil && keyFile != "" {
			keyedResults[i], err = r.phase(PhaseKeyed, o)
		}
		if err != nil {
			if len(orders) > 1 {
				err = fmt.Errorf("%s: %w", orderLabel(o, cfg.Safe), err)
			}
			return nil, err
		}
	}

	for _, k := range r.kids {
		k.send(command{Cmd: cmdExit}) // a child that is gone is killed below
	}
	graceful = true
	var reps []*Report
	for i, o := range orders {
		c := cfg
		c.Order = o
		rep, err := NewReport(c, baseline, engineResults[i])
		if err != nil {
			return nil, err
		}
		if keyedResults[i] != nil {
			if err := rep.AddKeyed(keyedResults[i]); err != nil {
				return nil, err
			}
		}
		rep.Groups = groups
		reps = append(reps, rep)
	}
	return reps, nil
}

// baselineOrder is the ordering whose packing the baseline copies: FIFO's,
// unless every ordering measured is unordered (the encodings differ only
// in the flags byte).
func baselineOrder(orders []string) string {
	for _, o := range orders {
		if o != "unordered" {
			return "fifo"
		}
	}
	return "unordered"
}

// run is one coordinator's state.
type run struct {
	cfg    Config
	opt    Options
	ctx    context.Context
	kids   []*childProc
	events chan childEvent
	quit   chan struct{} // closed at shutdown: readers stop delivering events
	errMu  sync.Mutex    // serializes the children's stderr lines

	progress map[progressKey][]float64
	// multi: several orderings, so each engine (or keyed) phase is
	// labelled with its own (engineLabel, "engine/total", "keyed/total")
	// in progress lines and profiles.
	multi       bool
	engineLabel string

	// onInterval receives a timeline's intervals (Session.Timeline).
	onInterval func(Interval)
}

type childProc struct {
	sendMu sync.Mutex // a session's driver sends commands during a timeline
	index  int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	enc    *json.Encoder
	stderr *prefixWriter
	done   chan struct{} // closed once the process has been waited for
}

func (k *childProc) send(c command) error {
	k.sendMu.Lock()
	defer k.sendMu.Unlock()
	if err := k.enc.Encode(c); err != nil {
		return fmt.Errorf("member %d: sending %s: %w", k.index, c.Cmd, err)
	}
	return nil
}

// childEvent is a child's line, or (exited) the end of its process.
type childEvent struct {
	index  int
	ev     event
	exited bool
	err    error // the process's exit status, when exited
}

func (r *run) start(i int) error {
	cmd := exec.CommandContext(r.ctx, r.opt.Child.Path, r.opt.Child.Args...)
	cmd.Env = append(os.Environ(), r.opt.Child.Env...)
	cmd.Env = append(cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", r.cfg.MemberProcs()))
	stderr := &prefixWriter{w: r.opt.Stderr, mu: &r.errMu, prefix: fmt.Sprintf("[m%d] ", i)}
	cmd.Stderr = stderr
	cmd.WaitDelay = killWait
	configureProcess(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("member %d: start: %w", i, err)
	}
	k := &childProc{index: i, cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), stderr: stderr, done: make(chan struct{})}
	r.kids = append(r.kids, k)
	go func() {
		defer close(k.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var ev event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = event{Type: evError, Err: fmt.Sprintf("unreadable line %.200q", sc.Text())}
			}
			select {
			case r.events <- childEvent{index: i, ev: ev}:
			case <-r.quit:
			}
		}
		io.Copy(io.Discard, stdout) // all output must be read before Wait
		err := cmd.Wait()
		select {
		case r.events <- childEvent{index: i, exited: true, err: err}:
		case <-r.quit:
		}
	}()
	return nil
}

// await collects one event of type want from every child, passing each to
// on, and prints progress lines meanwhile. Any error event, child exit,
// timeout or cancellation fails it.
func (r *run) await(want string, timeout time.Duration, on func(i int, ev event) error) error {
	got := make([]bool, len(r.kids))
	n := 0
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for n < len(r.kids) {
		select {
		case ce := <-r.events:
			i := ce.index
			if ce.exited {
				if ce.err == nil {
					ce.err = errors.New("exit status 0")
				}
				return fmt.Errorf("member %d exited unexpectedly waiting for %s: %w", i, want, ce.err)
			}
			switch ce.ev.Type {
			case evError:
				return fmt.Errorf("member %d: %s", i, ce.ev.Err)
			case evProgress:
				r.showProgress(i, ce.ev)
			case evJoined:
				// A step on the way to ready.
			case evInterval:
				if r.onInterval != nil && ce.ev.Interval != nil {
					iv := *ce.ev.Interval
					iv.Index = i
					r.onInterval(iv)
				}
			case want:
				if got[i] {
					return fmt.Errorf("member %d: %s twice", i, want)
				}
				got[i] = true
				n++
				if on != nil {
					if err := on(i, ce.ev); err != nil {
						return err
					}
				}
			default:
				return fmt.Errorf("member %d: unexpected %q while waiting for %s", i, ce.ev.Type, want)
			}
		case <-timer.C:
			var missing []int
			for i, ok := range got {
				if !ok {
					missing = append(missing, i)
				}
			}
			return fmt.Errorf("timed out after %v waiting for %s from members %v", timeout, want, missing)
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	return nil
}

// awaitOne waits for event want from child i alone.
func (r *run) awaitOne(i int, want string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ce := <-r.events:
			switch {
			case ce.exited:
				return fmt.Errorf("member %d exited unexpectedly waiting for %s", ce.index, want)
			case ce.ev.Type == evError:
				return fmt.Errorf("member %d: %s", ce.index, ce.ev.Err)
			case ce.index == i && ce.ev.Type == want:
				return nil
			}
		case <-timer.C:
			return fmt.Errorf("timed out after %v waiting for %s from member %d", timeout, want, i)
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
}

// awaitJoined waits for child i's evJoined, noting in ready the children
// that are ready meanwhile.
func (r *run) awaitJoined(i int, ready []bool) error {
	timer := time.NewTimer(r.startTimeout())
	defer timer.Stop()
	for {
		select {
		case ce := <-r.events:
			switch {
			case ce.exited:
				return fmt.Errorf("member %d exited unexpectedly while member %d joined", ce.index, i)
			case ce.ev.Type == evError:
				return fmt.Errorf("member %d: %s", ce.index, ce.ev.Err)
			case ce.ev.Type == evReady:
				ready[ce.index] = true
			case ce.index == i && ce.ev.Type == evJoined:
				return nil
			}
		case <-timer.C:
			return fmt.Errorf("timed out after %v waiting for member %d to join", r.startTimeout(), i)
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
}

// awaitRest is await for the children not yet marked in done.
func (r *run) awaitRest(want string, done []bool) error {
	timer := time.NewTimer(r.startTimeout())
	defer timer.Stop()
	for !all(done) {
		select {
		case ce := <-r.events:
			switch {
			case ce.exited:
				return fmt.Errorf("member %d exited unexpectedly waiting for %s", ce.index, want)
			case ce.ev.Type == evError:
				return fmt.Errorf("member %d: %s", ce.index, ce.ev.Err)
			case ce.ev.Type == want:
				done[ce.index] = true
			}
		case <-timer.C:
			var missing []int
			for i, ok := range done {
				if !ok {
					missing = append(missing, i)
				}
			}
			return fmt.Errorf("timed out after %v waiting for %s from members %v", r.startTimeout(), want, missing)
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	return nil
}

func all(bs []bool) bool {
	for _, b := range bs {
		if !b {
			return false
		}
	}
	return true
}

// phase runs one phase on every child and returns their results by index;
// order is the engine phase's ordering.
func (r *run) phase(name, order string) ([]MemberResult, error) {
	var label string
	if r.multi && name != PhaseBaseline {
		r.engineLabel = name + "/" + orderLabel(order, r.cfg.Safe)
		label = name + "-" + order
	}
	return r.runPhase(command{Cmd: cmdPhase, Phase: name, Order: order, Label: label}, r.cfg.Warmup, r.cfg.Duration)
}

// runPhase sends cmd to every child, starting phaseLead from now with
// the warm-up and measured window given, and returns their results by
// index.
func (r *run) runPhase(cmd command, warmup, window time.Duration) ([]MemberResult, error) {
	cmd.StartNs = time.Now().Add(phaseLead).UnixNano()
	cmd.WarmupNs, cmd.DurationNs = warmup.Nanoseconds(), window.Nanoseconds()
	for _, k := range r.kids {
		if err := k.send(cmd); err != nil {
			return nil, err
		}
	}
	results := make([]MemberResult, len(r.kids))
	err := r.await(evResult, phaseLead+warmup+window+resultGrace, func(i int, ev event) error {
		if ev.Result == nil || ev.Result.Phase != cmd.Phase || ev.Result.Index != i {
			return fmt.Errorf("member %d: malformed %s result", i, cmd.Phase)
		}
		results[i] = *ev.Result
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s phase: %w", cmd.Phase, err)
	}
	return results, nil
}

// idle runs the idle phase (PhaseIdle) on every child: nothing is sent;
// after idleSettle, each child counts for cfg.Idle the datagrams its
// engine writes, then reports its heap and RSS.
func (r *run) idle() ([]MemberResult, error) {
	if r.opt.Progress != nil {
		fmt.Fprintf(r.opt.Progress, "idle     %d groups, no traffic: %v to settle, %v measured\n", r.cfg.GroupCount(), idleSettle, r.cfg.Idle)
	}
	return r.runPhase(command{Cmd: cmdPhase, Phase: PhaseIdle}, idleSettle, r.cfg.Idle)
}

// startTimeout bounds the start of the children and their joins, longer
// with many groups.
func (r *run) startTimeout() time.Duration {
	return startTimeout + time.Duration(r.cfg.GroupCount()-1)*joinTimePerGroup
}

type progressKey struct {
	phase string
	seq   int
}

// showProgress prints a phase's second once every member has reported it.
func (r *run) showProgress(i int, ev event) {
	if r.opt.Progress == nil {
		return
	}
	if r.progress == nil {
		r.progress = map[progressKey][]float64{}
	}
	key := progressKey{ev.Phase, ev.Seq}
	rates := r.progress[key]
	if rates == nil {
		rates = make([]float64, 0, len(r.kids))
	}
	rates = append(rates, ev.Rate)
	if len(rates) < len(r.kids) {
		r.progress[key] = rates
		return
	}
	delete(r.progress, key)
	lo, hi := rates[0], rates[0]
	for _, x := range rates {
		lo, hi = min(lo, x), max(hi, x)
	}
	label := ev.Phase
	if ev.Phase != PhaseBaseline && r.engineLabel != "" {
		label = r.engineLabel
	}
	fmt.Fprintf(r.opt.Progress, "%-8s %5.1fs  delivered msgs/s per member: min %s  max %s\n",
		label, ev.ElapsedS, groupDigits(lo), groupDigits(hi))
}

// shutdown ends every child and waits for it. Gracefully, children told
// to exit get exitTimeout to do so; otherwise, or after that, they are
// killed.
func (r *run) shutdown(graceful bool, cancel context.CancelFunc) {
	close(r.quit)
	for _, k := range r.kids {
		k.stdin.Close() // a child whose input ends exits too
	}
	if graceful {
		deadline := time.NewTimer(exitTimeout)
		defer deadline.Stop()
	wait:
		for _, k := range r.kids {
			select {
			case <-k.done:
			case <-deadline.C:
				fmt.Fprintln(r.opt.Stderr, "vsbench: children did not exit in time; killing them")
				break wait
			}
		}
	}
	cancel() // kills whatever still runs (exec calls each command's Cancel)
	for _, k := range r.kids {
		<-k.done
		k.stderr.flush()
	}
}

// prefixWriter writes each line with a prefix, whole lines at a time.
type prefixWriter struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s", p.prefix, p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 64<<10 { // an endless line: show it anyway
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = p.buf[:0]
	}
	return len(b), nil
}

// flush writes a last line that had no newline.
func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = p.buf[:0]
	}
}

// startGroup starts the children, sets each one up (setup(i) for child
// i), and joins them into one group: member 0 founds it, so that it is the
// coordinator (and so the sequencer of total order) and, in one-sender
// runs, the sender; the others then join with the full member list. It
// returns the engines' addresses once every child is in the full view.
func (r *run) startGroup(setup func(i int) *childSetup) (engines []string, err error) {
	n := r.cfg.Members
	for i := 0; i < n; i++ {
		if err := r.start(i); err != nil {
			return nil, err
		}
	}
	engines = make([]string, n)
	baselines := make([]string, n)
	keyed := make([]string, n) // with a key file
	nKeyed := 0
	for i, k := range r.kids {
		if err := k.send(command{Cmd: cmdSetup, Setup: setup(i)}); err != nil {
			return nil, err
		}
	}
	if err := r.await(evHello, r.startTimeout(), func(i int, ev event) error {
		if ev.Engine == "" || ev.Baseline == "" {
			return fmt.Errorf("member %d: hello without addresses", i)
		}
		engines[i], baselines[i], keyed[i] = ev.Engine, ev.Baseline, ev.Keyed
		if ev.Keyed != "" {
			nKeyed++
		}
		return nil
	}); err != nil {
		return nil, err
	}
	join := command{Cmd: cmdJoin, Members: engines, Baseline: baselines}
	switch nKeyed {
	case 0:
	case n:
		join.Keyed = keyed
	default:
		return nil, fmt.Errorf("%d of %d members run a keyed engine", nKeyed, n)
	}
	if err := r.kids[0].send(join); err != nil {
		return nil, err
	}
	if err := r.awaitOne(0, evJoined, r.startTimeout()); err != nil {
		return nil, err
	}
	if r.cfg.GroupCount() > 1 {
		// Many groups: the members join one after another, each once
		// the one before is in every group, so that a group's
		// coordinator takes one joiner at a time.
		ready := make([]bool, n)
		for i, k := range r.kids[1:] {
			if err := k.send(join); err != nil {
				return nil, err
			}
			if err := r.awaitJoined(i+1, ready); err != nil {
				return nil, err
			}
		}
		if err := r.awaitRest(evReady, ready); err != nil {
			return nil, err
		}
		return engines, nil
	}
	for _, k := range r.kids[1:] {
		if err := k.send(join); err != nil {
			return nil, err
		}
	}
	if err := r.await(evReady, r.startTimeout(), nil); err != nil {
		return nil, err
	}
	return engines, nil
}

// LockedWriter serializes writes to the writer it wraps, for output
// shared by goroutines (progress lines, members' standard error).
type LockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLockedWriter wraps w.
func NewLockedWriter(w io.Writer) *LockedWriter { return &LockedWriter{w: w} }

func (l *LockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
