package wire

import (
	"bytes"
	"errors"
	"testing"
)

func bundleOf(ds ...[]byte) []byte {
	b := AppendBundleHeader(nil)
	for _, d := range ds {
		b = AppendBundleEntry(b, d)
	}
	return b
}

// A bundle gives back its datagrams intact and in order.
func TestBundleRoundTrip(t *testing.T) {
	a := buildDatagram(t)
	var c [HeaderSize]byte
	PutHeader(c[:], Header{Type: TypeLiveness, Sender: NoRank})
	b := bundleOf(a, c[:], a)
	if !IsBundle(b) {
		t.Fatal("not taken for a bundle")
	}
	got, err := SplitBundle(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{a, c[:], a}
	if len(got) != len(want) {
		t.Fatalf("%d datagrams, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("datagram %d differs", i)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { got, _ = SplitBundle(b, got[:0]) }); allocs != 0 {
		t.Errorf("%v allocations per split", allocs)
	}
}

// Anything but a well-formed bundle is refused whole: truncated, an entry
// shorter than a header or longer than the rest, a nested bundle,
// trailing bytes, no entry at all, a foreign entry.
func TestBundleRefused(t *testing.T) {
	a := buildDatagram(t)
	good := bundleOf(a, a)
	nested := bundleOf(a, bundleOf(a))
	foreign := bundleOf(a, make([]byte, HeaderSize))
	cases := map[string][]byte{
		"truncated":      good[:len(good)-1],
		"trailing byte":  append(bytes.Clone(good), 0),
		"short entry":    bundleOf(a[:HeaderSize-1]),
		"nested":         nested,
		"empty":          AppendBundleHeader(nil),
		"foreign entry":  foreign,
		"not a bundle":   a,
		"header only 3":  good[:3],
		"length too big": append(AppendBundleHeader(nil), 0xff, 0xff, 1, 2, 3),
	}
	for name, b := range cases {
		out, err := SplitBundle(b, make([][]byte, 1))
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if len(out) != 1 {
			t.Errorf("%s: %d datagrams handed out on error", name, len(out)-1)
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrShort) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func FuzzBundle(f *testing.F) {
	a := buildDatagram(f)
	f.Add(bundleOf(a, a))
	f.Add(AppendBundleHeader(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := SplitBundle(b, nil)
		if err != nil {
			if len(out) != 0 {
				t.Fatal("datagrams handed out with an error")
			}
			return
		}
		total := BundleHeaderSize
		for _, d := range out {
			if len(d) < HeaderSize || d[3] == TypeBundle {
				t.Fatalf("entry of %d bytes, type %d", len(d), d[3])
			}
			total += BundleEntryOverhead + len(d)
			decodeAll(d)
		}
		if total != len(b) {
			t.Fatalf("entries cover %d of %d bytes", total, len(b))
		}
	})
}
