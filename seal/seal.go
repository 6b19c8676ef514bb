package seal

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/cohort-vs/cohort/internal/wire"
)

// Sizes of the sealed layout.
const (
	IDSize    = 4
	ToSize    = 4
	NonceSize = 12
	TagSize   = 16
	// Prefix is where the encrypted frames start.
	Prefix = wire.HeaderSize + IDSize + ToSize + NonceSize
	// Overhead is what sealing adds to a datagram.
	Overhead = IDSize + ToSize + NonceSize + TagSize

	saltSize   = 6
	maxCounter = 1<<48 - 1
)

// Errors of Open; the engine counts each and drops the datagram.
var (
	ErrUnsealed   = errors.New("seal: datagram not sealed")
	ErrUnknownKey = errors.New("seal: sealed with a key not installed")
	ErrAuth       = errors.New("seal: authentication failed")
	ErrReplay     = errors.New("seal: replayed datagram")
	// ErrMisdirected: the datagram was sealed for another addressee.
	ErrMisdirected = errors.New("seal: datagram sealed for another addressee")
	// ErrExhausted: this engine sealed 2^48 datagrams and cannot seal
	// more without reusing a nonce; restart it (a new salt).
	ErrExhausted = errors.New("seal: nonce counter exhausted; restart the engine")
)

// FirstContact is the engine's policy for datagrams sealed for another
// addressee: a process looking for the group or joining it may know this
// engine by another of its addresses (a seed given as an alias), so its
// Discover and Join are taken whatever addressee they name.
func FirstContact(plain []byte) bool {
	if len(plain) <= wire.HeaderSize || plain[3] != wire.TypeControl {
		return false
	}
	k := plain[wire.HeaderSize]
	return k == wire.CtlDiscover || k == wire.CtlJoin
}

// Sealer seals the datagrams of one engine. Its nonces are its salt,
// drawn at random when it is made (so a restarted engine does not reuse
// its predecessor's), and a counter; one Sealer must not be used by two
// goroutines at once.
type Sealer struct {
	ring    *Keyring
	salt    [saltSize]byte
	counter uint64 // datagrams sealed
}

