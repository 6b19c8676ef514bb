package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cohort-vs/cohort/engine"
	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/light"
	"github.com/cohort-vs/cohort/seal"
	"github.com/cohort-vs/cohort/udp"
)

// ChildCommand is the hidden subcommand that makes a vsbench binary run as
// one member (RunChild) instead of as the coordinator.
const ChildCommand = "bench-child"

// ChildMain runs a child on the process's standard input and output and
// returns its exit code. Diagnostics go to standard error, which the
// coordinator forwards.
func ChildMain() int {
	if err := RunChild(context.Background(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vsbench child:", err)
		return 1
	}
	return 0
}

// errParentGone means the coordinator closed our input without saying exit.
var errParentGone = errors.New("coordinator went away")

// RunChild serves one member for the coordinator: it reads commands from
// in and writes events to out, one JSON object a line, until told to exit.
// It returns when in ends (the coordinator is gone) or ctx ends.
func RunChild(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	c := &child{out: json.NewEncoder(out)}
	defer c.close()
	slow := &c.slow
	cmds := make(chan command)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var c command
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				cancel(fmt.Errorf("bad command: %w", err))
				return
			}
			if c.Cmd == cmdSlow {
				// Acted on here, not in the loop below, which is busy
				// while a phase runs.
				slow.delayNs.Store(c.DelayNs)
				continue
			}
			select {
			case cmds <- c:
			case <-ctx.Done():
				return
			}
		}
		if err := sc.Err(); err != nil {
			cancel(fmt.Errorf("reading commands: %w", err))
			return
		}
		cancel(errParentGone)
	}()

	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case cmd := <-cmds:
			var err error
			switch cmd.Cmd {
			case cmdSetup:
				err = c.setup(cmd.Setup)
			case cmdJoin:
				err = c.join(ctx, cmd.Members, cmd.Baseline, cmd.Keyed)
			case cmdPhase:
				err = c.runPhase(ctx, cmd)
			case cmdTimeline:
				err = c.runTimeline(ctx, cmd)
			case cmdExit:
				return nil
			default:
				err = fmt.Errorf("unknown command %q", cmd.Cmd)
			}
			if err != nil {
				c.send(event{Type: evError, Err: err.Error()})
				return err
			}
		}
	}
}

// child is one member's state.
type child struct {
	outMu sync.Mutex
	out   *json.Encoder

	cfg childSetup

	eng  *engine.Engine
	grp  *engine.Group   // the first group (the only one, by default)
	grps []*engine.Group // every engine group joined (childSetup.Groups; the carrier with Light)
	// senders are the groups a sender sends to in turn: grps, or the
	// light groups with Light.
	senders []sender
	engRec  *recorder
	sent    atomic.Uint64 // engine messages sent
	// groupDelivered counts each group's deliveries, with several
	// groups; nil with one.
	groupDelivered []groupCounter
	// The process's live heap and RSS once set up, before joining any
	// group: what the idle phase's figures per group are counted from.
	baseHeap, baseRSS uint64

	// keyed is the keyed engine and its group (PhaseKeyed), with a key
	// file; nil without one.
	keyed *engineSide

	base      udp.Conn
	baseRec   *recorder
	malformed atomic.Uint64
	peers     []netip.AddrPort
	receiving sync.WaitGroup

	// For the slow-member study (vsbench perturb): the delay each
	// delivery takes, and what the member saw of its membership.
	slow         slowDelivery
	viewSize     atomic.Int64 // members in the last view installed
	removed      atomic.Bool  // Ended was called
	incarnations atomic.Int64 // joins: 1, plus one per rejoin
}

// groupCounter is one group's deliveries, alone on its cache line: each
// group's delivery goroutine (the carrier's, for light groups) is its
// only writer, so it adds without a locked instruction.
type groupCounter struct {
	n atomic.Uint64
	_ [56]byte
}

// engineSide is an engine measured by engine phases: its group, the
// deliveries' recorder and the messages sent.
type engineSide struct {
	eng  *engine.Engine
	grp  *engine.Group
	rec  *recorder
	sent atomic.Uint64
}

// sender is what a sending member sends to: an engine group or a light
// group.
type sender interface {
	Send(ctx context.Context, o engine.Ordering, payload []byte) error
}

