package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Net is K network namespaces ("nodes"), each with one interface, eth0,
// at 10.77.0.(i+1)/24, joined by a veth pair to a bridge that lives in a
// namespace of its own (the hub), so the host's namespace is never
// changed. Every node's link is the pair between it and the hub; the
// filters sit on the hub-side ends (v0, v1, ...): they drop a share of
// the IPv4 packets crossing a link, in each direction, and the packets
// between nodes cut apart.
//
// All names start with "cohort-PID-N-", PID being the owner's process:
// Close removes everything (deleting the namespaces removes the veths,
// the bridge, the filters and the nftables tables in them), and New
// removes what runs whose process is gone left behind.
type Net struct {
	prefix    string
	hub       string
	nodes     []string
	mechanism string

	mu      sync.Mutex
	closed  bool
	loss    []float64       // by node: its link's loss, each direction
	blocked map[[2]int]bool // node pairs (from, to) whose packets are dropped
	// BPF
	lossMap, blockedMap *ebpf.Map
	ifindex             []int // by node: its hub-side veth's index
	progs               []*ebpf.Program
	links               []link.Link
}

// Subnet is every lab's address range; labs do not see one another.
var Subnet = netip.MustParsePrefix("10.77.0.0/24")

var netSeq atomic.Uint64

// NamePrefix is how every namespace this package makes is named.
const NamePrefix = "cohort-"

// Available reports why this process cannot build a Net (nil: it can).
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (it creates network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the lab needs the ip command (iproute2)")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return errors.New("this kernel has no network namespaces")
	}
	probeOnce.Do(func() {
		// Root in a container may still be refused namespaces: try one.
		ns := fmt.Sprintf("%s%d-probe", NamePrefix, os.Getpid())
		if err := ipCmd("netns", "add", ns); err != nil {
			probeErr = fmt.Errorf("cannot create a network namespace here: %w", err)
			return
		}
		ipCmd("netns", "del", ns)
	})
	return probeErr
}

var (
	probeOnce sync.Once
	probeErr  error
)

// Options shape a Net.
type Options struct {
	// MTU of every link; 0: DefaultMTU. With 1500, the engine's default
	// 8 KiB datagrams travel as IP fragments (see docs/LAB.md).
	MTU int
	// ForceNft skips the BPF filters and uses nftables (tests of the
	// fallback).
	ForceNft bool
}

// DefaultMTU is a jumbo-frame LAN's: the engine's default datagrams
// (engine.Config.MaxDatagram, 8192 bytes) are sized for loopback or such
// a LAN, and go unfragmented.
const DefaultMTU = 9000

// New builds a Net of k nodes.
func New(k int, opt Options) (*Net, error) {
	if k < 1 || k > 250 {
		return nil, fmt.Errorf("%d nodes: want 1 to 250", k)
	}
	if opt.MTU == 0 {
		opt.MTU = DefaultMTU
	}
	if opt.MTU < 576 || opt.MTU > 65535 {
		return nil, fmt.Errorf("MTU %d: want 576 to 65535", opt.MTU)
	}
	forceNft := opt.ForceNft
	if err := Available(); err != nil {
		return nil, err
	}
	RemoveLeftovers()
	prefix := fmt.Sprintf("%s%d-%d-", NamePrefix, os.Getpid(), netSeq.Add(1))
	n := &Net{prefix: prefix, hub: prefix + "hub", loss: make([]float64, k), blocked: map[[2]int]bool{}}
	for i := 0; i < k; i++ {
		n.nodes = append(n.nodes, fmt.Sprintf("%sn%d", prefix, i))
	}
	if err := n.build(opt.MTU); err != nil {
		n.Close()
		return nil, err
	}
	var bpfErr error
	if !forceNft {
		if bpfErr = n.attachBPF(); bpfErr == nil {
			n.mechanism = MechanismBPF
			return n, nil
		}
		n.detachBPF()
	}
	if err := n.setupNft(); err != nil {
		n.Close()
		if bpfErr == nil {
			bpfErr = errors.New("not tried")
		}
		return nil, fmt.Errorf("%w (BPF: %v; nftables: %v)", ErrNoFilter, bpfErr, err)
	}
	n.mechanism = MechanismNft
	return n, nil
}

