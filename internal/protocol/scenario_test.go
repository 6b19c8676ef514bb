package protocol_test

import (
	"bufio"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cohort-vs/cohort/internal/protocol"
	"github.com/cohort-vs/cohort/internal/wire"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of scenario files")

// TestScenarios replays the cases in testdata/scenarios. Each case is a
// command, a line "----", and the output it must print, up to a blank
// line. The commands drive processes over a deterministic network where a
// datagram sent during a tick arrives at the next one:
//
//	start a b c          start processes; every started process is a seed
//	join d               start one more process later
//	send a fifo|unordered|safe TEXT   (safe: FIFO and safe)
//	burst a N            a sends N FIFO messages, #1 to #N
//	evict N              processes started from now on evict a member
//	                     lagging by half the window for a score of N ticks
//	stall c              c's application stops consuming what it is given
//	tick [N]             advance N ticks (default 1)
//	stabilize            tick until nothing is in flight and every process is
//	                     in a settled view (at most 5000 ticks)
//	crash b              stop b without a word
//	restart b            start b again as a new incarnation
//	leave b              b leaves gracefully
//	partition a b | c    cut the links between the sides; heal
//	drop install|notmember a b  lose the next such control message a sends to b
//	drop KIND a|* b|* N [maybe]  lose every such message from a (or anyone)
//	                     to b (or anyone) for N ticks; KIND: install, notmember,
//	                     probeack, promise; maybe: it may match nothing (a path the
//	                     protocol need not take)
//	views                every live process's view
//	delivered            what each process delivered since the last time
//	ended                processes whose membership ended, and why
func TestScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/scenarios/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenario files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScenario(t, f) })
	}
}

type scenarioCase struct {
	comment []string // the comment lines before the command
	cmd     string
	want    string
}

func parseScenario(t *testing.T, path string) []scenarioCase {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var cases []scenarioCase
	var comment []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			comment = append(comment, line)
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		c := scenarioCase{cmd: line, comment: comment}
		comment = nil
		if !sc.Scan() || sc.Text() != "----" {
			t.Fatalf("%s: %q: want a line \"----\" after the command", path, line)
		}
		var out []string
		for sc.Scan() && sc.Text() != "" {
			out = append(out, sc.Text())
		}
		c.want = strings.Join(out, "\n")
		cases = append(cases, c)
	}
	return cases
}

func runScenario(t *testing.T, path string) {
	cases := parseScenario(t, path)
	w := newScenarioWorld(t)
	var rewritten strings.Builder
	for _, c := range cases {
		got := strings.TrimRight(w.do(c.cmd), "\n")
		if *rewrite {
			for _, l := range c.comment {
				fmt.Fprintln(&rewritten, l)
			}
			fmt.Fprintf(&rewritten, "%s\n----\n%s\n\n", c.cmd, got)
			continue
		}
		if got != c.want {
			t.Fatalf("%s: %s\n got:\n%s\nwant:\n%s", path, c.cmd, got, c.want)
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(rewritten.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A rule that never matched tested nothing.
	for _, r := range w.drops {
		if !r.matched && !r.maybe {
			t.Errorf("%s: drop rule %+v never matched a message", path, r)
		}
	}
}

type scenarioProc struct {
	name      string
	addr      netip.AddrPort
	inc       uint64
	g         *protocol.Group
	sent      int
	epoch     uint64
	delivered []string
	ended     string
	stalled   bool // the application consumes nothing
}

type inFlight struct {
	from, to netip.AddrPort
	data     []byte
}

type scenarioWorld struct {
	t          *testing.T
	procs      map[string]*scenarioProc
	byAddr     map[netip.AddrPort]*scenarioProc
	order      []string
	seeds      []netip.AddrPort
	flight     []inFlight
	side       map[string]int
	cut        bool
	nextIdx    int
	drops      []dropRule
	evict      int                                       // EvictTicks of processes started from now on (0: block)
	maxMembers int                                       // MaxMembers of processes started from now on (0: the protocol's)
	now        int                                       // ticks so far
	tap        func(from, to *scenarioProc, data []byte) // sees every datagram delivered
}

// dropRule loses the next control message of one kind from one process
// to another; or, with until set, every one between them until that
// tick, where "*" stands for any process.
type dropRule struct {
	from, to string
	kind     uint8
	until    int
	matched  bool
	maybe    bool // may match nothing
}

// dropped reports whether a datagram from -> to matches a drop rule, and
// uses the rule up.
func (w *scenarioWorld) dropped(from, to *scenarioProc, data []byte) bool {
	h, err := wire.ParseHeader(data)
	if err != nil || h.Type != wire.TypeControl {
		return false
	}
	c, err := wire.ParseControl(data[wire.HeaderSize:])
	if err != nil {
		return false
	}
	for i := range w.drops {
		r := &w.drops[i]
		if r.until > 0 {
			if (r.from == "*" || r.from == from.name) && (r.to == "*" || r.to == to.name) && r.kind == c.Kind && w.now < r.until {
				r.matched = true
				return true
			}
			continue
		}
		if r.from == from.name && r.to == to.name && r.kind == c.Kind {
			w.drops = append(w.drops[:i], w.drops[i+1:]...)
			return true
		}
	}
	return false
}

func newScenarioWorld(t *testing.T) *scenarioWorld {
	return &scenarioWorld{t: t, procs: map[string]*scenarioProc{}, byAddr: map[netip.AddrPort]*scenarioProc{}, side: map[string]int{}}
}

func (w *scenarioWorld) config(p *scenarioProc) protocol.GroupConfig {
	return protocol.GroupConfig{
		Group:      wire.GroupID("scenario"),
		Self:       wire.MemberID{Addr: p.addr, Incarnation: p.inc},
		Seeds:      w.seeds,
		MaxMembers: w.maxMembers,
		Member: protocol.Config{
			MaxDatagram: 1400, MaxMessageSize: 64 << 10,
			WindowMessages: 64, WindowBytes: 64 << 10, DeliveryQueue: 64,
			StatusTicks: 5, NAKTicks: 2, MaxOutDatagrams: 16,
		},
		DiscoverTicks: 10, RetryTicks: 5, SilentTicks: 20, ProbeTicks: 10, RoundTicks: 60, BlockTicks: 200,
		EvictLag: 0.5, EvictTicks: w.evict,
	}
}

func (w *scenarioWorld) start(name string) {
	p := w.procs[name]
	if p == nil {
		w.nextIdx++
		p = &scenarioProc{name: name, addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(w.nextIdx)}), 7000)}
		w.procs[name] = p
		w.byAddr[p.addr] = p
		w.order = append(w.order, name)
		w.seeds = append(w.seeds, p.addr)
	}
	p.inc++
	p.sent, p.epoch, p.ended, p.stalled = 0, 0, "", false
	g, err := protocol.NewGroup(w.config(p))
	if err != nil {
		w.t.Fatal(err)
	}
	p.g = g
	w.drain(p)
}

