package wire

import (
	"encoding/binary"
	"net/netip"
)

// TypeLiveness datagrams are between processes, not groups (package
// liveness): a process's heartbeats and probes stand for every group it
// shares with the recipient. The header's group, instance and epoch are
// 0 and its sender rank NoRank; the body is one Liveness.
const TypeLiveness uint8 = 4

// Liveness message kinds.
const (
	LiveHeartbeat uint8 = 1 // "I am alive": sent when nothing else went to the peer lately
	LivePing      uint8 = 2 // answer with an ack of the same nonce
	LiveAck       uint8 = 3 // answers a ping; with Target set, relays the target's ack
	LivePingReq   uint8 = 4 // ping Target on the sender's behalf and relay its ack
)

// Liveness is the body of a TypeLiveness datagram.
type Liveness struct {
	Kind uint8
	// Boot names the sending process's run: a process that restarts at
	// the same address has a larger one (its first member incarnation).
	Boot uint64
	// Nonce matches an ack to its ping; a heartbeat carries instead the
	// digest of the views its sender shares with the recipient.
	Nonce  uint64
	Target netip.AddrPort // LivePingReq's target; the relayed target of a LiveAck
	// TargetBoot: a relayed LiveAck's target's boot, as its ack said.
	TargetBoot uint64
}

// LivenessSize is the encoded size of a Liveness datagram, header
// included.
const LivenessSize = HeaderSize + 1 + 8 + 8 + 18 + 8

// AppendLiveness appends a whole TypeLiveness datagram to b.
func AppendLiveness(b []byte, l Liveness) []byte {
	var h [HeaderSize]byte
	PutHeader(h[:], Header{Type: TypeLiveness, Sender: NoRank})
	b = append(b, h[:]...)
	b = append(b, l.Kind)
	b = binary.LittleEndian.AppendUint64(b, l.Boot)
	b = binary.LittleEndian.AppendUint64(b, l.Nonce)
	a := l.Target.Addr().As16()
	if !l.Target.IsValid() {
		a = [16]byte{}
	}
	b = append(b, a[:]...)
	b = binary.LittleEndian.AppendUint16(b, l.Target.Port())
	return binary.LittleEndian.AppendUint64(b, l.TargetBoot)
}

// ParseLiveness decodes a TypeLiveness datagram whose header was checked.
func ParseLiveness(b []byte) (Liveness, error) {
	if len(b) != LivenessSize {
		return Liveness{}, ErrMalformed
	}
	body := b[HeaderSize:]
	l := Liveness{Kind: body[0], Boot: binary.LittleEndian.Uint64(body[1:]), Nonce: binary.LittleEndian.Uint64(body[9:])}
	if l.Kind < LiveHeartbeat || l.Kind > LivePingReq || l.Boot == 0 {
		return Liveness{}, ErrMalformed
	}
	var a [16]byte
	copy(a[:], body[17:33])
	if port := binary.LittleEndian.Uint16(body[33:]); a != [16]byte{} || port != 0 {
		l.Target = netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port)
	}
	l.TargetBoot = binary.LittleEndian.Uint64(body[35:])
	if l.Kind == LivePingReq && !l.Target.IsValid() {
		return Liveness{}, ErrMalformed
	}
	return l, nil
}
