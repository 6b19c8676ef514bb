package udp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// impls are the two socket implementations; on systems without batched
// system calls both rows exercise the portable one.
var impls = []struct {
	name string
	opts Options
}{
	{"mmsg", Options{}},
	{"mmsg-nogso", Options{DisableGSO: true}},
	{"portable", Options{Portable: true}},
}

var ipv6Once = sync.OnceValue(func() bool {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return false
	}
	c.Close()
	return true
})

func needIPv6(t testing.TB, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if strings.HasPrefix(a, "[") && !ipv6Once() {
			t.Skip("no IPv6 loopback on this machine")
		}
	}
}

func listenT(t testing.TB, addr string, opts Options) Conn {
	t.Helper()
	c, err := Listen(netip.MustParseAddrPort(addr), opts)
	if err != nil {
		t.Fatalf("Listen(%s): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func makeDatagrams(n, size int) []Datagram {
	ds := make([]Datagram, n)
	for i := range ds {
		ds[i].Buf = make([]byte, size)
	}
	return ds
}

// fillPayloads makes datagram i carry its index and a recognisable body.
func fillPayloads(ds []Datagram, size int, to netip.AddrPort) {
	for i := range ds {
		d := &ds[i]
		for j := range d.Buf[:size] {
			d.Buf[j] = byte(i + j)
		}
		binary.BigEndian.PutUint32(d.Buf, uint32(i))
		d.N, d.Addr = size, to
	}
}

// readN reads until n datagrams arrived. A watchdog closes the Conn if
// they do not arrive within timeout, which ends the read with ErrClosed.
func readN(t testing.TB, c Conn, n, size int, timeout time.Duration) []Datagram {
	t.Helper()
	ds := makeDatagrams(n, size)
	watchdog := time.AfterFunc(timeout, func() { c.Close() })
	defer watchdog.Stop()
	for got := 0; got < n; {
		k, err := c.ReadBatch(ds[got:])
		if err != nil {
			t.Fatalf("after %d of %d datagrams: ReadBatch: %v", got, n, err)
		}
		got += k
	}
	return ds
}

func TestRoundTrip(t *testing.T) {
	const batch, size = 64, 200
	families := []struct {
		name    string
		a, b    string // a receives first, then answers b
		aSeesB  func(b netip.AddrPort) netip.AddrPort
		bDialsA func(a netip.AddrPort) netip.AddrPort
	}{
		{
			name: "ipv4", a: "127.0.0.1:0", b: "127.0.0.1:0",
		},
		{
			name: "ipv6", a: "[::1]:0", b: "[::1]:0",
		},
		{
			// A dual-stack socket sees IPv4 peers as IPv4-mapped
			// addresses and can answer them at those addresses.
			name: "dual-stack", a: "[::]:0", b: "127.0.0.1:0",
			aSeesB: func(b netip.AddrPort) netip.AddrPort {
				return netip.AddrPortFrom(netip.AddrFrom16(b.Addr().As16()), b.Port())
			},
			bDialsA: func(a netip.AddrPort) netip.AddrPort {
				return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), a.Port())
			},
		},
	}
	for _, im := range impls {
		for _, f := range families {
			t.Run(im.name+"/"+f.name, func(t *testing.T) {
				needIPv6(t, f.a, f.b)
				a, b := listenT(t, f.a, im.opts), listenT(t, f.b, im.opts)
				if a.LocalAddr().Port() == 0 || b.LocalAddr().Port() == 0 {
					t.Fatalf("port 0 not resolved: %v %v", a.LocalAddr(), b.LocalAddr())
				}
				aAddr := a.LocalAddr()
				if f.bDialsA != nil {
					aAddr = f.bDialsA(aAddr)
				}
				wantB := b.LocalAddr()
				if f.aSeesB != nil {
					wantB = f.aSeesB(wantB)
				}

				out := makeDatagrams(batch, size)
				fillPayloads(out, size, aAddr)
				if n, err := b.WriteBatch(out); n != batch || err != nil {
					t.Fatalf("WriteBatch = %d, %v; want %d, nil", n, err, batch)
				}
				in := readN(t, a, batch, 2048, 5*time.Second)
				for i, d := range in {
					if d.Addr != wantB {
						t.Fatalf("datagram %d from %v, want %v", i, d.Addr, wantB)
					}
					if !bytes.Equal(d.Buf[:d.N], out[i].Buf[:size]) {
						t.Fatalf("datagram %d payload differs (len %d)", i, d.N)
					}
				}

				// Answer every datagram at the address it came from.
				for i := range in {
					in[i].N = 8
				}
				if n, err := a.WriteBatch(in); n != batch || err != nil {
					t.Fatalf("reply WriteBatch = %d, %v", n, err)
				}
				back := readN(t, b, batch, 2048, 5*time.Second)
				for i, d := range back {
					if d.Addr != aAddr {
						t.Fatalf("reply %d from %v, want %v", i, d.Addr, aAddr)
					}
					if got := binary.BigEndian.Uint32(d.Buf); got != uint32(i) || d.N != 8 {
						t.Fatalf("reply %d carries index %d, length %d", i, got, d.N)
					}
				}

				sa, sb := a.Stats(), b.Stats()
				if sa.DatagramsRead != batch || sa.DatagramsWritten != batch ||
					sb.DatagramsRead != batch || sb.DatagramsWritten != batch {
					t.Errorf("stats a=%+v b=%+v", sa, sb)
				}
				if sa.ReadCalls == 0 || sa.ReadCalls > batch || sb.WriteCalls == 0 {
					t.Errorf("call counts a=%+v b=%+v", sa, sb)
				}
				if batched := im.name != "portable" && batchSupported; batched && sb.WriteCalls != 1 {
					t.Errorf("%s sent %d datagrams in %d calls, want 1", im.name, batch, sb.WriteCalls)
				}
				if im.name != "mmsg" && sb.GSODatagrams != 0 {
					t.Errorf("%s used GSO: %+v", im.name, sb)
				}
				if sa.RecvBufferBytes < 0 || sa.SendBufferBytes < 0 {
					t.Errorf("buffer sizes %+v", sa)
				}
			})
		}
	}
}

