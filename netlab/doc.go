// Package netlab is the fault lab's network: packet loss and link cuts
// made with BPF filters (or nftables where BPF is not allowed), since the
// kernel this project runs on has no netem.
//
// AttachLoopbackLoss drops a percentage of the UDP packets sent to one
// port on loopback: loss on one member's link when every member runs on
// 127.0.0.1.
//
// All of it needs root.
package netlab
