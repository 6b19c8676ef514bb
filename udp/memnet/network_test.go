package memnet

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/udp"
)

func newNet(t *testing.T, seed int64) *Network {
	t.Helper()
	n := New(seed)
	t.Cleanup(func() { n.Close() })
	return n
}

func listen(t *testing.T, n *Network, addr string) udp.Conn {
	t.Helper()
	c, err := n.Listen(netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatalf("Listen(%s): %v", addr, err)
	}
	return c
}

// send writes count datagrams numbered from first, 16 bytes each.
func send(t *testing.T, c udp.Conn, to netip.AddrPort, first, count int) {
	t.Helper()
	ds := make([]udp.Datagram, count)
	for i := range ds {
		ds[i].Buf = make([]byte, 16)
		binary.BigEndian.PutUint32(ds[i].Buf, uint32(first+i))
		ds[i].N, ds[i].Addr = 16, to
	}
	if n, err := c.WriteBatch(ds); n != count || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want %d", n, err, count)
	}
}

type got struct {
	seq  int
	from netip.AddrPort
}

// recv reads exactly count datagrams; a watchdog closes c if they do not
// come within a few seconds, which fails the read.
func recv(t *testing.T, c udp.Conn, count int) []got {
	t.Helper()
	watchdog := time.AfterFunc(5*time.Second, func() { c.Close() })
	defer watchdog.Stop()
	ds := make([]udp.Datagram, 64)
	for i := range ds {
		ds[i].Buf = make([]byte, 64)
	}
	var out []got
	for len(out) < count {
		k, err := c.ReadBatch(ds[:min(len(ds), count-len(out))])
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(out), count, err)
		}
		for _, d := range ds[:k] {
			out = append(out, got{int(binary.BigEndian.Uint32(d.Buf)), d.Addr})
		}
	}
	return out
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestListen(t *testing.T) {
	n := newNet(t, 1)
	a := listen(t, n, "10.0.0.1:0")
	b := listen(t, n, "10.0.0.1:0")
	if a.LocalAddr().Port() == 0 || a.LocalAddr() == b.LocalAddr() {
		t.Fatalf("port 0 gave %v and %v", a.LocalAddr(), b.LocalAddr())
	}
	if _, err := n.Listen(a.LocalAddr()); err == nil {
		t.Error("second Listen on the same address succeeded")
	}
	if _, err := n.Listen(netip.AddrPort{}); err == nil {
		t.Error("Listen on the zero address succeeded")
	}
	a.Close()
	c, err := n.Listen(a.LocalAddr())
	if err != nil {
		t.Fatalf("address not freed by Close: %v", err)
	}
	c.Close()
}

func TestRoundTrip(t *testing.T) {
	for _, addrs := range [][2]string{{"10.0.0.1:1000", "10.0.0.2:2000"}, {"[fd00::1]:1", "[fd00::2]:2"}} {
		t.Run(addrs[0], func(t *testing.T) {
			n := newNet(t, 1)
			a, b := listen(t, n, addrs[0]), listen(t, n, addrs[1])
			send(t, a, b.LocalAddr(), 0, 100)
			for i, g := range recv(t, b, 100) {
				if g.seq != i || g.from != a.LocalAddr() {
					t.Fatalf("datagram %d: got %d from %v", i, g.seq, g.from)
				}
			}
			st := b.Stats()
			if st.DatagramsRead != 100 || st.ReadCalls == 0 || a.Stats().DatagramsWritten != 100 {
				t.Errorf("stats a=%+v b=%+v", a.Stats(), st)
			}
		})
	}
}

