package udp

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func needGSO(t *testing.T, c Conn) *mmsgConn {
	t.Helper()
	mc, ok := c.(*mmsgConn)
	if !ok {
		t.Fatalf("Listen returned %T, want *mmsgConn", c)
	}
	if mc.gsoMax == 0 {
		t.Skip("the kernel does not offer UDP_SEGMENT")
	}
	return mc
}

// shaped is one datagram of a test batch: its length and receiver (0 or 1).
type shaped struct{ size, to int }

func repeat(n int, s shaped) []shaped {
	out := make([]shaped, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func cat(parts ...[]shaped) []shaped {
	var out []shaped
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestGSORuns checks which datagrams are coalesced and that the receivers
// see exactly the datagrams sent, with their boundaries.
func TestGSORuns(t *testing.T) {
	tests := []struct {
		name    string
		batch   []shaped
		wantGSO uint64
	}{
		{"one run", repeat(64, shaped{300, 0}), 64},
		{"alternating receivers", cat(repeat(1, shaped{300, 0}), repeat(1, shaped{300, 1}), repeat(1, shaped{300, 0}), repeat(1, shaped{300, 1})), 0},
		{"short last segment ends a run", cat(repeat(3, shaped{100, 0}), repeat(1, shaped{50, 0}), repeat(2, shaped{100, 0})), 6},
		{"a longer datagram starts a new run", cat(repeat(1, shaped{100, 0}), repeat(2, shaped{200, 0})), 2},
		{"runs per receiver", cat(repeat(5, shaped{64, 0}), repeat(7, shaped{64, 1}), repeat(1, shaped{64, 0})), 12},
		{"8 KiB: seven fit in one message", repeat(10, shaped{8 << 10, 1}), 10},
		{"longer than the batch", repeat(150, shaped{64, 0}), 150},
		{"empty datagrams are sent alone", repeat(3, shaped{0, 0}), 0},
		{"single datagram", repeat(1, shaped{1000, 1}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := listenT(t, "127.0.0.1:0", Options{})
			mc := needGSO(t, tx)
			rx := []Conn{listenT(t, "127.0.0.1:0", Options{}), listenT(t, "127.0.0.1:0", Options{})}
			out := make([]Datagram, len(tt.batch))
			var want [2][][]byte
			for i, s := range tt.batch {
				buf := make([]byte, s.size)
				for j := range buf {
					buf[j] = byte(i*7 + j)
				}
				if s.size >= 4 {
					binary.BigEndian.PutUint32(buf, uint32(i))
				}
				out[i] = Datagram{Buf: buf, N: s.size, Addr: rx[s.to].LocalAddr()}
				want[s.to] = append(want[s.to], buf)
			}
			if n, err := tx.WriteBatch(out); n != len(out) || err != nil {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			for r := range rx {
				in := readN(t, rx[r], len(want[r]), 16<<10, 5*time.Second)
				for i, d := range in {
					if !bytes.Equal(d.Buf[:d.N], want[r][i]) {
						t.Fatalf("receiver %d, datagram %d: got %d bytes, want %d (contents differ)", r, i, d.N, len(want[r][i]))
					}
				}
			}
			st := tx.Stats()
			if st.GSODatagrams != tt.wantGSO || st.DatagramsWritten != uint64(len(out)) {
				t.Errorf("stats %+v; want %d GSO datagrams of %d", st, tt.wantGSO, len(out))
			}
			if mc.gsoMax != maxGSOBytes {
				t.Errorf("GSO limit dropped to %d on loopback", mc.gsoMax)
			}
		})
	}
}

// TestGSOFallback makes the kernel refuse GSO messages and checks that the
// datagrams still go out one by one and the limit drops as documented.
func TestGSOFallback(t *testing.T) {
	tests := []struct {
		name    string
		errno   unix.Errno
		size    int
		wantMax int
	}{
		{"EINVAL above the minimum MTU lowers the limit", unix.EINVAL, 2000, 1999},
		{"EINVAL for small segments turns GSO off", unix.EINVAL, 500, 0},
		{"EIO turns GSO off", unix.EIO, 2000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := listenT(t, "127.0.0.1:0", Options{})
			mc := needGSO(t, tx)
			rx := listenT(t, "127.0.0.1:0", Options{})
			refusals := 0
			fakeSendmmsg(t, tx, func(_ int, hs []unix.Mmsghdr, real mmsgFunc, fd uintptr) (int, unix.Errno) {
				if hs[0].Hdr.Controllen > 0 {
					refusals++
					return -1, tt.errno
				}
				return real(fd, hs)
			})
			out := makeDatagrams(20, tt.size)
			fillPayloads(out, tt.size, rx.LocalAddr())
			for round := range 2 {
				if n, err := tx.WriteBatch(out); n != len(out) || err != nil {
					t.Fatalf("round %d: WriteBatch = %d, %v", round, n, err)
				}
				in := readN(t, rx, len(out), 4096, 5*time.Second)
				for i, d := range in {
					if binary.BigEndian.Uint32(d.Buf) != uint32(i) || d.N != tt.size {
						t.Fatalf("round %d: datagram %d wrong (%d bytes)", round, i, d.N)
					}
				}
			}
			if refusals != 1 {
				t.Errorf("%d refused GSO calls, want 1: the fallback must stick", refusals)
			}
			if mc.gsoMax != tt.wantMax {
				t.Errorf("GSO limit %d, want %d", mc.gsoMax, tt.wantMax)
			}
			if st := tx.Stats(); st.GSODatagrams != 0 || st.DatagramsWritten != 40 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestGSODisabled(t *testing.T) {
	tx := listenT(t, "127.0.0.1:0", Options{DisableGSO: true})
	if mc := tx.(*mmsgConn); mc.gsoMax != 0 {
		t.Fatalf("DisableGSO left the limit at %d", mc.gsoMax)
	}
}
