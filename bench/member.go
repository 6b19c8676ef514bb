package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cohort-vs/cohort/engine"
	"github.com/cohort-vs/cohort/light"
	"github.com/cohort-vs/cohort/metrics"
	"github.com/cohort-vs/cohort/seal"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MemberCommand is the subcommand that runs one member process
// (RunMember): `vsbench member --listen ADDR --seeds ADDR,... --log FILE`.
const MemberCommand = "member"

// MemberConfig describes one member process: it joins a group, sends
// fixed-size messages while it is in a view, keeps a digest of what it
// delivered as its application state, and logs every view, send and
// delivery to its event log (docs/LOGS.md). The send events, interleaved
// with the deliveries in one file, tell the checker what the member had
// delivered before each send (for the causal rule).
type MemberConfig struct {
	Listen string   // UDP address to bind, "ip:port"
	Seeds  []string // addresses of processes that may be members; none: form a group alone
	Group  string
	Order  string  // one of OrderNames
	Safe   bool    // send safe messages (engine.Safe or-ed with Order)
	Rate   float64 // messages/s offered; 0: as fast as flow control allows
	Size   int     // message size in bytes; grown to fit the message's id if smaller
	// Duration is how long the member runs before it leaves; 0: until
	// its context ends (a signal).
	Duration time.Duration
	// StateSize is the size of the padding of the application state,
	// moved to every joiner by state transfer (docs/LOGS.md).
	StateSize int
	Log       string // event log path; empty: no log
	// Rejoin: when removed from the group, join again as a new
	// incarnation and go on, instead of exiting with ExitRemoved; and
	// when a join fails because the group stayed blocked
	// (engine.ErrBlocked), try it again rather than exit with ExitFailed.
	Rejoin bool
	// LeaveTimeout bounds the graceful Leave at the end.
	LeaveTimeout time.Duration
	// MaxDatagram is the engine's MaxDatagram; 0: the engine's default
	// (8 KiB). On a 1500-byte-MTU link with loss use 1472, so that no
	// datagram travels as IP fragments.
	MaxDatagram int
	// SlowMember is the engine's slow-member policy: "block" or "evict".
	SlowMember string
	// KeyFile, when set, names a key file (seal.ReadKeyFile: 32 bytes in
	// base64): the engine runs keyed (engine.Config.Keys), sealing every
	// datagram; every member of the group needs the same key.
	KeyFile string
	// Insecure sets engine.Config.Insecure: without KeyFile, the engine
	// may then listen on an address that is not loopback.
	Insecure bool
	// Quorum is the engine's quorum policy: majority, tiebreaker or
	// laststanding (engine.ParseQuorum); QuorumWindow its window for
	// laststanding (0: the engine's default).
	Quorum       string
	QuorumWindow time.Duration
	// Metrics, when set, is a TCP address ("ip:port") where the member
	// serves its counters: Prometheus at /metrics, expvar at /debug/vars,
	// with the delivery-latency histogram (engine.Config.MeasureLatency).
	Metrics string
	// Groups is the number of groups the process joins (0 or 1: one,
	// named Group). With more, it joins Group-0 to Group-(Groups-1) on
	// its one engine, runs each as a member of its own (Rate split
	// evenly between them), and logs each group to its own file
	// (MemberLogs). Its joins go at most joinConcurrency at a time, as
	// vsbench's children's do: thousands of groups forming at once starve
	// the process long enough for its peers to suspect it.
	Groups int
	// ViewsLog, when set, is a file to which every group's view lines are
	// also appended, byte for byte as in the group's own log (the same
	// "t"): one file to follow for the views of thousands of groups
	// (docs/LOGS.md).
	ViewsLog string
	// SendGroups, with Groups above 1, lists the groups (by index, 0 to
	// Groups-1) that send: Rate is split evenly over them, and the others
	// send nothing. None: every group sends.
	SendGroups []int
	// Light makes the groups light groups (package light) over one
	// carrier group, named Group, that the process opens first.
	Light bool
}

