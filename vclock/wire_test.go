package vclock

import (
	"bytes"
	"slices"
	"testing"
)

func TestTimestampRoundTrip(t *testing.T) {
	tests := []struct {
		vt     []uint64
		sender int
		size   int
	}{
		{[]uint64{1}, 0, 1},
		{[]uint64{0, 0, 7}, 2, 1},
		{[]uint64{0, 5, 0, 0, 0, 0, 0, 0}, 0, 3},
		{[]uint64{3, 1, 2}, 1, 4},
		{[]uint64{300, 9, 1 << 20, 0}, 3, 1 + 2 + 1 + 3 + 1},
		{[]uint64{^uint64(0), 0}, 1, 1 + 10 + 1},
		{[]uint64{}, 0, 1},
	}
	for _, tc := range tests {
		b := AppendTimestamp([]byte{0xAA}, tc.vt, tc.sender)
		if b[0] != 0xAA {
			t.Fatal("AppendTimestamp overwrote its prefix")
		}
		b = b[1:]
		if len(b) != tc.size || TimestampSize(tc.vt, tc.sender) != tc.size {
			t.Errorf("%v sender %d: %d bytes (TimestampSize %d), want %d", tc.vt, tc.sender, len(b), TimestampSize(tc.vt, tc.sender), tc.size)
		}
		got := make([]uint64, len(tc.vt))
		for i := range got {
			got[i] = 99 // ReadTimestamp must overwrite every entry
		}
		n, err := ReadTimestamp(append(b, 1, 2, 3), got)
		if err != nil || n != len(b) {
			t.Fatalf("%v: ReadTimestamp = %d, %v; want %d, nil", tc.vt, n, err, len(b))
		}
		want := slices.Clone(tc.vt)
		if len(want) > 0 {
			want[tc.sender], got[tc.sender] = 0, 0
		}
		if !slices.Equal(got, want) {
			t.Errorf("decoded %v, want %v", got, want)
		}
	}
}

func TestReadTimestampErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		n    int
		want error
	}{
		{"empty", nil, 2, ErrTruncated},
		{"dense truncated", []byte{0, 1}, 2, ErrTruncated},
		{"sparse truncated pair", []byte{2, 0}, 2, ErrTruncated},
		{"sparse too many", []byte{4, 0, 1, 0, 1, 0, 1}, 2, ErrMalformed},
		{"sparse rank out of range", []byte{2, 2, 1}, 2, ErrMalformed},
		{"sparse rank past end after gap", []byte{3, 0, 1, 1, 1}, 2, ErrMalformed},
		{"sparse zero value", []byte{2, 0, 0}, 2, ErrMalformed},
		{"overlong varint", bytes.Repeat([]byte{0xff}, 11), 2, ErrMalformed},
		{"huge gap", []byte{2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1}, 2, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTimestamp(tc.b, make([]uint64, tc.n))
			if err != tc.want {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTimestampCodecAllocatesNothing(t *testing.T) {
	vt := []uint64{1000, 0, 3, 77, 0, 0, 5, 1 << 30}
	buf := make([]byte, 0, 64)
	out := make([]uint64, len(vt))
	allocs := testing.AllocsPerRun(1000, func() {
		b := AppendTimestamp(buf[:0], vt, 2)
		if _, err := ReadTimestamp(b, out); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations", allocs)
	}
}

// FuzzReadTimestamp feeds arbitrary bytes to the decoder: it must not
// panic, and what it accepts must survive a round trip.
func FuzzReadTimestamp(f *testing.F) {
	f.Add(uint8(3), []byte{0, 1, 2, 3})
	f.Add(uint8(3), []byte{2, 1, 5})
	f.Add(uint8(0), []byte{1})
	f.Add(uint8(16), []byte{3, 0, 1, 14, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, n uint8, b []byte) {
		vt := make([]uint64, int(n)%64)
		k, err := ReadTimestamp(b, vt)
		if err != nil {
			return
		}
		if k <= 0 || k > len(b) {
			t.Fatalf("read %d of %d bytes", k, len(b))
		}
		for sender := range vt {
			want := slices.Clone(vt)
			want[sender] = 0
			enc := AppendTimestamp(nil, vt, sender)
			if len(enc) != TimestampSize(vt, sender) {
				t.Fatalf("size %d, TimestampSize %d", len(enc), TimestampSize(vt, sender))
			}
			got := make([]uint64, len(vt))
			if m, err := ReadTimestamp(enc, got); err != nil || m != len(enc) {
				t.Fatalf("re-read: %d, %v", m, err)
			}
			got[sender] = 0
			if !slices.Equal(got, want) {
				t.Fatalf("round trip %v -> %v", want, got)
			}
		}
	})
}

// FuzzTimestampRoundTrip builds timestamps from fuzz input and checks that
// they decode to themselves, in the encoded number of bytes.
func FuzzTimestampRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint8(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}, uint8(15))
	f.Add(bytes.Repeat([]byte{0xff}, 40), uint8(2))
	f.Fuzz(func(t *testing.T, raw []byte, sender uint8) {
		// Each byte is an entry; its top bits scale it to wide values.
		vt := make([]uint64, len(raw))
		for i, c := range raw {
			vt[i] = uint64(c&0x3f) << (uint(c>>6) * 20)
		}
		s := 0
		if len(vt) > 0 {
			s = int(sender) % len(vt)
		}
		enc := AppendTimestamp(nil, vt, s)
		got := make([]uint64, len(vt))
		n, err := ReadTimestamp(enc, got)
		if err != nil || n != len(enc) {
			t.Fatalf("%v: read %d of %d, %v", vt, n, len(enc), err)
		}
		if len(vt) > 0 {
			vt[s], got[s] = 0, 0
		}
		if !slices.Equal(got, vt) {
			t.Fatalf("round trip %v -> %v", vt, got)
		}
	})
}
