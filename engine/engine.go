// Package engine is cohort's embeddable API: an Engine owns one UDP socket
// and the goroutines that serve it, and hosts any number of process groups.
//
//	e, err := engine.New(engine.DefaultConfig())
//	g, err := e.Join(ctx, "prices", []string{"10.0.0.1:7000", "10.0.0.2:7000"},
//		engine.Handlers{Deliver: func(m engine.Message) { apply(m.Payload) }})
//	err = g.Send(ctx, engine.FIFO, update)
//	err = e.Shutdown(ctx)
//
// The examples show whole programs: sending and delivering, a replicated
// map kept in Total order and handed to joiners (Snapshot, Restore),
// Flush, Leave and Shutdown, rejoining after removal. Config's presets
// (DefaultLocalConfig, DefaultLANConfig, DefaultWANConfig) say where each
// fits; across hosts set ListenAddr, AdvertiseAddr and Keys.
//
// Inside, three kinds of goroutine share the work: one receive loop reads
// batches of datagrams; one protocol loop owns every group's protocol
// state, packs outgoing messages into datagrams and writes them; one
// delivery goroutine per group runs the application's handler. They talk
// through bounded queues, so a slow handler never stalls the network.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cohort-vs/cohort/batch"
	"github.com/cohort-vs/cohort/internal/liveness"
	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/ring"
	"github.com/cohort-vs/cohort/seal"
	"github.com/cohort-vs/cohort/udp"
)

// Engine is one member process's endpoint. Its methods are safe for
// concurrent use.
type Engine struct {
	cfg  Config
	conn udp.Conn
	addr netip.AddrPort // advertised: what members reach it at
	// lookup resolves seeds' host names (tests replace it).
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	log    *slog.Logger
	budget *ring.Budget // Config.MemoryBudget, shared by every group's windows

	mu     sync.Mutex
	groups map[uint64]*Group
	// groupList is the protocol loop's copy of groups, replaced (never
	// modified) under mu so the loop can read it without locking.
	groupList atomic.Pointer[[]*Group]

	rx   chan *rxBatch // filled batches, receive loop -> protocol loop
	free chan *rxBatch // empty batches, protocol loop -> receive loop
	wake chan struct{} // anything for the protocol loop to do

	// protoMu is held by whichever goroutine runs the protocol: the
	// protocol loop, or the receive loop when it finds the protocol idle.
	protoMu sync.Mutex

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup

	incarnation atomic.Uint64 // last incarnation number handed out

	stallTicks int // a tick this many intervals late means the process stalled

	// The watch over peer processes, shared by all groups (liveness.go);
	// protoMu held.
	live      *liveness.Liveness
	suspects  []netip.AddrPort
	liveBuf   []byte
	liveDs    []udp.Datagram
	liveStats atomic.Pointer[liveness.Stats]

	// poller is conn when it can read without waiting (nil otherwise);
	// lastLook is when the socket was last read (monotonic ns since
	// start), by either loop. See pollSocket.
	poller   udp.Poller
	start    time.Time
	lastLook atomic.Int64

	// flow bounds what all groups' senders hold unstable (flow.go).
	flow crossFlow
	// out gathers what a round of the protocol loop sends, for every
	// group: small datagrams bound for one process share bundles, and
	// the round leaves with one WriteBatch (protoMu). yield: a group
	// queued deliveries in this round, and its delivery goroutine should
	// run once the round's datagrams are out. lingerAt: when held
	// datagrams are due (Config.Linger), 0 if none are held.
	out      *batch.Batch
	yield    bool
	lingerAt int64

	// Keyed mode (Config.Keys): the sealer and opener, and the buffers
	// sealed datagrams are written into (protoMu).
	sealer   *seal.Sealer
	opener   *seal.Opener
	sealBuf  []byte
	sealedDs []udp.Datagram
	// routes finds a datagram's group by the id on the wire (protoMu).
	routes routeTable
	// bundled: the datagrams of the bundle being dispatched (protoMu).
	bundled [][]byte
	// sched: which groups the protocol loop ticks and services
	// (schedule.go).
	sched schedule

	unknownGroup    atomic.Uint64
	stalls          atomic.Uint64 // the protocol loop found the process had not run (see EngineStats)
	longestStall    atomic.Int64  // nanoseconds
	malformed       atomic.Uint64
	writeErrors     atomic.Uint64
	otherInstance   atomic.Uint64
	unauthenticated atomic.Uint64
	authFailed      atomic.Uint64
	replayed        atomic.Uint64
	sealFailed      atomic.Uint64
}

