// Package seal authenticates and encrypts cohort's datagrams (keyed mode):
// AES-256-GCM from the standard library over everything after the header,
// the header as additional data, nonces that are never reused, and a
// replay window per sending engine. Keys live in a Keyring, as memberlist
// and Consul have it: one primary key seals, every installed key opens,
// and keys are installed, put to use and removed while the engine runs,
// so a cluster rotates its key without a restart.
//
// A sealed datagram:
//
//	0   header    wire.HeaderSize bytes, auth = wire.AuthSealed, group =
//	              the group's id under the key (Key.GroupID)
//	32  key id    4  which key sealed it (Key.ID)
//	36  to        4  the addressee (AddrTag of its address), or 0 for a
//	                 multicast to every member of the header's view
//	40  nonce    12  the sending engine's salt (6 random bytes, drawn at
//	                 start) and its datagram counter (6 bytes)
//	52  frames       encrypted
//	n-16 tag     16
//
// The additional data is bytes 0 to 52: header, key id, addressee and
// nonce. A datagram replayed to its addressee is refused by the
// addressee's replay window; one replayed to another process, by the
// addressee tag (or, for a multicast, by that member's own window, as it
// was an addressee too).
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// Key is one installed key.
type Key struct {
	id   uint32
	raw  [KeySize]byte
	aead cipher.AEAD
}

// ID is the key's id, carried in every datagram it seals: the first 4
// bytes of an HMAC of a fixed label under the key (it names the key
// without revealing it).
func (k *Key) ID() uint32 { return k.id }

// GroupID is the id a group named name has on the wire under this key:
// deployments with different keys never route each other's datagrams, and
// the name is not readable from the wire.
func (k *Key) GroupID(name string) uint64 {
	m := hmac.New(sha256.New, k.raw[:])
	m.Write([]byte("cohort group id\x00"))
	m.Write([]byte(name))
	id := binary.LittleEndian.Uint64(m.Sum(nil))
	if id == 0 {
		id = 1
	}
	return id
}

func newKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("seal: a key is %d bytes (AES-256), not %d", KeySize, len(raw))
	}
	k := &Key{}
	copy(k.raw[:], raw)
	block, err := aes.NewCipher(k.raw[:])
	if err != nil {
		return nil, err
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, k.raw[:])
	m.Write([]byte("cohort key id"))
	k.id = binary.LittleEndian.Uint32(m.Sum(nil))
	return k, nil
}

// Keyring holds the keys of an engine: the primary seals, all open. It is
// safe for concurrent use; changes take effect for the next datagram.
type Keyring struct {
	mu    sync.Mutex // serializes changes
	state atomic.Pointer[ringState]
}

type ringState struct {
	keys    []*Key // the primary first
	version uint64 // bumped on every change (routing tables follow it)
}

func (s *ringState) byID(id uint32) *Key {
	for _, k := range s.keys { // a handful of keys: a scan beats a map
		if k.id == id {
			return k
		}
	}
	return nil
}

// Errors of keyring changes.
var (
	ErrKeyUnknown  = errors.New("seal: key not installed")
	ErrKeyPrimary  = errors.New("seal: the primary key cannot be removed; Use another first")
	ErrKeyConflict = errors.New("seal: another installed key has the same id")
	ErrTooManyKeys = errors.New("seal: a keyring holds at most 8 keys")
)

const maxKeys = 8

// NewKeyring makes a keyring whose primary key is primary; others are
// installed too (they open, but do not seal).
func NewKeyring(primary []byte, others ...[]byte) (*Keyring, error) {
	p, err := newKey(primary)
	if err != nil {
		return nil, err
	}
	r := &Keyring{}
	r.state.Store(&ringState{keys: []*Key{p}, version: 1})
	for _, o := range others {
		if err := r.Install(o); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Install adds a key that opens datagrams (installing one already there
// does nothing). Rotation: Install the new key on every member, then Use
// it on every member, then Remove the old one everywhere.
func (r *Keyring) Install(raw []byte) error {
	k, err := newKey(raw)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state.Load()
	if o := s.byID(k.id); o != nil {
		if o.raw == k.raw {
			return nil
		}
		return ErrKeyConflict
	}
	if len(s.keys) >= maxKeys {
		return ErrTooManyKeys
	}
	r.state.Store(&ringState{keys: append(slices.Clone(s.keys), k), version: s.version + 1})
	return nil
}

// Use makes an installed key the primary: it seals from now on.
func (r *Keyring) Use(raw []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state.Load()
	i := s.index(raw)
	if i < 0 {
		return ErrKeyUnknown
	}
	keys := slices.Clone(s.keys)
	keys[0], keys[i] = keys[i], keys[0]
	r.state.Store(&ringState{keys: keys, version: s.version + 1})
	return nil
}

// Remove uninstalls a key: datagrams it sealed are refused from now on.
func (r *Keyring) Remove(raw []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state.Load()
	i := s.index(raw)
	switch {
	case i < 0:
		return ErrKeyUnknown
	case i == 0:
		return ErrKeyPrimary
	}
	r.state.Store(&ringState{keys: slices.Delete(slices.Clone(s.keys), i, i+1), version: s.version + 1})
	return nil
}

// Keys returns copies of the installed keys, the primary first.
func (r *Keyring) Keys() [][]byte {
	s := r.state.Load()
	out := make([][]byte, len(s.keys))
	for i, k := range s.keys {
		out[i] = slices.Clone(k.raw[:])
	}
	return out
}

// Primary is the key that seals.
func (r *Keyring) Primary() *Key { return r.state.Load().keys[0] }

// Installed returns the installed keys, the primary first, and a version
// that changes whenever they do.
func (r *Keyring) Installed() ([]*Key, uint64) {
	s := r.state.Load()
	return s.keys, s.version
}

func (s *ringState) index(raw []byte) int {
	if len(raw) != KeySize {
		return -1
	}
	for i, k := range s.keys {
		if hmac.Equal(k.raw[:], raw) {
			return i
		}
	}
	return -1
}

// ParseKey decodes a key written in standard base64 (surrounding space
// ignored), as in a key file.
func ParseKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("seal: a key is %d bytes in standard base64: %w", KeySize, err)
	}
	if len(b) != KeySize {
		return nil, fmt.Errorf("seal: a key is %d bytes (AES-256), this one %d", KeySize, len(b))
	}
	return b, nil
}

// ReadKeyFile reads a key file: the key in standard base64 (make one with
// `head -c 32 /dev/urandom | base64`).
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
