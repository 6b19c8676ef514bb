// Package udp is cohort's socket boundary: a batched datagram connection
// with a Linux implementation (sendmmsg/recvmmsg), a portable fallback for
// other systems, and an in-memory network for tests (package udp/memnet).
//
// Everything above this package sees only the Conn interface, so the
// protocol never knows whether it talks to the kernel or to a simulated
// network.
package udp

import (
	"errors"
	"net/netip"
)

// Datagram is one element of a batch. For reads the caller supplies Buf (a
// fixed-size buffer, normally from a pool); ReadBatch sets N and Addr. For
// writes, Buf[:N] is sent to Addr.
type Datagram struct {
	Buf  []byte
	N    int
	Addr netip.AddrPort
}

// Conn is a batched datagram socket. A Conn is safe for one reader and one
// writer goroutine at a time (ReadBatch and WriteBatch may run concurrently
// with each other, but not with themselves).
type Conn interface {
	// ReadBatch blocks until at least one datagram has arrived, then fills
	// as many elements of ds as are immediately available and returns how
	// many it filled. It allocates nothing.
	ReadBatch(ds []Datagram) (int, error)
	// WriteBatch sends every element of ds, retrying short kernel counts,
	// and returns how many were sent. An error reports the first datagram
	// that could not be sent; datagrams before it were sent.
	WriteBatch(ds []Datagram) (int, error)
	// LocalAddr is the bound address (with the real port when 0 was asked).
	LocalAddr() netip.AddrPort
	// Stats reports counters kept by the connection and, where the system
	// exposes it, the kernel's receive-queue drop counter.
	Stats() Stats
	// Close unblocks pending reads with ErrClosed. It may be called more
	// than once.
	Close() error
}

// Poller is a Conn that can also read without waiting. The Go runtime
// looks at the network only when it runs out of goroutines to run (or
// every 10 ms at worst): in a process kept busy, such as one that sends
// flat out, a reader parked in ReadBatch may be woken milliseconds after
// its datagrams arrived. A busy loop can take them itself with
// TryReadBatch.
type Poller interface {
	Conn
	// TryReadBatch is ReadBatch without the wait: it returns 0 at once
	// when nothing is queued. It may run while another goroutine waits in
	// ReadBatch, but not concurrently with itself.
	//
	// It never overtakes: while the datagrams the last ReadBatch returned
	// may not have been taken in, it returns 0. The reader must take in
	// (process, or queue where the caller of TryReadBatch takes them in
	// first) what ReadBatch returned before it calls ReadBatch again; then
	// the two together yield the datagrams in the order the socket got them.
	TryReadBatch(ds []Datagram) (int, error)
}

// Stats are a connection's counters. Fields are cumulative.
type Stats struct {
	DatagramsRead    uint64
	DatagramsWritten uint64
	ReadCalls        uint64 // system calls (or batches) that returned data
	WriteCalls       uint64
	KernelDrops      uint64 // SO_RXQ_OVFL: datagrams the kernel dropped for a full receive queue
	// RecvBufferBytes and SendBufferBytes are the socket buffers the kernel
	// granted (Linux reports twice the request, counting its bookkeeping),
	// or 0 where the system does not say.
	RecvBufferBytes int
	SendBufferBytes int
	// RefusedWrites counts sends that failed with ECONNREFUSED, the kernel's
	// report of an earlier ICMP port-unreachable. The datagram is retried
	// once, then given up as lost; neither is an error.
	RefusedWrites uint64
	// Truncated counts datagrams larger than the buffer they were read into
	// (the excess is lost). Only the batched Linux path and memnet see it.
	Truncated uint64
	// GSODatagrams counts datagrams sent as segments of a UDP GSO send
	// (Linux): runs to one address that the kernel split, not the caller.
	GSODatagrams uint64
}

// ErrClosed is returned by reads and writes on a closed Conn.
var ErrClosed = errors.New("udp: connection closed")

// Options tune a real socket. The zero value means defaults.
type Options struct {
	// RecvBufferBytes and SendBufferBytes ask the kernel for socket buffers
	// of this size (SO_RCVBUF/SO_SNDBUF, or the FORCE variants when the
	// process may use them). 0 means DefaultSocketBufferBytes.
	RecvBufferBytes int
	SendBufferBytes int
	// Portable forces the one-datagram-per-call fallback even where batched
	// system calls exist (for comparison and tests).
	Portable bool
	// MaxBatch caps how many datagrams one system call moves; the batched
	// implementation preallocates its headers for this many. 0 means
	// DefaultMaxBatch; values above 1024 are clamped.
	MaxBatch int
	// DisableGSO stops the Linux implementation from sending runs of
	// same-size datagrams to one address as a single UDP GSO message
	// (UDP_SEGMENT). GSO is otherwise used wherever the kernel accepts it.
	DisableGSO bool
}

// DefaultMaxBatch is the number of datagrams one sendmmsg/recvmmsg moves
// unless Options.MaxBatch says otherwise.
const DefaultMaxBatch = 64

// DefaultSocketBufferBytes is large enough to absorb a burst of a few
// thousand 8 KiB datagrams while the reader is descheduled.
const DefaultSocketBufferBytes = 8 << 20
