package wire

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// TypeControl datagrams carry one membership message (Control) after the
// header. They are rare next to group traffic, so they use one simple,
// self-describing layout for every kind rather than a codec per kind.
const TypeControl uint8 = 2

// NoRank is the header's sender rank of a process outside the view.
const NoRank = 0xFFFF

// Control message kinds.
const (
	CtlDiscover  uint8 = iota + 1 // a process looking for the group; answered with CtlHere
	CtlHere                       // answer to Discover: the sender's view (or none, if it is starting too)
	CtlJoin                       // Target asks to join; forwarded to the coordinator
	CtlLeave                      // Target leaves gracefully
	CtlSuspect                    // the sender suspects Target
	CtlPrepare                    // phase 1 of a view change: Ballot, for view Epoch
	CtlPromise                    // answer to Prepare: Report, and Proposal if one was accepted
	CtlPropose                    // phase 2: Proposal
	CtlFlushed                    // the sender delivered everything up to the proposal's cut
	CtlInstall                    // Proposal is the new view
	CtlProbe                      // are you there? Nonce; Target is who asked for it, if indirect
	CtlProbeAck                   // yes: Nonce
	CtlProbeReq                   // please probe Target for me: Nonce
	CtlViewQuery                  // the sender saw traffic of a view it lacks
	CtlNotMember                  // the receiver is not in the sender's view Epoch (or its instance dissolves)
	CtlChange                     // the sender is stuck in a view change: please run one
	CtlEvict                      // the sender finds Target too slow (slow-member policy evict): remove it
	CtlInstalled                  // the sender installed view Epoch (answer to an install from a member not in it), or took a NotMember notice for view Epoch
	CtlFull                       // the join of Target is refused: the view is at its largest
	ctlMax
)

// MemberID identifies one incarnation of a member process.
type MemberID struct {
	Addr        netip.AddrPort
	Incarnation uint64
}

// Ballot orders view-change attempts: higher Round wins, then higher Rank.
type Ballot struct {
	Round uint64
	Rank  uint16
}

// Less reports whether b orders before c.
func (b Ballot) Less(c Ballot) bool {
	return b.Round < c.Round || (b.Round == c.Round && b.Rank < c.Rank)
}

// Proposal is a view change's outcome: the next view's members and, for
// every member of the current view, how far its messages are delivered
// (Cut) and which member holds them (Holders).
type Proposal struct {
	Ballot Ballot
	Epoch  uint64 // the new view's number
	// Founder is the member that formed this instance of the group: views
	// are numbered within an instance, and two instances of one group
	// (formed apart, say on two sides of a partition) merge when they meet.
	Founder MemberID
	Members []MemberID
	Cut     []uint64
	Holders []uint16
	// Evicted are the members of the old view that the slow-member policy
	// removed (not in Members), so that they learn why.
	Evicted []MemberID
	// Left are the members of the old view that left gracefully. With
	// Evicted they give every member one account of why each member of
	// the old view is gone (the rest failed), whatever it heard itself.
	Left []MemberID
	// Restoring are the members of the new view still taking the group's
	// state (state transfer): its joiners, and members that said so in
	// their promise. Every member of the view agrees on them, so on its
	// donor too.
	Restoring []MemberID
}

// Control is one membership message. Each kind uses the fields its
// comment names; the others are zero.
type Control struct {
	Kind      uint8
	From      MemberID
	Epoch     uint64 // the view the sender is in (or the message is about)
	Ballot    Ballot
	Target    MemberID
	Nonce     uint64
	Installed bool     // Promise: the sender already installed Proposal
	Blocked   bool     // Here: the sender's view is blocked (no majority)
	Restoring bool     // Promise: the sender is still taking the group's state
	Report    []uint64 // Promise: contiguous high marks, by rank
	Proposal  *Proposal
	// Pad, when larger than the encoding, pads the datagram to Pad bytes:
	// a question padded so that its answer is no larger (no member
	// answers a non-member with more bytes than it was sent).
	Pad int
}

// ErrTooBig means a control message does not fit a datagram.
var ErrTooBig = errors.New("wire: control message larger than a datagram")

