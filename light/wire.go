package light

import (
	"encoding/binary"
	"errors"

	"github.com/cohort-vs/cohort/engine"
)

// Every carrier message starts with one kind byte. Data messages are the
// hot path: the kind, the light group's id (uvarint) and the payload.
const (
	kindData   = 1 // id | payload
	kindJoin   = 2 // name: the sender asks to join the light group of that name
	kindLeave  = 3 // id: the sender asks to leave
	kindMarker = 4 // id | request number: the sender's messages of the flushed view end here
	kindState  = 5 // id | transfer | flags | chunk: state for a joiner
)

// State chunk flags.
const (
	stateFinal   = 1 // the last chunk of the transfer
	stateFailed  = 2 // the donor's Snapshot failed: the joiner cannot restore
	stateNoState = 4 // the donor has no Snapshot handler
)

// requestOrdering is the ordering of joins, leaves and markers: Total, so
// that every carrier member applies them in one order and whatever a
// member sends after its marker comes after the request everywhere; and
// Safe, so that a member that crashes cannot have installed a light view
// from a request that the survivors never deliver.
const requestOrdering = engine.Total | engine.Safe

// MaxGroups bounds the light groups of one carrier: a join that would
// found one more fails with ErrTooManyGroups.
const MaxGroups = 1 << 20

// ErrTooManyGroups: Join would found a light group beyond MaxGroups.
var ErrTooManyGroups = errors.New("light: the carrier has MaxGroups light groups")

// MaxNameBytes is the longest light group name.
const MaxNameBytes = 255

var errMalformed = errors.New("light: malformed carrier message")

// maxDataHeader is the largest header of a data frame: its kind and id.
const maxDataHeader = 1 + binary.MaxVarintLen64

func appendData(b []byte, id uint64, payload []byte) []byte {
	b = append(b, kindData)
	b = binary.AppendUvarint(b, id)
	return append(b, payload...)
}

func appendJoin(name string) []byte { return append([]byte{kindJoin}, name...) }

func appendLeave(id uint64) []byte { return binary.AppendUvarint([]byte{kindLeave}, id) }

func appendMarker(id, req uint64) []byte {
	b := binary.AppendUvarint([]byte{kindMarker}, id)
	return binary.AppendUvarint(b, req)
}

func appendState(b []byte, id, xfer uint64, flags byte, chunk []byte) []byte {
	b = append(b, kindState)
	b = binary.AppendUvarint(b, id)
	b = binary.AppendUvarint(b, xfer)
	b = append(b, flags)
	return append(b, chunk...)
}

// reader decodes a carrier message or a table snapshot; the first error
// sticks and every later read returns zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errMalformed
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errMalformed
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// bytes reads a length-prefixed field of at most max bytes.
func (r *reader) bytes(max int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.err = errMalformed
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// count reads a number of items each at least min bytes long, checked
// against what remains, so that a forged count cannot make the reader
// allocate more than the input justifies.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.err = errMalformed
		return 0
	}
	return int(n)
}

func (r *reader) member() engine.MemberID {
	var m engine.MemberID
	if err := m.Addr.UnmarshalBinary(r.bytes(18)); err != nil && r.err == nil {
		r.err = errMalformed
	}
	m.Incarnation = r.uvarint()
	return m
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendMember(b []byte, m engine.MemberID) []byte {
	a, _ := m.Addr.MarshalBinary()
	b = appendBytes(b, a)
	return binary.AppendUvarint(b, m.Incarnation)
}

// validName reports whether a light group name can travel.
func validName(name string) bool { return name != "" && len(name) <= MaxNameBytes }
