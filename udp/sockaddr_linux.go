package udp

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket addresses and control messages are read and written in place in
// preallocated kernel-format buffers, so no conversion allocates. Each
// per-message name buffer is a RawSockaddrInet6, which is large enough to
// hold either family.

// decodeSockaddr converts a sockaddr_in or sockaddr_in6 written by the
// kernel. IPv6 scope IDs are not mapped to zone names (that would need an
// interface lookup and an allocation). An unknown family gives the zero
// AddrPort.
func decodeSockaddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), portOf(&sa4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), portOf(&sa.Port))
	}
	return netip.AddrPort{}
}

// encodeSockaddr writes ap in the socket's family and returns the length
// to pass as msg_namelen, or 0 when ap cannot be reached from that family.
// An IPv6 socket reaches IPv4 peers through IPv4-mapped addresses.
func encodeSockaddr(sa *unix.RawSockaddrInet6, ipv4 bool, ap netip.AddrPort) uint32 {
	a := ap.Addr()
	if ipv4 {
		if !a.Is4() && !a.Is4In6() {
			return 0
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		putPort(&sa4.Port, ap.Port())
		return unix.SizeofSockaddrInet4
	}
	if !a.IsValid() {
		return 0
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	putPort(&sa.Port, ap.Port())
	return unix.SizeofSockaddrInet6
}

// The port field holds network byte order whatever the host's order.
func portOf(p *uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:])
}

func putPort(p *uint16, port uint16) {
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(p))[:], port)
}

// rxqDropCount finds the SO_RXQ_OVFL control message in a recvmsg control
// buffer and returns its counter. The kernel attaches it only once the
// count is non-zero.
func rxqDropCount(ctrl []byte) (uint32, bool) {
	hdrLen := unix.CmsgLen(0)
	for len(ctrl) >= hdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		n := int(h.Len)
		if n < hdrLen || n > len(ctrl) {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL && n >= hdrLen+4 {
			return binary.NativeEndian.Uint32(ctrl[hdrLen:]), true
		}
		next := unix.CmsgSpace(n - hdrLen)
		if next >= len(ctrl) {
			break
		}
		ctrl = ctrl[next:]
	}
	return 0, false
}