// side is the engine a phase measures: the keyed one for PhaseKeyed, else
// the keyless one; grps are its engine groups and senders what it sends to.
func (c *child) side(phase string) (grps []*engine.Group, senders []sender, rec *recorder, sent *atomic.Uint64) {
	if phase == PhaseKeyed {
		return []*engine.Group{c.keyed.grp}, []sender{c.keyed.grp}, c.keyed.rec, &c.keyed.sent
	}
	return c.grps, c.senders, c.engRec, &c.sent
}

func (c *child) send(ev event) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if err := c.out.Encode(ev); err != nil {
		fmt.Fprintln(os.Stderr, "vsbench child: writing to coordinator:", err)
	}
}

func (c *child) setup(s *childSetup) error {
	if s == nil {
		return errors.New("setup without settings")
	}
	if c.eng != nil {
		return errors.New("setup twice")
	}
	c.cfg = *s
	cfg := engine.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := s.applySlowMember(&cfg); err != nil {
		return err
	}
	cfg.DisableGSO = s.DisableGSO
	if err := c.slow.setMode(s.DelayMode); err != nil {
		return err
	}
	e, err := engine.New(cfg)
	if err != nil {
		return err
	}
	c.eng = e
	keyedAddr := ""
	if s.KeyFile != "" {
		key, err := seal.ReadKeyFile(s.KeyFile)
		if err != nil {
			return fmt.Errorf("key file: %w", err)
		}
		ring, err := seal.NewKeyring(key)
		if err != nil {
			return fmt.Errorf("key file: %w", err)
		}
		kcfg := cfg
		kcfg.Keys = ring
		ke, err := engine.New(kcfg)
		if err != nil {
			return fmt.Errorf("keyed engine: %w", err)
		}
		c.keyed = &engineSide{eng: ke, rec: newRecorder()}
		keyedAddr = ke.Addr().String()
	}
	conn, err := udp.Listen(netip.MustParseAddrPort("127.0.0.1:0"), udp.Options{})
	if err != nil {
		return fmt.Errorf("baseline socket: %w", err)
	}
	c.base = conn
	c.engRec, c.baseRec = newRecorder(), newRecorder()
	batch := newBaselineBatch()
	if s.Groups > 1 {
		// Everything but the groups is in place.
		c.baseHeap, c.baseRSS = liveHeap(), processRSS()
	}
	c.receiving.Add(1)
	go func() {
		defer c.receiving.Done()
		receiveBaselineInto(conn, batch, c.baseRec, &c.malformed)
	}()
	c.send(event{Type: evHello, Engine: e.Addr().String(), Baseline: conn.LocalAddr().String(), Keyed: keyedAddr})
	return nil
}