// ipCmd runs the ip command.
func ipCmd(args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (n *Net) build(mtu int) error {
	hub := n.hub
	m := strconv.Itoa(mtu)
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "mtu", m, "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
	}
	for i, ns := range n.nodes {
		v := fmt.Sprintf("v%d", i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", hub, "link", "add", v, "mtu", m, "type", "veth", "peer", "name", "eth0", "mtu", m, "netns", ns},
			[]string{"-n", hub, "link", "set", v, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", n.Addr(i).String() + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return nil
}

// Nodes is the number of nodes.
func (n *Net) Nodes() int { return len(n.nodes) }

// Namespace is node i's network namespace, for `ip netns exec`.
func (n *Net) Namespace(i int) string { return n.nodes[i] }

// Addr is node i's address.
func (n *Net) Addr(i int) netip.Addr { return nodeAddr(i) }

func nodeAddr(i int) netip.Addr {
	a := Subnet.Addr().As4()
	a[3] = byte(i + 1)
	return netip.AddrFrom4(a)
}

// Mechanism says what drops the packets: MechanismBPF or MechanismNft.
func (n *Net) Mechanism() string { return n.mechanism }

// inNamespace runs fn on a thread that has entered the namespace ns. The
// thread is never handed back to other goroutines: it ends with fn's
// goroutine, so no other code runs in the wrong namespace.
func inNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func (n *Net) attachBPF() error {
	var err error
	if n.lossMap, n.blockedMap, err = newLinkMaps(); err != nil {
		return err
	}
	from, err := linkProgram(n.lossMap, n.blockedMap, true)
	if err != nil {
		return err
	}
	n.progs = append(n.progs, from)
	to, err := linkProgram(n.lossMap, n.blockedMap, false)
	if err != nil {
		return err
	}
	n.progs = append(n.progs, to)
	return inNamespace(n.hub, func() error {
		for i := range n.nodes {
			ifc, err := net.InterfaceByName(fmt.Sprintf("v%d", i))
			if err != nil {
				return err
			}
			n.ifindex = append(n.ifindex, ifc.Index)
			for _, a := range []struct {
				p *ebpf.Program
				t ebpf.AttachType
			}{{from, ebpf.AttachTCXIngress}, {to, ebpf.AttachTCXEgress}} {
				l, err := link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: a.p, Attach: a.t})
				if err != nil {
					return fmt.Errorf("attaching to %s: %w", ifc.Name, err)
				}
				n.links = append(n.links, l)
			}
		}
		return nil
	})
}

func (n *Net) detachBPF() {
	for _, l := range n.links {
		l.Close()
	}
	for _, p := range n.progs {
		p.Close()
	}
	if n.lossMap != nil {
		n.lossMap.Close()
		n.blockedMap.Close()
	}
	n.links, n.progs, n.lossMap, n.blockedMap, n.ifindex = nil, nil, nil, nil, nil
}

// SetLoss makes node i's link drop percent% (0 to 100) of the IPv4
// packets it carries, in each direction: a packet between two nodes
// whose links both lose p% is lost with probability 1-(1-p)².
func (n *Net) SetLoss(i int, percent float64) error {
	if err := validPercent(percent); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(i); err != nil {
		return err
	}
	n.loss[i] = percent
	return n.apply()
}

// SetLossAll sets every link's loss (see SetLoss).
func (n *Net) SetLossAll(percent float64) error {
	if err := validPercent(percent); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("lab network closed")
	}
	for i := range n.loss {
		n.loss[i] = percent
	}
	return n.apply()
}

// Cut drops every packet between a node of a and a node of b, both ways,
// on top of the cuts already made.
func (n *Net) Cut(a, b []int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, i := range append(append([]int(nil), a...), b...) {
		if err := n.check(i); err != nil {
			return err
		}
	}
	for _, i := range a {
		for _, j := range b {
			if i != j {
				n.blocked[[2]int{i, j}] = true
				n.blocked[[2]int{j, i}] = true
			}
		}
	}
	return n.apply()
}

