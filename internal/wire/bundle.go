package wire

import "encoding/binary"

// A bundle is one datagram that carries several whole datagrams bound for
// the same process, each exactly as it would travel alone (header and
// frames; sealed, in keyed mode, on its own). Thousands of groups that
// each have a little to say in a round say it in a few bundles, not in a
// datagram each: fewer system calls and far fewer kernel buffers at the
// receiver (package batch builds them).
//
// Layout:
//
//	0  magic    2  0xC7 0x5B
//	2  version  1  Version
//	3  type     1  TypeBundle
//	4  entries: length (2, little-endian) | datagram (length bytes), each
//	   at least HeaderSize long and not itself a bundle, filling the rest
//	   of the bundle exactly
//
// The bundle itself carries no authority: nothing in it is trusted
// before each datagram inside passes the checks it would pass alone.
const TypeBundle uint8 = 5

// BundleHeaderSize is the bundle's own header; BundleEntryOverhead what
// each datagram inside adds to its length.
const (
	BundleHeaderSize    = 4
	BundleEntryOverhead = 2
)

// IsBundle reports whether b starts as a bundle of this version; it
// validates nothing else.
func IsBundle(b []byte) bool {
	return len(b) >= BundleHeaderSize && b[0] == magic0 && b[1] == magic1 && b[2] == Version && b[3] == TypeBundle
}

// AppendBundleHeader appends a bundle's header to b.
func AppendBundleHeader(b []byte) []byte {
	return append(b, magic0, magic1, Version, TypeBundle)
}

// AppendBundleEntry appends datagram d to the bundle b. len(d) must be
// at most 65535.
func AppendBundleEntry(b, d []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(d)))
	return append(b, d...)
}

// SplitBundle validates the whole bundle b and appends its datagrams
// (slices of b) to out. On any error it returns out as it was: a bundle
// is taken whole or not at all.
func SplitBundle(b []byte, out [][]byte) ([][]byte, error) {
	if !IsBundle(b) {
		return out, ErrMalformed
	}
	n := len(out)
	for rest := b[BundleHeaderSize:]; len(rest) > 0; {
		if len(rest) < BundleEntryOverhead {
			return out[:n], ErrShort
		}
		l := int(binary.LittleEndian.Uint16(rest))
		rest = rest[BundleEntryOverhead:]
		if l < HeaderSize || l > len(rest) {
			return out[:n], ErrMalformed
		}
		d := rest[:l:l]
		if d[0] != magic0 || d[1] != magic1 || d[3] == TypeBundle {
			return out[:n], ErrMalformed // no nesting: one level of work per datagram
		}
		out = append(out, d)
		rest = rest[l:]
	}
	if len(out) == n {
		return out, ErrMalformed // empty
	}
	return out, nil
}