// label names a member by process name, with its incarnation after the
// first.
func (w *scenarioWorld) label(m wire.MemberID) string {
	p := w.byAddr[m.Addr]
	if p == nil {
		return m.Addr.String()
	}
	if m.Incarnation > 1 {
		return fmt.Sprintf("%s.%d", p.name, m.Incarnation)
	}
	return p.name
}

func (w *scenarioWorld) drain(p *scenarioProc) {
	for p.g != nil {
		rd := p.g.Ready()
		for _, d := range rd.Datagrams {
			w.flight = append(w.flight, inFlight{from: p.addr, to: d.Addr, data: append([]byte(nil), d.Buf[:d.N]...)})
		}
		events := p.g.Events()
		n := len(events) + len(rd.Deliveries)
		for _, ev := range events {
			if ev.View != nil {
				p.epoch = ev.View.Epoch
			} else {
				p.ended = strings.TrimPrefix(ev.Err.Error(), "")
			}
		}
		for _, d := range rd.Deliveries {
			p.delivered = append(p.delivered, fmt.Sprintf("%d:%s", p.epoch, d.Payload))
		}
		more := rd.More
		p.g.Advance()
		if n > 0 && !p.stalled {
			p.g.Consumed(n) // the application is quick
		}
		if p.g.Ended() != nil {
			p.g = nil
			return
		}
		if !more && n == 0 {
			return
		}
	}
}

func (w *scenarioWorld) tick() {
	w.now++
	flight := w.flight
	w.flight = nil
	for _, f := range flight {
		from, to := w.byAddr[f.from], w.byAddr[f.to]
		if to == nil || to.g == nil || (w.cut && w.side[from.name] != w.side[to.name]) || w.dropped(from, to, f.data) {
			continue
		}
		if w.tap != nil {
			w.tap(from, to, f.data)
		}
		to.g.Receive(f.from, f.data)
		w.drain(to)
	}
	for _, name := range w.order {
		if p := w.procs[name]; p.g != nil {
			p.g.Tick()
			w.drain(p)
		}
	}
}

// settled: every live process is in the same view, and none is changing
// views.
func (w *scenarioWorld) settled() bool {
	epoch := uint64(0)
	for _, p := range w.procs {
		if p.g == nil {
			continue
		}
		if !p.g.InView() || p.g.Blocked() > 0 {
			return false
		}
		if e := p.g.View().Epoch; epoch == 0 {
			epoch = e
		} else if e != epoch {
			return false
		}
	}
	return true
}

