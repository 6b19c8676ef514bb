package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/engine"
	"github.com/cohort-vs/cohort/internal/check"
)

func testID(port uint16, inc uint64) engine.MemberID {
	return engine.MemberID{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Incarnation: inc}
}

// payloadFor builds the payload a member sends as message n.
func payloadFor(sender engine.MemberID, n string, size int) []byte {
	id := MemberID(sender) + "#" + n
	p := make([]byte, 9, size)
	binary.LittleEndian.PutUint64(p, uint64(time.Now().UnixNano()))
	p[8] = byte(len(id))
	p = append(p, id...)
	for len(p) < size {
		p = append(p, 0)
	}
	return p
}

// The handlers' lines are what docs/LOGS.md says, and the checker reads
// them.
func TestMemberLogLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	log, err := openEventLog(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultMemberConfig()
	cfg.Group = `odd "name"`
	m := newMember(cfg, log, os.Stderr)
	a, b := testID(7001, 11), testID(7002, 22)
	inc := &incarnation{self: MemberID(a), ended: make(chan struct{}), viewed: true}
	m.logStart(a.Addr)
	m.view(engine.View{Group: cfg.Group, Epoch: 3, Members: []engine.MemberID{a, b}, Self: 0, Joined: []engine.MemberID{a, b}})
	m.logSend([]byte(MemberID(a) + "#1"))
	m.deliver(engine.Message{Sender: a, Seq: 1, Ordering: engine.FIFO, Payload: payloadFor(a, "1", 64)})
	m.deliver(engine.Message{Sender: b, Seq: 1, Ordering: engine.FIFO, Payload: payloadFor(b, "1", 64)})
	m.logSend([]byte(MemberID(a) + "#2"))
	m.logUnsent([]byte(MemberID(a)+"#2"), context.Canceled)
	m.ended(inc, engine.ErrLeft)
	m.logExit(ExitOK)
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	t.Logf("%s", data)

	evs, err := check.ParseLog(path)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i, ev := range evs {
		kinds = append(kinds, ev.Ev)
		if ev.T == 0 || (i > 0 && ev.T < evs[i-1].T) {
			t.Errorf("event %d: t %d after %d", i, ev.T, evs[max(i-1, 0)].T)
		}
		if ev.Group != cfg.Group {
			t.Errorf("event %d: group %q", i, ev.Group)
		}
	}
	want := []string{"start", "view", "state", "send", "deliver", "deliver", "send", "unsent", "ended", "exit"}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	v := evs[1]
	if v.View != 3 || v.Self != MemberID(a) || !reflect.DeepEqual(v.Members, []string{MemberID(a), MemberID(b)}) {
		t.Errorf("view event %+v", v)
	}
	if evs[2].Hash != "0000000000000000" {
		t.Errorf("state at the first view %q", evs[2].Hash)
	}
	if d := evs[5]; d.ID != MemberID(b)+"#1" || d.Order != "fifo" || d.View != 3 {
		t.Errorf("deliver event %+v", d)
	}
	if e := evs[8]; e.Err != "left" || e.View != 3 {
		t.Errorf("ended event %+v", e)
	}
	if m.mismatched.Load() != 0 {
		t.Errorf("%d mismatched deliveries", m.mismatched.Load())
	}
	h, err := check.ReadLogs(path)
	if err != nil {
		t.Fatal(err)
	}
	// b's message is delivered but b has no log: only its sends are
	// unknown, which the checker reports as never sent.
	got := h.Check(0)
	if len(got) != 1 || got[0].Rule != "integrity" || !strings.Contains(got[0].Detail, MemberID(b)) {
		t.Errorf("violations %v, want only b's message as never sent", got)
	}
}

// The state digest does not depend on the order in which senders'
// messages interleave.
func TestMemberStateOrderFree(t *testing.T) {
	a, b := testID(7001, 1), testID(7002, 2)
	msgs := []engine.Message{
		{Sender: a, Seq: 1, Payload: payloadFor(a, "1", 64)},
		{Sender: a, Seq: 2, Payload: payloadFor(a, "2", 64)},
		{Sender: b, Seq: 1, Payload: payloadFor(b, "1", 64)},
	}
	state := func(order ...int) uint64 {
		log, _ := openEventLog("", nil)
		m := newMember(DefaultMemberConfig(), log, os.Stderr)
		for _, i := range order {
			m.deliver(msgs[i])
		}
		return m.state
	}
	if s1, s2 := state(0, 1, 2), state(2, 0, 1); s1 != s2 || s1 == 0 {
		t.Errorf("states %x and %x", s1, s2)
	}
	if s1, s3 := state(0, 1, 2), state(0, 1); s1 == s3 {
		t.Errorf("a missing message leaves the state at %x", s1)
	}
}

