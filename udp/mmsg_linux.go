package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSupported is true: Linux has recvmmsg and sendmmsg.
const batchSupported = true

// ctrlBytes is the control buffer per received datagram: room for the
// SO_RXQ_OVFL message with headroom for one more small one.
var ctrlBytes = 2 * unix.CmsgSpace(8)

// mmsgFunc is the shape of recvmmsg/sendmmsg; tests substitute fakes to
// provoke short counts and errors the loopback device never produces.
type mmsgFunc func(fd uintptr, hs []unix.Mmsghdr) (int, unix.Errno)

func recvmmsg(fd uintptr, hs []unix.Mmsghdr) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

func sendmmsg(fd uintptr, hs []unix.Mmsghdr) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

// mmsgConn moves batches with recvmmsg/sendmmsg. All kernel-facing arrays
// are allocated once, in newBatchConn, and the reader and the writer each
// have their own set, so they can run concurrently. The RawConn callbacks
// are built once too and talk to ReadBatch/WriteBatch through the r*/w*
// fields, because a closure created per call would escape and allocate.
type mmsgConn struct {
	uc     *net.UDPConn
	rc     syscall.RawConn
	local  netip.AddrPort
	ipv4   bool // the socket's family: which sockaddr to write
	bufs   bufferSizes
	closed atomic.Bool

	recvmmsg, sendmmsg mmsgFunc

	// Reader state: rd is owned by the goroutine in ReadBatch, poll by the
	// one in TryReadBatch, so that the two may run at once.
	rd, poll mmsgReader
	// rmu serializes the two readers' recvmmsg calls; held says that the
	// last datagrams ReadBatch returned may not have been taken in yet
	// (until ReadBatch is called again), and keeps TryReadBatch from
	// overtaking them.
	rmu  sync.Mutex
	held bool

	// Writer state, owned by the goroutine in WriteBatch. A message is one
	// datagram, or a GSO run of several with one iovec each.
	wHdrs  []unix.Mmsghdr          // per message
	wNames []unix.RawSockaddrInet6 // per message
	wCtrl  []byte                  // per message: a UDP_SEGMENT control message
	wSegs  []int                   // per message: datagrams in it
	wIovs  []unix.Iovec            // per datagram
	gsoMax int                     // largest datagram sent by GSO; 0: GSO off
	wFn    func(fd uintptr) bool

	// State of the chunk in flight.
	wCount     int // messages
	wDone      int // messages sent or given up
	wDoneD     int // datagrams in them
	wRetry     int // message that already got its one retry after ECONNREFUSED, or -1
	wErrno     unix.Errno
	wGSOFailed bool
	wCalls     uint64 // system calls
	wRefuse    uint64 // refusals
	wSkip      uint64 // datagrams given up
	wGSO       uint64 // datagrams sent as GSO segments

	read, written, readCalls, writeCalls, refused, truncated, drops, gsoSent atomic.Uint64
}

func newBatchConn(uc *net.UDPConn, local netip.AddrPort, ipv4 bool, bufs bufferSizes, batch int, gso bool) (Conn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	if err := enableDropCounter(rc); err != nil {
		return nil, err
	}
	c := &mmsgConn{
		uc: uc, rc: rc, local: local, ipv4: ipv4, bufs: bufs,
		recvmmsg: recvmmsg, sendmmsg: sendmmsg,
		wHdrs:  make([]unix.Mmsghdr, batch),
		wNames: make([]unix.RawSockaddrInet6, batch),
		wCtrl:  make([]byte, batch*gsoCtrlBytes),
		wSegs:  make([]int, batch),
		wIovs:  make([]unix.Iovec, batch),
	}
	if gso && probeGSO(rc) {
		c.gsoMax = maxGSOBytes
	}
	// Pointers that never change are set once; ReadBatch and WriteBatch
	// only fill in buffers, lengths and addresses.
	c.rd.init(batch)
	c.poll.init(batch)
	for i := range batch {
		c.wHdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&c.wNames[i]))
		initGSOControl(c.wCtrl[i*gsoCtrlBytes:])
	}
	c.rd.fn = func(fd uintptr) bool { return c.readFn(&c.rd, fd) }
	c.poll.ctl = func(fd uintptr) { c.readFn(&c.poll, fd) }
	c.wFn = c.writeFn
	return c, nil
}

