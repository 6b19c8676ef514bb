package wire

import (
	"encoding/binary"
)

// After the header a datagram holds one or more frames, each
//
//	kind 1 | length 2 | body (length bytes)
//
// so a reader can step over a frame without decoding it.
const FrameHeaderSize = 3

// Frame kinds.
const (
	// FrameData: a run of consecutive messages of one origin.
	//   origin 2 | firstSeq 8 | count 2 | count × message
	//   message: flags 1 | [total uvarint, if FlagFragFirst] | len uvarint | payload
	FrameData uint8 = 1
	// FrameStatus: the sender's reception state for every rank of the view.
	//   n 2 | n × (contiguous uvarint | delivered uvarint)
	// contiguous is the highest sequence number held with no gap below it;
	// delivered is the highest one handed to (and released by) the
	// application. The entry for the sender's own rank holds the highest
	// sequence number it has sent, in both fields.
	FrameStatus uint8 = 2
	// FrameNAK asks for retransmission of missing messages of origin.
	//   origin 2 | n 2 | n × (from uvarint | count uvarint)
	FrameNAK uint8 = 3
	// FrameReport: a status (same body as FrameStatus) sent to one member,
	// the owner of an origin whose safe messages the sender now holds,
	// which answers with FrameStable.
	FrameReport uint8 = 4
	// FrameStable: what the sender knows every member holds, per origin.
	//   n 2 | n × stable uvarint
	// stable is the highest sequence number of that origin that every
	// member of the view holds with no gap below it.
	FrameStable uint8 = 5
	// FrameStatusAsk: a FrameStatus whose sender waits on the others'
	// reports (a member's last status says less than this one's would):
	// every member answers with its status. Members of an idle group
	// send no heartbeats, so a lost report is sent again this way.
	FrameStatusAsk uint8 = 6
)

// DataHeadSize is the size of a data frame before its first message.
const DataHeadSize = FrameHeaderSize + 2 + 8 + 2

// Message flags (one byte per message).
const (
	OrderMask     uint8 = 0x03 // ordering: see Order* constants
	FlagSafe      uint8 = 0x04 // uniform delivery requested
	FlagFrag      uint8 = 0x08 // one fragment of a larger message
	FlagFragFirst uint8 = 0x10 // first fragment; carries the total size
	FlagFragLast  uint8 = 0x20 // last fragment
	flagsReserved uint8 = 0xC0
)

// Orderings as encoded in the low bits of the message flags.
const (
	OrderUnordered uint8 = 0
	OrderFIFO      uint8 = 1
	OrderCausal    uint8 = 2
	OrderTotal     uint8 = 3
)

// MaxRunCount is the largest number of messages in one data frame.
const MaxRunCount = 1<<16 - 1

// MessageSize is the encoded size of one message in a data frame.
func MessageSize(flags uint8, total int, payloadLen int) int {
	n := 1 + uvarintLen(uint64(payloadLen)) + payloadLen
	if flags&FlagFragFirst != 0 {
		n += uvarintLen(uint64(total))
	}
	return n
}

// PutDataHead writes the head of a data frame with count 0 at b and
// returns its size. Finish the frame with FinishFrame once its messages are
// written, and set the count with SetDataCount.
func PutDataHead(b []byte, origin uint16, firstSeq uint64) int {
	_ = b[DataHeadSize-1]
	b[0] = FrameData
	binary.LittleEndian.PutUint16(b[3:], origin)
	binary.LittleEndian.PutUint64(b[5:], firstSeq)
	binary.LittleEndian.PutUint16(b[13:], 0)
	return DataHeadSize
}

// SetDataCount sets the message count of the data frame starting at b.
func SetDataCount(b []byte, count int) {
	binary.LittleEndian.PutUint16(b[13:], uint16(count))
}

// PutMessage writes one message at b (which must hold MessageSize bytes)
// and returns the bytes written. total is the whole message's size and is
// written only for a first fragment.
func PutMessage(b []byte, flags uint8, total int, payload []byte) int {
	b[0] = flags
	n := 1
	if flags&FlagFragFirst != 0 {
		n += binary.PutUvarint(b[n:], uint64(total))
	}
	n += binary.PutUvarint(b[n:], uint64(len(payload)))
	n += copy(b[n:], payload)
	return n
}