// TestFaultRates checks that each probability is roughly honoured and that
// a seed fixes the outcome. Each run is one batch: the network draws its
// faults for a batch under one lock, so nothing depends on timing.
func TestFaultRates(t *testing.T) {
	const total = 3500
	tests := []struct {
		name   string
		faults Faults
		// rate extracts the observed rate from the network counters.
		rate func(Stats) float64
		want float64
	}{
		{"drop", Faults{Drop: 0.3}, func(s Stats) float64 { return float64(s.Dropped) / total }, 0.3},
		{"duplicate", Faults{Duplicate: 0.1}, func(s Stats) float64 { return float64(s.Duplicated) / total }, 0.1},
		// The datagram that overtakes a held one is never held itself.
		{"reorder", Faults{Reorder: 0.2}, func(s Stats) float64 { return float64(s.Reordered) / total }, 0.2 / 1.2},
		{"all", Faults{Drop: 0.3, Duplicate: 0.1, Reorder: 0.2}, func(s Stats) float64 { return float64(s.Dropped) / total }, 0.3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := func(seed int64) ([]int, Stats) {
				n := newNet(t, seed)
				a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:1")
				n.SetLink(a.LocalAddr(), b.LocalAddr(), tt.faults)
				send(t, a, b.LocalAddr(), 0, total)
				st := n.Stats()
				var seqs []int
				for _, g := range recv(t, b, int(st.Sent-st.Dropped+st.Duplicated)) {
					seqs = append(seqs, g.seq)
				}
				return seqs, n.Stats()
			}
			seqs, st := run(7)
			if got := tt.rate(st); math.Abs(got-tt.want) > 0.025 {
				t.Errorf("observed rate %.4f, want %.3f ± 0.025 (stats %+v)", got, tt.want, st)
			}
			again, _ := run(7)
			if !equal(seqs, again) {
				t.Error("the same seed gave a different delivery sequence")
			}
			other, _ := run(8)
			if equal(seqs, other) {
				t.Error("a different seed gave the same delivery sequence")
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDuplicate(t *testing.T) {
	n := newNet(t, 3)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:1")
	n.SetDefault(Faults{Duplicate: 0.5})
	const total = 1000
	send(t, a, b.LocalAddr(), 0, total)
	dups := int(n.Stats().Duplicated)
	counts := make(map[int]int)
	for _, g := range recv(t, b, total+dups) {
		counts[g.seq]++
	}
	extra := 0
	for i := range total {
		switch counts[i] {
		case 1:
		case 2:
			extra++
		default:
			t.Fatalf("datagram %d arrived %d times", i, counts[i])
		}
	}
	if extra != dups || dups < 400 || dups > 600 {
		t.Errorf("%d datagrams arrived twice, network made %d copies; want about 500", extra, dups)
	}
}

func TestReorder(t *testing.T) {
	n := newNet(t, 5)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:1")
	n.SetLink(a.LocalAddr(), b.LocalAddr(), Faults{Reorder: 0.3})
	const total = 1000
	send(t, a, b.LocalAddr(), 0, total)
	// The last datagram may be held; it then comes after ReorderHold.
	in := recv(t, b, total)
	seen := make(map[int]bool)
	swaps := 0
	for i, g := range in {
		if seen[g.seq] {
			t.Fatalf("datagram %d arrived twice", g.seq)
		}
		seen[g.seq] = true
		if i > 0 && in[i-1].seq > g.seq {
			swaps++
			// A held datagram comes right after the one that overtook it.
			if in[i-1].seq != g.seq+1 {
				t.Fatalf("datagram %d came after %d; only neighbours may swap", g.seq, in[i-1].seq)
			}
		}
	}
	// Expect about total·p/(1+p) = 230.
	if int(n.Stats().Reordered) != swaps || swaps < 180 || swaps > 280 {
		t.Errorf("%d swaps, %d reordered by the network; want about 230", swaps, n.Stats().Reordered)
	}
}

func TestDelay(t *testing.T) {
	tests := []struct {
		name    string
		f       Faults
		inOrder bool
	}{
		{"fixed delay keeps order", Faults{Delay: 20 * time.Millisecond}, true},
		{"jitter", Faults{Delay: 5 * time.Millisecond, Jitter: 20 * time.Millisecond}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, 9)
			a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:1")
			n.SetDefault(tt.f)
			start := time.Now()
			send(t, a, b.LocalAddr(), 0, 200)
			in := recv(t, b, 200)
			if el := time.Since(start); el < tt.f.Delay {
				t.Errorf("arrived after %v, before the delay of %v", el, tt.f.Delay)
			}
			sorted := true
			for i := range in {
				sorted = sorted && in[i].seq == i
			}
			if sorted != tt.inOrder {
				t.Errorf("arrival in send order = %v, want %v", sorted, tt.inOrder)
			}
		})
	}
}

func TestPartition(t *testing.T) {
	n := newNet(t, 1)
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	c := listen(t, n, "10.0.0.3:1") // in no group
	n.Partition([]netip.AddrPort{a.LocalAddr()}, []netip.AddrPort{b.LocalAddr()})

	tests := []struct {
		from, to  udp.Conn
		delivered bool
	}{
		{a, b, false}, {b, a, false}, {a, c, true}, {c, a, true}, {b, c, true}, {c, b, true}, {a, a, true},
	}
	check := func(phase string, cut bool) {
		t.Helper()
		for i, tt := range tests {
			want := tt.delivered || !cut
			send(t, tt.from, tt.to.LocalAddr(), i, 1)
			// A marker from c (never cut, delivered at once) shows whether
			// the datagram before it got through.
			send(t, c, tt.to.LocalAddr(), 1000, 1)
			in := recv(t, tt.to, map[bool]int{true: 2, false: 1}[want])
			if arrived := in[0].seq == i; arrived != want {
				t.Errorf("%s: %v → %v delivered = %v, want %v", phase, tt.from.LocalAddr(), tt.to.LocalAddr(), arrived, want)
			}
		}
	}
	check("partitioned", true)
	n.Heal()
	check("healed", false)

}

func TestPartitionInFlight(t *testing.T) {
	n := newNet(t, 1)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:1")
	n.SetDefault(Faults{Delay: 30 * time.Millisecond})
	send(t, a, b.LocalAddr(), 0, 10)
	n.Partition([]netip.AddrPort{a.LocalAddr()}, []netip.AddrPort{b.LocalAddr()})
	waitFor(t, "in-flight datagrams to meet the partition", func() bool { return n.Stats().Partitioned == 10 })
	n.Heal()
	send(t, a, b.LocalAddr(), 10, 1)
	if g := recv(t, b, 1); g[0].seq != 10 {
		t.Fatalf("after Heal got datagram %d, want 10", g[0].seq)
	}
}

func TestQueueOverflow(t *testing.T) {
	n := newNet(t, 1)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:1")
	const extra = 100
	send(t, a, b.LocalAddr(), 0, QueueLimit+extra)
	if d := b.Stats().KernelDrops; d != extra {
		t.Fatalf("KernelDrops = %d, want %d", d, extra)
	}
	if st := n.Stats(); st.Overflowed != extra || st.Delivered != QueueLimit {
		t.Errorf("network stats %+v", st)
	}
	in := recv(t, b, QueueLimit)
	if in[0].seq != 0 || in[len(in)-1].seq != QueueLimit-1 {
		t.Errorf("queue kept %d..%d, want the oldest %d", in[0].seq, in[len(in)-1].seq, QueueLimit)
	}
	// Space is available again once read.
	send(t, a, b.LocalAddr(), 0, 1)
	recv(t, b, 1)
}

func TestTruncation(t *testing.T) {
	n := newNet(t, 1)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:1")
	send(t, a, b.LocalAddr(), 7, 1)
	ds := []udp.Datagram{{Buf: make([]byte, 4)}}
	if k, err := b.ReadBatch(ds); k != 1 || err != nil || ds[0].N != 4 {
		t.Fatalf("ReadBatch = %d, %v, N=%d", k, err, ds[0].N)
	}
	if b.Stats().Truncated != 1 {
		t.Errorf("Truncated = %d", b.Stats().Truncated)
	}
}

func TestWriteErrors(t *testing.T) {
	n := newNet(t, 1)
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:1")
	ds := make([]udp.Datagram, 4)
	for i := range ds {
		ds[i] = udp.Datagram{Buf: make([]byte, 8), N: 8, Addr: b.LocalAddr()}
	}
	ds[2].Addr = netip.AddrPort{}
	if k, err := a.WriteBatch(ds); k != 2 || err == nil {
		t.Fatalf("WriteBatch = %d, %v; want 2 and an error", k, err)
	}
	recv(t, b, 2)
	// Nobody listening is not an error.
	ds[0].Addr = netip.MustParseAddrPort("10.9.9.9:9")
	if k, err := a.WriteBatch(ds[:1]); k != 1 || err != nil {
		t.Fatalf("WriteBatch to nobody = %d, %v", k, err)
	}
	if n.Stats().NoListener != 1 {
		t.Errorf("NoListener = %d", n.Stats().NoListener)
	}
}

// waitBlockedInRead waits until a goroutine is parked inside ReadBatch.
func waitBlockedInRead(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	waitFor(t, "a reader blocked in ReadBatch", func() bool {
		k := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:k]), "\n\n") {
			if strings.Contains(g, "[select") && strings.Contains(g, ").ReadBatch(") {
				return true
			}
		}
		return false
	})
}