// mmsgReader is one reader's kernel-facing arrays and the state of its
// call in flight, allocated once.
type mmsgReader struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	ctrl  []byte
	fn    func(fd uintptr) bool // RawConn.Read callback (ReadBatch)
	ctl   func(fd uintptr)      // RawConn.Control callback (TryReadBatch)
	want  int                   // datagrams to ask for
	got   int                   // datagrams received
	errno unix.Errno
}

func (r *mmsgReader) init(batch int) {
	r.hdrs = make([]unix.Mmsghdr, batch)
	r.iovs = make([]unix.Iovec, batch)
	r.names = make([]unix.RawSockaddrInet6, batch)
	r.ctrl = make([]byte, batch*ctrlBytes)
	// Pointers that never change are set once; a read only fills in
	// buffers and lengths.
	for i := range batch {
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = &r.ctrl[i*ctrlBytes]
	}
}

// ReadBatch receives up to min(len(ds), batch size) datagrams in one
// recvmmsg call, waiting in the runtime's poller while none is queued.
func (c *mmsgConn) ReadBatch(ds []Datagram) (int, error) {
	return c.readBatch(&c.rd, ds, true)
}

// TryReadBatch is ReadBatch without the wait: it returns 0 at once when
// nothing is queued, or while datagrams ReadBatch returned may not have
// been taken in yet (see Poller). It may run while another goroutine waits
// in ReadBatch.
func (c *mmsgConn) TryReadBatch(ds []Datagram) (int, error) {
	return c.readBatch(&c.poll, ds, false)
}

func (c *mmsgConn) readBatch(r *mmsgReader, ds []Datagram, wait bool) (int, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	n := min(len(ds), len(r.hdrs))
	if n == 0 {
		return 0, nil
	}
	for i := range n {
		buf := ds[i].Buf
		r.iovs[i].Base = unsafe.SliceData(buf)
		r.iovs[i].SetLen(len(buf))
		h := &r.hdrs[i]
		h.Hdr.Namelen = unix.SizeofSockaddrInet6
		h.Hdr.SetControllen(ctrlBytes)
		h.Hdr.Flags = 0
		h.Len = 0
	}
	r.want, r.got, r.errno = n, 0, 0
	var err error
	if wait {
		c.rmu.Lock()
		c.held = false // the caller took in what the last call returned
		c.rmu.Unlock()
		err = c.rc.Read(r.fn)
	} else {
		err = c.rc.Control(r.ctl)
	}
	got := r.got
	// Drop the references to the caller's buffers so the arrays never keep
	// them alive.
	for i := range n {
		r.iovs[i].Base = nil
	}
	if err != nil {
		if c.closed.Load() || errors.Is(err, net.ErrClosed) {
			return 0, ErrClosed
		}
		return 0, err
	}
	if r.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", r.errno)
	}
	if got == 0 {
		return 0, nil // TryReadBatch found nothing queued
	}

	var truncated uint64
	drops, sawDrops := uint32(0), false
	for i := range got {
		h := &r.hdrs[i]
		ds[i].N = int(h.Len)
		ds[i].Addr = decodeSockaddr(&r.names[i])
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			truncated++
		}
		if cl := int(h.Hdr.Controllen); cl > 0 {
			off := i * ctrlBytes
			if d, ok := rxqDropCount(r.ctrl[off : off+min(cl, ctrlBytes)]); ok {
				drops, sawDrops = d, true
			}
		}
	}
	c.read.Add(uint64(got))
	c.readCalls.Add(1)
	if truncated > 0 {
		c.truncated.Add(truncated)
	}
	if sawDrops {
		c.storeDrops(drops)
	}
	return got, nil
}