func (w *scenarioWorld) do(cmd string) string {
	f := strings.Fields(cmd)
	switch f[0] {
	case "start", "join":
		for _, n := range f[1:] {
			w.start(n)
		}
		return "ok"
	case "restart":
		w.start(f[1])
		return "ok"
	case "send":
		p := w.procs[f[1]]
		flags := wire.OrderFIFO
		switch f[2] {
		case "unordered":
			flags = wire.OrderUnordered
		case "safe":
			flags = wire.OrderFIFO | wire.FlagSafe
		}
		p.sent++
		payload := fmt.Sprintf("%s#%d:%s", w.label(wire.MemberID{Addr: p.addr, Incarnation: p.inc}), p.sent, strings.Join(f[3:], " "))
		if n, err := p.g.Sender().TrySend(flags, []byte(payload), 0); err != nil || n != len(payload) {
			return fmt.Sprintf("send refused: %v", err)
		}
		w.drain(p)
		return "ok"
	case "burst":
		p := w.procs[f[1]]
		n, _ := strconv.Atoi(f[2])
		for i := 0; i < n; i++ {
			if r := w.do(fmt.Sprintf("send %s fifo", p.name)); r != "ok" {
				return r
			}
		}
		return "ok"
	case "evict":
		w.evict, _ = strconv.Atoi(f[1])
		return "ok"
	case "stall":
		w.procs[f[1]].stalled = true
		return "ok"
	case "tick":
		n := 1
		if len(f) > 1 {
			n, _ = strconv.Atoi(f[1])
		}
		for i := 0; i < n; i++ {
			w.tick()
		}
		return "ok"
	case "stabilize":
		// Settled for 200 ticks: detectors, coordinators and repairs have
		// had their say.
		quiet := 0
		for i := 0; i < 5000 && quiet < 200; i++ {
			w.tick()
			if w.settled() {
				quiet++
			} else {
				quiet = 0
			}
		}
		if quiet == 200 {
			return "ok"
		}
		var stuck []string
		for _, name := range w.order {
			if p := w.procs[name]; p.g != nil && (!p.g.InView() || p.g.Blocked() > 0) {
				stuck = append(stuck, name)
			}
		}
		return "not settled: " + strings.Join(stuck, " ")
	case "crash":
		w.procs[f[1]].g = nil
		return "ok"
	case "leave":
		p := w.procs[f[1]]
		p.g.Leave()
		w.drain(p)
		return "ok"
	case "partition":
		w.cut = true
		side := 0
		for _, n := range f[1:] {
			if n == "|" {
				side++
				continue
			}
			w.side[n] = side
		}
		return "ok"
	case "drop":
		kinds := map[string]uint8{"install": wire.CtlInstall, "notmember": wire.CtlNotMember, "probeack": wire.CtlProbeAck, "promise": wire.CtlPromise}
		k, ok := kinds[f[1]]
		switch {
		case ok && len(f) == 4 && f[2] != "*" && f[3] != "*":
			w.drops = append(w.drops, dropRule{from: f[2], to: f[3], kind: k})
		case ok && (len(f) == 5 || len(f) == 6 && f[5] == "maybe"):
			n, err := strconv.Atoi(f[4])
			if err != nil || n < 1 {
				w.t.Fatalf("drop %v: want a number of ticks", f[1:])
			}
			w.drops = append(w.drops, dropRule{from: f[2], to: f[3], kind: k, until: w.now + 1 + n, maybe: len(f) == 6})
		default:
			w.t.Fatalf("drop %v: want drop KIND FROM TO, or KIND FROM|* TO|* TICKS [maybe]", f[1:])
		}
		return "ok"
	case "heal":
		w.cut = false
		return "ok"
	case "views":
		var out []string
		for _, name := range w.order {
			p := w.procs[name]
			if p.g == nil {
				continue
			}
			if !p.g.InView() {
				out = append(out, name+": no view")
				continue
			}
			v := p.g.View()
			var ms []string
			for _, m := range v.Members {
				ms = append(ms, w.label(m))
			}
			line := fmt.Sprintf("%s: view %d [%s]", name, v.Epoch, strings.Join(ms, " "))
			if p.g.Blocked() > 0 {
				line += " (changing views, blocked)"
			}
			out = append(out, line)
		}
		return strings.Join(out, "\n")
	case "delivered":
		var out []string
		for _, name := range w.order {
			p := w.procs[name]
			if len(p.delivered) == 0 {
				continue
			}
			out = append(out, fmt.Sprintf("%s: %s", name, strings.Join(p.delivered, ", ")))
			p.delivered = nil
		}
		return strings.Join(out, "\n")
	case "ended":
		var out []string
		names := append([]string(nil), w.order...)
		sort.Strings(names)
		for _, name := range names {
			if p := w.procs[name]; p.ended != "" {
				out = append(out, fmt.Sprintf("%s: %s", name, p.ended))
			}
		}
		return strings.Join(out, "\n")
	}
	w.t.Fatalf("unknown command %q", cmd)
	return ""
}
