package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The filters are tc programs (attached with TCX, Linux 6.6 and later)
// written with the asm package, so no C toolchain is needed. Every
// decision they take reads a BPF map that user space updates while they
// run. They only ever drop IPv4 packets: ARP and the rest always pass, so
// a loss rate never stalls neighbour resolution for seconds.

// TCX verdicts (linux/bpf.h): next hands the packet to the next program
// attached there, if any (other filters keep working); drop discards it.
const (
	tcxNext = -1
	tcxDrop = 2
)

// __sk_buff field offsets (linux/bpf.h).
const (
	skbProtocol = 16 // __be16 in a __u32
	skbIfindex  = 40
)

// ethIPv4 is htons(ETH_P_IP) as the program reads skb->protocol.
var ethIPv4 = int32(binary.NativeEndian.Uint16([]byte{0x08, 0x00}))

// ethHeader is the length of the Ethernet header tc programs see, on a
// veth as on loopback.
const ethHeader = 14

// threshold turns a loss percentage into the bound the program compares
// bpf_get_prandom_u32() with: a packet is dropped when the random number
// is below it, so 100% (2^32) drops every packet and 0 none.
func threshold(percent float64) uint64 {
	switch {
	case percent <= 0:
		return 0
	case percent >= 100:
		return 1 << 32
	}
	return uint64(math.Round(percent / 100 * (1 << 32)))
}

// validPercent reports a loss rate outside 0 to 100.
func validPercent(percent float64) error {
	if math.IsNaN(percent) || percent < 0 || percent > 100 {
		return fmt.Errorf("loss %v%%: want 0 to 100", percent)
	}
	return nil
}

// lossTail is the end of every filter: drop with the probability whose
// threshold is in R8 (0: never), else hand the packet on.
func lossTail() asm.Instructions {
	return asm.Instructions{
		asm.JEq.Imm(asm.R8, 0, "next"),
		asm.FnGetPrandomU32.Call(),
		asm.JGE.Reg(asm.R0, asm.R8, "next"),
		asm.Mov.Imm(asm.R0, tcxDrop).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("next"),
		asm.Return(),
	}
}

// portLossValue is the value of a loopback filter's one-entry map: the
// UDP destination port (as the packet holds it, big-endian) and the
// threshold.
type portLossValue struct {
	Port      uint32
	_         uint32
	Threshold uint64
}

func newPortLossMap() (*ebpf.Map, error) {
	return ebpf.NewMap(&ebpf.MapSpec{
		Name:       "cohort_port",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  16,
		MaxEntries: 1,
	})
}

// wirePort is port as the program loads it from the packet: the two
// big-endian bytes read as a native-endian 16-bit number.
func wirePort(port uint16) uint32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], port)
	return uint32(binary.NativeEndian.Uint16(b[:]))
}

// portLossProgram drops IPv4 UDP packets to the map's port with the
// map's probability. It reads the packet with bpf_skb_load_bytes, which
// needs no bounds proofs for the variable IP header length.
func portLossProgram(m *ebpf.Map) (*ebpf.Program, error) {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R0, asm.R6, skbProtocol, asm.Word),
		asm.JNE.Imm(asm.R0, ethIPv4, "next"),
		// The IPv4 header's first 20 bytes to fp-32.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, ethHeader),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -32),
		asm.Mov.Imm(asm.R4, 20),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "next"),
		asm.LoadMem(asm.R0, asm.RFP, -32+9, asm.Byte), // protocol
		asm.JNE.Imm(asm.R0, 17, "next"),               // UDP
		// The UDP destination port, at 14 + 4*IHL + 2, to fp-8.
		asm.LoadMem(asm.R2, asm.RFP, -32, asm.Byte),
		asm.And.Imm(asm.R2, 0x0f),
		asm.LSh.Imm(asm.R2, 2),
		asm.Add.Imm(asm.R2, ethHeader+2),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -8),
		asm.Mov.Imm(asm.R4, 2),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "next"),
		asm.LoadMem(asm.R7, asm.RFP, -8, asm.Half),
		// The map's entry 0.
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JNE.Reg(asm.R7, asm.R1, "next"),
		asm.LoadMem(asm.R8, asm.R0, 8, asm.DWord),
	}
	return newFilter("cohort_port", append(insns, lossTail()...))
}

func newFilter(name string, insns asm.Instructions) (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.SchedCLS,
		Instructions: insns,
		License:      "GPL", // bpf_get_prandom_u32 is GPL-only
	})
	if err != nil {
		return nil, fmt.Errorf("loading the %s filter: %w", name, err)
	}
	return p, nil
}

// ErrNoFilter is wrapped by the errors of functions that could use
// neither a BPF filter nor nftables.
var ErrNoFilter = errors.New("no packet filter available (BPF attach and nft both failed)")