// routeTable maps the group ids datagrams carry to groups: the plain ids,
// or with Keys each group's id under every installed key. It is rebuilt,
// by whoever holds protoMu, when the groups or the keys change.
type routeTable struct {
	list    *[]*Group
	keys    uint64 // keyring version
	byWire  map[uint64]*Group
	primary map[uint64]uint64 // plain id -> id under the primary key
}

type rxBatch struct {
	ds []udp.Datagram
	n  int
}

// rxBatches is how many receive batches circulate between the loops.
const rxBatches = 4

// New validates cfg, opens the socket and starts the engine's loops.
func New(cfg Config) (*Engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conn := cfg.Conn
	if conn == nil {
		addr, _ := netip.ParseAddrPort(cfg.ListenAddr)
		var err error
		conn, err = udp.Listen(addr, udp.Options{
			RecvBufferBytes: cfg.SocketBufferBytes,
			SendBufferBytes: cfg.SocketBufferBytes,
			Portable:        cfg.PortableSockets,
			DisableGSO:      cfg.DisableGSO,
		})
		if err != nil {
			return nil, fmt.Errorf("engine: listen on %s: %w", cfg.ListenAddr, err)
		}
	}
	e := &Engine{
		cfg:    cfg,
		conn:   conn,
		log:    cfg.Logger,
		budget: ring.NewBudget(cfg.MemoryBudget),
		groups: map[uint64]*Group{},
		rx:     make(chan *rxBatch, rxBatches),
		free:   make(chan *rxBatch, rxBatches),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	e.out = batch.New(conn, cfg.MaxDatagram, 0, batch.Policy{Linger: cfg.Linger})
	e.flow.limit = cfg.engineWindow()
	e.groupList.Store(&[]*Group{})
	e.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	var err error
	if e.addr, err = cfg.advertised(conn.LocalAddr()); err != nil {
		if cfg.Conn == nil {
			conn.Close()
		}
		return nil, fmt.Errorf("engine: AdvertiseAddr: %w", err)
	}
	if cfg.Keys != nil {
		e.sealer = seal.NewSealer(cfg.Keys)
		e.opener = seal.NewOpener(cfg.Keys, e.addr, e.sealer)
	}
	e.poller, _ = conn.(udp.Poller)
	e.start = time.Now()
	e.stallTicks = max(5, cfg.ticks(cfg.SuspectTimeout)/3)
	e.sched.idleTickEvery = int64(cfg.ticks(cfg.DiscoverTimeout))
	// Incarnations start at the wall clock, so that a restarted process is
	// a new member even at the same address, and its run (boot) is named
	// by where they start: its peers tell its new members from its old.
	boot := uint64(time.Now().UnixNano())
	e.incarnation.Store(boot)
	e.live = newLiveness(&cfg, boot)
	e.liveStats.Store(&liveness.Stats{})
	// Receive buffers take the largest UDP payload, so that a datagram
	// from a member with a larger MaxDatagram is seen (and counted) whole.
	for i := 0; i < rxBatches; i++ {
		b := &rxBatch{ds: make([]udp.Datagram, cfg.ReadBatch)}
		for j := range b.ds {
			b.ds[j].Buf = make([]byte, 65536)
		}
		e.free <- b
	}
	e.wg.Add(2)
	go e.receiveLoop()
	go e.protocolLoop()
	return e, nil
}

// nextIncarnation numbers one membership of this engine in a group.
func (e *Engine) nextIncarnation() uint64 { return e.incarnation.Add(1) }

// add registers g so that its traffic reaches it.
func (e *Engine) add(g *Group) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.done:
		return ErrClosed
	default:
	}
	if old, ok := e.groups[g.id]; ok && old.ended.Load() == nil {
		return fmt.Errorf("%w: %q", ErrJoined, g.name)
	}
	e.groups[g.id] = g
	e.publishGroups()
	return nil
}