func TestListenAddress(t *testing.T) {
	tests := []struct {
		addr, want string // want: the address LocalAddr must report
	}{
		{"127.0.0.1:0", "127.0.0.1"},
		{"[::ffff:127.0.0.1]:0", "127.0.0.1"},
		{"[::1]:0", "::1"},
	}
	for _, im := range impls {
		for _, tt := range tests {
			t.Run(im.name+"/"+tt.addr, func(t *testing.T) {
				needIPv6(t, tt.addr)
				c := listenT(t, tt.addr, im.opts)
				got := c.LocalAddr()
				if got.Addr() != netip.MustParseAddr(tt.want) || got.Port() == 0 {
					t.Fatalf("LocalAddr = %v, want %s with a real port", got, tt.want)
				}
			})
		}
	}
	if _, err := Listen(netip.AddrPort{}, Options{}); err == nil {
		t.Error("Listen accepted the zero address")
	}
}

// waitBlockedInRead waits until some goroutine is parked in the poller
// inside ReadBatch.
func waitBlockedInRead(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, ").ReadBatch(") {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatal("reader never blocked in ReadBatch")
}

func TestCloseUnblocksRead(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			c := listenT(t, "127.0.0.1:0", im.opts)
			done := make(chan error, 1)
			go func() {
				_, err := c.ReadBatch(makeDatagrams(4, 64))
				done <- err
			}()
			waitBlockedInRead(t)
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("blocked ReadBatch returned %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not unblock ReadBatch")
			}
		})
	}
}

func TestCloseIdempotent(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			c := listenT(t, "127.0.0.1:0", im.opts)
			for i := range 3 {
				if err := c.Close(); err != nil {
					t.Fatalf("Close #%d: %v", i+1, err)
				}
			}
			if _, err := c.ReadBatch(makeDatagrams(1, 64)); !errors.Is(err, ErrClosed) {
				t.Errorf("ReadBatch after Close: %v", err)
			}
			ds := makeDatagrams(1, 64)
			fillPayloads(ds, 64, c.LocalAddr())
			if n, err := c.WriteBatch(ds); n != 0 || !errors.Is(err, ErrClosed) {
				t.Errorf("WriteBatch after Close = %d, %v", n, err)
			}
		})
	}
}

func TestWriteErrorsReportIndex(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			a := listenT(t, "127.0.0.1:0", im.opts)
			b := listenT(t, "127.0.0.1:0", im.opts)
			tests := []struct {
				name  string
				spoil func(d *Datagram)
			}{
				{"length beyond buffer", func(d *Datagram) { d.N = len(d.Buf) + 1 }},
				{"invalid address", func(d *Datagram) { d.Addr = netip.AddrPort{} }},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ds := makeDatagrams(5, 32)
					fillPayloads(ds, 32, b.LocalAddr())
					tt.spoil(&ds[3])
					n, err := a.WriteBatch(ds)
					if n != 3 || err == nil {
						t.Fatalf("WriteBatch = %d, %v; want 3 and an error", n, err)
					}
					readN(t, b, 3, 64, 5*time.Second)
				})
			}
		})
	}
}

func TestEmptyBatches(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			c := listenT(t, "127.0.0.1:0", im.opts)
			if n, err := c.ReadBatch(nil); n != 0 || err != nil {
				t.Errorf("ReadBatch(nil) = %d, %v", n, err)
			}
			if n, err := c.WriteBatch(nil); n != 0 || err != nil {
				t.Errorf("WriteBatch(nil) = %d, %v", n, err)
			}
		})
	}
}

func TestSteadyStateAllocs(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			const batch, size = 64, 256
			a := listenT(t, "127.0.0.1:0", im.opts)
			b := listenT(t, "127.0.0.1:0", im.opts)
			out := makeDatagrams(batch, size)
			fillPayloads(out, size, b.LocalAddr())
			in := makeDatagrams(batch, 2048)
			var failed error
			round := func() {
				if _, err := a.WriteBatch(out); err != nil && failed == nil {
					failed = err
				}
				for got := 0; got < batch; {
					k, err := b.ReadBatch(in[got:])
					if err != nil {
						if failed == nil {
							failed = err
						}
						return
					}
					got += k
				}
			}
			watchdog := time.AfterFunc(30*time.Second, func() { b.Close() })
			defer watchdog.Stop()
			allocs := testing.AllocsPerRun(200, round)
			if failed != nil {
				t.Fatal(failed)
			}
			if allocs != 0 {
				t.Errorf("%v allocations per write+read round of %d datagrams, want 0", allocs, batch)
			}
		})
	}
}
