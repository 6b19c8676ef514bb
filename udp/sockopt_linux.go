package udp

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tuneBuffers raises the socket buffers and reports what the kernel granted
// (which, on Linux, is twice the request: the kernel adds room for its own
// bookkeeping). The FORCE options ignore the system-wide maximum but need
// CAP_NET_ADMIN; without it the plain options apply, capped by the maximum.
func tuneBuffers(uc *net.UDPConn, recv, send int) (bufferSizes, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return bufferSizes{}, err
	}
	var got bufferSizes
	var gerr error
	cerr := rc.Control(func(fd uintptr) {
		s := int(fd)
		setBuffer(s, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, recv)
		setBuffer(s, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, send)
		if got.recv, gerr = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF); gerr != nil {
			return
		}
		got.send, gerr = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	if cerr != nil {
		return bufferSizes{}, cerr
	}
	if gerr != nil {
		return bufferSizes{}, &net.OpError{Op: "getsockopt", Net: "udp", Err: gerr}
	}
	return got, nil
}

func setBuffer(fd, force, plain, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) == nil {
		return
	}
	// EPERM without privilege. The plain option does not fail for large
	// sizes (the kernel caps them), and the granted size is read back anyway.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
}

// enableDropCounter asks the kernel to attach its cumulative receive-queue
// drop count (SO_RXQ_OVFL) to received datagrams.
func enableDropCounter(rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return &net.OpError{Op: "setsockopt", Net: "udp", Err: serr}
	}
	return nil
}
