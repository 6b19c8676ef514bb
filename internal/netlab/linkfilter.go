package netlab

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// linkLossValue is the value of the lab's loss map, by hub-side veth
// ifindex: the thresholds for packets from the member and to it.
type linkLossValue struct {
	FromMember uint64
	ToMember   uint64
}

func newLinkMaps() (loss, blocked *ebpf.Map, err error) {
	loss, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "cohort_loss",
		Type:       ebpf.Hash,
		KeySize:    4,
		ValueSize:  16,
		MaxEntries: 256,
	})
	if err != nil {
		return nil, nil, err
	}
	// Keyed by source and destination IPv4 address, as in the packet.
	blocked, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "cohort_cut",
		Type:       ebpf.Hash,
		KeySize:    8,
		ValueSize:  4,
		MaxEntries: 4096,
	})
	if err != nil {
		loss.Close()
		return nil, nil, err
	}
	return loss, blocked, nil
}

// linkProgram is the filter on a hub-side veth. Attached at ingress
// (fromMember) it sees what the member sends: it drops packets to a
// blocked address, then applies the link's loss from the member; at
// egress it applies the loss to the member.
func linkProgram(loss, blocked *ebpf.Map, fromMember bool) (*ebpf.Program, error) {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R0, asm.R6, skbProtocol, asm.Word),
		asm.JNE.Imm(asm.R0, ethIPv4, "next"),
	}
	valueOff := int16(8)
	if fromMember {
		valueOff = 0
		insns = append(insns,
			// Source and destination addresses (IPv4 bytes 12-19) to fp-16.
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, ethHeader+12),
			asm.Mov.Reg(asm.R3, asm.RFP),
			asm.Add.Imm(asm.R3, -16),
			asm.Mov.Imm(asm.R4, 8),
			asm.FnSkbLoadBytes.Call(),
			asm.JNE.Imm(asm.R0, 0, "next"),
			asm.LoadMapPtr(asm.R1, blocked.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -16),
			asm.FnMapLookupElem.Call(),
			asm.JNE.Imm(asm.R0, 0, "drop"),
		)
	}
	insns = append(insns,
		asm.LoadMem(asm.R0, asm.R6, skbIfindex, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, loss.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.LoadMem(asm.R8, asm.R0, valueOff, asm.DWord),
	)
	name := "cohort_to"
	if fromMember {
		name = "cohort_from"
	}
	return newFilter(name, append(insns, lossTail()...))
}
