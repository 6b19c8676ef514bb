package netlab

import (
	"encoding/binary"
	"net"
	"os"
	"testing"
	"time"
)

// needRoot skips a test that needs root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (network namespaces, BPF or nftables)")
	}
}

// udpPair is a receiver on loopback and a sender connected to it.
func udpPair(t *testing.T) (recv, send *net.UDPConn) {
	t.Helper()
	recv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Close() })
	recv.SetReadBuffer(8 << 20)
	send, err = net.DialUDP("udp4", nil, recv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close() })
	return recv, send
}

// countThrough sends n numbered datagrams and returns how many arrived.
// Then, with loss off (setLoss(0)), it sends an end marker until one
// arrives: loopback keeps a socket's order, so every datagram before the
// marker has arrived or been dropped by then.
func countThrough(t *testing.T, recv, send *net.UDPConn, n int, lossOff func() error) int {
	t.Helper()
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 64)
		count := 0
		recv.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			k, err := recv.Read(buf)
			if err != nil {
				got <- -1
				return
			}
			if k == 8 && binary.BigEndian.Uint64(buf) == ^uint64(0) {
				got <- count
				return
			}
			count++
		}
	}()
	var b [8]byte
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(b[:], uint64(i))
		if _, err := send.Write(b[:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := lossOff(); err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(b[:], ^uint64(0))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		send.Write(b[:])
		select {
		case c := <-got:
			if c < 0 {
				t.Fatal("the end marker did not arrive within 20s")
			}
			return c
		case <-tick.C:
		}
	}
}

func testPortLoss(t *testing.T, p *PortLoss) {
	recv, send := udpPair(t)
	port := uint16(recv.LocalAddr().(*net.UDPAddr).Port)
	p.port = port
	if err := p.SetLoss(0); err != nil { // the port, now that it is known
		t.Fatal(err)
	}
	off := func() error { return p.SetLoss(0) }
	const n = 2000
	if c := countThrough(t, recv, send, n, off); c != n {
		t.Errorf("at 0%% loss %d of %d datagrams arrived", c, n)
	}
	for _, tc := range []struct {
		percent  float64
		min, max int
	}{
		{100, 0, 0},
		// Binomial: mean 1400, standard deviation 20.5; 7 deviations.
		{30, 1400 - 145, 1400 + 145},
	} {
		if err := p.SetLoss(tc.percent); err != nil {
			t.Fatal(err)
		}
		c := countThrough(t, recv, send, n, off)
		t.Logf("%s: at %v%% loss %d of %d datagrams arrived", p.Mechanism(), tc.percent, c, n)
		if c < tc.min || c > tc.max {
			t.Errorf("at %v%% loss %d of %d datagrams arrived; want %d to %d", tc.percent, c, n, tc.min, tc.max)
		}
	}
	// Another port is not affected.
	if err := p.SetLoss(100); err != nil {
		t.Fatal(err)
	}
	recv2, send2 := udpPair(t)
	if c := countThrough(t, recv2, send2, 200, func() error { return nil }); c != 200 {
		t.Errorf("another port, at 100%% loss on %d: %d of 200 arrived", port, c)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if c := countThrough(t, recv, send, 200, func() error { return nil }); c != 200 {
		t.Errorf("after Close %d of 200 datagrams arrived", c)
	}
}

func TestLoopbackLossBPF(t *testing.T) {
	needRoot(t)
	p := &PortLoss{mechanism: MechanismBPF}
	if err := p.attachBPF(); err != nil {
		t.Skipf("skipped: BPF filter unavailable here: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	testPortLoss(t, p)
}

func TestLoopbackLossNft(t *testing.T) {
	needRoot(t)
	if err := nftAvailable(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	p := &PortLoss{mechanism: MechanismNft}
	if err := p.attachNft(); err != nil {
		t.Skipf("skipped: nftables unusable here: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	testPortLoss(t, p)
}

func TestAttachLoopbackLoss(t *testing.T) {
	needRoot(t)
	p, err := AttachLoopbackLoss(9)
	if err != nil {
		t.Skipf("skipped: %v", err)
	}
	t.Logf("mechanism: %s", p.Mechanism())
	if err := p.SetLoss(101); err == nil {
		t.Error("SetLoss(101) did not fail")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.SetLoss(5); err == nil {
		t.Error("SetLoss after Close did not fail")
	}
}