func TestClose(t *testing.T) {
	tests := []struct {
		name  string
		close func(n *Network, c udp.Conn)
	}{
		{"endpoint", func(_ *Network, c udp.Conn) { c.Close() }},
		{"network", func(n *Network, _ udp.Conn) { n.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, 1)
			c := listen(t, n, "10.0.0.1:1")
			done := make(chan error, 1)
			go func() {
				_, err := c.ReadBatch(make([]udp.Datagram, 1))
				done <- err
			}()
			waitBlockedInRead(t)
			tt.close(n, c)
			select {
			case err := <-done:
				if !errors.Is(err, udp.ErrClosed) {
					t.Fatalf("ReadBatch returned %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not unblock ReadBatch")
			}
			for range 2 {
				if err := c.Close(); err != nil {
					t.Errorf("Close again: %v", err)
				}
				if err := n.Close(); err != nil {
					t.Errorf("Network.Close again: %v", err)
				}
			}
			ds := []udp.Datagram{{Buf: make([]byte, 1), N: 1, Addr: c.LocalAddr()}}
			if _, err := c.WriteBatch(ds); !errors.Is(err, udp.ErrClosed) {
				t.Errorf("WriteBatch after Close: %v", err)
			}
			if _, err := n.Listen(netip.MustParseAddrPort("10.0.0.2:1")); !errors.Is(err, udp.ErrClosed) {
				t.Errorf("Listen after Close: %v", err)
			}
		})
	}
}

