package udp

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
)

// portableConn moves one datagram per system call through the net package.
// ReadFromUDPAddrPort and WriteToUDPAddrPort allocate nothing, so neither
// does this Conn.
type portableConn struct {
	uc     *net.UDPConn
	local  netip.AddrPort
	bufs   bufferSizes
	closed atomic.Bool

	read, written, readCalls, writeCalls, refused atomic.Uint64
}

func newPortableConn(uc *net.UDPConn, local netip.AddrPort, bufs bufferSizes) *portableConn {
	return &portableConn{uc: uc, local: local, bufs: bufs}
}

// ReadBatch fills one datagram per call: without batched system calls there
// is no cheap way to learn whether more are waiting.
func (c *portableConn) ReadBatch(ds []Datagram) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	for {
		n, addr, err := c.uc.ReadFromUDPAddrPort(ds[0].Buf)
		if err != nil {
			if c.closed.Load() || errors.Is(err, net.ErrClosed) {
				return 0, ErrClosed
			}
			if isRefused(err) {
				// A pending ICMP error from an earlier send, surfaced on
				// the read side (Windows does this); it says nothing about
				// incoming data.
				continue
			}
			return 0, err
		}
		ds[0].N, ds[0].Addr = n, addr
		c.read.Add(1)
		c.readCalls.Add(1)
		return 1, nil
	}
}

// WriteBatch sends each datagram with its own system call.
func (c *portableConn) WriteBatch(ds []Datagram) (int, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	for i := range ds {
		d := &ds[i]
		if err := checkLen(d); err != nil {
			return i, err
		}
		for retried := false; ; retried = true {
			_, err := c.uc.WriteToUDPAddrPort(d.Buf[:d.N], d.Addr)
			c.writeCalls.Add(1)
			if err == nil {
				c.written.Add(1)
				break
			}
			if c.closed.Load() || errors.Is(err, net.ErrClosed) {
				return i, ErrClosed
			}
			if !isRefused(err) {
				return i, err
			}
			// The refusal belongs to an earlier datagram and this one
			// was not sent: try it once more, then give it up as lost.
			c.refused.Add(1)
			if retried {
				break
			}
		}
	}
	return len(ds), nil
}

// LocalAddr returns the bound address.
func (c *portableConn) LocalAddr() netip.AddrPort { return c.local }

// Stats returns the connection's counters; KernelDrops stays 0 here.
func (c *portableConn) Stats() Stats {
	return Stats{
		DatagramsRead:    c.read.Load(),
		DatagramsWritten: c.written.Load(),
		ReadCalls:        c.readCalls.Load(),
		WriteCalls:       c.writeCalls.Load(),
		RecvBufferBytes:  c.bufs.recv,
		SendBufferBytes:  c.bufs.send,
		RefusedWrites:    c.refused.Load(),
	}
}

// Close closes the socket; later calls do nothing.
func (c *portableConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.uc.Close()
}

// isRefused reports an ICMP-derived error that UDP must shrug off.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