// remove unregisters g and stops its delivery goroutine.
func (e *Engine) remove(g *Group) {
	e.mu.Lock()
	if e.groups[g.id] == g {
		delete(e.groups, g.id)
		g.unlisted.Store(true)
		e.publishGroups()
	}
	e.mu.Unlock()
	e.protoMu.Lock()
	g.sender.ShareCount(nil) // its messages are no one's to wait for now
	e.shareCounts()
	e.flow.wake()
	e.protoMu.Unlock()
	g.stop()
}

// publishGroups gives the loops a new copy of the group list; e.mu held.
func (e *Engine) publishGroups() {
	list := make([]*Group, 0, len(e.groups))
	for _, x := range e.groups {
		list = append(list, x)
	}
	e.groupList.Store(&list)
}

// rejoinTrack is what an engine remembers of one membership across the
// incarnations that Config.Rejoin makes of it.
type rejoinTrack struct {
	streak  int // evictions in a row of short memberships (under Engine.mu)
	rejoins atomic.Uint64
	evicted atomic.Uint64
}

// rejoinDelay is how long a member removed from g (evicted: as too slow)
// waits before it joins again: nothing after a removal that is not an
// eviction (a false suspicion, a merge: the sooner back the better);
// after an eviction RejoinBackoff, doubled for each further eviction of
// a membership that lasted less than RejoinBackoffMax, up to that.
func (e *Engine) rejoinDelay(g *Group, evicted bool) time.Duration {
	if !evicted {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := g.track
	if at := g.joinedAt.Load(); at != 0 && time.Since(e.start)-time.Duration(at) >= e.cfg.RejoinBackoffMax {
		t.streak = 0
	}
	t.streak++
	d := e.cfg.RejoinBackoff
	for i := 1; i < t.streak && d < e.cfg.RejoinBackoffMax; i++ {
		d *= 2
	}
	return min(d, e.cfg.RejoinBackoffMax)
}

// rejoin replaces a removed membership with a new incarnation's, through
// the group's seeds (and the member its instance merged into, if any),
// once delay has passed.
func (e *Engine) rejoin(old *Group, via netip.AddrPort, delay time.Duration) {
	seeds := make([]string, 0, len(old.proto.Seeds())+1)
	for _, s := range old.proto.Seeds() {
		seeds = append(seeds, s.String())
	}
	if via.IsValid() {
		seeds = append(seeds, via.String())
	}
	e.remove(old)
	if delay > 0 {
		e.log.Info("cohort: rejoining after a pause", "group", old.name, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-e.done:
			t.Stop()
			return
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-e.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	g, err := e.join(ctx, old.name, seeds, old.handlers, old.track)
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			e.log.Warn("cohort: rejoin failed", "group", old.name, "err", err)
		}
		return
	}
	old.track.rejoins.Add(1)
	if old.handlers.Rejoined != nil {
		old.handlers.Rejoined(g)
	}
}

// Addr is the address other members reach this engine at.
func (e *Engine) Addr() netip.AddrPort { return e.addr }

// Config is the configuration the engine runs with (defaults filled in).
func (e *Engine) Config() Config { return e.cfg }

// Groups returns the groups this engine is a member of now, by name.
func (e *Engine) Groups() []*Group {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Group, 0, len(e.groups))
	for _, g := range e.groups {
		if g.ended.Load() == nil {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b *Group) int { return strings.Compare(a.name, b.name) })
	return out
}