// NewSealer makes a sealer over ring with a fresh random salt.
func NewSealer(ring *Keyring) *Sealer {
	s := &Sealer{ring: ring}
	if _, err := rand.Read(s.salt[:]); err != nil {
		panic("seal: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return s
}

// AddrTag names an addressee in a sealed datagram: FNV-1a of its address
// and port, never 0 (0 means every member of the view).
func AddrTag(a netip.AddrPort) uint32 {
	b := a.Addr().As16()
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	h ^= uint32(a.Port())
	h *= 16777619
	if h == 0 {
		h = 1
	}
	return h
}

// Seal writes plain (a datagram: header and frames) sealed under key k
// for addressee to (AddrTag; 0 for a multicast to the header's view) into
// dst (which needs len(plain)+Overhead bytes of capacity) with group as
// its group id on the wire, and returns it.
func (s *Sealer) Seal(dst []byte, k *Key, group uint64, to uint32, plain []byte) ([]byte, error) {
	c := s.counter + 1
	if c > maxCounter {
		return nil, ErrExhausted
	}
	s.counter = c
	if cap(dst) < len(plain)+Overhead {
		dst = make([]byte, 0, len(plain)+Overhead)
	}
	dst = dst[:Prefix]
	copy(dst, plain[:wire.HeaderSize])
	dst[5] = wire.AuthSealed
	wire.SetGroupID(dst, group)
	binary.LittleEndian.PutUint32(dst[wire.HeaderSize:], k.id)
	binary.LittleEndian.PutUint32(dst[wire.HeaderSize+IDSize:], to)
	nonce := dst[Prefix-NonceSize : Prefix]
	copy(nonce, s.salt[:])
	putCounter(nonce[saltSize:], c)
	return k.aead.Seal(dst, nonce, plain[wire.HeaderSize:], dst[:Prefix]), nil
}

func putCounter(b []byte, c uint64) {
	_ = b[5]
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24), byte(c>>32), byte(c>>40)
}

func getCounter(b []byte) uint64 {
	_ = b[5]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40
}

func getSalt(b []byte) uint64 {
	_ = b[5]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40
}

// Opener opens the datagrams an engine receives and refuses replays: it
// keeps, per sending engine (its salt, which only a key holder can
// choose), the highest counter seen and which of the WindowSize below it
// arrived. Only datagrams that authenticate make or move a window, and
// the windows kept are bounded (MaxSenders). One Opener must not be used
// by two goroutines at once.
type Opener struct {
	ring    *Keyring
	self    uint32 // AddrTag of this engine's address
	ownSalt uint64 // this engine's sealer's: its datagrams are never for itself
	senders map[uint64]*window
	last    *window // the sender of the previous datagram: most often the next one's
	lastID  uint64
	tick    uint64 // datagrams opened, to age the windows
}

// WindowSize is how far below the highest counter seen from a sender a
// datagram may come, reordered, and still be taken (once).
const WindowSize = 4096

// MaxSenders bounds the sending engines remembered; past it, the one
// heard from least recently is forgotten. A forgotten sender's old
// datagrams could be taken again once; the protocol drops them as
// traffic of a view long gone (docs/SECURITY.md).
const MaxSenders = 4096

type window struct {
	high uint64
	bits [WindowSize / 64]uint64
	used uint64 // Opener.tick when last moved
}

// NewOpener makes the opener of the engine at address self whose own
// datagrams own seals (nil: none).
func NewOpener(ring *Keyring, self netip.AddrPort, own *Sealer) *Opener {
	o := &Opener{ring: ring, self: AddrTag(self), senders: make(map[uint64]*window)}
	if own != nil {
		o.ownSalt = getSalt(own.salt[:])
	}
	return o
}

// Open authenticates and decrypts b in place. It returns the plain
// datagram (header and frames, auth none; a sub-slice of b) and the key
// that opened it (its GroupID names the group). A datagram sealed for
// another addressee is refused (ErrMisdirected) unless misdirectedOK
// allows it (the engine lets a process's first contact through, sent to
// an address of this engine other than the one it knows itself by).
func (o *Opener) Open(b []byte, misdirectedOK func(plain []byte) bool) ([]byte, *Key, error) {
	if len(b) < Prefix+TagSize {
		if len(b) > 5 && len(b) >= wire.HeaderSize && b[5] == wire.AuthSealed {
			return nil, nil, ErrAuth // truncated
		}
		return nil, nil, ErrUnsealed
	}
	if b[5] != wire.AuthSealed {
		return nil, nil, ErrUnsealed
	}
	s := o.ring.state.Load()
	k := s.byID(binary.LittleEndian.Uint32(b[wire.HeaderSize:]))
	if k == nil {
		return nil, nil, ErrUnknownKey
	}
	nonce := b[Prefix-NonceSize : Prefix]
	salt, c := getSalt(nonce), getCounter(nonce[saltSize:])
	if salt == o.ownSalt && o.ownSalt != 0 {
		return nil, nil, ErrReplay // this engine's own, sent back to it
	}
	w := o.window(salt)
	if w != nil && w.seen(c) {
		return nil, nil, ErrReplay // cheaply, before any decryption
	}
	pt, err := k.aead.Open(b[Prefix:Prefix], nonce, b[Prefix:], b[:Prefix])
	if err != nil {
		return nil, nil, ErrAuth
	}
	to := binary.LittleEndian.Uint32(b[wire.HeaderSize+IDSize:])
	// The header goes right before the frames, auth none.
	plain := b[Prefix-wire.HeaderSize : Prefix+len(pt)]
	copy(plain, b[:wire.HeaderSize])
	plain[5] = wire.AuthNone
	if to != 0 && to != o.self && (misdirectedOK == nil || !misdirectedOK(plain)) {
		return nil, nil, ErrMisdirected
	}
	if w == nil {
		w = o.add(salt)
	}
	o.tick++
	w.mark(c, o.tick)
	return plain, k, nil
}

func (o *Opener) window(salt uint64) *window {
	if o.last != nil && o.lastID == salt {
		return o.last
	}
	w := o.senders[salt]
	if w != nil {
		o.last, o.lastID = w, salt
	}
	return w
}

func (o *Opener) add(salt uint64) *window {
	if len(o.senders) >= MaxSenders {
		var oldest uint64
		var ow *window
		for id, w := range o.senders {
			if ow == nil || w.used < ow.used {
				oldest, ow = id, w
			}
		}
		delete(o.senders, oldest)
	}
	w := &window{}
	o.senders[salt] = w
	o.last, o.lastID = w, salt
	return w
}

// Senders is how many sending engines the opener remembers.
func (o *Opener) Senders() int { return len(o.senders) }

// seen reports whether counter c was taken already, or is too old to tell.
func (w *window) seen(c uint64) bool {
	switch {
	case c > w.high:
		return false
	case w.high-c >= WindowSize:
		return true
	}
	return w.bits[(c/64)%(WindowSize/64)]&(1<<(c%64)) != 0
}

func (w *window) mark(c, tick uint64) {
	w.used = tick
	if c > w.high {
		// Clear the slots the window moves past (those now holding
		// counters of the previous lap).
		if c-w.high >= WindowSize {
			w.bits = [WindowSize / 64]uint64{}
		} else {
			for x := w.high + 1; x <= c; {
				word := (x / 64) % (WindowSize / 64)
				if x%64 == 0 && x+63 <= c {
					w.bits[word] = 0
					x += 64
					continue
				}
				w.bits[word] &^= 1 << (x % 64)
				x++
			}
		}
		w.high = c
	}
	w.bits[(c/64)%(WindowSize/64)] |= 1 << (c % 64)
}
