package vclock

import (
	"encoding/binary"
	"errors"
)

// Errors returned by ReadTimestamp.
var (
	ErrTruncated = errors.New("vclock: truncated timestamp")
	ErrMalformed = errors.New("vclock: malformed timestamp")
)

// The encoding is stateless: a receiver decodes a timestamp without any
// earlier message, so retransmissions, losses and the order in which a
// receiver decodes a sender's messages do not matter. The sender's own
// entry is never sent: it is the message's sequence number, which the data
// frame carries. Every other entry is a uvarint, and zero entries (ranks
// the sender has delivered nothing from, common in short views and in
// groups with few active senders) are the cheapest. Two forms, the
// shorter is written:
//
//	dense:  0, then n uvarints, one per rank in order (the sender's as 0)
//	sparse: c+1, then c pairs (rank gap, value) for the c nonzero entries
//	        other than the sender's, ranks increasing; a rank gap is the
//	        rank minus the previous listed rank minus one (the first is the
//	        rank itself), a value is a nonzero uvarint.
//
// The reader knows n from its view. With counters below 2^14 an entry costs
// two bytes at most; the dense form bounds a timestamp at about
// n*(1+log128(sequence)) bytes, the sparse form keeps quiet views at a few.
// (Deltas against the sender's previous timestamp would be shorter still
// under load, but would tie decoding to the sender's order and to every
// earlier message having been decoded.)

// TimestampSize is the size of vt's encoding by AppendTimestamp.
func TimestampSize(vt []uint64, sender int) int {
	dense, sparse, _ := sizes(vt, sender)
	return min(dense, sparse)
}

// sizes returns the sizes of both forms and the number of entries the
// sparse one lists.
func sizes(vt []uint64, sender int) (dense, sparse, c int) {
	dense, sparse = 1, 1
	last := -1
	for k, v := range vt {
		if k == sender {
			dense++
			continue
		}
		dense += uvarintLen(v)
		if v != 0 {
			c++
			sparse += uvarintLen(uint64(k-last-1)) + uvarintLen(v)
			last = k
		}
	}
	sparse += uvarintLen(uint64(c+1)) - 1
	return dense, sparse, c
}

// AppendTimestamp appends the encoding of vt, the timestamp of a message
// from rank sender, to b. vt[sender] is not encoded.
func AppendTimestamp(b []byte, vt []uint64, sender int) []byte {
	dense, sparse, c := sizes(vt, sender)
	if dense <= sparse {
		b = append(b, 0)
		for k, v := range vt {
			if k == sender {
				v = 0
			}
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	b = binary.AppendUvarint(b, uint64(c+1))
	last := -1
	for k, v := range vt {
		if k == sender || v == 0 {
			continue
		}
		b = binary.AppendUvarint(b, uint64(k-last-1))
		b = binary.AppendUvarint(b, v)
		last = k
	}
	return b
}

// ReadTimestamp decodes a timestamp from the start of b into vt, whose
// length is the view size n, and returns the number of bytes read. Every
// entry not encoded is set to zero, the sender's included: the caller then
// sets vt[sender] to the message's sequence number. On error vt's content
// is unspecified.
func ReadTimestamp(b []byte, vt []uint64) (n int, err error) {
	h, i := binary.Uvarint(b)
	if i <= 0 {
		return 0, readErr(i)
	}
	n = i
	if h == 0 {
		for k := range vt {
			v, i := binary.Uvarint(b[n:])
			if i <= 0 {
				return 0, readErr(i)
			}
			vt[k] = v
			n += i
		}
		return n, nil
	}
	c := h - 1
	if c > uint64(len(vt)) {
		return 0, ErrMalformed
	}
	clear(vt)
	next := uint64(0) // lowest rank the next pair may name
	for ; c > 0; c-- {
		gap, i := binary.Uvarint(b[n:])
		if i <= 0 {
			return 0, readErr(i)
		}
		n += i
		v, i := binary.Uvarint(b[n:])
		if i <= 0 {
			return 0, readErr(i)
		}
		n += i
		if gap >= uint64(len(vt)) || next+gap >= uint64(len(vt)) || v == 0 {
			return 0, ErrMalformed
		}
		k := next + gap
		vt[k] = v
		next = k + 1
	}
	return n, nil
}

func readErr(i int) error {
	if i == 0 {
		return ErrTruncated
	}
	return ErrMalformed // overflows 64 bits
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