// Shutdown leaves every group gracefully (each member's messages sent so
// far are delivered to the others, then a view without it is installed;
// see Group.Leave), all at once, then closes the engine. If ctx ends
// first, it closes the engine anyway and returns the groups' errors
// (ctx's among them). Call it from outside the handlers.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	var groups []*Group
	for _, g := range e.groups {
		if g.ended.Load() == nil {
			groups = append(groups, g)
		}
	}
	e.mu.Unlock()
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.Leave(ctx); err != nil {
				errs[i] = fmt.Errorf("group %q: %w", g.name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, e.Close())...)
}

// Close stops every group and the engine's goroutines and closes the
// socket at once. Messages not yet stable may be lost to the other
// members: Shutdown leaves every group first. Close may be called more
// than once; later calls return nil.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() {
		close(e.done)
		if e.cfg.Linger > 0 {
			e.protoMu.Lock()
			e.out.Flush() // what a linger held
			e.protoMu.Unlock()
		}
		err = e.conn.Close()
		e.wg.Wait()
		for _, g := range *e.groupList.Load() {
			g.stop()
		}
	})
	return err
}

// EngineStats are counters for the engine's socket and demultiplexing.
type EngineStats struct {
	Socket       udp.Stats
	UnknownGroup uint64 // datagrams for a group this engine has not joined
	Malformed    uint64 // datagrams too short or not cohort's
	WriteErrors  uint64 // failed socket writes
	// Bundles is how many datagrams carried several (Bundled) datagrams
	// of this engine's groups to one process (package batch).
	Bundles       uint64
	Bundled       uint64
	OtherInstance uint64 // state transfer datagrams of another instance of the group
	// With Config.Keys: datagrams refused because they were not sealed,
	// did not authenticate (forged, damaged, truncated, or sealed with a
	// key this engine does not hold), or had been taken before
	// (replayed); datagrams not sent because sealing failed.
	Unauthenticated uint64
	AuthFailed      uint64
	Replayed        uint64
	SealFailed      uint64
	// WindowMemory is the memory every group's send and receive windows
	// hold now, against Config.MemoryBudget.
	WindowMemory int64
	// The watch over peer processes, shared by every group: heartbeats
	// sent (to peers that were sent nothing else lately), probes (direct
	// and indirect), peers suspected (each in every group it is in), and
	// suspected peers heard again.
	HeartbeatsSent  uint64
	ProbesSent      uint64
	PeersSuspected  uint64
	PeersHeardAgain uint64
	// Groups is how many groups the engine holds; ActiveGroups, how many
	// of them the protocol loop ticks every tick (the others are idle,
	// and ticked once per DiscoverTimeout).
	Groups       int
	ActiveGroups int
	// Stalls is how many times the protocol loop found its clock more
	// than a third of SuspectTimeout late: the process was not run (CPU
	// starvation, a pause, a debugger); LongestStall is the longest such
	// gap. Peers may suspect a process whose stall outlasts their
	// SuspectTimeout: stalls explain suspicions of a healthy process.
	Stalls       uint64
	LongestStall time.Duration
}