// MemberLogs returns the event logs of a member process whose --log is
// path and that joins groups groups: path itself for one; otherwise one
// per group, path with ".I" inserted before its extension for group I
// (m1.log: m1.0.log, m1.1.log, ...). Each is a log of one group, as the
// checker reads them.
func MemberLogs(path string, groups int) []string {
	if groups <= 1 || path == "" {
		out := make([]string, max(1, groups))
		for i := range out {
			out[i] = path
		}
		return out
	}
	ext := filepath.Ext(path)
	stem := strings.TrimSuffix(path, ext)
	out := make([]string, groups)
	for i := range out {
		out[i] = stem + "." + strconv.Itoa(i) + ext
	}
	return out
}

// DefaultMemberConfig is what `vsbench member` runs with no flags.
func DefaultMemberConfig() MemberConfig {
	return MemberConfig{
		Listen:       "127.0.0.1:0",
		Group:        GroupName,
		Order:        "fifo",
		Size:         64,
		LeaveTimeout: 5 * time.Second,
		SlowMember:   "block",
	}
}

// Validate reports a setting that cannot run, saying what to fix.
func (c *MemberConfig) Validate() error {
	listen, err := netip.ParseAddrPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: want ip:port (%v)", c.Listen, err)
	}
	if !listen.Addr().IsLoopback() && c.KeyFile == "" && !c.Insecure {
		return fmt.Errorf("listen address %s is not loopback: give --key-file FILE (the members' shared key, docs/SECURITY.md) or, on a trusted network, --insecure", c.Listen)
	}
	for _, s := range c.Seeds {
		if _, err := netip.ParseAddrPort(s); err != nil {
			return fmt.Errorf("seed %q: want ip:port (%v)", s, err)
		}
	}
	if _, err := ParseOrder(c.Order, c.Safe); err != nil {
		return err
	}
	if c.Quorum != "" {
		if _, err := engine.ParseQuorum(c.Quorum); err != nil {
			return err
		}
	}
	switch {
	case c.Group == "":
		return errors.New("group name is empty")
	case c.QuorumWindow < 0:
		return fmt.Errorf("quorum window is %v; use 0 (the engine's default) or more", c.QuorumWindow)
	case c.Rate < 0:
		return fmt.Errorf("rate is %v; use 0 (as fast as flow control allows) or a positive rate", c.Rate)
	case c.Size < 0 || c.Size > MaxSize:
		return fmt.Errorf("size is %d; use 0 to %d (16 MiB, the engine's default MaxMessageSize)", c.Size, MaxSize)
	case c.Duration < 0:
		return fmt.Errorf("duration is %v; use 0 (until signalled) or more", c.Duration)
	case c.StateSize < 0:
		return fmt.Errorf("state size is %d; use 0 or more", c.StateSize)
	case c.LeaveTimeout <= 0:
		return fmt.Errorf("leave timeout is %v; use a positive duration", c.LeaveTimeout)
	case c.MaxDatagram != 0 && (c.MaxDatagram < 512 || c.MaxDatagram > 65507):
		return fmt.Errorf("max datagram is %d; use 512 to 65507 bytes, or 0 for the engine's default", c.MaxDatagram)
	case c.Groups < 0 || c.Groups > MaxGroups:
		return fmt.Errorf("groups is %d; use 1 to %d", c.Groups, MaxGroups)
	case len(c.SendGroups) > 0 && c.Groups <= 1:
		return errors.New("send groups need several groups")
	}
	for _, g := range c.SendGroups {
		if g < 0 || g >= c.Groups {
			return fmt.Errorf("send group %d; use 0 to %d", g, c.Groups-1)
		}
	}
	if _, err := engine.ParseSlowMemberPolicy(c.SlowMember); err != nil {
		return err
	}
	return nil
}