// TestConcurrent runs writers, readers and reconfiguration at once under
// every fault, then closes the network mid-flight; run it with -race.
func TestConcurrent(t *testing.T) {
	n := New(11)
	n.SetDefault(Faults{Drop: 0.1, Duplicate: 0.1, Reorder: 0.1, Delay: time.Millisecond, Jitter: time.Millisecond})
	const peers = 4
	conns := make([]udp.Conn, peers)
	for i := range conns {
		conns[i] = listen(t, n, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 1).String())
	}
	var wg sync.WaitGroup
	var readers sync.WaitGroup
	for i, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			ds := make([]udp.Datagram, 16)
			for j := range ds {
				ds[j].Buf = make([]byte, 32)
			}
			for {
				if _, err := c.ReadBatch(ds); err != nil {
					return
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds := make([]udp.Datagram, 8)
			for j := range ds {
				ds[j] = udp.Datagram{Buf: make([]byte, 32), N: 32, Addr: conns[(i+1+j)%peers].LocalAddr()}
			}
			for range 200 {
				if _, err := c.WriteBatch(ds); err != nil {
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := range 50 {
			n.Partition([]netip.AddrPort{conns[k%peers].LocalAddr()})
			n.SetLink(conns[0].LocalAddr(), conns[1].LocalAddr(), Faults{Delay: time.Duration(k) * time.Microsecond})
			n.Heal()
			_ = n.Stats()
		}
	}()
	wg.Wait()
	waitFor(t, "some traffic", func() bool { return n.Stats().Delivered > 0 })
	n.Close()
	readers.Wait()
	if st := n.Stats(); st.Sent != peers*200*8 {
		t.Errorf("Sent = %d, want %d", st.Sent, peers*200*8)
	}
}
