package netlab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
)

// newTestNet builds a Net of k nodes, or skips the test saying why not.
func newTestNet(t *testing.T, k int, forceNft bool) *Net {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	if forceNft {
		if err := nftAvailable(); err != nil {
			t.Skipf("skipped: %v", err)
		}
	}
	n, err := New(k, Options{ForceNft: forceNft})
	switch {
	case err != nil && !forceNft && errors.Is(err, ErrNoFilter):
		t.Skipf("skipped: no packet filter here: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// nodePair is a receiver in node to and a sender in node from connected
// to it; the first datagram has gone through (the neighbours resolved).
func nodePair(t *testing.T, n *Net, from, to int) (recv, send *net.UDPConn) {
	t.Helper()
	err := inNamespace(n.Namespace(to), func() error {
		var err error
		recv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: n.Addr(to).AsSlice()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Close() })
	recv.SetReadBuffer(8 << 20)
	err = inNamespace(n.Namespace(from), func() error {
		var err error
		send, err = net.DialUDP("udp4", nil, recv.LocalAddr().(*net.UDPAddr))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close() })
	countThrough(t, recv, send, 0, func() error { return nil })
	return recv, send
}

func testNet(t *testing.T, forceNft bool) {
	n := newTestNet(t, 3, forceNft)
	t.Logf("mechanism: %s", n.Mechanism())
	inNamespace(n.Namespace(0), func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil || ifc.MTU != DefaultMTU {
			t.Errorf("node 0's eth0: %+v, %v; want MTU %d", ifc, err, DefaultMTU)
		}
		return nil
	})
	r01, s01 := nodePair(t, n, 0, 1)
	r02, s02 := nodePair(t, n, 0, 2)
	r10, s10 := nodePair(t, n, 1, 0)
	const k = 1000
	nothing := func() error { return nil }
	heal := n.Heal

	if c := countThrough(t, r01, s01, k, nothing); c != k {
		t.Errorf("0→1 with no fault: %d of %d arrived", c, k)
	}
	if err := n.Cut([]int{0}, []int{1}); err != nil {
		t.Fatal(err)
	}
	if c := countThrough(t, r02, s02, k, nothing); c != k {
		t.Errorf("0→2 with 0|1 cut: %d of %d arrived", c, k)
	}
	if c := countThrough(t, r10, s10, k, heal); c != 0 {
		t.Errorf("1→0 with 0|1 cut: %d of %d arrived", c, k)
	}
	// Healed by countThrough.
	if c := countThrough(t, r01, s01, k, nothing); c != k {
		t.Errorf("0→1 after the heal: %d of %d arrived", c, k)
	}

	if err := n.Partition([]int{0, 1}, []int{2}); err != nil {
		t.Fatal(err)
	}
	if c := countThrough(t, r01, s01, k, nothing); c != k {
		t.Errorf("0→1 in partition 0,1|2: %d of %d arrived", c, k)
	}
	if c := countThrough(t, r02, s02, k, heal); c != 0 {
		t.Errorf("0→2 in partition 0,1|2: %d of %d arrived", c, k)
	}

	// 30% on node 1's link: 0→1 crosses it once, 0→2 not at all.
	if err := n.SetLoss(1, 30); err != nil {
		t.Fatal(err)
	}
	if c := countThrough(t, r02, s02, k, nothing); c != k {
		t.Errorf("0→2 with loss on 1's link: %d of %d arrived", c, k)
	}
	lossOff := func() error { return n.SetLoss(1, 0) }
	// Binomial: mean 700, standard deviation 14.5; 7 deviations.
	if c := countThrough(t, r01, s01, k, lossOff); c < 700-100 || c > 700+100 {
		t.Errorf("0→1 with 30%% loss on 1's link: %d of %d arrived, want 600 to 800", c, k)
	} else {
		t.Logf("0→1 with 30%% loss on 1's link: %d of %d arrived", c, k)
	}
	if err := n.SetLoss(3, 5); err == nil {
		t.Error("SetLoss on node 3 of 3 did not fail")
	}

	names := append([]string{n.hub}, n.nodes...)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range names {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s still there after Close", ns)
		}
	}
}

func TestNetBPF(t *testing.T) { testNet(t, false) }
func TestNetNft(t *testing.T) { testNet(t, true) }

// TestRemoveLeftovers: a namespace named for a process that cannot exist
// (above the kernel's largest pid) is removed; one of this process stays.
func TestRemoveLeftovers(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	dead := NamePrefix + "4194305-1-hub"
	live := fmt.Sprintf("%s%d-999-hub", NamePrefix, os.Getpid())
	for _, ns := range []string{dead, live} {
		if err := ipCmd("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := os.Stat("/run/netns/" + ns); err == nil {
				ipCmd("netns", "del", ns)
			}
		})
	}
	RemoveLeftovers()
	if _, err := os.Stat("/run/netns/" + dead); err == nil {
		t.Errorf("%s (a dead run's) is still there", dead)
	}
	if _, err := os.Stat("/run/netns/" + live); err != nil {
		t.Errorf("%s (this run's) was removed", live)
	}
}