// The Deliver handler allocates nothing.
func TestMemberDeliverAllocs(t *testing.T) {
	log, err := openEventLog(filepath.Join(t.TempDir(), "m.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	m := newMember(DefaultMemberConfig(), log, os.Stderr)
	a := testID(7001, 1)
	m.view(engine.View{Epoch: 1, Members: []engine.MemberID{a}})
	msg := engine.Message{Sender: a, Seq: 1, Ordering: engine.FIFO, Payload: payloadFor(a, "12345", 64)}
	m.deliver(msg)
	if n := testing.AllocsPerRun(1000, func() { m.deliver(msg) }); n != 0 {
		t.Errorf("%v allocations per delivery", n)
	}
	if n := testing.AllocsPerRun(1000, func() { m.logSend(msg.Payload[9:30]) }); n != 0 {
		t.Errorf("%v allocations per send event", n)
	}
}

// A member alone forms its group, sends, leaves at the end of its
// duration and exits 0; its log checks clean.
func TestRunMemberAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a member for a second")
	}
	cfg := DefaultMemberConfig()
	cfg.Log = filepath.Join(t.TempDir(), "m.log")
	cfg.Rate = 1000
	cfg.Duration = time.Second
	var stderr bytes.Buffer
	if code := RunMember(context.Background(), cfg, &stderr); code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	logs, err := check.LoadLogs(check.LogOptions{Stopped: true}, cfg.Log)
	if err != nil {
		t.Fatal(err)
	}
	if v := logs.History().Check(0); len(v) > 0 {
		t.Fatal(v)
	}
	if len(logs.Incarnations) != 1 {
		t.Fatalf("%d incarnations", len(logs.Incarnations))
	}
	in := logs.Incarnations[0]
	if in.Ended != "left" || in.Sends < 100 || in.Deliveries != in.Sends {
		t.Errorf("ended %q, %d sends, %d deliveries", in.Ended, in.Sends, in.Deliveries)
	}
}