func (c *child) join(ctx context.Context, members, baseline, keyed []string) error {
	if c.eng == nil {
		return errors.New("join before setup")
	}
	if len(members) != c.cfg.Members || len(baseline) != c.cfg.Members {
		return fmt.Errorf("join with %d engine and %d baseline addresses for %d members", len(members), len(baseline), c.cfg.Members)
	}
	if (c.keyed != nil) != (keyed != nil) || (keyed != nil && len(keyed) != c.cfg.Members) {
		return fmt.Errorf("join with %d keyed engine addresses for %d members (keyed engine: %v)", len(keyed), c.cfg.Members, c.keyed != nil)
	}
	for i, s := range baseline {
		a, err := netip.ParseAddrPort(s)
		if err != nil {
			return fmt.Errorf("baseline address %d: %w", i, err)
		}
		if i != c.cfg.Index {
			c.peers = append(c.peers, a)
		}
	}
	rec := c.engRec
	names := groupNames(GroupName, c.cfg.Groups)
	if len(names) > 1 {
		c.groupDelivered = make([]groupCounter, len(names))
	}
	// full is closed once every group holds every member.
	full := make(chan struct{})
	var gathered atomic.Int64
	slow := &c.slow
	c.incarnations.Store(1)
	handlers := func(i int) engine.Handlers {
		deliver := func(m engine.Message) {
			rec.deliver(m.Payload)
			slow.deliver()
		}
		if c.groupDelivered != nil {
			n := &c.groupDelivered[i].n
			deliver = func(m engine.Message) {
				rec.deliver(m.Payload)
				n.Store(n.Load() + 1) // one writer: the group's delivery goroutine
				slow.deliver()
			}
		}
		var once sync.Once
		return engine.Handlers{
			Deliver: deliver,
			View: func(v engine.View) {
				c.viewSize.Store(int64(len(v.Members)))
				if len(v.Members) == len(members) {
					once.Do(func() {
						if gathered.Add(1) == int64(len(names)) {
							close(full)
						}
					})
				}
			},
			Ended:    func(error) { c.removed.Store(true) },
			Rejoined: func(*engine.Group) { c.removed.Store(false); c.incarnations.Add(1) },
		}
	}
	var grps []*engine.Group
	var senders []sender
	if c.cfg.Light {
		carrier, lgs, err := joinLight(ctx, c.eng, names, members, handlers)
		if err != nil {
			return err
		}
		grps = []*engine.Group{carrier.Engine()}
		for _, g := range lgs {
			senders = append(senders, g)
		}
	} else {
		var err error
		if grps, err = joinGroups(ctx, c.eng, names, members, handlers); err != nil {
			return err
		}
		for _, g := range grps {
			senders = append(senders, g)
		}
	}
	var err error
	// The keyed group, on the keyed engine: joined (founded, by member 0)
	// before evJoined, so that the others join both groups once it has
	// founded both.
	keyedFull := make(chan struct{})
	if c.keyed != nil {
		krec := c.keyed.rec
		var konce sync.Once
		var gathered atomic.Bool
		// Once gathered, a smaller view or the end of the membership
		// spoils the keyed phases: say so (on standard error, which the
		// coordinator shows), since the results only show a member's
		// rate falling.
		if c.keyed.grp, err = c.keyed.eng.Join(ctx, GroupName, keyed, engine.Handlers{
			Deliver: func(m engine.Message) { krec.deliver(m.Payload) },
			View: func(v engine.View) {
				if len(v.Members) == len(keyed) {
					konce.Do(func() { close(keyedFull); gathered.Store(true) })
				} else if gathered.Load() {
					fmt.Fprintf(os.Stderr, "vsbench child: %s: keyed group: view %d of %d members\n",
						time.Now().Format("15:04:05.000"), v.Epoch, len(v.Members))
				}
			},
			Ended: func(err error) {
				if errors.Is(err, engine.ErrClosed) || errors.Is(err, engine.ErrLeft) {
					return // the child's end
				}
				fmt.Fprintf(os.Stderr, "vsbench child: %s: keyed group: membership ended: %v\n",
					time.Now().Format("15:04:05.000"), err)
			},
		}); err != nil {
			return fmt.Errorf("keyed group: %w", err)
		}
	} else {
		close(keyedFull)
	}
	c.send(event{Type: evJoined})
	// Members start together and find each other: measure only once the
	// group holds them all.
	select {
	case <-full:
	case <-ctx.Done():
		if len(names) > 1 {
			return fmt.Errorf("%d of %d groups gathered their %d members: %w", gathered.Load(), len(names), len(members), ctx.Err())
		}
		return fmt.Errorf("the group did not gather its %d members: %w", len(members), ctx.Err())
	}
	select {
	case <-keyedFull:
	case <-ctx.Done():
		return fmt.Errorf("the keyed group did not gather its %d members: %w", len(members), ctx.Err())
	}
	c.grp, c.grps, c.senders = grps[0], grps, senders
	c.send(event{Type: evReady})
	return nil
}

// joinConcurrency bounds the joins a child has under way at once with
// several groups: a founding member's Join listens for DiscoverTimeout
// before it forms its group, so joins overlap, without sending
// thousands of discoveries at once.
const joinConcurrency = 64

// joinGroups joins the named groups through seeds, several at a time,
// and returns them in the order of names; handlers(i) are group i's.
// Each Join returns once its group installed a view with this member.
func joinGroups(ctx context.Context, e *engine.Engine, names, seeds []string, handlers func(i int) engine.Handlers) ([]*engine.Group, error) {
	return joinAll(ctx, names, func(ctx context.Context, i int) (*engine.Group, error) {
		return e.Join(ctx, names[i], seeds, handlers(i))
	})
}

