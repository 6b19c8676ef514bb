package udp

import (
	"encoding/binary"
	"testing"
	"time"
)

func needPoller(t *testing.T, c Conn) Poller {
	t.Helper()
	p, ok := c.(Poller)
	if !ok {
		t.Fatalf("%T does not implement Poller", c)
	}
	return p
}

// tryUntil calls TryReadBatch until it returns something or the deadline
// passes (a datagram written to loopback is queued by the time the write
// returns, but the test does not lean on that).
func tryUntil(t *testing.T, p Poller, ds []Datagram, d time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(d); ; {
		n, err := p.TryReadBatch(ds)
		if err != nil {
			t.Fatalf("TryReadBatch: %v", err)
		}
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTryReadBatch(t *testing.T) {
	const size = 100
	a := listenT(t, "127.0.0.1:0", Options{})
	b := listenT(t, "127.0.0.1:0", Options{})
	p := needPoller(t, b)
	in := makeDatagrams(8, 2048)

	// Nothing queued: it returns at once with nothing.
	if n, err := p.TryReadBatch(in); n != 0 || err != nil {
		t.Fatalf("TryReadBatch on an empty socket = %d, %v; want 0, nil", n, err)
	}

	out := makeDatagrams(3, size)
	fillPayloads(out, size, b.LocalAddr())
	if _, err := a.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < 3 {
		n := tryUntil(t, p, in[got:], 10*time.Second)
		if n == 0 {
			t.Fatalf("TryReadBatch found %d of 3 datagrams queued", got)
		}
		got += n
	}
	for i := range 3 {
		if in[i].N != size || binary.BigEndian.Uint32(in[i].Buf) != uint32(i) || in[i].Addr != a.LocalAddr() {
			t.Errorf("datagram %d: %d bytes, index %d, from %v", i, in[i].N, binary.BigEndian.Uint32(in[i].Buf), in[i].Addr)
		}
	}
	if s := b.Stats(); s.DatagramsRead != 3 {
		t.Errorf("DatagramsRead = %d, want 3", s.DatagramsRead)
	}
}

// TestTryReadBatchDoesNotOvertake: while the datagrams ReadBatch returned
// may not have been taken in (until ReadBatch is called again), a try
// reads nothing, so that nothing newer is taken in before them.
func TestTryReadBatchDoesNotOvertake(t *testing.T) {
	const size = 100
	a := listenT(t, "127.0.0.1:0", Options{})
	b := listenT(t, "127.0.0.1:0", Options{})
	p := needPoller(t, b)
	out := makeDatagrams(2, size)
	fillPayloads(out, size, b.LocalAddr())
	if _, err := a.WriteBatch(out[:1]); err != nil {
		t.Fatal(err)
	}
	first := readN(t, b, 1, 2048, 10*time.Second)
	if binary.BigEndian.Uint32(first[0].Buf) != 0 {
		t.Fatal("ReadBatch did not return the first datagram")
	}
	if _, err := a.WriteBatch(out[1:]); err != nil {
		t.Fatal(err)
	}
	in := makeDatagrams(4, 2048)
	// The second datagram is queued (the next ReadBatch finds it), yet a
	// try must not take it while the first may be in the reader's hands.
	for range 3 {
		if n, err := p.TryReadBatch(in); n != 0 || err != nil {
			t.Fatalf("TryReadBatch overtook the reader: %d, %v", n, err)
		}
	}
	second := readN(t, b, 1, 2048, 10*time.Second)
	if binary.BigEndian.Uint32(second[0].Buf) != 1 {
		t.Fatal("ReadBatch did not return the second datagram")
	}
}

func TestTryReadBatchAllocs(t *testing.T) {
	b := listenT(t, "127.0.0.1:0", Options{})
	p := needPoller(t, b)
	in := makeDatagrams(8, 2048)
	if allocs := testing.AllocsPerRun(100, func() { p.TryReadBatch(in) }); allocs != 0 {
		t.Errorf("%v allocations per TryReadBatch, want 0", allocs)
	}
}