func TestMemberConfigValidate(t *testing.T) {
	bad := []func(c *MemberConfig){
		func(c *MemberConfig) { c.Listen = "nowhere" },
		func(c *MemberConfig) { c.Seeds = []string{"127.0.0.1"} },
		func(c *MemberConfig) { c.Group = "" },
		func(c *MemberConfig) { c.Order = "sequenced" },
		func(c *MemberConfig) { c.Order = "" },
		func(c *MemberConfig) { c.Rate = -1 },
		func(c *MemberConfig) { c.LeaveTimeout = 0 },
	}
	for i, edit := range bad {
		c := DefaultMemberConfig()
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: no error", i)
		}
		if code := RunMember(context.Background(), c, &bytes.Buffer{}); code != ExitFailed {
			t.Errorf("case %d: exit %d", i, code)
		}
	}
	for _, o := range OrderNames {
		c := DefaultMemberConfig()
		c.Order, c.Safe = o, o == "total"
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// Deliveries and sends of every ordering, safe or not, are logged with
// their "order" and "safe" fields, which the checker reads back.
func TestMemberLogOrders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.log")
	log, err := openEventLog(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultMemberConfig()
	cfg.Order, cfg.Safe = "total", true
	m := newMember(cfg, log, os.Stderr)
	if m.order != engine.Total|engine.Safe {
		t.Fatalf("order %v", m.order)
	}
	a := testID(7001, 11)
	m.logStart(a.Addr)
	m.view(engine.View{Epoch: 1, Members: []engine.MemberID{a}})
	var want []string
	n := 0
	for _, o := range []engine.Ordering{engine.Unordered, engine.FIFO, engine.Causal, engine.Total, engine.FIFO | engine.Safe, engine.Total | engine.Safe} {
		n++
		id := MemberID(a) + "#" + strconv.Itoa(n)
		m.order = o
		m.logSend([]byte(id))
		m.deliver(engine.Message{Sender: a, Seq: uint64(n), Ordering: o, Payload: payloadFor(a, strconv.Itoa(n), 64)})
		want = append(want, o.String(), o.String())
	}
	m.ended(&incarnation{ended: make(chan struct{}), viewed: true}, engine.ErrLeft)
	m.logExit(ExitOK)
	log.Close()
	evs, err := check.ParseLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Ev != check.EvStart || evs[0].Order != "total" || !evs[0].Safe {
		t.Errorf("start event %+v", evs[0])
	}
	var got []string
	for _, ev := range evs {
		if ev.Ev == check.EvSend || ev.Ev == check.EvDeliver {
			s := ev.Order
			if ev.Safe {
				s += "+safe"
			}
			got = append(got, s)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("orders logged %v, want %v", got, want)
	}
	h, err := check.ReadLogsWith(check.LogOptions{Stopped: true}, path)
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Check(0); len(v) != 0 {
		t.Errorf("unexpected %v", v)
	}
	msg := engine.Message{Sender: a, Seq: 1, Ordering: engine.Total | engine.Safe, Payload: payloadFor(a, "1", 64)}
	if n := testing.AllocsPerRun(100, func() { m.deliver(msg) }); n != 0 {
		t.Errorf("%v allocations per delivery", n)
	}
}

// writeKey writes a fresh key file (32 random bytes in base64) and
// returns its path.
func writeKey(t *testing.T) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cohort.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A bad key file fails the member (and a benchmark's Config) at once,
// saying which file and why.
func TestMemberBadKeyFile(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short.key")
	os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString([]byte("not a key"))), 0o600)
	for _, path := range []string{short, filepath.Join(t.TempDir(), "missing.key")} {
		cfg := DefaultMemberConfig()
		cfg.KeyFile = path
		cfg.Duration = time.Minute
		var stderr bytes.Buffer
		start := time.Now()
		if code := RunMember(context.Background(), cfg, &stderr); code != ExitFailed {
			t.Errorf("%s: exit %d", path, code)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: failing took %v", path, d)
		}
		if !strings.Contains(stderr.String(), "key file") || !strings.Contains(stderr.String(), path) {
			t.Errorf("%s: message %q", path, stderr.String())
		}
		c := DefaultConfig()
		c.KeyFile = path
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Config.Validate: %v", path, err)
		}
	}
	c := DefaultConfig()
	c.KeyFile = writeKey(t)
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// Two keyed members (--key-file) form a group, exchange sealed messages
// and leave; their logs check clean.
func TestRunMembersKeyed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two members for a second")
	}
	addrs, err := FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	key, dir := writeKey(t), t.TempDir()
	codes := make([]int, 2)
	stderr := make([]bytes.Buffer, 2)
	var logs []string
	var wg sync.WaitGroup
	for i := range addrs {
		cfg := DefaultMemberConfig()
		cfg.Listen, cfg.Seeds, cfg.KeyFile = addrs[i], addrs, key
		cfg.Log = filepath.Join(dir, fmt.Sprintf("m%d.log", i))
		cfg.Rate, cfg.Duration = 1000, time.Second
		logs = append(logs, cfg.Log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = RunMember(context.Background(), cfg, &stderr[i])
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code != ExitOK {
			t.Errorf("member %d: exit %d: %s", i, code, stderr[i].String())
		}
	}
	l, err := check.LoadLogs(check.LogOptions{Stopped: true}, logs...)
	if err != nil {
		t.Fatal(err)
	}
	if v := l.History().Check(0); len(v) > 0 {
		t.Fatal(v)
	}
	for _, in := range l.Incarnations {
		two := false
		for _, v := range in.Views {
			two = two || len(v.Members) == 2
		}
		// Each delivers its own messages and some of the other's.
		if !two || in.Sends < 100 || in.Deliveries <= in.Sends {
			t.Errorf("%s: a view of two %v, %d sends, %d deliveries", in.Name, two, in.Sends, in.Deliveries)
		}
	}
}

// A member started with --metrics serves /metrics; two scrapes while it
// sends show its delivered counter moving.
func TestMemberMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a member for two seconds")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := DefaultMemberConfig()
	cfg.Log = filepath.Join(t.TempDir(), "m.log")
	cfg.Rate, cfg.Duration, cfg.Metrics = 2000, 3*time.Second, addr
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- RunMember(context.Background(), cfg, &stderr) }()
	delivered := func() (float64, bool) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return 0, false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^cohort_group_messages_delivered_total\{group="vsbench"\} (\S+)$`).FindSubmatch(b)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		return v, err == nil
	}
	var first float64
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, ok := delivered(); ok && v > 0 {
			if first == 0 {
				first = v
			} else if v > first {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no moving delivered counter at /metrics (first %v)", first)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
