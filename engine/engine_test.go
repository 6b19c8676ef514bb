package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/internal/check"
)

// cluster is a group of engines on loopback that record what they deliver.
type cluster struct {
	t       *testing.T
	engines []*Engine
	groups  []*Group
	mu      sync.Mutex
	hist    *check.History
	count   []int
}

func newCluster(t *testing.T, n int, cfg Config, configure func(i int, c *Config)) *cluster {
	t.Helper()
	cl := &cluster{t: t, hist: check.NewHistory(), count: make([]int, n)}
	var addrs []string
	for i := 0; i < n; i++ {
		c := cfg
		if configure != nil {
			configure(i, &c)
		}
		e, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		cl.engines = append(cl.engines, e)
		addrs = append(addrs, e.Addr().String())
	}
	for i, e := range cl.engines {
		name := fmt.Sprintf("m%d", i)
		cl.hist.Member(name)
		g, err := e.Join(context.Background(), "test", addrs, Handlers{Deliver: func(m Message) {
			cl.mu.Lock()
			defer cl.mu.Unlock()
			cl.count[i]++
			id := check.MsgID{Sender: fmt.Sprintf("m%d", binary.LittleEndian.Uint32(m.Payload)), N: uint64(binary.LittleEndian.Uint32(m.Payload[4:]))}
			if m.Sender.Addr != cl.engines[binary.LittleEndian.Uint32(m.Payload)].Addr() {
				id.Sender = "forged:" + id.Sender
			}
			cl.hist.DeliveredAs(name, id, ordName(m.Ordering), m.Ordering&Safe != 0, check.PayloadHash(m.Payload), 0)
		}})
		if err != nil {
			t.Fatal(err)
		}
		cl.groups = append(cl.groups, g)
	}
	waitFullView(t, cl.groups)
	return cl
}

// waitFullView waits until every group sees a view of all of them.
func waitFullView(t testing.TB, groups []*Group) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		for _, g := range groups {
			if len(g.View().Members) != len(groups) {
				return false
			}
		}
		return true
	}, "a view of every member")
}

func ordName(o Ordering) string {
	return [...]string{check.Unordered, check.FIFO, check.Causal, check.Total}[o&3]
}

func makePayload(sender, n, size int) []byte {
	p := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint32(p, uint32(sender))
	binary.LittleEndian.PutUint32(p[4:], uint32(n))
	for i := 8; i < len(p); i++ {
		p[i] = byte(i * (n + 1))
	}
	return p
}

// send makes member i send message n and records it.
func (cl *cluster) send(ctx context.Context, i, n, size int, o Ordering) error {
	p := makePayload(i, n, size)
	cl.mu.Lock()
	cl.hist.SentAs(check.MsgID{Sender: fmt.Sprintf("m%d", i), N: uint64(n)}, ordName(o), o&Safe != 0, check.PayloadHash(p), 0)
	cl.mu.Unlock()
	return cl.groups[i].Send(ctx, o, p)
}

// waitDelivered waits until every member delivered want messages.
func (cl *cluster) waitDelivered(want int, timeout time.Duration) {
	cl.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cl.mu.Lock()
		done := true
		for _, c := range cl.count {
			done = done && c >= want
		}
		counts := append([]int(nil), cl.count...)
		cl.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("timed out: deliveries per member %v, want %d", counts, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (cl *cluster) verify() {
	cl.t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if v := cl.hist.Check(5); len(v) > 0 {
		cl.t.Fatal(v)
	}
}

// Every member sends every ordering, safe or not, small and large, at
// once: the checker sees one total order, causal order, FIFO and
// uniformity.
func TestAllOrderingsMixed(t *testing.T) {
	cfg := DefaultConfig()
	cl := newCluster(t, 3, cfg, nil)
	const each = 2000
	orders := []Ordering{FIFO, Causal, Total, Unordered, Total | Safe, Causal | Safe, FIFO}
	var wg sync.WaitGroup
	for i := range cl.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= each; n++ {
				size := 64
				if n%97 == 0 {
					size = 3*cfg.MaxDatagram + n // fragmented
				}
				if err := cl.send(context.Background(), i, n, size, orders[(n+i)%len(orders)]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cl.waitDelivered(3*each, 20*time.Second)
	cl.verify()
	var ordered uint64
	for _, g := range cl.groups {
		ordered += g.Stats().OrderRecords
	}
	if ordered == 0 {
		t.Fatal("no order records made or received")
	}
}

func TestAllSendMixedSizes(t *testing.T) {
	cfg := DefaultConfig()
	cl := newCluster(t, 3, cfg, nil)
	const each = 3000
	var wg sync.WaitGroup
	for i := range cl.groups {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 1; n <= each; n++ {
				size := 8 + n%200
				if n%500 == 0 {
					size = 100_000 + n // fragmented
				}
				o := FIFO
				if n%3 == 0 {
					o = Unordered
				}
				if err := cl.send(context.Background(), i, n, size, o); err != nil {
					t.Error(err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	cl.waitDelivered(3*each, 30*time.Second)
	cl.verify()
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.MaxDatagram = 100 }, "MaxDatagram"},
		{func(c *Config) { c.WindowBytes = 1000 }, "WindowBytes"},
		{func(c *Config) { c.WindowMessages = 1 }, "WindowMessages"},
		{func(c *Config) { c.DeliveryQueue = 0 }, "DeliveryQueue"},
		{func(c *Config) { c.TickInterval = 0 }, "TickInterval"},
		{func(c *Config) { c.NAKInterval = time.Microsecond }, "NAKInterval"},
		{func(c *Config) { c.ListenAddr = "nowhere" }, "ListenAddr"},
		{func(c *Config) { c.MaxMessageSize = 0 }, "MaxMessageSize"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.edit(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v", c.want, err)
		}
	}
}

func TestSendErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxMessageSize = 1000
	cl := newCluster(t, 2, cfg, nil)
	g := cl.groups[0]
	if err := g.Send(context.Background(), FIFO, make([]byte, 1001)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if err := g.Send(context.Background(), Ordering(8), nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown ordering: %v", err)
	}
	e := cl.engines[0]
	if _, err := e.Join(context.Background(), "test", []string{e.Addr().String()}, Handlers{Deliver: func(Message) {}}); !errors.Is(err, ErrJoined) {
		t.Fatalf("second join: %v", err)
	}
	if _, err := e.Join(context.Background(), "other", []string{"127.0.0.1"}, Handlers{Deliver: func(Message) {}}); err == nil || !strings.Contains(err.Error(), "seed 0") {
		t.Fatalf("join with a bad seed: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := g.Send(context.Background(), FIFO, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// A process that is not run for a while (here its protocol loop is held
// off, as a starved or paused process's would be) finds its clock late at
// the next tick: Stats counts the stall and its length, what explains a
// peer suspecting a healthy process.
func TestStallsCounted(t *testing.T) {
	e, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	before := e.Stats()
	// Three times the threshold (a third of SuspectTimeout).
	hold := e.cfg.SuspectTimeout
	e.protoMu.Lock()
	time.Sleep(hold) // the stall itself, not a wait for a condition
	e.protoMu.Unlock()
	waitFor(t, 10*time.Second, func() bool { return e.Stats().Stalls > before.Stalls }, "the stall counted")
	if s := e.Stats(); s.LongestStall < hold/2 {
		t.Fatalf("longest stall %v after the protocol loop was held off %v", s.LongestStall, hold)
	}
}
