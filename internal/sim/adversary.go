package sim

import (
	"bytes"
	"net/netip"

	"github.com/cohort-vs/cohort/internal/wire"
	"github.com/cohort-vs/cohort/seal"
)

// The adversary (Options.Adversary) is what an unkeyed group must
// withstand on a shared network: a process at an address of its own that
// is no member, sees the group's traffic and sends
//
//   - exact replays of datagrams it saw, to their first destination, from
//     their sender's address (at any later time: a delay no network
//     makes, yet nothing a member must trust more than a duplicate);
//   - damaged copies of them (bits flipped, cut short, lengthened) from
//     its own address;
//   - control messages of every kind made up from what it saw (members,
//     epochs, ballots), from its own address, as itself or naming a
//     member as their sender.
//
// It never joins for itself (an outsider may join an unkeyed group: that
// is membership, tested elsewhere). Damaged or made-up traffic that
// claims a member's address needs the key to be refused: that is keyed
// mode's part.

// advMove is what the adversary did to make a datagram.
type advMove uint8

const (
	advNone   advMove = iota
	advReplay         // an exact copy of one it saw
	advDamage         // a damaged copy
	advForge          // made up (sealed with the key when it has it)
)

// adversaryAddr is where the adversary sends from.
var adversaryAddr = netip.MustParseAddrPort("10.0.0.250:7000")

// capture keeps a datagram the adversary saw.
type capture struct {
	from, to int
	data     []byte
}

const maxCaptures = 64

func (w *world) observe(from, to int, b []byte) {
	c := capture{from: from, to: to, data: append([]byte(nil), b...)}
	if len(w.captures) < maxCaptures {
		w.captures = append(w.captures, c)
	} else {
		w.captures[w.rng.IntN(maxCaptures)] = c
	}
}

// attack is one move of the adversary; it schedules the next.
func (w *world) attack() {
	if w.now < w.opt.FaultWindow+w.opt.SendUntil {
		w.push(&event{at: w.now + 200 + w.rng.Int64N(3000), kind: evAttack})
	}
	live := w.live()
	if len(w.captures) == 0 || len(live) == 0 {
		return
	}
	c := w.captures[w.rng.IntN(len(w.captures))]
	to := live[w.rng.IntN(len(live))]
	switch w.rng.IntN(3) {
	case 0: // replay, exactly, from the sender's address
		w.push(&event{at: w.now + w.rng.Int64N(2_000_000), kind: evDatagram, to: c.to, from: c.from, data: append([]byte(nil), c.data...), adv: advReplay})
		w.adversaryMoves++
	case 1: // damage
		d := append([]byte(nil), c.data...)
		switch w.rng.IntN(3) {
		case 0:
			for k := 0; k < 1+w.rng.IntN(4) || bytes.Equal(d, c.data); k++ {
				i := w.rng.IntN(len(d))
				d[i] ^= byte(1 << w.rng.IntN(8)) // (twice the same flip is no damage: go on)
			}
		case 1:
			d = d[:w.rng.IntN(len(d))]
		default:
			extra := make([]byte, 1+w.rng.IntN(64))
			for i := range extra {
				extra[i] = byte(w.rng.IntN(256))
			}
			d = append(d, extra...)
		}
		w.fromAdversary(to, d, advDamage)
	default: // make up a control message
		d := w.forge(c)
		if w.opt.Keyed && w.opt.AdversaryHasKey {
			k := w.keys.Primary()
			var err error
			if d, err = w.advSealer.Seal(nil, k, k.GroupID("sim"), seal.AddrTag(w.procs[to].addr), d); err != nil {
				panic(err)
			}
		}
		w.fromAdversary(to, d, advForge)
	}
}

func (w *world) fromAdversary(to int, d []byte, move advMove) {
	w.push(&event{at: w.now + w.opt.DelayMin, kind: evDatagram, to: to, from: -1, data: d, adv: move})
	w.adversaryMoves++
}

// forge makes up a control message from what capture c shows: its
// header's group and epoch, and the members the adversary knows.
func (w *world) forge(c capture) []byte {
	h, err := wire.ParseHeader(c.data)
	if err != nil {
		h = wire.Header{}
	}
	if w.opt.Keyed {
		h.Group = wire.GroupID("sim") // what an insider knows
	}
	var known []wire.MemberID
	for _, p := range w.procs {
		if n := p.m[0]; n.g != nil {
			if v := n.g.View(); v.Epoch > 0 {
				known = v.Members
				break
			}
		}
	}
	self := wire.MemberID{Addr: adversaryAddr, Incarnation: 1}
	pick := func() wire.MemberID {
		if len(known) == 0 || w.rng.IntN(4) == 0 {
			return self
		}
		return known[w.rng.IntN(len(known))]
	}
	epoch := h.Epoch + uint64(w.rng.IntN(3)) - 1
	ctl := &wire.Control{
		Kind:   uint8(1 + w.rng.IntN(int(wire.CtlFull))),
		From:   pick(),
		Epoch:  epoch,
		Ballot: wire.Ballot{Round: uint64(w.rng.IntN(1 << 20)), Rank: uint16(w.rng.IntN(8))},
		Target: pick(),
		Nonce:  uint64(w.rng.IntN(1 << 16)),
	}
	if ctl.Kind == wire.CtlJoin && ctl.Target == self {
		ctl.Target = ctl.From // joining for itself is membership, not an attack
		if ctl.Target == self {
			ctl.Kind = wire.CtlDiscover
		}
	}
	if w.rng.IntN(2) == 0 {
		p := &wire.Proposal{Epoch: epoch + uint64(w.rng.IntN(2)), Ballot: ctl.Ballot}
		if len(known) > 0 {
			p.Founder = known[0]
		}
		for k := 0; k < w.rng.IntN(len(known)+2); k++ {
			p.Members = append(p.Members, pick())
		}
		n := w.rng.IntN(len(known) + 3)
		for k := 0; k < n; k++ {
			p.Cut = append(p.Cut, uint64(w.rng.IntN(100)))
			p.Holders = append(p.Holders, uint16(w.rng.IntN(8)))
		}
		ctl.Proposal = p
	}
	for k := 0; k < w.rng.IntN(6); k++ {
		ctl.Report = append(ctl.Report, uint64(w.rng.IntN(100)))
	}
	return wire.AppendControl(nil, wire.Header{Sender: wire.NoRank, Group: h.Group, Epoch: h.Epoch}, ctl)
}