// Exit statuses of a member process.
const (
	ExitOK      = 0 // ran, then left gracefully (or was stopped before it joined)
	ExitFailed  = 1 // bad settings, or an error (the engine's, the log's)
	ExitRemoved = 3 // removed from the group (without Rejoin)
	ExitNotLeft = 4 // the graceful Leave did not complete in time
)

// MemberID formats a member incarnation's ID as the logs write it:
// "ip:port/incarnation".
func MemberID(m engine.MemberID) string {
	return m.Addr.String() + "/" + strconv.FormatUint(m.Incarnation, 10)
}

// RunMember runs one member until cfg.Duration has passed or ctx ends,
// then stops sending, leaves the group and returns ExitOK; see the Exit
// constants for the other outcomes. Diagnostics go to stderr. With
// several groups (cfg.Groups) it runs a member of each, all at once on
// one engine, each with its own log (MemberLogs), and returns the worst
// of their statuses (ExitFailed, then ExitRemoved, then ExitNotLeft).
func RunMember(ctx context.Context, cfg MemberConfig, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "vsbench member: "+format+"\n", args...)
		return ExitFailed
	}
	if err := cfg.Validate(); err != nil {
		return fail("%v", err)
	}
	var keys *seal.Keyring
	if cfg.KeyFile != "" {
		key, err := seal.ReadKeyFile(cfg.KeyFile)
		if err == nil {
			keys, err = seal.NewKeyring(key)
		}
		if err != nil {
			return fail("key file: %v", err)
		}
	}
	names := groupNames(cfg.Group, cfg.Groups)
	var views *eventLog
	if cfg.ViewsLog != "" {
		var err error
		views, err = openEventLog(cfg.ViewsLog, func(err error) {
			fmt.Fprintf(stderr, "vsbench member: writing the views log: %v\n", err)
		})
		if err != nil {
			return fail("%v", err)
		}
		defer views.Close()
	}
	paths := MemberLogs(cfg.Log, len(names))
	logs := make([]*eventLog, len(names))
	for i, path := range paths {
		log, err := openEventLog(path, func(err error) {
			fmt.Fprintf(stderr, "vsbench member: writing the log: %v\n", err)
		})
		if err != nil {
			return fail("%v", err)
		}
		defer log.Close()
		logs[i] = log
	}

	ecfg := engine.DefaultConfig()
	ecfg.ListenAddr = cfg.Listen
	if cfg.MaxDatagram != 0 {
		ecfg.MaxDatagram = cfg.MaxDatagram
	}
	ecfg.SlowMember, _ = engine.ParseSlowMemberPolicy(cfg.SlowMember) // validated
	ecfg.Keys, ecfg.Insecure = keys, cfg.Insecure
	ecfg.MeasureLatency = cfg.Metrics != ""
	if cfg.Quorum != "" {
		ecfg.Quorum, _ = engine.ParseQuorum(cfg.Quorum) // validated
	}
	if cfg.QuorumWindow > 0 {
		ecfg.QuorumWindow = cfg.QuorumWindow
	}
	ecfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Rejoin is done here rather than by engine.Config.Rejoin: the engine
	// rejoins under a new *Group that it does not hand back, so this
	// process could not send as the new incarnation.
	e, err := engine.New(ecfg)
	if err != nil {
		return fail("%v", err)
	}
	if cfg.Metrics != "" {
		stop, err := serveMetrics(cfg.Metrics, e)
		if err != nil {
			e.Close()
			return fail("metrics: %v", err)
		}
		defer stop()
	}
	var joinSlots chan struct{}
	if len(names) > 1 {
		joinSlots = make(chan struct{}, joinConcurrency)
	}
	join := func(ctx context.Context, name string, seeds []string, h engine.Handlers) (memberGroup, error) {
		return e.Join(ctx, name, seeds, h)
	}
	closeCarrier := func() {}
	if cfg.Light {
		seeds := cfg.Seeds
		if len(seeds) == 0 {
			seeds = []string{e.Addr().String()}
		}
		carrier, err := light.Open(ctx, e, cfg.Group, seeds, light.Options{})
		if err != nil {
			e.Close()
			return fail("carrier: %v", err)
		}
		join = func(ctx context.Context, name string, _ []string, h engine.Handlers) (memberGroup, error) {
			return carrier.Join(ctx, name, h)
		}
		// Leave the carrier too, once every light group is left: closing
		// the engine without it would look like a crash to the others.
		closeCarrier = func() {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.LeaveTimeout)
			defer cancel()
			if err := carrier.Close(ctx); err != nil {
				fmt.Fprintf(stderr, "vsbench member: leaving the carrier: %v\n", err)
			}
		}
	}
	senders := make([]bool, len(names))
	for _, g := range cfg.SendGroups {
		senders[g] = true
	}
	nSenders := len(names)
	if len(cfg.SendGroups) > 0 {
		nSenders = 0
		for _, ok := range senders {
			if ok {
				nSenders++
			}
		}
	}
	members := make([]*member, len(names))
	for i, name := range names {
		c := cfg
		c.Group = name
		silent := len(cfg.SendGroups) > 0 && !senders[i]
		switch {
		case silent:
			c.Rate = 0
		case len(names) > 1:
			c.Rate = cfg.Rate / float64(nSenders)
		}
		members[i] = newMember(c, logs[i], stderr)
		members[i].silent = silent
		members[i].views, members[i].joinSlots, members[i].join = views, joinSlots, join
		members[i].logStart(e.Addr())
	}
	codes := make([]int, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = m.run(ctx, e)
		}()
	}
	wg.Wait()
	closeCarrier()
	e.Close() // waits for the delivery goroutines: no event after exit
	code := ExitOK
	for i, m := range members {
		if n := m.mismatched.Load(); n > 0 {
			if len(members) > 1 {
				fmt.Fprintf(stderr, "vsbench member: group %s: %d deliveries carried another sender's id or none\n", names[i], n)
			} else {
				fmt.Fprintf(stderr, "vsbench member: %d deliveries carried another sender's id or none\n", n)
			}
		}
		c := codes[i]
		if logs[i].Err() != nil && c == ExitOK {
			c = ExitFailed
		}
		code = worseExit(code, c)
	}
	if views != nil && views.Err() != nil {
		code = worseExit(code, ExitFailed)
	}
	if code != ExitOK {
		// What a failed run's reader asks first: did this process stall
		// (and get suspected), or suspect others?
		es := e.Stats()
		fmt.Fprintf(stderr, "vsbench member: engine: %d stalls (longest %v), %d peers suspected, %d heard again\n",
			es.Stalls, es.LongestStall.Round(time.Millisecond), es.PeersSuspected, es.PeersHeardAgain)
	}
	for _, m := range members {
		m.logExit(code)
	}
	return code
}

