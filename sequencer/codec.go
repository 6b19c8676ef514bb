package sequencer

import (
	"encoding/binary"
	"errors"
)

// A batch of records encodes as
//
//	firstGlobal uvarint | n uvarint | n × (sender uvarint | first uvarint | count uvarint)
//
// Record i's global number is implied: firstGlobal for the first, then the
// previous record's Global+Count. The caller frames the batch (for example
// as one frame of a datagram, kind | length | body).

// MaxSenders bounds the sender ranks a decoded record may carry (a view
// rank is 16 bits on the wire).
const MaxSenders = 1 << 16

// RecordSizeMax bounds the encoded size of one record.
const RecordSizeMax = 3 * binary.MaxVarintLen64

// ErrMalformed is returned by DecodeRecords for any invalid input.
var ErrMalformed = errors.New("sequencer: malformed record batch")

// AppendRecords appends the encoding of recs, which must be contiguous in
// global numbers starting at firstGlobal, to b. Their Global fields are
// not read.
func AppendRecords(b []byte, firstGlobal uint64, recs []Record) []byte {
	b = binary.AppendUvarint(b, firstGlobal)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(r.Sender))
		b = binary.AppendUvarint(b, r.First)
		b = binary.AppendUvarint(b, r.Count)
	}
	return b
}

// DecodeRecords decodes one batch from the start of b, appends its records
// (Global filled in) to dst and returns them with the number of bytes
// read. It checks every field (senders below MaxSenders, counts at least
// 1, numbers from 1, no overflow) and never panics; on error dst is
// returned unchanged.
func DecodeRecords(dst []Record, b []byte) ([]Record, int, error) {
	g, n := binary.Uvarint(b)
	if n <= 0 || g == 0 {
		return dst, 0, ErrMalformed
	}
	off := n
	cnt, n := binary.Uvarint(b[off:])
	if n <= 0 || cnt > uint64(len(b)-off-n)/3 {
		return dst, 0, ErrMalformed
	}
	off += n
	keep := len(dst)
	for range cnt {
		var v [3]uint64
		for j := range v {
			x, n := binary.Uvarint(b[off:])
			if n <= 0 {
				return dst[:keep], 0, ErrMalformed
			}
			v[j], off = x, off+n
		}
		r := Record{Global: g, Sender: int(min(v[0], MaxSenders)), First: v[1], Count: v[2]}
		if v[0] >= MaxSenders || !r.valid(0) {
			return dst[:keep], 0, ErrMalformed
		}
		dst = append(dst, r)
		g = r.End()
	}
	return dst, off, nil
}
