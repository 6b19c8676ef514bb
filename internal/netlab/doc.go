// Package netlab is the fault lab's network: packet loss and link cuts
// made with BPF filters (or nftables where BPF is not allowed), since the
// kernel this project runs on has no netem.
//
// New builds K network namespaces joined through a bridge in a namespace
// of its own, so the host's network is never changed; its Net cuts links
// (Cut, Partition, Heal) and drops a share of the packets on any link
// (SetLoss, SetLossAll) while members run. Close, or the next run after
// a crash, removes all of it.
//
// AttachLoopbackLoss drops a percentage of the UDP packets sent to one
// port on loopback: loss on one member's link when every member runs on
// 127.0.0.1.
//
// The filters are tc programs written with github.com/cilium/ebpf's asm
// package and attached with TCX; their settings are BPF maps, updated
// while they run. Where a program cannot be loaded or attached, an
// nftables table does the same with `numgen random`. Mechanism says
// which one a Net or PortLoss uses.
//
// All of it needs root.
package netlab