// storeDrops records the kernel's drop counter, a 32-bit cumulative count
// per socket that the newest datagram carries. Two readers may report out
// of order: a value behind the stored one (in 32-bit serial arithmetic) is
// stale and ignored.
func (c *mmsgConn) storeDrops(d uint32) {
	for {
		old := c.drops.Load()
		if int32(d-uint32(old)) <= 0 && old != 0 {
			return
		}
		if c.drops.CompareAndSwap(old, uint64(d)) {
			return
		}
	}
}

// readFn runs recvmmsg for r. As the RawConn.Read callback, false means
// "nothing queued, wait for readability and call again"; a try leaves
// r.got at 0 then.
func (c *mmsgConn) readFn(r *mmsgReader, fd uintptr) bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if r == &c.poll && c.held {
		return false // older datagrams are in the blocking reader's hands
	}
	for {
		n, errno := c.recvmmsg(fd, r.hdrs[:r.want])
		switch errno {
		case 0:
			r.got = n
			c.held = r == &c.rd
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case unix.ECONNREFUSED:
			// A pending ICMP error from an earlier send; reporting it
			// cleared it, and it says nothing about incoming data.
			continue
		default:
			r.errno = errno
			return true
		}
	}
}

// WriteBatch sends ds in chunks of up to the batch size, looping over
// short sendmmsg counts and waiting in the runtime's poller when the
// socket's send buffer is full. Runs of datagrams to one address go out as
// one GSO message each where the kernel allows it.
func (c *mmsgConn) WriteBatch(ds []Datagram) (int, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	for start := 0; start < len(ds); {
		// A datagram that cannot be sent ends the batch; the valid
		// prefix before it is still sent, as the contract promises.
		msgs, covered, bad := c.prepare(ds[start:])
		sent, err := c.writeChunk(msgs, covered)
		switch {
		case err == errGSORefused:
			// Resume at the refused message, now without GSO for it.
			start += sent
			continue
		case err != nil:
			return start + sent, err
		case bad != nil:
			return start + covered, bad
		}
		start += covered
	}
	return len(ds), nil
}

// prepare fills the write headers for a prefix of ds, one message per
// datagram or per GSO run. It returns the number of messages, the number
// of datagrams they cover, and the error of the datagram after them if
// that one cannot be sent.
func (c *mmsgConn) prepare(ds []Datagram) (msgs, covered int, bad error) {
	for covered < len(ds) && covered < len(c.wIovs) {
		d := &ds[covered]
		namelen := encodeSockaddr(&c.wNames[msgs], c.ipv4, d.Addr)
		if namelen == 0 {
			return msgs, covered, fmt.Errorf("udp: cannot send to %v from %v", d.Addr, c.local)
		}
		if err := checkLen(d); err != nil {
			return msgs, covered, err
		}
		segs := c.gsoRun(ds[covered:], len(c.wIovs)-covered)
		for j := range segs {
			e := &ds[covered+j]
			c.wIovs[covered+j].Base = unsafe.SliceData(e.Buf)
			c.wIovs[covered+j].SetLen(e.N)
		}
		h := &c.wHdrs[msgs]
		h.Hdr.Namelen = namelen
		h.Hdr.Iov = &c.wIovs[covered]
		h.Hdr.SetIovlen(segs)
		if segs > 1 {
			h.Hdr.Control = c.gsoControl(msgs, d.N)
			h.Hdr.SetControllen(gsoCtrlBytes)
		} else {
			h.Hdr.Control = nil
			h.Hdr.SetControllen(0)
		}
		h.Len = 0
		c.wSegs[msgs] = segs
		msgs++
		covered += segs
	}
	return msgs, covered, nil
}