// PutMessagePrefixed writes one message whose payload is prefix followed
// by payload (a causal message's timestamp, then the application's bytes)
// and returns its size, MessageSize(flags, total, len(prefix)+len(payload)).
func PutMessagePrefixed(b []byte, flags uint8, total int, prefix, payload []byte) int {
	b[0] = flags
	n := 1
	if flags&FlagFragFirst != 0 {
		n += binary.PutUvarint(b[n:], uint64(total))
	}
	n += binary.PutUvarint(b[n:], uint64(len(prefix)+len(payload)))
	n += copy(b[n:], prefix)
	n += copy(b[n:], payload)
	return n
}

// FinishFrame sets the length field of the frame that starts at b and
// ends at b[end].
func FinishFrame(b []byte, end int) {
	binary.LittleEndian.PutUint16(b[1:], uint16(end-FrameHeaderSize))
}

// StatusSize is the encoded size bound of a status frame for n ranks.
func StatusSize(n int) int { return FrameHeaderSize + 2 + n*2*binary.MaxVarintLen64 }

// PutStatus writes a status frame at b from the two vectors (equal length)
// and returns its size. b must hold StatusSize(len(contiguous)) bytes.
func PutStatus(b []byte, contiguous, delivered []uint64) int {
	return putStatus(b, FrameStatus, contiguous, delivered)
}

// PutStatusAsk is PutStatus for a FrameStatusAsk.
func PutStatusAsk(b []byte, contiguous, delivered []uint64) int {
	return putStatus(b, FrameStatusAsk, contiguous, delivered)
}

// PutReport is PutStatus for a FrameReport.
func PutReport(b []byte, contiguous, delivered []uint64) int {
	return putStatus(b, FrameReport, contiguous, delivered)
}

func putStatus(b []byte, kind uint8, contiguous, delivered []uint64) int {
	b[0] = kind
	binary.LittleEndian.PutUint16(b[3:], uint16(len(contiguous)))
	n := FrameHeaderSize + 2
	for i := range contiguous {
		n += binary.PutUvarint(b[n:], contiguous[i])
		n += binary.PutUvarint(b[n:], delivered[i])
	}
	FinishFrame(b, n)
	return n
}

// StableSize is the encoded size bound of a stable frame for n origins.
func StableSize(n int) int { return FrameHeaderSize + 2 + n*binary.MaxVarintLen64 }

// PutStable writes a stable frame at b and returns its size. b must hold
// StableSize(len(stable)) bytes.
func PutStable(b []byte, stable []uint64) int {
	b[0] = FrameStable
	binary.LittleEndian.PutUint16(b[3:], uint16(len(stable)))
	n := FrameHeaderSize + 2
	for _, v := range stable {
		n += binary.PutUvarint(b[n:], v)
	}
	FinishFrame(b, n)
	return n
}

// NAKRangeSize bounds the encoded size of one NAK range.
const NAKRangeSize = 2 * binary.MaxVarintLen64

// NAKHeadSize is the size of a NAK frame before its ranges.
const NAKHeadSize = FrameHeaderSize + 4

// PutNAKHead writes the head of a NAK frame for origin with zero ranges.
func PutNAKHead(b []byte, origin uint16) int {
	b[0] = FrameNAK
	binary.LittleEndian.PutUint16(b[3:], origin)
	binary.LittleEndian.PutUint16(b[5:], 0)
	return NAKHeadSize
}

// PutNAKRange appends one range at b and returns its size.
func PutNAKRange(b []byte, from, count uint64) int {
	n := binary.PutUvarint(b, from)
	return n + binary.PutUvarint(b[n:], count)
}

// SetNAKCount sets the range count of the NAK frame starting at b.
func SetNAKCount(b []byte, count int) {
	binary.LittleEndian.PutUint16(b[5:], uint16(count))
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
