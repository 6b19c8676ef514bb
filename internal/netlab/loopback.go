package netlab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// PortLoss drops a percentage of the IPv4 UDP packets sent to one port on
// loopback: packet loss on one member's link, for members that all run
// on 127.0.0.1. It filters at loopback's ingress, so each packet to the
// port is dropped with the given probability once. Several may be
// attached at once, to different ports.
type PortLoss struct {
	port      uint16
	mechanism string

	mu sync.Mutex
	// BPF
	cfg  *ebpf.Map
	prog *ebpf.Program
	lnk  link.Link
	// nftables
	table string
}

var (
	cleanLoopback sync.Once
	tableSeq      atomic.Uint64
)

// AttachLoopbackLoss starts dropping packets to UDP port on loopback, at
// 0% until SetLoss. It needs root (CAP_NET_ADMIN and CAP_BPF, or
// CAP_SYS_ADMIN). It uses a BPF filter attached with TCX, or nftables
// where that fails; Mechanism says which.
func AttachLoopbackLoss(port uint16) (*PortLoss, error) {
	cleanLoopback.Do(removeDeadNftTables)
	p := &PortLoss{port: port}
	bpfErr := p.attachBPF()
	if bpfErr == nil {
		p.mechanism = MechanismBPF
		return p, nil
	}
	if err := p.attachNft(); err != nil {
		return nil, fmt.Errorf("loss on loopback port %d: %w (BPF: %v; nftables: %v)", port, ErrNoFilter, bpfErr, err)
	}
	p.mechanism = MechanismNft
	return p, nil
}

// The mechanisms that carry out loss and cuts.
const (
	MechanismBPF = "bpf (tcx)"
	MechanismNft = "nftables"
)

// Mechanism says what drops the packets: MechanismBPF or MechanismNft.
func (p *PortLoss) Mechanism() string { return p.mechanism }

func (p *PortLoss) attachBPF() error {
	lo, err := loopbackInterface()
	if err != nil {
		return err
	}
	m, err := newPortLossMap()
	if err != nil {
		return err
	}
	if err := m.Put(uint32(0), portLossValue{Port: wirePort(p.port)}); err != nil {
		m.Close()
		return err
	}
	prog, err := portLossProgram(m)
	if err != nil {
		m.Close()
		return err
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: lo.Index, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		prog.Close()
		m.Close()
		return fmt.Errorf("attaching to %s: %w", lo.Name, err)
	}
	p.cfg, p.prog, p.lnk = m, prog, l
	return nil
}

func loopbackInterface() (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifs {
		if ifs[i].Flags&net.FlagLoopback != 0 {
			return &ifs[i], nil
		}
	}
	return nil, errors.New("no loopback interface")
}

func (p *PortLoss) attachNft() error {
	if err := nftAvailable(); err != nil {
		return err
	}
	p.table = fmt.Sprintf("%s%d_lo%d", nftTablePrefix, os.Getpid(), tableSeq.Add(1))
	if err := nft("", p.nftRules(0)); err != nil {
		p.table = ""
		return err
	}
	return nil
}

// nftRules (re)creates the table with the rule for percent.
func (p *PortLoss) nftRules(percent float64) string {
	rule := ""
	if percent > 0 {
		rule = fmt.Sprintf("\t\tudp dport %d %s\n", p.port, nftLossRule(percent))
	}
	return fmt.Sprintf("table ip %[1]s {}\ndelete table ip %[1]s\ntable ip %[1]s {\n\tchain in {\n\t\ttype filter hook input priority 0; policy accept;\n%[2]s\t}\n}\n", p.table, rule)
}

// SetLoss sets the percentage (0 to 100) of packets dropped; it takes
// effect for the next packet.
func (p *PortLoss) SetLoss(percent float64) error {
	if err := validPercent(percent); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.cfg != nil:
		return p.cfg.Put(uint32(0), portLossValue{Port: wirePort(p.port), Threshold: threshold(percent)})
	case p.table != "":
		return nft("", p.nftRules(percent))
	}
	return errors.New("loss filter closed")
}

// Close removes the filter. Packets to the port pass again.
func (p *PortLoss) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if p.lnk != nil {
		errs = append(errs, p.lnk.Close(), p.prog.Close(), p.cfg.Close())
		p.lnk, p.prog, p.cfg = nil, nil, nil
	}
	if p.table != "" {
		errs = append(errs, nft("", fmt.Sprintf("delete table ip %s\n", p.table)))
		p.table = ""
	}
	return errors.Join(errs...)
}