// errGSORefused tells WriteBatch that the kernel refused a GSO message and
// the rest of the chunk must be prepared again.
var errGSORefused = errors.New("udp: GSO send refused")

// writeChunk sends the first msgs prepared messages, which cover the
// first iovs datagrams, and reports how many datagrams it got through (or
// gave up as refused).
func (c *mmsgConn) writeChunk(msgs, iovs int) (int, error) {
	if msgs == 0 {
		return 0, nil
	}
	c.wCount, c.wDone, c.wDoneD, c.wRetry, c.wErrno, c.wGSOFailed = msgs, 0, 0, -1, 0, false
	c.wCalls, c.wRefuse, c.wSkip, c.wGSO = 0, 0, 0, 0
	err := c.rc.Write(c.wFn)
	for i := range iovs {
		c.wIovs[i].Base = nil // do not keep the caller's buffers alive
	}
	done := c.wDoneD
	c.written.Add(uint64(done) - c.wSkip)
	c.writeCalls.Add(c.wCalls)
	c.refused.Add(c.wRefuse)
	c.gsoSent.Add(c.wGSO)
	switch {
	case err != nil:
		if c.closed.Load() || errors.Is(err, net.ErrClosed) {
			return done, ErrClosed
		}
		return done, err
	case c.wGSOFailed:
		return done, errGSORefused
	case c.wErrno != 0:
		return done, os.NewSyscallError("sendmmsg", c.wErrno)
	}
	return done, nil
}

// writeFn is the RawConn.Write callback. It returns false only when the
// socket would block; every other outcome ends the chunk.
func (c *mmsgConn) writeFn(fd uintptr) bool {
	for c.wDone < c.wCount {
		n, errno := c.sendmmsg(fd, c.wHdrs[c.wDone:c.wCount])
		c.wCalls++
		switch errno {
		case 0:
			// The kernel sent a prefix; a later message's error, if any,
			// comes back from the next call, which starts at it.
			for range n {
				c.finish(true)
			}
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		case unix.ECONNREFUSED:
			// An earlier datagram's ICMP port-unreachable, reported (and
			// cleared) by this call, which sent nothing. Retry the same
			// message once; if it is refused again, give it up as lost.
			c.wRefuse++
			if c.wRetry == c.wDone {
				c.finish(false)
			} else {
				c.wRetry = c.wDone
			}
		default:
			if c.wSegs[c.wDone] > 1 {
				c.gsoRefused(errno, int(c.wIovs[c.wDoneD].Len))
				c.wGSOFailed = true
				return true
			}
			c.wErrno = errno
			return true
		}
	}
	return true
}

// finish accounts for the message at wDone, sent or given up.
func (c *mmsgConn) finish(sent bool) {
	segs := uint64(c.wSegs[c.wDone])
	c.wDone++
	c.wDoneD += int(segs)
	switch {
	case !sent:
		c.wSkip += segs
	case segs > 1:
		c.wGSO += segs
	}
}

// LocalAddr returns the bound address.
func (c *mmsgConn) LocalAddr() netip.AddrPort { return c.local }

// Stats returns the connection's counters.
func (c *mmsgConn) Stats() Stats {
	return Stats{
		DatagramsRead:    c.read.Load(),
		DatagramsWritten: c.written.Load(),
		ReadCalls:        c.readCalls.Load(),
		WriteCalls:       c.writeCalls.Load(),
		KernelDrops:      c.drops.Load(),
		RecvBufferBytes:  c.bufs.recv,
		SendBufferBytes:  c.bufs.send,
		RefusedWrites:    c.refused.Load(),
		Truncated:        c.truncated.Load(),
		GSODatagrams:     c.gsoSent.Load(),
	}
}

// Close closes the socket, which wakes a reader or writer parked in the
// poller; later calls do nothing.
func (c *mmsgConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.uc.Close()
}