// worseExit is the worse of two exit statuses: ExitFailed, then
// ExitRemoved, then ExitNotLeft, then ExitOK.
func worseExit(a, b int) int {
	for _, c := range []int{ExitFailed, ExitRemoved, ExitNotLeft} {
		if a == c || b == c {
			return c
		}
	}
	return max(a, b)
}

type restoreInfo struct {
	bytes int64
	took  time.Duration
}

// member is one member process's state.
type member struct {
	cfg    MemberConfig
	order  engine.Ordering
	log    *eventLog
	views  *eventLog // MemberConfig.ViewsLog, shared by the groups; nil: none
	stderr io.Writer
	group  []byte // the group name as a JSON string
	// joinSlots, shared by the groups of one process, bounds the joins
	// under way at once; nil: unbounded (one group).
	joinSlots chan struct{}
	silent    bool // sends nothing (MemberConfig.SendGroups)
	// join joins a group: the engine's Join, or a light group's.
	join func(ctx context.Context, name string, seeds []string, h engine.Handlers) (memberGroup, error)

	epoch      atomic.Uint64 // the current incarnation's view, as delivered
	mismatched atomic.Uint64 // deliveries whose payload named another sender

	// Delivery goroutine only (incarnations follow one another: the next
	// joins after the previous one's Ended handler returned).
	state         uint64      // digest of the messages delivered (see deliver)
	restored      restoreInfo // the last state restored from a donor, to log
	ids           map[engine.MemberID][]byte
	deliverPrefix []byte
	orderField    [8][]byte // by Ordering&7: the ordering and the safe flag
}

