// Package transfer moves one application state snapshot (an opaque byte
// string, already compressed) from a donor member to a joining member
// over datagrams. Sender and Receiver are deterministic state machines
// driven by ticks and by the messages they are handed; the engine carries
// their messages and calls them under its protocol lock.
//
// The protocol is a sliding window over byte offsets. The donor sends
// Chunk messages; the joiner answers with cumulative Acks carrying the
// next offset it wants and the highest offset it has room for (its
// receive buffer, consumed by the application's Restore). The donor keeps
// at most Window bytes beyond the last acknowledged offset in flight,
// resends the first missing chunk after three duplicate Acks, and goes
// back to the last acknowledged offset when no progress is made for a
// retransmission timeout. The joiner keeps chunks that arrive out of
// order within its buffer, so duplicated, reordered and lost datagrams
// cost only their retransmission.
package transfer

import (
	"encoding/binary"
	"errors"
)

// Message kinds.
const (
	KindChunk uint8 = 1 // donor -> joiner: Offset, Total, Flags, Data
	KindAck   uint8 = 2 // joiner -> donor: Next (cumulative), Limit
	KindDone  uint8 = 3 // joiner -> everyone: it finished restoring
)

// Chunk flags.
const (
	// FlagAbort: the donor could not produce the state (its Snapshot
	// failed); the joiner must give up.
	FlagAbort uint8 = 1
	// FlagNone: the donor keeps no state (it has no Snapshot); the joiner
	// starts empty. Only with FlagAbort.
	FlagNone uint8 = 2
)

// ChunkOverhead is the encoded size of a Chunk without its data.
const ChunkOverhead = 1 + 1 + 8 + 8 + 8

// Msg is one decoded transfer message. Data aliases the decoded buffer.
type Msg struct {
	Kind   uint8
	Flags  uint8
	ID     uint64 // transfer id: the epoch of the view the state is for
	Offset uint64 // Chunk: offset of Data; Ack: next offset wanted
	Total  uint64 // Chunk: size of the whole state; Ack: limit offset
	Data   []byte
}

// ErrMalformed is returned for any message that does not decode.
var ErrMalformed = errors.New("transfer: malformed message")

// AppendChunk appends an encoded Chunk to b.
func AppendChunk(b []byte, id, off, total uint64, flags uint8, data []byte) []byte {
	b = append(b, KindChunk, flags)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.LittleEndian.AppendUint64(b, off)
	b = binary.LittleEndian.AppendUint64(b, total)
	return append(b, data...)
}

// AppendAck appends an encoded Ack to b.
func AppendAck(b []byte, id, next, limit uint64) []byte {
	b = append(b, KindAck, 0)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.LittleEndian.AppendUint64(b, next)
	return binary.LittleEndian.AppendUint64(b, limit)
}

// AppendDone appends an encoded Done to b.
func AppendDone(b []byte, id uint64) []byte {
	b = append(b, KindDone, 0)
	return binary.LittleEndian.AppendUint64(b, id)
}

// Parse decodes one message. It never panics on hostile input.
func Parse(b []byte) (Msg, error) {
	if len(b) < 10 {
		return Msg{}, ErrMalformed
	}
	m := Msg{Kind: b[0], Flags: b[1], ID: binary.LittleEndian.Uint64(b[2:])}
	switch m.Kind {
	case KindChunk:
		if len(b) < ChunkOverhead || m.Flags&^(FlagAbort|FlagNone) != 0 || m.Flags == FlagNone {
			return Msg{}, ErrMalformed
		}
		m.Offset = binary.LittleEndian.Uint64(b[10:])
		m.Total = binary.LittleEndian.Uint64(b[18:])
		m.Data = b[ChunkOverhead:]
		if m.Offset > m.Total || uint64(len(m.Data)) > m.Total-m.Offset {
			return Msg{}, ErrMalformed
		}
	case KindAck:
		if len(b) != 26 || m.Flags != 0 {
			return Msg{}, ErrMalformed
		}
		m.Offset = binary.LittleEndian.Uint64(b[10:])
		m.Total = binary.LittleEndian.Uint64(b[18:])
	case KindDone:
		if len(b) != 10 || m.Flags != 0 {
			return Msg{}, ErrMalformed
		}
	default:
		return Msg{}, ErrMalformed
	}
	return m, nil
}
