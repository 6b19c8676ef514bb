package udp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSockaddrRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		ipv4   bool // socket family
		in     string
		want   string // "" means: cannot be encoded for this family
		length uint32
	}{
		{"v4 on v4", true, "127.0.0.1:9", "127.0.0.1:9", unix.SizeofSockaddrInet4},
		{"v4 high port", true, "10.1.2.3:65535", "10.1.2.3:65535", unix.SizeofSockaddrInet4},
		{"mapped on v4", true, "[::ffff:127.0.0.1]:80", "127.0.0.1:80", unix.SizeofSockaddrInet4},
		{"v6 on v4", true, "[::1]:80", "", 0},
		{"v6 on v6", false, "[::1]:4242", "[::1]:4242", unix.SizeofSockaddrInet6},
		{"v6 global", false, "[2001:db8::1:2]:258", "[2001:db8::1:2]:258", unix.SizeofSockaddrInet6},
		{"v4 on v6 maps", false, "127.0.0.1:7", "[::ffff:127.0.0.1]:7", unix.SizeofSockaddrInet6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sa unix.RawSockaddrInet6
			n := encodeSockaddr(&sa, tt.ipv4, netip.MustParseAddrPort(tt.in))
			if n != tt.length {
				t.Fatalf("encoded length %d, want %d", n, tt.length)
			}
			if tt.want == "" {
				return
			}
			// The port must be in network byte order whatever the host.
			raw := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(&sa))
			want := netip.MustParseAddrPort(tt.want)
			if p := binary.BigEndian.Uint16(raw[2:4]); p != want.Port() {
				t.Errorf("raw port bytes %d, want %d", p, want.Port())
			}
			if got := decodeSockaddr(&sa); got != want {
				t.Errorf("decoded %v, want %v", got, want)
			}
		})
	}
	var unknown unix.RawSockaddrInet6
	unknown.Family = unix.AF_UNIX
	if got := decodeSockaddr(&unknown); got.IsValid() {
		t.Errorf("unknown family decoded to %v", got)
	}
}

func TestDecodeSockaddrAllocs(t *testing.T) {
	var sa4, sa6 unix.RawSockaddrInet6
	encodeSockaddr(&sa4, true, netip.MustParseAddrPort("127.0.0.1:1"))
	encodeSockaddr(&sa6, false, netip.MustParseAddrPort("[::1]:1"))
	var sink netip.AddrPort
	allocs := testing.AllocsPerRun(100, func() {
		sink = decodeSockaddr(&sa4)
		sink = decodeSockaddr(&sa6)
	})
	if allocs != 0 || !sink.IsValid() {
		t.Errorf("decodeSockaddr: %v allocations", allocs)
	}
}