// memberGroup is the group a member runs in: an engine group or a light
// group.
type memberGroup interface {
	Send(ctx context.Context, o engine.Ordering, payload []byte) error
	Leave(ctx context.Context) error
	View() engine.View
}

// incarnation is one membership of this process in the group.
type incarnation struct {
	g     memberGroup
	self  string
	ended chan struct{} // closed by the Ended handler, after its log line
	// viewed: it installed a view (delivery goroutine only). A membership
	// that ends before its first view has nothing to log.
	viewed bool
}

func newMember(cfg MemberConfig, log *eventLog, stderr io.Writer) *member {
	m := &member{cfg: cfg, log: log, stderr: stderr, ids: map[engine.MemberID][]byte{}}
	m.group = appendJSONString(nil, cfg.Group)
	o, err := ParseOrder(cfg.Order, cfg.Safe)
	if err != nil {
		o = engine.FIFO // RunMember validated cfg: only tests get here
	}
	m.order = o
	for i := range m.orderField {
		o := engine.Ordering(i)
		f := `,"order":"` + OrderNames[o&3] + `"`
		if o&engine.Safe != 0 {
			f += `,"safe":true`
		}
		m.orderField[i] = []byte(f)
	}
	return m
}

func (m *member) run(ctx context.Context, e *engine.Engine) int {
	if m.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.cfg.Duration)
		defer cancel()
	}
	seeds := m.cfg.Seeds
	if len(seeds) == 0 {
		seeds = []string{e.Addr().String()}
	}
	if m.join == nil {
		m.join = func(ctx context.Context, name string, seeds []string, h engine.Handlers) (memberGroup, error) {
			return e.Join(ctx, name, seeds, h)
		}
	}
	for {
		inc := &incarnation{ended: make(chan struct{})}
		m.state = 0 // until a donor's state is restored
		if m.joinSlots != nil {
			select {
			case m.joinSlots <- struct{}{}:
			case <-ctx.Done():
				return ExitOK // stopped before it joined
			}
		}
		g, err := m.join(ctx, m.cfg.Group, seeds, engine.Handlers{
			Deliver:  m.deliver,
			Snapshot: m.snapshot,
			Restore:  m.restore,
			View: func(v engine.View) {
				inc.viewed = true
				m.view(v)
			},
			Ended: func(err error) { m.ended(inc, err) },
		})
		if m.joinSlots != nil {
			<-m.joinSlots
		}
		if err != nil {
			if ctx.Err() != nil {
				return ExitOK // stopped before it joined
			}
			fmt.Fprintf(m.stderr, "vsbench member: join: %v\n", err)
			if errors.Is(err, engine.ErrRemoved) || (m.cfg.Rejoin && errors.Is(err, engine.ErrBlocked)) {
				// Removed, or (with Rejoin) the group stayed blocked for
				// BlockTimeout without taking this member: try again.
				if m.cfg.Rejoin {
					sleepFor(ctx, 100*time.Millisecond)
					continue
				}
				return ExitRemoved
			}
			return ExitFailed
		}
		v := g.View()
		inc.g, inc.self = g, MemberID(v.Members[v.Self])

		sendCtx, stopSending := context.WithCancel(ctx)
		sendErr := make(chan error, 1)
		go func() { sendErr <- m.send(sendCtx, inc) }()
		// The sender returns when ctx ends, on a fatal error, or (nil)
		// when Send reports the removal, which may be just before the
		// Ended handler runs.
		var fatal error
		select {
		case <-ctx.Done():
			stopSending()
			fatal = <-sendErr
		case <-inc.ended:
			stopSending()
			fatal = <-sendErr
		case fatal = <-sendErr:
			stopSending()
		}
		if fatal != nil {
			fmt.Fprintf(m.stderr, "vsbench member: send: %v\n", fatal)
		} else if ctx.Err() == nil {
			// Removed: wait for the handler (bounded, should it never come).
			select {
			case <-inc.ended:
			case <-ctx.Done():
			}
		}
		select {
		case <-inc.ended:
			// Removed: Leave was not asked for.
			fmt.Fprintf(m.stderr, "vsbench member: %s removed from group %q in view %d\n", inc.self, m.cfg.Group, m.epoch.Load())
			if fatal != nil {
				return ExitFailed
			}
			if m.cfg.Rejoin && ctx.Err() == nil {
				continue
			}
			return ExitRemoved
		default:
		}
		code := m.leave(inc)
		if fatal != nil {
			code = ExitFailed
		}
		return code
	}
}