// Stats returns the engine's counters.
func (e *Engine) Stats() EngineStats {
	ls := e.liveStats.Load()
	bs := e.out.Stats()
	return EngineStats{
		Socket:       e.conn.Stats(),
		UnknownGroup: e.unknownGroup.Load(),
		Malformed:    e.malformed.Load(),
		WriteErrors:  e.writeErrors.Load() + bs.Failed,
		Bundles:      bs.Bundles,
		Bundled:      bs.Bundled,

		OtherInstance:   e.otherInstance.Load(),
		Unauthenticated: e.unauthenticated.Load(),
		AuthFailed:      e.authFailed.Load(),
		Replayed:        e.replayed.Load(),
		SealFailed:      e.sealFailed.Load(),
		WindowMemory:    e.budget.Used(),
		Groups:          len(*e.groupList.Load()),
		ActiveGroups:    int(e.sched.activeNow.Load()),
		HeartbeatsSent:  ls.HeartbeatsSent,
		ProbesSent:      ls.ProbesSent,
		PeersSuspected:  ls.Suspicions,
		PeersHeardAgain: ls.Refuted,
		Stalls:          e.stalls.Load(),
		LongestStall:    time.Duration(e.longestStall.Load()),
	}
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) receiveLoop() {
	defer e.wg.Done()
	for {
		var b *rxBatch
		select {
		case b = <-e.free:
		case <-e.done:
			return
		}
		n, err := e.conn.ReadBatch(b.ds)
		if err != nil {
			select {
			case <-e.done:
				return
			default:
			}
			if errors.Is(err, udp.ErrClosed) {
				// The socket was closed under the engine (Config.Conn closed
				// by its owner): nothing more can arrive.
				e.log.Error("cohort: socket closed while the engine runs; receiving stopped", "addr", e.Addr())
				return
			}
			e.log.Warn("cohort: socket read failed", "err", err)
			e.free <- b
			time.Sleep(time.Millisecond) // a persistent error must not spin
			continue
		}
		b.n = n
		e.lastLook.Store(e.since())
		// When the protocol is idle, run it here rather than hand the
		// batch over: that saves a goroutine switch per batch, and the
		// batch is handled before this goroutine goes back to read (with
		// one P, the protocol loop would otherwise only run after that
		// read found nothing and parked).
		if e.protoMu.TryLock() {
			// Batches handed over earlier go first. (One the protocol
			// loop already took may still come after this one: the
			// protocol copes with reordering as it does on the wire.)
			e.drainRx()
			e.dispatch(b)
			e.service()
			if e.lingerAt > 0 {
				e.poke() // the protocol loop keeps the linger's timer
			}
			e.protoMu.Unlock()
			e.free <- b
			continue
		}
		e.rx <- b
	}
}

func (e *Engine) protocolLoop() {
	defer e.wg.Done()
	ticker := time.NewTicker(e.cfg.TickInterval)
	defer ticker.Stop()
	lastTick := time.Now()
	// linger fires when datagrams held past a round are due
	// (Config.Linger); it is armed only then.
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		select {
		case <-linger.C:
			e.protoMu.Lock()
		case b := <-e.rx:
			e.protoMu.Lock()
			e.dispatch(b)
			e.free <- b
		case <-e.wake:
			e.protoMu.Lock()
			e.pollSocket()
		case now := <-ticker.C:
			e.protoMu.Lock()
			// Datagrams already read go in before the clock moves: a gap
			// they fill must not age a tick (and get a NAK) for nothing.
			e.drainRx()
			// The protocol's clock is logical. When ticks come late (a busy
			// machine drops ticker ticks), catch up, so timeouts keep to
			// real time; after a real stall (this process did not run),
			// advance one tick only: the silence it caused is no one
			// else's, and must not get them suspected.
			gap := now.Sub(lastTick)
			n := max(1, int(gap/e.cfg.TickInterval))
			lastTick = now
			if n > e.stallTicks {
				n = 1
				e.stalls.Add(1)
				if int64(gap) > e.longestStall.Load() {
					e.longestStall.Store(int64(gap))
				}
			}
			for i := 0; i < n; i++ {
				e.tickLiveness()
			}
			e.tickGroups(int64(n))
			e.pollSocket()
		case <-e.done:
			return
		}
		e.service()
		if at := e.lingerAt; at > 0 {
			linger.Reset(time.Duration(max(0, at-e.since())))
		}
		e.protoMu.Unlock()
	}
}