// Partition cuts the nodes into the given sides: packets pass only
// between nodes of one side. It replaces earlier cuts.
func (n *Net) Partition(sides ...[]int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	side := map[int]int{}
	for s, nodes := range sides {
		for _, i := range nodes {
			if err := n.check(i); err != nil {
				return err
			}
			side[i] = s
		}
	}
	n.blocked = map[[2]int]bool{}
	for i, si := range side {
		for j, sj := range side {
			if si != sj {
				n.blocked[[2]int{i, j}] = true
			}
		}
	}
	return n.apply()
}

// Heal removes every cut (not the loss).
func (n *Net) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("lab network closed")
	}
	n.blocked = map[[2]int]bool{}
	return n.apply()
}

func (n *Net) check(i int) error {
	if n.closed {
		return errors.New("lab network closed")
	}
	if i < 0 || i >= len(n.nodes) {
		return fmt.Errorf("node %d: the lab has nodes 0 to %d", i, len(n.nodes)-1)
	}
	return nil
}

// apply brings the filters in line with the loss and the cuts.
func (n *Net) apply() error {
	if n.mechanism == MechanismNft {
		return nft(n.hub, n.nftRules())
	}
	for i, idx := range n.ifindex {
		t := threshold(n.loss[i])
		if err := n.lossMap.Put(uint32(idx), linkLossValue{FromMember: t, ToMember: t}); err != nil {
			return err
		}
	}
	// Delete the keys no longer blocked, then add the new ones.
	want := map[[8]byte]bool{}
	for p := range n.blocked {
		want[n.pairKey(p)] = true
	}
	var k [8]byte
	var v uint32
	var stale [][8]byte
	it := n.blockedMap.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := n.blockedMap.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	for k := range want {
		if err := n.blockedMap.Put(k, uint32(1)); err != nil {
			return err
		}
	}
	return nil
}

func (n *Net) pairKey(p [2]int) [8]byte {
	var k [8]byte
	a, b := n.Addr(p[0]).As4(), n.Addr(p[1]).As4()
	copy(k[:4], a[:])
	copy(k[4:], b[:])
	return k
}

const nftLabTable = "cohort_lab"

func (n *Net) setupNft() error {
	if err := nftAvailable(); err != nil {
		return err
	}
	n.mechanism = MechanismNft
	return nft(n.hub, n.nftRules())
}

// nftRules is the hub's whole bridge table: cuts first, then loss on
// the way in from a node and on the way out to it.
func (n *Net) nftRules() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table bridge %[1]s {}\ndelete table bridge %[1]s\ntable bridge %[1]s {\n\tchain forward_filter {\n\t\ttype filter hook forward priority 0; policy accept;\n", nftLabTable)
	var pairs [][2]int
	for p := range n.blocked {
		pairs = append(pairs, p)
	}
	sort.Slice(pairs, func(i, j int) bool {
		return pairs[i][0] < pairs[j][0] || pairs[i][0] == pairs[j][0] && pairs[i][1] < pairs[j][1]
	})
	for _, p := range pairs {
		fmt.Fprintf(&b, "\t\tiifname \"v%d\" ip daddr %s drop\n", p[0], n.Addr(p[1]))
	}
	for i, l := range n.loss {
		if l > 0 {
			fmt.Fprintf(&b, "\t\tiifname \"v%d\" ether type ip %s\n", i, nftLossRule(l))
			fmt.Fprintf(&b, "\t\toifname \"v%d\" ether type ip %s\n", i, nftLossRule(l))
		}
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// Close removes the namespaces, and with them the veths, the bridge,
// the filters' attachments and any nftables table.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.detachBPF()
	var errs []error
	for _, ns := range append([]string{n.hub}, n.nodes...) {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			errs = append(errs, ipCmd("netns", "del", ns))
		}
	}
	return errors.Join(errs...)
}

// RemoveLeftovers deletes the namespaces (and so everything in them)
// and root-namespace nftables tables left by runs whose process is
// gone.
func RemoveLeftovers() {
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			name := e.Name()
			if !strings.HasPrefix(name, NamePrefix) {
				continue
			}
			if pid, ok := ownerPid(strings.TrimPrefix(name, NamePrefix), "-"); ok && !processAlive(pid) {
				ipCmd("netns", "del", name)
			}
		}
	}
	removeDeadNftTables()
}
