//go:build !linux

package udp

import (
	"errors"
	"net"
	"net/netip"
)

// batchSupported is false: only Linux has the batched implementation.
const batchSupported = false

func newBatchConn(*net.UDPConn, netip.AddrPort, bool, bufferSizes, int, bool) (Conn, error) {
	return nil, errors.New("udp: batched system calls are not supported here")
}

// tuneBuffers asks for the buffer sizes; the granted sizes are not
// portably observable, so they are reported as 0.
func tuneBuffers(uc *net.UDPConn, recv, send int) (bufferSizes, error) {
	// Failures are not fatal: the socket works with the default buffers.
	_ = uc.SetReadBuffer(recv)
	_ = uc.SetWriteBuffer(send)
	return bufferSizes{}, nil
}
