package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// buildDatagram encodes a header, one data frame, one status frame and one
// NAK frame, the mix a busy member sends.
func buildDatagram(t testing.TB) []byte {
	b := make([]byte, 2048)
	PutHeader(b, Header{Type: TypeGroup, Sender: 2, Group: GroupID("g"), Epoch: 7})
	off := HeaderSize
	start := off
	off += PutDataHead(b[off:], 1, 10)
	msgs := []struct {
		flags   uint8
		total   int
		payload string
	}{
		{OrderFIFO, 0, "hello"},
		{OrderUnordered | FlagSafe, 0, ""},
		{OrderFIFO | FlagFrag | FlagFragFirst, 9, "abcd"},
	}
	for _, m := range msgs {
		off += PutMessage(b[off:], m.flags, m.total, []byte(m.payload))
	}
	SetDataCount(b[start:], len(msgs))
	FinishFrame(b[start:], off-start)
	off += PutStatus(b[off:], []uint64{1, 2, 300}, []uint64{1, 1, 1 << 40})
	start = off
	off += PutNAKHead(b[off:], 1)
	off += PutNAKRange(b[off:], 5, 2)
	off += PutNAKRange(b[off:], 100, 1000)
	SetNAKCount(b[start:], 2)
	FinishFrame(b[start:], off-start)
	return b[:off]
}

func TestRoundTrip(t *testing.T) {
	d := buildDatagram(t)
	h, err := ParseHeader(d)
	if err != nil {
		t.Fatal(err)
	}
	if h.Sender != 2 || h.Epoch != 7 || h.Group != GroupID("g") {
		t.Fatalf("header %+v", h)
	}
	var r FrameReader
	r.Reset(d[HeaderSize:])
	var kinds []uint8
	for r.Next() {
		kinds = append(kinds, r.Kind)
		switch r.Kind {
		case FrameData:
			var dr DataReader
			if err := dr.Reset(r.Body); err != nil {
				t.Fatal(err)
			}
			var got []string
			for dr.Next() {
				got = append(got, string(dr.Payload))
				if dr.Seq == 12 && (dr.Total != 9 || dr.Flags&FlagFragFirst == 0) {
					t.Fatalf("fragment fields: total %d flags %x", dr.Total, dr.Flags)
				}
			}
			if dr.Err() != nil || dr.Origin != 1 || dr.FirstSeq != 10 || len(got) != 3 || got[0] != "hello" || got[2] != "abcd" {
				t.Fatalf("data: %v %v %+v", dr.Err(), got, dr)
			}
		case FrameStatus:
			c, dl := make([]uint64, 4), make([]uint64, 4)
			n, err := ReadStatus(r.Body, c, dl)
			if err != nil || n != 3 || c[2] != 300 || dl[2] != 1<<40 {
				t.Fatalf("status %d %v %v %v", n, err, c, dl)
			}
		case FrameNAK:
			var nr NAKReader
			nr.Reset(r.Body)
			var sum uint64
			for nr.Next() {
				sum += nr.From * nr.Count
			}
			if nr.Err() != nil || sum != 5*2+100*1000 {
				t.Fatalf("nak %v %d", nr.Err(), sum)
			}
		}
	}
	if r.Err() != nil || !bytes.Equal(kinds, []byte{FrameData, FrameStatus, FrameNAK}) {
		t.Fatalf("frames %v err %v", kinds, r.Err())
	}
}

func TestHeaderRejects(t *testing.T) {
	good := buildDatagram(t)
	cases := []struct {
		name string
		edit func([]byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:HeaderSize-1] }, ErrShort},
		{"magic", func(b []byte) []byte { b[0] = 'x'; return b }, ErrMagic},
		{"version", func(b []byte) []byte { b[2] = 9; return b }, ErrVersion},
		{"auth", func(b []byte) []byte { b[5] = 1; return b }, ErrAuth},
		{"type", func(b []byte) []byte { b[3] = 42; return b }, ErrMalformed},
	}
	for _, c := range cases {
		b := c.edit(append([]byte(nil), good...))
		if _, err := ParseHeader(b); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v want %v", c.name, err, c.want)
		}
	}
}

// Every truncation of a valid datagram must decode to an error or to a
// prefix of the frames, never panic or read past the end.
func TestTruncations(t *testing.T) {
	good := buildDatagram(t)
	for n := 0; n < len(good); n++ {
		decodeAll(good[:n])
	}
}

// decodeAll runs every decoder over b the way a receiver would and reports
// whether the datagram was accepted whole.
func decodeAll(b []byte) bool {
	if _, err := ParseHeader(b); err != nil {
		return false
	}
	var r FrameReader
	r.Reset(b[HeaderSize:])
	ok := true
	c, d := make([]uint64, 8), make([]uint64, 8)
	for r.Next() {
		switch r.Kind {
		case FrameData:
			var dr DataReader
			if dr.Reset(r.Body) != nil {
				return false
			}
			for dr.Next() {
				_ = dr.Payload
			}
			ok = ok && dr.Err() == nil
		case FrameStatus:
			_, err := ReadStatus(r.Body, c, d)
			ok = ok && err == nil
		case FrameNAK:
			var nr NAKReader
			if nr.Reset(r.Body) != nil {
				return false
			}
			for nr.Next() {
			}
			ok = ok && nr.Err() == nil
		}
	}
	return ok && r.Err() == nil
}

