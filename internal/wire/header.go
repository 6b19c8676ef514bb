// Package wire defines cohort's datagram format: a fixed header followed by
// frames. Data frames carry runs of consecutive messages from one origin;
// control frames carry status vectors and retransmission requests. Every
// decoder here validates lengths before it reads, reports a typed error and
// never panics on hostile input (fuzz tests hold it to that).
//
// Integers are little-endian; variable-length integers are unsigned LEB128
// (encoding/binary's uvarint).
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Datagram header layout (HeaderSize bytes):
//
//	0  magic     2  0xC7 0x5B
//	2  version   1  Version
//	3  type      1  datagram type (TypeGroup, TypeControl, TypeState, TypeLiveness)
//	4  flags     1  reserved, must be 0
//	5  auth      1  AuthNone, or AuthSealed: the datagram is sealed (package
//	                seal); the engine opens it and hands the protocol the
//	                plain datagram, with AuthNone
//	6  sender    2  sender's rank in the view named by epoch
//	8  group     8  group id (GroupID of the name; keyed, under a key)
//	16 instance  8  the group instance the sender is a member of
//	                (InstanceID of its founder); 0 from a process in none
//	24 epoch     8  view epoch the sender was in when it sent
const HeaderSize = 32

// Version is the only datagram version this build speaks.
const Version = 2

const (
	magic0 = 0xC7
	magic1 = 0x5B
)

// Datagram types.
const (
	// TypeGroup is traffic between members of one group view: frames.
	TypeGroup uint8 = 1
	// TypeState carries state transfer messages between a donor and a
	// joiner (package transfer). The header's epoch is the transfer's
	// view; its sender rank is NoRank when the sender has none.
	TypeState uint8 = 3
)

// Auth schemes.
const (
	AuthNone   uint8 = 0
	AuthSealed uint8 = 1 // AES-256-GCM, see package seal
)

// Header is the decoded fixed header of a datagram.
type Header struct {
	Type     uint8
	Flags    uint8
	Auth     uint8
	Sender   uint16
	Group    uint64
	Instance uint64
	Epoch    uint64
}

// Errors returned by decoders. Callers count them and drop the datagram.
var (
	ErrShort     = errors.New("wire: truncated")
	ErrMagic     = errors.New("wire: not a cohort datagram")
	ErrVersion   = errors.New("wire: unsupported version")
	ErrAuth      = errors.New("wire: unsupported authentication scheme")
	ErrMalformed = errors.New("wire: malformed frame")
)

// PutHeader writes h into b[:HeaderSize]. b must be at least HeaderSize long.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	b[0], b[1], b[2] = magic0, magic1, Version
	b[3], b[4], b[5] = h.Type, h.Flags, h.Auth
	binary.LittleEndian.PutUint16(b[6:], h.Sender)
	binary.LittleEndian.PutUint64(b[8:], h.Group)
	binary.LittleEndian.PutUint64(b[16:], h.Instance)
	binary.LittleEndian.PutUint64(b[24:], h.Epoch)
}

// ParseHeader decodes and validates the header at the start of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShort
	}
	if b[0] != magic0 || b[1] != magic1 {
		return Header{}, ErrMagic
	}
	if b[2] != Version {
		return Header{}, fmt.Errorf("%w %d", ErrVersion, b[2])
	}
	h := Header{
		Type:     b[3],
		Flags:    b[4],
		Auth:     b[5],
		Sender:   binary.LittleEndian.Uint16(b[6:]),
		Group:    binary.LittleEndian.Uint64(b[8:]),
		Instance: binary.LittleEndian.Uint64(b[16:]),
		Epoch:    binary.LittleEndian.Uint64(b[24:]),
	}
	if h.Auth != AuthNone {
		return Header{}, ErrAuth
	}
	if (h.Type < TypeGroup || h.Type > TypeLiveness) || h.Flags != 0 {
		return Header{}, ErrMalformed
	}
	return h, nil
}

// GroupID maps a group name to the id carried in every datagram (FNV-1a,
// 64 bits). Two names that collide would share traffic; at 64 bits that
// takes billions of groups on one port.
func GroupID(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return h
}

// GroupIDOf reads the group id of a datagram of at least HeaderSize bytes
// without validating the rest of the header: enough to route it.
func GroupIDOf(b []byte) uint64 { return binary.LittleEndian.Uint64(b[8:]) }

// SetGroupID rewrites the group id of a datagram of at least HeaderSize
// bytes (the engine's keyed ids, see package seal).
func SetGroupID(b []byte, id uint64) { binary.LittleEndian.PutUint64(b[8:], id) }

// InstanceID names the instance of a group that founder formed: every
// datagram of its members carries it, so that traffic of another
// instance (a restarted group, or another deployment that uses the same
// group name) is told apart even where view numbers coincide. FNV-1a over
// the founder's address, port and incarnation; 0 is never returned (it
// means "no instance").
func InstanceID(founder MemberID) uint64 {
	var b [16 + 2 + 8]byte
	a := founder.Addr.Addr().As16()
	copy(b[:], a[:])
	binary.LittleEndian.PutUint16(b[16:], founder.Addr.Port())
	binary.LittleEndian.PutUint64(b[18:], founder.Incarnation)
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}