// cmsg builds one control message in kernel layout.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestRxqDropCount(t *testing.T) {
	ovfl := func(v uint32) []byte { return cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(v)) }
	other := cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMP, make([]byte, 16))
	truncated := ovfl(9)[:unix.CmsgLen(0)+2]
	tests := []struct {
		name string
		ctrl []byte
		want uint32
		ok   bool
	}{
		{"empty", nil, 0, false},
		{"only counter", ovfl(17), 17, true},
		{"after another message", concat(other, ovfl(3)), 3, true},
		{"before another message", concat(ovfl(5), other), 5, true},
		{"other level", cmsg(unix.IPPROTO_IP, unix.SO_RXQ_OVFL, u32(4)), 0, false},
		{"cut short", truncated, 0, false},
		{"bogus length", func() []byte { b := ovfl(1); (*unix.Cmsghdr)(unsafe.Pointer(&b[0])).SetLen(1 << 20); return b }(), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := rxqDropCount(tt.ctrl)
			if got != tt.want || ok != tt.ok {
				t.Errorf("rxqDropCount = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestKernelDrops overflows a tiny receive buffer and checks that the
// kernel's drop counter reaches Stats through the control messages.
func TestKernelDrops(t *testing.T) {
	const size, burst = 1024, 400
	rx := listenT(t, "127.0.0.1:0", Options{RecvBufferBytes: 4096})
	tx := listenT(t, "127.0.0.1:0", Options{})
	out := makeDatagrams(burst, size)
	fillPayloads(out, size, rx.LocalAddr())
	if n, err := tx.WriteBatch(out); n != burst || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	// Drain what fitted, then send one more: only datagrams queued after
	// a drop carry the counter.
	in := makeDatagrams(DefaultMaxBatch, 2048)
	received, extra := 0, 0
	watchdog := time.AfterFunc(10*time.Second, func() { rx.Close() })
	defer watchdog.Stop()
	for rx.Stats().KernelDrops == 0 {
		k, err := rx.ReadBatch(in)
		if err != nil {
			t.Fatalf("ReadBatch after %d datagrams: %v (stats %+v)", received, err, rx.Stats())
		}
		received += k
		if k == len(in) {
			continue // more may be queued
		}
		if _, err := tx.WriteBatch(out[:1]); err != nil {
			t.Fatal(err)
		}
		extra++
	}
	drops := rx.Stats().KernelDrops
	if sent := uint64(burst + extra); drops > sent-uint64(received) {
		t.Errorf("KernelDrops %d exceeds the %d datagrams sent but not received", drops, sent-uint64(received))
	}
	t.Logf("burst %d, received %d, kernel drops %d, buffer %d", burst, received, drops, rx.Stats().RecvBufferBytes)
}

// fakeSyscalls swaps the sender's sendmmsg for f, which gets the index of
// the first header passed and the real call to forward to.
func fakeSendmmsg(t *testing.T, c Conn, f func(first int, hs []unix.Mmsghdr, real mmsgFunc, fd uintptr) (int, unix.Errno)) *mmsgConn {
	t.Helper()
	mc, ok := c.(*mmsgConn)
	if !ok {
		t.Fatalf("Listen returned %T, want *mmsgConn", c)
	}
	base := uintptr(unsafe.Pointer(&mc.wHdrs[0]))
	mc.sendmmsg = func(fd uintptr, hs []unix.Mmsghdr) (int, unix.Errno) {
		first := int((uintptr(unsafe.Pointer(&hs[0])) - base) / unsafe.Sizeof(hs[0]))
		return f(first, hs, sendmmsg, fd)
	}
	return mc
}

// TestWriteLoop drives WriteBatch through short counts, would-block and
// refusals that loopback never produces on demand.
func TestWriteLoop(t *testing.T) {
	const batch = 64
	tests := []struct {
		name string
		// fake decides each call's outcome; calls counts them from 0.
		fake        func(call, first int, hs []unix.Mmsghdr, real mmsgFunc, fd uintptr) (int, unix.Errno)
		wantN       int
		wantErr     bool
		wantArrive  []int // indices that must arrive, in order
		wantRefused uint64
		wantWritten uint64
	}{
		{
			name: "short counts of three",
			fake: func(_, _ int, hs []unix.Mmsghdr, real mmsgFunc, fd uintptr) (int, unix.Errno) {
				return real(fd, hs[:min(3, len(hs))])
			},
			wantN: batch, wantArrive: seq(0, batch), wantWritten: batch,
		},
		{
			name: "would block every other call",
			fake: func(call, _ int, hs []unix.Mmsghdr, real mmsgFunc, fd uintptr) (int, unix.Errno) {
				if call%2 == 0 {
					return wouldBlock(fd)
				}
				return real(fd, hs[:min(10, len(hs))])
			},
			wantN: batch, wantArrive: seq(0, batch), wantWritten: batch,
		},
		{
			name: "interrupted",
			fake: func(call, _ int, hs []unix.Mmsghdr, real mmsgFunc, fd uintptr) (int, unix.Errno) {
				if call == 0 {
					return -1, unix.EINTR
				}
				return real(fd, hs)
			},
			wantN: batch, wantArrive: seq(0, batch), wantWritten: batch,
		},
		{
			name:  "one refusal is retried",
			fake:  refuseAt(20, 1),
			wantN: batch, wantArrive: seq(0, batch), wantRefused: 1, wantWritten: batch,
		},
		{
			name:  "second refusal skips the datagram",
			fake:  refuseAt(20, 2),
			wantN: batch, wantArrive: append(seq(0, 20), seq(21, batch)...), wantRefused: 2, wantWritten: batch - 1,
		},
		{
			name: "hard error reports the index",
			fake: func(_, first int, hs []unix.Mmsghdr, real mmsgFunc, fd uintptr) (int, unix.Errno) {
				if first == 10 {
					return -1, unix.EMSGSIZE
				}
				return real(fd, hs[:min(10-first, len(hs))])
			},
			wantN: 10, wantErr: true, wantArrive: seq(0, 10), wantWritten: 10,
		},
	}
	sinkConn := listenT(t, "127.0.0.1:0", Options{})
	sink = &unix.SockaddrInet4{Port: int(sinkConn.LocalAddr().Port()), Addr: [4]byte{127, 0, 0, 1}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One message per datagram: GSO would fold the batch into one.
			tx := listenT(t, "127.0.0.1:0", Options{DisableGSO: true})
			rx := listenT(t, "127.0.0.1:0", Options{})
			calls := 0
			fakeSendmmsg(t, tx, func(first int, hs []unix.Mmsghdr, real mmsgFunc, fd uintptr) (int, unix.Errno) {
				defer func() { calls++ }()
				return tt.fake(calls, first, hs, real, fd)
			})
			out := makeDatagrams(batch, 64)
			fillPayloads(out, 64, rx.LocalAddr())
			n, err := tx.WriteBatch(out)
			if n != tt.wantN || (err != nil) != tt.wantErr {
				t.Fatalf("WriteBatch = %d, %v; want %d, error %v", n, err, tt.wantN, tt.wantErr)
			}
			if tt.wantErr && !errors.Is(err, unix.EMSGSIZE) {
				t.Errorf("error %v does not wrap the errno", err)
			}
			// Mark the end so the reader knows nothing else is coming.
			end := makeDatagrams(1, 64)
			fillPayloads(end, 64, rx.LocalAddr())
			binary.BigEndian.PutUint32(end[0].Buf, 0xffff)
			tx.(*mmsgConn).sendmmsg = sendmmsg
			if _, err := tx.WriteBatch(end); err != nil {
				t.Fatal(err)
			}
			in := readN(t, rx, len(tt.wantArrive)+1, 128, 5*time.Second)
			for i, want := range tt.wantArrive {
				if got := binary.BigEndian.Uint32(in[i].Buf); got != uint32(want) {
					t.Fatalf("arrival %d is datagram %d, want %d", i, got, want)
				}
			}
			if got := binary.BigEndian.Uint32(in[len(tt.wantArrive)].Buf); got != 0xffff {
				t.Fatalf("unexpected extra datagram %d", got)
			}
			st := tx.Stats()
			if st.RefusedWrites != tt.wantRefused || st.DatagramsWritten != tt.wantWritten+1 {
				t.Errorf("stats %+v; want %d refused, %d written", st, tt.wantRefused, tt.wantWritten+1)
			}
		})
	}
}

// sink receives the bytes wouldBlock sends; TestWriteLoop sets it.
var sink unix.Sockaddr

// wouldBlock fakes EAGAIN. The runtime's poller is edge-triggered and the
// socket never really filled up, so the writer would wait forever for a
// writability edge; a real send raises one when its buffer is freed.
func wouldBlock(fd uintptr) (int, unix.Errno) {
	if err := unix.Sendto(int(fd), []byte{0}, unix.MSG_DONTWAIT, sink); err != nil {
		panic(err)
	}
	return -1, unix.EAGAIN
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// refuseAt makes the call starting at datagram idx fail with ECONNREFUSED
// the first times times, and sends everything before idx in one call.
func refuseAt(idx, times int) func(int, int, []unix.Mmsghdr, mmsgFunc, uintptr) (int, unix.Errno) {
	refused := 0
	return func(_, first int, hs []unix.Mmsghdr, real mmsgFunc, fd uintptr) (int, unix.Errno) {
		if first == idx && refused < times {
			refused++
			return -1, unix.ECONNREFUSED
		}
		if first < idx {
			hs = hs[:idx-first]
		}
		return real(fd, hs)
	}
}

// TestKernelRefusal provokes real ECONNREFUSED from the kernel: with
// IP_RECVERR an unconnected socket reports ICMP port-unreachable on its
// next call. No write may fail and no datagram to a live peer may be lost.
func TestKernelRefusal(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			tx := listenT(t, "127.0.0.1:0", im.opts)
			rx := listenT(t, "127.0.0.1:0", im.opts)
			dead := listenT(t, "127.0.0.1:0", im.opts)
			deadAddr := dead.LocalAddr()
			dead.Close()

			rc := rawConnOf(t, tx)
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1)
			}); err != nil || serr != nil {
				t.Fatalf("IP_RECVERR: %v %v", err, serr)
			}

			toDead := makeDatagrams(1, 16)
			fillPayloads(toDead, 16, deadAddr)
			toLive := makeDatagrams(1, 16)
			fillPayloads(toLive, 16, rx.LocalAddr())
			live := 0
			deadline := time.Now().Add(5 * time.Second)
			for tx.Stats().RefusedWrites == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the kernel never reported a refusal")
				}
				for _, ds := range [][]Datagram{toDead, toLive} {
					if n, err := tx.WriteBatch(ds); n != 1 || err != nil {
						t.Fatalf("WriteBatch = %d, %v", n, err)
					}
				}
				live++
			}
			readN(t, rx, live, 64, 5*time.Second)
			if st := tx.Stats(); st.RefusedWrites != 1 {
				t.Errorf("RefusedWrites = %d, want 1 (the retry must succeed)", st.RefusedWrites)
			}
		})
	}
}

func rawConnOf(t *testing.T, c Conn) interface {
	Control(func(uintptr)) error
} {
	t.Helper()
	switch c := c.(type) {
	case *mmsgConn:
		return c.rc
	case *portableConn:
		rc, err := c.uc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	t.Fatalf("unexpected Conn %T", c)
	return nil
}
