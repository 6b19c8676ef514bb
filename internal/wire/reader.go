package wire

import "encoding/binary"

// FrameReader walks the frames of one datagram body (the bytes after the
// header). It allocates nothing; the zero value is ready after Reset.
//
//	var r wire.FrameReader
//	r.Reset(body)
//	for r.Next() {
//		switch r.Kind { ... }
//	}
//	if r.Err() != nil { count and drop }
type FrameReader struct {
	b    []byte
	off  int
	err  error
	Kind uint8
	Body []byte // the current frame's body
}

// Reset starts reading frames from b.
func (r *FrameReader) Reset(b []byte) {
	*r = FrameReader{b: b}
}

// Next advances to the next frame. It returns false at the end of the
// datagram or on a malformed frame (then Err is set).
func (r *FrameReader) Next() bool {
	if r.err != nil || r.off >= len(r.b) {
		return false
	}
	if len(r.b)-r.off < FrameHeaderSize {
		r.err = ErrShort
		return false
	}
	kind := r.b[r.off]
	n := int(binary.LittleEndian.Uint16(r.b[r.off+1:]))
	start := r.off + FrameHeaderSize
	if n > len(r.b)-start {
		r.err = ErrShort
		return false
	}
	if kind < FrameData || kind > FrameStatusAsk {
		r.err = ErrMalformed
		return false
	}
	r.Kind, r.Body = kind, r.b[start:start+n]
	r.off = start + n
	return true
}

// Err reports why Next stopped early, or nil.
func (r *FrameReader) Err() error { return r.err }

// DataReader iterates the messages of one data frame body.
type DataReader struct {
	Origin   uint16
	FirstSeq uint64
	Count    int

	b    []byte
	off  int
	left int
	err  error

	// Set by Next: the current message.
	Seq     uint64
	Flags   uint8
	Total   int // whole message size, for a first fragment
	Payload []byte
}

// Reset decodes the head of a data frame body.
func (d *DataReader) Reset(body []byte) error {
	if len(body) < DataHeadSize-FrameHeaderSize {
		*d = DataReader{err: ErrShort}
		return ErrShort
	}
	*d = DataReader{
		Origin:   binary.LittleEndian.Uint16(body),
		FirstSeq: binary.LittleEndian.Uint64(body[2:]),
		Count:    int(binary.LittleEndian.Uint16(body[10:])),
		b:        body,
		off:      12,
	}
	d.left = d.Count
	if d.FirstSeq == 0 || d.FirstSeq+uint64(d.Count) < d.FirstSeq {
		d.err = ErrMalformed
		return d.err
	}
	d.Seq = d.FirstSeq - 1
	return nil
}

// Next decodes the next message; false at the end or on error.
func (d *DataReader) Next() bool {
	if d.err != nil || d.left == 0 {
		if d.err == nil && d.off != len(d.b) {
			d.err = ErrMalformed // trailing bytes after the last message
		}
		return false
	}
	if d.off >= len(d.b) {
		d.err = ErrShort
		return false
	}
	flags := d.b[d.off]
	d.off++
	if flags&flagsReserved != 0 || (flags&(FlagFragFirst|FlagFragLast) != 0 && flags&FlagFrag == 0) {
		d.err = ErrMalformed
		return false
	}
	total := 0
	if flags&FlagFragFirst != 0 {
		t, n := binary.Uvarint(d.b[d.off:])
		if n <= 0 || t > 1<<40 {
			d.err = ErrMalformed
			return false
		}
		d.off += n
		total = int(t)
	}
	l, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 || l > uint64(len(d.b)-d.off-n) {
		d.err = ErrShort
		return false
	}
	d.off += n
	d.Payload = d.b[d.off : d.off+int(l) : d.off+int(l)]
	d.off += int(l)
	d.Flags, d.Total = flags, total
	d.Seq++
	d.left--
	return true
}

// Err reports why Next stopped early, or nil.
func (d *DataReader) Err() error { return d.err }

// ReadStatus decodes a status frame body into the two vectors, which must
// have room for the number of ranks the frame carries; it returns that
// number. A frame for more ranks than the vectors hold is malformed.
func ReadStatus(body []byte, contiguous, delivered []uint64) (int, error) {
	return readVectors(body, contiguous, delivered)
}

// ReadStable decodes a stable frame body into stable, which must have
// room for the number of origins the frame carries; it returns that
// number. A frame for more origins than stable holds is malformed.
func ReadStable(body []byte, stable []uint64) (int, error) {
	return readVectors(body, stable, nil)
}

// readVectors decodes a count n and then n entries of one uvarint (into
// a) or two (into a and b, when b is not nil), the whole body exactly.
func readVectors(body []byte, a, b []uint64) (int, error) {
	if len(body) < 2 {
		return 0, ErrShort
	}
	n := int(binary.LittleEndian.Uint16(body))
	if n > len(a) || b != nil && n > len(b) {
		return 0, ErrMalformed
	}
	off := 2
	for i := 0; i < n; i++ {
		v, k := binary.Uvarint(body[off:])
		if k <= 0 {
			return 0, ErrShort
		}
		off += k
		a[i] = v
		if b == nil {
			continue
		}
		if v, k = binary.Uvarint(body[off:]); k <= 0 {
			return 0, ErrShort
		}
		off += k
		b[i] = v
	}
	if off != len(body) {
		return 0, ErrMalformed
	}
	return n, nil
}

// NAKReader iterates the ranges of a NAK frame body.
type NAKReader struct {
	Origin uint16
	b      []byte
	off    int
	left   int
	err    error
	From   uint64
	Count  uint64
}

// Reset decodes the head of a NAK frame body.
func (r *NAKReader) Reset(body []byte) error {
	if len(body) < 4 {
		*r = NAKReader{err: ErrShort}
		return ErrShort
	}
	*r = NAKReader{
		Origin: binary.LittleEndian.Uint16(body),
		left:   int(binary.LittleEndian.Uint16(body[2:])),
		b:      body,
		off:    4,
	}
	return nil
}

// Next decodes the next range; false at the end or on error.
func (r *NAKReader) Next() bool {
	if r.err != nil || r.left == 0 {
		if r.err == nil && r.off != len(r.b) {
			r.err = ErrMalformed
		}
		return false
	}
	from, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.err = ErrShort
		return false
	}
	r.off += n
	count, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.err = ErrShort
		return false
	}
	r.off += n
	if from == 0 || count == 0 || from+count < from {
		r.err = ErrMalformed
		return false
	}
	r.From, r.Count = from, count
	r.left--
	return true
}

// Err reports why Next stopped early, or nil.
func (r *NAKReader) Err() error { return r.err }