// busyPollGap is how long the socket may go unread before the protocol
// loop reads it itself. The Go scheduler polls the network only when it
// has no goroutine to run, or every 10 ms: in a process that sends flat
// out there is always one (the sender, the protocol loop, the delivery
// goroutine), and the receive loop, parked in the poller, learns of its
// datagrams late. A sender then hears of stability (its window, its safe
// messages) milliseconds late. Each look that finds nothing costs one
// system call, so looks are spaced by this gap: at most 20,000 a second,
// and only while the protocol loop is busy.
const busyPollGap = 50 * time.Microsecond

func (e *Engine) since() int64 { return int64(time.Since(e.start)) }

// pollSocket reads what is queued on the socket, without waiting, when
// neither loop has read it for busyPollGap; the caller holds protoMu.
func (e *Engine) pollSocket() {
	if e.poller == nil {
		return
	}
	now := e.since()
	if now-e.lastLook.Load() < int64(busyPollGap) {
		return
	}
	e.lastLook.Store(now)
	// A few batches at most: under a flood the protocol loop must get
	// back to sending (the receive loop is awake by then anyway).
	for range rxBatches {
		var b *rxBatch
		select {
		case b = <-e.free:
		default:
			return // every batch is in use: the receive loop is busy anyway
		}
		n, err := e.poller.TryReadBatch(b.ds)
		if err != nil || n == 0 {
			e.free <- b // errors are the receive loop's to report
			return
		}
		// What the receive loop read is older, and handed over by now
		// (TryReadBatch does not overtake it): it goes first.
		e.drainRx()
		b.n = n
		e.dispatch(b)
		e.free <- b
		if n < len(b.ds) {
			return
		}
	}
}

// drainRx dispatches the batches the receive loop handed over; the caller
// holds protoMu.
func (e *Engine) drainRx() {
	for {
		select {
		case b := <-e.rx:
			e.dispatch(b)
			e.free <- b
		default:
			return
		}
	}
}

// dispatch hands each datagram of a batch to its group's protocol; the
// caller holds protoMu and recycles the batch.
func (e *Engine) dispatch(b *rxBatch) {
	rt := e.route()
	for i := 0; i < b.n; i++ {
		d := &b.ds[i]
		buf := d.Buf[:d.N]
		if !wire.IsBundle(buf) {
			e.receive(rt, d.Addr, buf)
			continue
		}
		// A bundle is never sealed as a whole: each datagram in it is
		// checked (opened, in keyed mode) as if it had come alone.
		var err error
		if e.bundled, err = wire.SplitBundle(buf, e.bundled[:0]); err != nil {
			e.malformed.Add(1)
			continue
		}
		for _, in := range e.bundled {
			e.receive(rt, d.Addr, in)
		}
		clear(e.bundled)
	}
	e.peersChanged()
}

// receive hands one datagram to its group's protocol; protoMu held.
func (e *Engine) receive(rt *routeTable, from netip.AddrPort, buf []byte) {
	if e.opener != nil {
		plain, _, err := e.opener.Open(buf, seal.FirstContact)
		if err != nil {
			e.countOpenError(err)
			return
		}
		buf = plain
	}
	if len(buf) < wire.HeaderSize {
		e.malformed.Add(1)
		return
	}
	if buf[3] == wire.TypeLiveness {
		e.receiveLiveness(from, buf)
		return
	}
	g := rt.byWire[wire.GroupIDOf(buf)]
	if g == nil {
		e.unknownGroup.Add(1)
		return
	}
	if e.opener != nil {
		wire.SetGroupID(buf, g.id) // the protocol knows its plain id
	}
	e.touch(g)
	if buf[3] == wire.TypeState {
		g.stateReceive(from, buf)
		return
	}
	g.proto.Receive(from, buf)
}