// AppendControl encodes c after a header into b[:0] and returns it.
func AppendControl(b []byte, h Header, c *Control) []byte {
	if cap(b) < HeaderSize {
		b = make([]byte, HeaderSize, 512)
	}
	b = b[:HeaderSize]
	h.Type = TypeControl
	PutHeader(b, h)
	b = append(b, c.Kind)
	b = appendMember(b, c.From)
	b = binary.AppendUvarint(b, c.Epoch)
	b = appendBallot(b, c.Ballot)
	b = appendMember(b, c.Target)
	b = binary.AppendUvarint(b, c.Nonce)
	flags := byte(0)
	if c.Installed {
		flags |= 1
	}
	if c.Proposal != nil {
		flags |= 2
	}
	if c.Blocked {
		flags |= 4
	}
	if c.Pad > 0 {
		flags |= 8
	}
	if c.Restoring {
		flags |= 16
	}
	b = append(b, flags)
	b = appendU64s(b, c.Report)
	if p := c.Proposal; p != nil {
		b = appendBallot(b, p.Ballot)
		b = binary.AppendUvarint(b, p.Epoch)
		b = appendMember(b, p.Founder)
		b = binary.AppendUvarint(b, uint64(len(p.Members)))
		for _, m := range p.Members {
			b = appendMember(b, m)
		}
		b = appendU64s(b, p.Cut)
		b = binary.AppendUvarint(b, uint64(len(p.Holders)))
		for _, h := range p.Holders {
			b = binary.LittleEndian.AppendUint16(b, h)
		}
		b = appendMembers(b, p.Evicted)
		b = appendMembers(b, p.Left)
		b = appendMembers(b, p.Restoring)
	}
	for len(b) < c.Pad {
		b = append(b, 0)
	}
	return b
}

func appendMembers(b []byte, ms []MemberID) []byte {
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for _, m := range ms {
		b = appendMember(b, m)
	}
	return b
}

func appendMember(b []byte, m MemberID) []byte {
	a := m.Addr.Addr().As16()
	b = append(b, a[:]...)
	b = binary.LittleEndian.AppendUint16(b, m.Addr.Port())
	return binary.AppendUvarint(b, m.Incarnation)
}

func appendBallot(b []byte, x Ballot) []byte {
	b = binary.AppendUvarint(b, x.Round)
	return binary.LittleEndian.AppendUint16(b, x.Rank)
}

func appendU64s(b []byte, v []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, x := range v {
		b = binary.AppendUvarint(b, x)
	}
	return b
}

// maxList bounds every list in a control message: more members than a
// view may hold is malformed, whatever the datagram's size.
const maxList = 1024

// ParseControl decodes the control message after the header.
func ParseControl(body []byte) (*Control, error) {
	d := decoder{b: body}
	c := &Control{Kind: d.u8()}
	c.From = d.member()
	c.Epoch = d.uvarint()
	c.Ballot = d.ballot()
	c.Target = d.member()
	c.Nonce = d.uvarint()
	flags := d.u8()
	c.Installed = flags&1 != 0
	c.Blocked = flags&4 != 0
	c.Restoring = flags&16 != 0
	c.Report = d.u64s()
	if flags&2 != 0 {
		p := &Proposal{Ballot: d.ballot(), Epoch: d.uvarint(), Founder: d.member()}
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			p.Members = append(p.Members, d.member())
		}
		p.Cut = d.u64s()
		n = d.count()
		for i := 0; i < n && d.err == nil; i++ {
			p.Holders = append(p.Holders, d.u16())
		}
		p.Evicted = d.members()
		p.Left = d.members()
		p.Restoring = d.members()
		c.Proposal = p
	}
	if flags&8 != 0 && d.err == nil && d.off <= len(body) {
		c.Pad = HeaderSize + len(body)
		d.off = len(body) // padding
	}
	switch {
	case d.err != nil:
		return nil, d.err
	case d.off != len(body):
		return nil, ErrMalformed
	case c.Kind == 0 || c.Kind >= ctlMax || flags&^31 != 0:
		return nil, ErrMalformed
	}
	return c, nil
}

// members reads a counted list of member IDs (nil when empty).
func (d *decoder) members() []MemberID {
	var ms []MemberID
	n := d.count()
	for i := 0; i < n && d.err == nil; i++ {
		ms = append(ms, d.member())
	}
	return ms
}

type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b)-d.off < n {
		d.err = ErrShort
		return false
	}
	return true
}

func (d *decoder) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *decoder) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	d.off += 2
	return binary.LittleEndian.Uint16(d.b[d.off-2:])
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.err = ErrShort
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) count() int {
	n := d.uvarint()
	if n > maxList {
		if d.err == nil {
			d.err = ErrMalformed
		}
		return 0
	}
	return int(n)
}

func (d *decoder) member() MemberID {
	if !d.need(18) {
		return MemberID{}
	}
	var a [16]byte
	copy(a[:], d.b[d.off:])
	port := binary.LittleEndian.Uint16(d.b[d.off+16:])
	d.off += 18
	inc := d.uvarint()
	if a == [16]byte{} && port == 0 {
		return MemberID{Incarnation: inc} // no address: an unset field
	}
	return MemberID{Addr: netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port), Incarnation: inc}
}

func (d *decoder) ballot() Ballot {
	return Ballot{Round: d.uvarint(), Rank: d.u16()}
}

func (d *decoder) u64s() []uint64 {
	n := d.count()
	if n == 0 {
		return nil
	}
	v := make([]uint64, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		v = append(v, d.uvarint())
	}
	return v
}
