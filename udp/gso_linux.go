package udp

import (
	"encoding/binary"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP generic segmentation offload (UDP_SEGMENT) hands the kernel several
// datagrams for one address as one message; it walks the stack once and
// is cut into datagrams at the device, or at the receiving socket on
// loopback. All segments have the same size except the last, which may be
// shorter.

const (
	// maxGSOSegments is the kernel's UDP_MAX_SEGMENTS on older kernels
	// (newer ones allow more).
	maxGSOSegments = 64
	// maxGSOBytes bounds a GSO message's payload: it still travels as one
	// IPv4 datagram until it is cut.
	maxGSOBytes = 65535 - 20 - 8
	// minMTUPayload is the largest datagram that fits every link's
	// minimum MTU (IPv6's 1280 bytes less headers). If GSO is refused at
	// or below this size, the MTU is not the reason.
	minMTUPayload = 1280 - 40 - 8
)

// gsoCtrlBytes is the control buffer of one message: a UDP_SEGMENT
// message carrying the segment size as a uint16.
var gsoCtrlBytes = unix.CmsgSpace(2)

// probeGSO reports whether the kernel knows UDP_SEGMENT at all.
func probeGSO(rc syscall.RawConn) bool {
	ok := false
	err := rc.Control(func(fd uintptr) {
		_, gerr := unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
		ok = gerr == nil
	})
	return err == nil && ok
}

// initGSOControl writes the fixed header of a UDP_SEGMENT control message.
func initGSOControl(b []byte) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
}

// gsoControl sets message m's segment size and returns its control buffer.
func (c *mmsgConn) gsoControl(m, size int) *byte {
	b := c.wCtrl[m*gsoCtrlBytes : (m+1)*gsoCtrlBytes]
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
	return &b[0]
}

// gsoRun returns how many datagrams from ds[0] on can share one GSO
// message (1 when GSO does not apply), using at most room iovecs.
func (c *mmsgConn) gsoRun(ds []Datagram, room int) int {
	first := &ds[0]
	size := first.N
	if size <= 0 || size > c.gsoMax {
		return 1
	}
	limit := min(len(ds), room, maxGSOSegments)
	total, k := size, 1
	for k < limit {
		e := &ds[k]
		if e.Addr != first.Addr || e.N <= 0 || e.N > size || e.N > len(e.Buf) || total+e.N > maxGSOBytes {
			break
		}
		total += e.N
		k++
		if e.N < size {
			break // only the last segment may be short
		}
	}
	return k
}

// gsoRefused lowers the GSO size limit after the kernel refused a GSO
// message of segments of size bytes: EINVAL when a segment does not fit
// the route's MTU, EIO when the device cannot checksum it. Small sizes or
// EIO turn GSO off for good; otherwise only this size and larger are
// dropped, so each failing size costs one refused call at most.
func (c *mmsgConn) gsoRefused(errno unix.Errno, size int) {
	if errno == unix.EIO || size <= minMTUPayload {
		c.gsoMax = 0
		return
	}
	c.gsoMax = min(c.gsoMax, size-1)
}