// leave flushes (every member then holds what this one sent and
// delivered), leaves gracefully and waits for the Ended handler.
func (m *member) leave(inc *incarnation) int {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.LeaveTimeout)
	defer cancel()
	if f, ok := inc.g.(interface{ Flush(context.Context) error }); ok {
		if err := f.Flush(ctx); err != nil && !errors.Is(err, engine.ErrRemoved) {
			fmt.Fprintf(m.stderr, "vsbench member: flush before leaving: %v\n", err)
		}
	}
	err := inc.g.Leave(ctx)
	if err == nil {
		select {
		case <-inc.ended:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, engine.ErrRemoved):
		fmt.Fprintf(m.stderr, "vsbench member: %s removed from group %q while leaving\n", inc.self, m.cfg.Group)
		return ExitRemoved
	default:
		fmt.Fprintf(m.stderr, "vsbench member: leave: %v\n", err)
		return ExitNotLeft
	}
}

// send sends until ctx ends or the incarnation is removed. Each message
// carries its send time (8 bytes, little-endian unix ns), the length of
// its id (1 byte) and its id "SENDER#N", then zeros up to the size. The
// send event is logged before Send is called; a Send that fails is
// logged as unsent (the message was not handed to the group).
func (m *member) send(ctx context.Context, inc *incarnation) error {
	if m.silent {
		<-ctx.Done()
		return nil
	}
	idLen := len(inc.self) + 1 + 20
	if idLen > 255 {
		return fmt.Errorf("member id %q too long for a message id", inc.self)
	}
	payload := make([]byte, 0, max(m.cfg.Size, 9+idLen))
	p := NewPacer(m.cfg.Rate, DefaultBurst(m.cfg.Rate), time.Now())
	var n uint64
	for ctx.Err() == nil {
		k := p.Take(time.Now(), 256)
		if k == 0 {
			sleepFor(ctx, p.Delay())
			continue
		}
		for ; k > 0 && ctx.Err() == nil; k-- {
			n++
			payload = append(payload[:8], 0)
			payload = append(payload, inc.self...)
			payload = append(payload, '#')
			payload = strconv.AppendUint(payload, n, 10)
			payload[8] = byte(len(payload) - 9)
			for len(payload) < m.cfg.Size {
				payload = append(payload, 0)
			}
			id := payload[9 : 9+int(payload[8])]
			binary.LittleEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
			m.logSend(id)
			err := inc.g.Send(ctx, m.order, payload)
			if err == nil {
				continue
			}
			m.logUnsent(id, err)
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, engine.ErrRemoved):
				return nil // the Ended handler tells run
			case errors.Is(err, engine.ErrBlocked):
				sleepFor(ctx, 10*time.Millisecond)
			default:
				return err
			}
		}
	}
	return nil
}

