package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// maxBatchLimit bounds Options.MaxBatch: beyond it the preallocated headers
// only cost memory, since the kernel's own per-call limit (UIO_MAXIOV) is 1024.
const maxBatchLimit = 1024

// Listen opens a UDP socket bound to addr. Port 0 picks a free port, which
// LocalAddr then reports. An IPv4 address (or an IPv4-mapped IPv6 one)
// gives an IPv4 socket; the unspecified IPv6 address gives a dual-stack
// socket; any other IPv6 address gives an IPv6-only socket.
//
// On Linux the Conn moves up to Options.MaxBatch datagrams per system call
// (recvmmsg/sendmmsg) unless Options.Portable is set; elsewhere, and then,
// it moves one datagram per call.
func Listen(addr netip.AddrPort, opts Options) (Conn, error) {
	if !addr.IsValid() {
		return nil, errors.New("udp: invalid listen address")
	}
	if addr.Addr().Is4In6() {
		addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	}
	network := "udp6"
	switch {
	case addr.Addr().Is4():
		network = "udp4"
	case addr.Addr().IsUnspecified():
		network = "udp" // dual-stack: also accepts IPv4 peers as mapped addresses
	}
	uc, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	local := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	ipv4 := network == "udp4"
	if ipv4 {
		// The net package keeps IPv4 addresses in 16-byte form.
		local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	}

	rcv, snd := orDefault(opts.RecvBufferBytes), orDefault(opts.SendBufferBytes)
	bufs, err := tuneBuffers(uc, rcv, snd)
	if err != nil {
		uc.Close()
		return nil, err
	}
	if opts.Portable || !batchSupported {
		return newPortableConn(uc, local, bufs), nil
	}
	batch := opts.MaxBatch
	if batch <= 0 {
		batch = DefaultMaxBatch
	}
	batch = min(batch, maxBatchLimit)
	c, err := newBatchConn(uc, local, ipv4, bufs, batch, !opts.DisableGSO)
	if err != nil {
		uc.Close()
		return nil, err
	}
	return c, nil
}

// bufferSizes are the socket buffer sizes the kernel granted.
type bufferSizes struct {
	recv, send int
}

func orDefault(n int) int {
	if n <= 0 {
		return DefaultSocketBufferBytes
	}
	return n
}

// checkLen rejects a datagram to write whose length does not fit its buffer.
func checkLen(d *Datagram) error {
	if d.N < 0 || d.N > len(d.Buf) {
		return fmt.Errorf("udp: datagram length %d outside its buffer of %d bytes", d.N, len(d.Buf))
	}
	return nil
}
