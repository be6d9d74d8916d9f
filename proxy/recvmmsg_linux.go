package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// socket is one UDP socket bound with SO_REUSEPORT, read by its reader
// with blocking recvmmsg(2) calls, outside Go's network poller.
//
// Why not the poller: while the reader lingers (see defaultLinger) the
// datagrams that arrive would each wake a thread waiting in epoll for
// the socket (edge-triggered readiness fires on every arrival), and those
// wake-ups cost as much as reading the datagrams. A blocking socket wakes
// nobody until its reader waits on it. The reader's goroutine then holds
// a thread while it waits, one per socket.
type socket struct {
	fd      int
	addr    netip.AddrPort
	closing atomic.Bool
	timeout time.Duration // SO_RCVTIMEO in force
}

// idleTimeout bounds a blocking read when nothing else does, so that a
// reader notices a close even if the wake-up of shutdown were lost.
const idleTimeout = 250 * time.Millisecond

// openSocket opens a UDP socket on addr with SO_REUSEPORT, so that several
// sockets share the port and the kernel spreads exporters across them,
// and sets the receive buffer. As root it uses SO_RCVBUFFORCE, which
// ignores net.core.rmem_max; otherwise the kernel caps the size at
// rmem_max. It returns the buffer size the kernel reports. An IPv6 socket
// also takes IPv4 (IPV6_V6ONLY off), as Go's "udp" listeners do.
func openSocket(addr netip.AddrPort, rcvbuf int) (*socket, int, error) {
	ip := addr.Addr().Unmap()
	family := unix.AF_INET
	if !ip.Is4() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, 0, fmt.Errorf("socket: %w", err)
	}
	s := &socket{fd: fd}
	if err := s.setup(family, ip, addr.Port(), rcvbuf); err != nil {
		unix.Close(fd)
		return nil, 0, err
	}
	got, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	return s, got, nil
}

func (s *socket) setup(family int, ip netip.Addr, port uint16, rcvbuf int) error {
	fd := s.fd
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	if rcvbuf > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
				return fmt.Errorf("SO_RCVBUF: %w", err)
			}
		}
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(port), Addr: ip.As4()}
	} else {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
		sa6 := &unix.SockaddrInet6{Port: int(port), Addr: ip.As16()}
		if z := ip.Zone(); z != "" {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return fmt.Errorf("zone %q: %w", z, err)
			}
			sa6.ZoneId = uint32(ifi.Index)
		}
		sa = sa6
	}
	if err := unix.Bind(fd, sa); err != nil {
		return err
	}
	if err := s.setTimeout(idleTimeout); err != nil {
		return err
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	switch a := local.(type) {
	case *unix.SockaddrInet4:
		s.addr = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		s.addr = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).WithZone(ip.Zone()), uint16(a.Port))
	}
	return nil
}

// setTimeout sets how long a read waits for a first datagram.
func (s *socket) setTimeout(d time.Duration) error {
	if d == s.timeout {
		return nil
	}
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	s.timeout = d
	return nil
}

// shutdown makes the reader stop: a read in progress returns at once
// (shutdown(2) wakes it; the idle timeout would otherwise) and the reader
// closes the socket. It is safe to call from any goroutine, more than once.
func (s *socket) shutdown() {
	if s.closing.Swap(true) {
		return
	}
	// ENOTCONN on an unconnected UDP socket, but the receive side is shut
	// down and waiting readers are woken all the same.
	_ = unix.Shutdown(s.fd, unix.SHUT_RD)
}

// close releases the socket; only its reader calls it, once it is done
// reading, so the descriptor is never reused under a read in progress.
func (s *socket) close() error { return unix.Close(s.fd) }

// errReadTimeout is a read that waited SO_RCVTIMEO for nothing, and
// errNothing a read that was not to wait and found nothing.
var (
	errReadTimeout = errors.New("proxy: read timeout")
	errNothing     = errors.New("proxy: nothing to read")
)

// mmsgReader reads datagrams from a socket with recvmmsg(2). Headers,
// iovecs and source-address storage are built once, so a read allocates
// nothing.
type mmsgReader struct {
	s     *socket
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for IPv4 and IPv6
}

func newMsgReader(s *socket, bufs [][]byte) *mmsgReader {
	m := &mmsgReader{
		s:     s,
		hdrs:  make([]unix.Mmsghdr, len(bufs)),
		iovs:  make([]unix.Iovec, len(bufs)),
		names: make([]unix.RawSockaddrInet6, len(bufs)),
	}
	for i := range bufs {
		m.iovs[i].Base = &bufs[i][0]
		m.iovs[i].SetLen(len(bufs[i]))
		m.hdrs[i].Hdr.Iov = &m.iovs[i]
		m.hdrs[i].Hdr.SetIovlen(1)
		m.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.names[i]))
	}
	return m
}

// read reads the datagrams that are there, up to one per buffer. With
// wait it first waits for one (up to the socket's timeout:
// errReadTimeout; MSG_WAITFORONE), without it it returns errNothing at
// once when there is none. After shutdown it returns net.ErrClosed.
func (m *mmsgReader) read(wait bool) (int, error) {
	flags, none := uintptr(unix.MSG_WAITFORONE), errReadTimeout
	if !wait {
		flags, none = unix.MSG_DONTWAIT, errNothing
	}
	for {
		if m.s.closing.Load() {
			return 0, net.ErrClosed
		}
		for i := range m.hdrs {
			m.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		}
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(m.s.fd), uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(len(m.hdrs)), flags, 0, 0)
		if m.s.closing.Load() {
			return 0, net.ErrClosed
		}
		switch e {
		case 0:
			if r == 0 {
				continue
			}
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, none
		}
		return 0, e
	}
}

// msg returns the source and length of message i of the last read.
func (m *mmsgReader) msg(i int) (netip.AddrPort, int) {
	h := &m.hdrs[i]
	return sockaddrPort(&m.names[i], h.Hdr.Namelen), int(h.Len)
}

// sockaddrPort decodes the source address the kernel wrote; IPv4-mapped
// IPv6 addresses become IPv4, as everywhere in the proxy.
func sockaddrPort(sa *unix.RawSockaddrInet6, n uint32) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}
		}
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), port(s4.Port))
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port(sa.Port))
	}
	return netip.AddrPort{}
}

// port turns a sockaddr's port, in network byte order, into a number.
func port(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return binary.BigEndian.Uint16(b[:])
}