// joinLight opens the carrier (named as the first group) and joins the
// named light groups over it, several at a time.
func joinLight(ctx context.Context, e *engine.Engine, names, seeds []string, handlers func(i int) engine.Handlers) (*light.Carrier, []*light.Group, error) {
	carrier, err := light.Open(ctx, e, names[0]+"-carrier", seeds, light.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("carrier: %w", err)
	}
	lgs, err := joinAll(ctx, names, func(ctx context.Context, i int) (*light.Group, error) {
		return carrier.Join(ctx, names[i], handlers(i))
	})
	return carrier, lgs, err
}

// joinAll runs join for each of names, at most joinConcurrency at a time
// (one alone at once), and returns what they joined in the order of
// names, or the first error.
func joinAll[G any](ctx context.Context, names []string, join func(ctx context.Context, i int) (G, error)) ([]G, error) {
	out := make([]G, len(names))
	if len(names) == 1 {
		g, err := join(ctx, 0)
		out[0] = g
		return out, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, joinConcurrency)
	var wg sync.WaitGroup
	for i, name := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			g, err := join(ctx, i)
			if err != nil {
				cancel(fmt.Errorf("group %s: %w", name, err))
				return
			}
			out[i] = g
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// counters is one snapshot of a phase's cumulative counters.
type counters struct {
	at          time.Time
	cpu         time.Duration // the process's, user and system
	delivered   uint64
	sent        uint64
	mallocs     uint64
	retransmits uint64
	drops       uint64
	writeErrors uint64
	naks        uint64
	beyond      uint64
	noRoom      uint64
	datagrams   uint64
	// The keyed engine's refusals (PhaseKeyed): datagrams that failed
	// authentication, were replayed, or arrived unsealed; and seals
	// that failed.
	authFailed      uint64
	replayed        uint64
	unauthenticated uint64
	sealFailed      uint64
	// groups holds each group's deliveries, with several groups (engine
	// phase, full snapshots only).
	groups []uint64
}

// snapshot reads a phase's counters. A snapshot that is not full (a
// progress tick's) reads only the time and the deliveries.
func (c *child) snapshot(phase string, full bool) counters {
	engPhase := phase == PhaseEngine || phase == PhaseKeyed
	if !full {
		s := counters{delivered: c.baseRec.delivered.Load()}
		if engPhase {
			_, _, rec, _ := c.side(phase)
			s.delivered = rec.delivered.Load()
		}
		s.at = time.Now()
		return s
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := counters{mallocs: ms.Mallocs}
	if engPhase {
		grps, _, rec, sent := c.side(phase)
		eng := c.eng
		if phase == PhaseKeyed {
			eng = c.keyed.eng
		}
		s.delivered = rec.delivered.Load()
		s.sent = sent.Load()
		if phase == PhaseEngine && c.groupDelivered != nil {
			s.groups = make([]uint64, len(c.groupDelivered))
			for i := range c.groupDelivered {
				s.groups[i] = c.groupDelivered[i].n.Load()
			}
		}
		for _, g := range grps {
			gs := g.Stats()
			s.retransmits, s.naks = s.retransmits+gs.Retransmits, s.naks+gs.NAKsSent
			s.beyond, s.noRoom = s.beyond+gs.BeyondWindow, s.noRoom+gs.NoRoom
			s.datagrams += gs.DatagramsSent
		}
		es := eng.Stats()
		s.drops, s.writeErrors = es.Socket.KernelDrops, es.WriteErrors
		s.authFailed, s.replayed = es.AuthFailed, es.Replayed
		s.unauthenticated, s.sealFailed = es.Unauthenticated, es.SealFailed
	} else {
		s.delivered = c.baseRec.delivered.Load()
		s.drops = c.base.Stats().KernelDrops
	}
	s.at, s.cpu = time.Now(), processCPU()
	return s
}

// runPhase runs one phase: senders send from the start time to the end of
// the window; every member counts what it delivers inside the window,
// reports its rate each second, and its result once its senders stopped.
func (c *child) runPhase(ctx context.Context, cmd command) error {
	if c.grp == nil {
		return errors.New("phase before join")
	}
	switch cmd.Phase {
	case PhaseIdle:
		return c.runIdle(ctx, cmd)
	case PhaseEngine, PhaseBaseline:
	case PhaseKeyed:
		if c.keyed == nil {
			return errors.New("keyed phase without a key file")
		}
	default:
		return fmt.Errorf("unknown phase %q", cmd.Phase)
	}
	engPhase := cmd.Phase != PhaseBaseline
	start := time.Unix(0, cmd.StartNs)
	from := start.Add(time.Duration(cmd.WarmupNs))
	to := from.Add(time.Duration(cmd.DurationNs))
	rec := c.baseRec
	_, senders, engRec, engSent := c.side(cmd.Phase)
	if engPhase {
		rec = engRec
	}
	rec.window(stampOf(from), stampOf(to))

	var bs *baselineSender
	sendCtx, stopSending := context.WithDeadline(ctx, to)
	defer stopSending()
	sendErr := make(chan error, 1)
	var order engine.Ordering
	if engPhase {
		name := cmd.Order
		if name == "" {
			name = c.cfg.Order
		}
		var err error
		if order, err = ParseOrder(name, c.cfg.Safe); err != nil {
			return err
		}
	}
	if c.cfg.Sending {
		if engPhase {
			go func() { sendErr <- c.sendEngine(sendCtx, senders, engSent, order, start, to) }()
		} else {
			bs = &baselineSender{
				conn: c.base, peers: c.peers, self: c.cfg.Index, size: c.cfg.Size,
				flags: orderFlags(c.cfg.Order), rate: c.cfg.Rate, own: c.baseRec,
			}
			go func() { bs.run(start, to); sendErr <- nil }()
		}
	} else {
		sendErr <- nil
	}
	snap := func(full bool) counters {
		s := c.snapshot(cmd.Phase, full)
		if bs != nil && full {
			s.sent, s.writeErrors, s.datagrams = bs.sent.Load(), bs.writeErrors.Load(), bs.datagrams.Load()
		}
		return s
	}

	if err := sleepCtx(ctx, from); err != nil {
		return err
	}
	first := snap(true)
	var stopProfile func()
	if c.cfg.CPUProfile != "" {
		var err error
		name := cmd.Phase
		if cmd.Label != "" {
			name = cmd.Label
		}
		if stopProfile, err = startProfile(fmt.Sprintf("%s.%s.m%d", c.cfg.CPUProfile, name, c.cfg.Index)); err != nil {
			return err
		}
	}

	// Progress once a second; the last tick is the end of the window.
	prev, last := first, first
	for k := 1; ; k++ {
		tick := from.Add(time.Duration(k) * time.Second)
		if tick.After(to) {
			tick = to
		}
		if err := sleepCtx(ctx, tick); err != nil {
			return err
		}
		s := snap(!tick.Before(to))
		if dt := s.at.Sub(prev.at).Seconds(); dt > 0 {
			c.send(event{Type: evProgress, Phase: cmd.Phase, Seq: k,
				ElapsedS: s.at.Sub(first.at).Seconds(), Rate: float64(s.delivered-prev.delivered) / dt})
		}
		prev = s
		if !tick.Before(to) {
			last = s
			break
		}
	}
	if stopProfile != nil {
		stopProfile()
	}
	if err := <-sendErr; err != nil {
		return err
	}

	hist, err := rec.encode()
	if err != nil {
		return err
	}
	var groups []uint64
	if last.groups != nil {
		groups = make([]uint64, len(last.groups))
		for i := range groups {
			groups[i] = last.groups[i] - first.groups[i]
		}
	}
	c.send(event{Type: evResult, Result: &MemberResult{
		Index:        c.cfg.Index,
		Phase:        cmd.Phase,
		Delivered:    last.delivered - first.delivered,
		Sent:         last.sent - first.sent,
		ElapsedNs:    last.at.Sub(first.at).Nanoseconds(),
		CPUNs:        (last.cpu - first.cpu).Nanoseconds(),
		Mallocs:      last.mallocs - first.mallocs,
		Retransmits:  last.retransmits - first.retransmits,
		KernelDrops:  last.drops - first.drops,
		WriteErrors:  last.writeErrors - first.writeErrors,
		NAKs:         last.naks - first.naks,
		BeyondWindow: last.beyond - first.beyond,
		NoRoom:       last.noRoom - first.noRoom,
		Datagrams:    last.datagrams - first.datagrams,
		Histogram:    hist,
		Groups:       groups,

		AuthFailed:      last.authFailed - first.authFailed,
		Replayed:        last.replayed - first.replayed,
		Unauthenticated: last.unauthenticated - first.unauthenticated,
		SealFailed:      last.sealFailed - first.sealFailed,
	}})
	return nil
}

// sendEngine sends to grps with order from start until ctx ends (the end
// of the window), counting the messages in sent: in a tight loop, or
// paced at the configured rate, the messages going to the groups in
// turn. The sample (sampleEvery, counted per group) carries its send
// time; only then is the clock read, and the end of the window checked
// between the pacer's batches.
func (c *child) sendEngine(ctx context.Context, grps []sender, sent *atomic.Uint64, order engine.Ordering, start, end time.Time) error {
	payload := make([]byte, c.cfg.Size)
	fillPayload(payload)
	endNs, endStamp := end.UnixNano(), stampOf(end)
	if err := sleepCtx(ctx, start); err != nil {
		return nil
	}
	p := NewPacer(c.cfg.Rate, DefaultBurst(c.cfg.Rate), start)
	samples := make([]sampler, len(grps))
	for i := range samples {
		samples[i] = newSampler(sampleEvery(c.cfg.Rate, c.cfg.Size))
	}
	next := 0 // the group of the next message
	for {
		now := time.Now()
		if now.UnixNano() >= endNs {
			return nil
		}
		n := p.Take(now, 1024)
		if n == 0 {
			p.Wait()
			continue
		}
		for i := 0; i < n; i++ {
			grp, sample := grps[next], &samples[next]
			if next++; next == len(grps) {
				next = 0
			}
			stamped := sample.next()
			if stamped {
				t := stampNow()
				if t >= endStamp {
					return nil
				}
				binary.LittleEndian.PutUint64(payload, uint64(t))
			}
			err := grp.Send(ctx, order, payload) // copies the payload
			if stamped {
				binary.LittleEndian.PutUint64(payload, 0)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil // the window ended while the window was full
				}
				return fmt.Errorf("send: %w", err)
			}
			sent.Add(1)
		}
	}
}

// runIdle measures the groups without traffic (PhaseIdle): the
// datagrams the engine's socket writes over the window, and the process's
// CPU time, then its live heap (after a collection) and RSS.
func (c *child) runIdle(ctx context.Context, cmd command) error {
	from := time.Unix(0, cmd.StartNs).Add(time.Duration(cmd.WarmupNs))
	to := from.Add(time.Duration(cmd.DurationNs))
	if err := sleepCtx(ctx, from); err != nil {
		return err
	}
	dg0, cpu0, at0 := c.eng.Stats().Socket.DatagramsWritten, processCPU(), time.Now()
	if err := sleepCtx(ctx, to); err != nil {
		return err
	}
	dg1, cpu1, at1 := c.eng.Stats().Socket.DatagramsWritten, processCPU(), time.Now()
	c.send(event{Type: evResult, Result: &MemberResult{
		Index:         c.cfg.Index,
		Phase:         PhaseIdle,
		ElapsedNs:     at1.Sub(at0).Nanoseconds(),
		CPUNs:         (cpu1 - cpu0).Nanoseconds(),
		Datagrams:     dg1 - dg0,
		HeapBytes:     liveHeap(),
		RSSBytes:      processRSS(),
		BaseHeapBytes: c.baseHeap,
		BaseRSSBytes:  c.baseRSS,
	}})
	return nil
}

// liveHeap is the bytes of live heap objects, after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func (c *child) close() {
	if c.eng != nil {
		c.eng.Close()
	}
	if c.keyed != nil {
		c.keyed.eng.Close()
	}
	if c.base != nil {
		c.base.Close()
		c.receiving.Wait()
	}
}

// orderFlags is the baseline's packing of messages: unordered's, or
// FIFO's for every other ordering (the baseline has none).
func orderFlags(order string) uint8 {
	if order == "unordered" {
		return wire.OrderUnordered
	}
	return wire.OrderFIFO
}

// sleepCtx sleeps until t or until ctx ends.
func sleepCtx(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
