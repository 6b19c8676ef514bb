package memnet

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/cohort-vs/cohort/udp"
)

// conn is an endpoint: a bounded receive queue plus the counters a socket
// would keep.
type conn struct {
	net   *Network
	local netip.AddrPort

	mu     sync.Mutex
	queue  []packet // unread datagrams are queue[head:]
	head   int
	closed bool

	notify chan struct{} // a datagram arrived (capacity 1, never blocks)
	done   chan struct{} // closed by shut

	read, written, readCalls, writeCalls, drops, truncated atomic.Uint64
}

func newConn(n *Network, local netip.AddrPort) *conn {
	return &conn{
		net:    n,
		local:  local,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
}

// push queues a datagram, or counts a drop when the queue is full. The
// network calls it with its own lock held.
func (c *conn) push(pk packet) bool {
	c.mu.Lock()
	if c.closed || len(c.queue)-c.head >= QueueLimit {
		c.mu.Unlock()
		c.drops.Add(1)
		return false
	}
	if c.head > 0 && len(c.queue) == cap(c.queue) {
		// Slide the unread tail down instead of growing.
		k := copy(c.queue, c.queue[c.head:])
		clear(c.queue[k:])
		c.queue, c.head = c.queue[:k], 0
	}
	c.queue = append(c.queue, pk)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return true
}

// ReadBatch waits for at least one datagram and copies as many as are
// queued (up to len(ds)) into the caller's buffers. A datagram longer than
// its buffer is cut and counted in Stats().Truncated.
func (c *conn) ReadBatch(ds []udp.Datagram) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, udp.ErrClosed
		}
		if avail := len(c.queue) - c.head; avail > 0 {
			k := min(avail, len(ds))
			var truncated uint64
			for i := range k {
				pk := &c.queue[c.head+i]
				d := &ds[i]
				d.N = copy(d.Buf, pk.data)
				d.Addr = pk.from
				if d.N < len(pk.data) {
					truncated++
				}
				*pk = packet{}
			}
			c.head += k
			if c.head == len(c.queue) {
				c.queue, c.head = c.queue[:0], 0
			}
			c.mu.Unlock()
			c.read.Add(uint64(k))
			c.readCalls.Add(1)
			c.truncated.Add(truncated)
			return k, nil
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
		}
	}
}

// WriteBatch sends every datagram through the network's faults. Sending to
// an address nobody listens on is not an error, as with UDP.
func (c *conn) WriteBatch(ds []udp.Datagram) (int, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, udp.ErrClosed
	}
	valid := len(ds)
	var bad error
	for i := range ds {
		if bad = check(&ds[i]); bad != nil {
			valid = i
			break
		}
	}
	if err := c.net.send(c.local, ds[:valid]); err != nil {
		return 0, err
	}
	c.written.Add(uint64(valid))
	if valid > 0 {
		c.writeCalls.Add(1)
	}
	return valid, bad
}

func check(d *udp.Datagram) error {
	switch {
	case d.N < 0 || d.N > len(d.Buf):
		return fmt.Errorf("memnet: datagram length %d outside its buffer of %d bytes", d.N, len(d.Buf))
	case d.N > MaxDatagram:
		return fmt.Errorf("memnet: datagram of %d bytes exceeds %d", d.N, MaxDatagram)
	case !d.Addr.Addr().IsValid():
		return errors.New("memnet: invalid destination address")
	}
	return nil
}

// LocalAddr returns the endpoint's address.
func (c *conn) LocalAddr() netip.AddrPort { return c.local }

// Stats returns the endpoint's counters. KernelDrops counts datagrams that
// found the queue full; there are no socket buffers to report.
func (c *conn) Stats() udp.Stats {
	return udp.Stats{
		DatagramsRead:    c.read.Load(),
		DatagramsWritten: c.written.Load(),
		ReadCalls:        c.readCalls.Load(),
		WriteCalls:       c.writeCalls.Load(),
		KernelDrops:      c.drops.Load(),
		Truncated:        c.truncated.Load(),
	}
}

// Close detaches the endpoint, frees its address and wakes a blocked
// reader. Later calls do nothing.
func (c *conn) Close() error {
	c.net.remove(c)
	c.shut()
	return nil
}

// shut marks the endpoint closed and drops its queue.
func (c *conn) shut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.queue, c.head = nil, 0
	close(c.done)
}