// sleepFor sleeps for d or until ctx ends.
func sleepFor(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

func fnvUint64(h uint64, x uint64) uint64 {
	for i := 0; i < 8; i++ {
		h = (h ^ (x & 0xff)) * fnvPrime
		x >>= 8
	}
	return h
}

// snapshot writes the application state: the digest, then StateSize
// bytes derived from it, so that a transfer moves real volume and the
// joiner can verify every byte.
func (m *member) snapshot(w io.Writer) error {
	var head [16]byte
	binary.LittleEndian.PutUint64(head[:], m.state)
	binary.LittleEndian.PutUint64(head[8:], uint64(m.cfg.StateSize))
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	x := m.state | 1
	for left := m.cfg.StateSize; left > 0; {
		n := min(left, len(buf))
		x = fillPadding(buf[:n], x)
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// restore reads a donor's snapshot, checks its padding, and takes its
// digest as this member's state.
func (m *member) restore(r io.Reader) error {
	start := time.Now()
	var head [16]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return fmt.Errorf("state header: %w", err)
	}
	state, size := binary.LittleEndian.Uint64(head[:]), int(binary.LittleEndian.Uint64(head[8:]))
	buf, want := make([]byte, 64<<10), make([]byte, 64<<10)
	x := state | 1
	for left := size; left > 0; {
		n := min(left, len(buf))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return fmt.Errorf("state padding: %w", err)
		}
		x = fillPadding(want[:n], x)
		if !bytes.Equal(buf[:n], want[:n]) {
			return fmt.Errorf("state padding differs at byte %d", size-left)
		}
		left -= n
	}
	m.state = state
	m.restored = restoreInfo{bytes: int64(size) + 16, took: time.Since(start)}
	return nil
}

// fillPadding fills b with bytes derived from x (xorshift) and returns
// the generator's next state.
func fillPadding(b []byte, x uint64) uint64 {
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return x
}

// deliver is the Deliver handler: it folds the message into the state
// and logs it with its ordering and safe flag. The state is the sum (mod
// 2^64) of each delivered message's FNV-1a hash of sender ID, sequence
// number and payload: with FIFO, causal or unordered delivery, members
// deliver the same messages in a view but may interleave senders
// differently, and a sum does not depend on that order, so members that
// went through the same views hold the same state.
func (m *member) deliver(msg engine.Message) {
	p := msg.Payload
	sender := m.idBytes(msg.Sender)
	var id []byte
	if len(p) > 9 && int(p[8]) <= len(p)-9 {
		id = p[9 : 9+int(p[8])]
	}
	if len(id) <= len(sender) || id[len(sender)] != '#' || !bytes.HasPrefix(id, sender) {
		m.mismatched.Add(1)
	}
	h := fnvBytes(fnvOffset, sender)
	h = fnvUint64(h, msg.Seq)
	m.state += fnvBytes(h, p)

	b := m.log.begin()
	b = append(b, m.deliverPrefix...)
	b = appendJSONString(b, id)
	b = append(b, m.orderField[msg.Ordering&7]...)
	m.log.end(b)
}

func (m *member) idBytes(id engine.MemberID) []byte {
	b, ok := m.ids[id]
	if !ok {
		b = []byte(MemberID(id))
		m.ids[id] = b
	}
	return b
}

// view is the View handler: it logs the view and the state at its start.
func (m *member) view(v engine.View) {
	m.epoch.Store(v.Epoch)
	b := append(m.deliverPrefix[:0], `,"ev":"deliver","group":`...)
	b = append(b, m.group...)
	b = append(b, `,"view":`...)
	b = strconv.AppendUint(b, v.Epoch, 10)
	m.deliverPrefix = append(b, `,"id":`...)

	ids := func(ms []engine.MemberID) []string {
		out := make([]string, len(ms))
		for i, x := range ms {
			out[i] = MemberID(x)
		}
		return out
	}
	members := ids(v.Members)
	b = m.log.begin()
	b = m.appendHead(b, "view", v.Epoch)
	b = append(b, `,"self":`...)
	b = appendJSONString(b, members[v.Self])
	b = append(b, `,"members":`...)
	b = appendJSONStrings(b, members)
	for _, f := range []struct {
		name string
		ms   []engine.MemberID
	}{{"joined", v.Joined}, {"left", v.Left}, {"failed", v.Failed}} {
		if len(f.ms) > 0 {
			b = append(b, `,"`+f.name+`":`...)
			b = appendJSONStrings(b, ids(f.ms))
		}
	}
	m.log.endAlso(b, m.views)

	b = m.log.begin()
	b = m.appendHead(b, "state", v.Epoch)
	b = append(b, `,"hash":"`...)
	b = appendHex64(b, m.state)
	b = append(b, '"')
	if r := m.restored; r.bytes > 0 {
		// The first view after a restore: the state came from a donor.
		b = append(b, `,"restored_bytes":`...)
		b = strconv.AppendInt(b, r.bytes, 10)
		b = append(b, `,"restore_ms":`...)
		b = strconv.AppendFloat(b, float64(r.took.Microseconds())/1000, 'f', 1, 64)
		m.restored = restoreInfo{}
	}
	m.log.end(b)
}

// ended is the Ended handler.
func (m *member) ended(inc *incarnation, err error) {
	defer close(inc.ended)
	if !inc.viewed {
		return
	}
	what := "removed"
	if errors.Is(err, engine.ErrLeft) {
		what = "left"
	}
	b := m.log.begin()
	b = m.appendHead(b, "ended", m.epoch.Load())
	b = append(b, `,"err":"`+what+`"`...)
	m.log.end(b)
}

// appendHead appends the fields every group event starts with.
func (m *member) appendHead(b []byte, ev string, view uint64) []byte {
	b = append(b, `,"ev":"`...)
	b = append(b, ev...)
	b = append(b, `","group":`...)
	b = append(b, m.group...)
	b = append(b, `,"view":`...)
	return strconv.AppendUint(b, view, 10)
}

func (m *member) logSend(id []byte) {
	b := m.log.begin()
	b = m.appendHead(b, "send", m.epoch.Load())
	b = append(b, `,"id":`...)
	b = appendJSONString(b, id)
	b = append(b, m.orderField[m.order&7]...)
	m.log.end(b)
}

func (m *member) logUnsent(id []byte, err error) {
	b := m.log.begin()
	b = m.appendHead(b, "unsent", m.epoch.Load())
	b = append(b, `,"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"err":`...)
	b = appendJSONString(b, err.Error())
	m.log.end(b)
}

func (m *member) logStart(addr netip.AddrPort) {
	b := m.log.begin()
	b = append(b, `,"ev":"start","group":`...)
	b = append(b, m.group...)
	b = append(b, `,"addr":`...)
	b = appendJSONString(b, addr.String())
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(os.Getpid()), 10)
	b = append(b, `,"seeds":`...)
	b = appendJSONStrings(b, m.cfg.Seeds)
	b = append(b, m.orderField[m.order&7]...)
	b = append(b, `,"rate":`...)
	b = strconv.AppendFloat(b, m.cfg.Rate, 'g', -1, 64)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, int64(m.cfg.Size), 10)
	b = append(b, `,"state_size":`...)
	b = strconv.AppendInt(b, int64(m.cfg.StateSize), 10)
	if m.cfg.Groups > 1 {
		b = append(b, `,"groups":`...)
		b = strconv.AppendInt(b, int64(m.cfg.Groups), 10)
	}
	if m.silent {
		b = append(b, `,"silent":true`...)
	}
	m.log.end(b)
}

func (m *member) logExit(code int) {
	b := m.log.begin()
	b = append(b, `,"ev":"exit","group":`...)
	b = append(b, m.group...)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	m.log.end(b)
}

func appendHex64(b []byte, x uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[(x>>uint(shift))&0xf])
	}
	return b
}

// serveMetrics serves e's counters at addr: Prometheus at /metrics,
// expvar at /debug/vars. stop shuts the server down.
func serveMetrics(addr string, e *engine.Engine) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(e))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/vars", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(metrics.Take(e))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}