func FuzzDatagram(f *testing.F) {
	f.Add(buildDatagram(f))
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeAll(b)
	})
}

func FuzzDataFrame(f *testing.F) {
	d := buildDatagram(f)
	f.Add(d[HeaderSize+FrameHeaderSize:])
	f.Fuzz(func(t *testing.T, body []byte) {
		var dr DataReader
		if dr.Reset(body) != nil {
			return
		}
		n := 0
		for dr.Next() {
			if len(dr.Payload) > len(body) {
				t.Fatal("payload longer than frame")
			}
			n++
		}
		if dr.Err() == nil && n != dr.Count {
			t.Fatalf("accepted %d of %d messages", n, dr.Count)
		}
	})
}

func FuzzStatusAndNAK(f *testing.F) {
	f.Add([]byte{2, 0, 1, 1, 5, 5})
	f.Add([]byte{3, 0, 1, 0x80, 1, 7})
	f.Add([]byte{1, 0, 1, 0, 5, 2})
	f.Fuzz(func(t *testing.T, body []byte) {
		c, d := make([]uint64, 16), make([]uint64, 16)
		ReadStatus(body, c, d)
		if n, err := ReadStable(body, c); err == nil {
			b := make([]byte, StableSize(n))
			m := PutStable(b, c[:n])
			again := make([]uint64, 16)
			if k, err := ReadStable(b[FrameHeaderSize:m], again); err != nil || k != n || !slices.Equal(again[:n], c[:n]) {
				t.Fatalf("stable %v does not round-trip: %v %v", c[:n], again[:k], err)
			}
		}
		var nr NAKReader
		if nr.Reset(body) == nil {
			for nr.Next() {
				if nr.From == 0 || nr.Count == 0 {
					t.Fatal("accepted an empty or zero range")
				}
			}
		}
	})
}

func TestMessageSize(t *testing.T) {
	b := make([]byte, 1<<16)
	for _, n := range []int{0, 1, 127, 128, 300, 16383, 16384, 40000} {
		for _, fl := range []uint8{OrderFIFO, OrderFIFO | FlagFrag | FlagFragFirst} {
			p := make([]byte, n)
			if got, want := PutMessage(b, fl, 1<<20, p), MessageSize(fl, 1<<20, n); got != want {
				t.Fatalf("size %d flags %x: wrote %d, MessageSize %d", n, fl, got, want)
			}
		}
	}
}

func TestControlRoundTrip(t *testing.T) {
	m := func(s string, inc uint64) MemberID {
		return MemberID{Addr: netip.MustParseAddrPort(s), Incarnation: inc}
	}
	c := &Control{
		Kind: CtlPropose, From: m("127.0.0.1:7000", 3), Epoch: 9, Ballot: Ballot{Round: 4, Rank: 1},
		Target: m("[::1]:9", 1<<40), Nonce: 77, Installed: true, Report: []uint64{1, 2, 3},
		Proposal: &Proposal{Ballot: Ballot{Round: 4, Rank: 1}, Epoch: 10,
			Members: []MemberID{m("10.0.0.1:1", 1), m("10.0.0.2:2", 2)}, Cut: []uint64{5, 0, 7}, Holders: []uint16{0, 1, 0},
			Evicted: []MemberID{m("10.0.0.3:3", 5)}, Left: []MemberID{m("10.0.0.4:4", 6), m("10.0.0.5:5", 7)}},
	}
	b := AppendControl(make([]byte, 0, 512), Header{Sender: 1, Group: 5, Epoch: 9}, c)
	h, err := ParseHeader(b)
	if err != nil || h.Type != TypeControl {
		t.Fatal(h, err)
	}
	got, err := ParseControl(b[HeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("got %+v\nwant %+v", got, c)
	}
	for n := HeaderSize; n < len(b); n++ {
		if _, err := ParseControl(b[HeaderSize:n]); err == nil {
			t.Fatalf("truncation at %d accepted", n)
		}
	}
	if !(Ballot{1, 5}).Less(Ballot{2, 0}) || !(Ballot{2, 0}).Less(Ballot{2, 1}) || (Ballot{2, 1}).Less(Ballot{2, 1}) {
		t.Fatal("ballot order")
	}
}

func FuzzControl(f *testing.F) {
	c := &Control{Kind: CtlPromise, Report: []uint64{1, 2}, Proposal: &Proposal{Members: []MemberID{{}}, Cut: []uint64{1}, Holders: []uint16{1}}}
	f.Add(AppendControl(make([]byte, 0, 256), Header{}, c)[HeaderSize:])
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseControl(body)
		if err != nil {
			return
		}
		// What decodes must survive a round trip unchanged.
		again, err := ParseControl(AppendControl(nil, Header{}, c)[HeaderSize:])
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, c, again)
		}
	})
}