func (e *Engine) countOpenError(err error) {
	switch err {
	case seal.ErrUnsealed:
		e.unauthenticated.Add(1)
	case seal.ErrReplay, seal.ErrMisdirected:
		e.replayed.Add(1)
	default:
		e.authFailed.Add(1)
	}
}

// route returns the routing table, rebuilt if the groups or the keys
// changed; protoMu held.
func (e *Engine) route() *routeTable {
	rt := &e.routes
	list := e.groupList.Load()
	var keys []*seal.Key
	var version uint64
	if e.cfg.Keys != nil {
		keys, version = e.cfg.Keys.Installed()
	}
	if rt.list == list && rt.keys == version {
		return rt
	}
	rt.list, rt.keys = list, version
	rt.byWire = make(map[uint64]*Group, len(*list)*max(1, len(keys)))
	rt.primary = make(map[uint64]uint64, len(*list))
	for _, g := range *list {
		if keys == nil {
			rt.byWire[g.id] = g
			continue
		}
		for i, k := range keys {
			id := k.GroupID(g.name)
			rt.byWire[id] = g
			if i == 0 {
				rt.primary[g.id] = id
			}
		}
	}
	return rt
}

// write sends datagrams, counting failures; the protocol recovers losses.
// The caller holds protoMu.
func (e *Engine) write(ds []udp.Datagram) {
	if len(ds) == 0 {
		return
	}
	for i := range ds {
		e.live.Sent(ds[i].Addr)
	}
	if e.sealer != nil {
		ds = e.seal(ds)
	}
	var now int64
	if e.cfg.Linger > 0 {
		now = e.since()
	}
	e.out.Add(ds, now)
}

// endRound writes what the round produced (or, with a linger, notes
// when it is due), then lets the delivery goroutines that were handed
// work run; protoMu held.
func (e *Engine) endRound() {
	e.flow.wake()
	e.lingerAt = 0
	if e.out.Held() {
		var now int64
		if e.cfg.Linger > 0 {
			now = e.since()
		}
		if at, waiting := e.out.End(now); waiting {
			e.lingerAt = at
		}
	}
	if e.yield {
		e.yield = false
		// Let the delivery goroutines run now. With one P they would wait
		// until this goroutine blocks, and behind any goroutine readied
		// after them (the runtime runs the most recently readied first):
		// at a sender, behind the application's next burst of Sends.
		runtime.Gosched()
	}
}

// seal returns ds sealed under the primary key, in the engine's seal
// buffers. A multicast's copies share one plain buffer: it is sealed once
// and the sealed copy sent to each (one nonce, one datagram content, many
// receivers: each sees it once). The caller holds protoMu.
func (e *Engine) seal(ds []udp.Datagram) []udp.Datagram {
	size := e.cfg.MaxDatagram
	if len(e.sealBuf) < len(ds)*size {
		e.sealBuf = make([]byte, len(ds)*size)
	}
	out := e.sealedDs[:0]
	rt := e.route()
	k := e.cfg.Keys.Primary()
	var last *byte // the previous plain buffer
	var sealed []byte
	used := 0
	for i := range ds {
		d := &ds[i]
		plain := d.Buf[:d.N]
		if p := unsafe.SliceData(plain); p != last || len(plain) != len(sealed)-seal.Overhead {
			last = p
			// A multicast (its copies follow one another) is for every
			// member of its view; anything else for its addressee.
			to := seal.AddrTag(d.Addr)
			if i+1 < len(ds) && unsafe.SliceData(ds[i+1].Buf) == p {
				to = 0
			}
			var err error
			sealed, err = e.sealer.Seal(e.sealBuf[used:used:used+size], k, rt.primary[wire.GroupIDOf(plain)], to, plain)
			if err != nil {
				e.sealFailed.Add(1)
				sealed, last = nil, nil
				continue
			}
			used += size
		}
		out = append(out, udp.Datagram{Buf: sealed, N: len(sealed), Addr: d.Addr})
	}
	e.sealedDs = out
	return out
}
