package seal

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/cohort-vs/cohort/internal/wire"
)

var self = netip.MustParseAddrPort("127.0.0.1:7000")

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func plainDatagram(t testing.TB, payload int) []byte {
	b := make([]byte, wire.HeaderSize, wire.HeaderSize+payload)
	wire.PutHeader(b, wire.Header{Type: wire.TypeGroup, Sender: 1, Group: 7, Instance: 9, Epoch: 3})
	for i := 0; i < payload; i++ {
		b = append(b, byte(i))
	}
	return b
}

func mustRing(t testing.TB, primary []byte, others ...[]byte) *Keyring {
	r, err := NewKeyring(primary, others...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpen(t *testing.T) {
	ring := mustRing(t, testKey(1))
	s, o := NewSealer(ring), NewOpener(ring, self, nil)
	plain := plainDatagram(t, 100)
	k := ring.Primary()
	sealed, err := s.Seal(make([]byte, 0, len(plain)+Overhead), k, k.GroupID("g"), AddrTag(self), plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(plain)+Overhead {
		t.Fatalf("sealed %d bytes, want %d", len(sealed), len(plain)+Overhead)
	}
	if bytes.Contains(sealed, plain[wire.HeaderSize+10:wire.HeaderSize+40]) {
		t.Fatal("the frames travel in the clear")
	}
	got, gk, err := o.Open(bytes.Clone(sealed), nil)
	if err != nil {
		t.Fatal(err)
	}
	if gk != k || wire.GroupIDOf(got) != k.GroupID("g") {
		t.Fatalf("opened with key %v, group %x", gk, wire.GroupIDOf(got))
	}
	wire.SetGroupID(got, 7)
	if !bytes.Equal(got, plain) {
		t.Fatalf("opened %x, want %x", got, plain)
	}
	if _, _, err := o.Open(bytes.Clone(sealed), nil); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v, want ErrReplay", err)
	}
}

// Every single-bit flip, every truncation, and an unsealed datagram are
// refused; none is taken.
func TestOpenRefusesDamage(t *testing.T) {
	ring := mustRing(t, testKey(1))
	s := NewSealer(ring)
	k := ring.Primary()
	sealed, _ := s.Seal(nil, k, k.GroupID("g"), AddrTag(self), plainDatagram(t, 60))
	for i := 0; i < len(sealed)*8; i++ {
		o := NewOpener(ring, self, nil)
		b := bytes.Clone(sealed)
		b[i/8] ^= 1 << (i % 8)
		if _, _, err := o.Open(b, nil); err == nil {
			t.Fatalf("bit %d flipped: opened", i)
		}
	}
	for n := 0; n < len(sealed); n++ {
		if _, _, err := NewOpener(ring, self, nil).Open(bytes.Clone(sealed[:n]), nil); err == nil {
			t.Fatalf("truncated to %d bytes: opened", n)
		}
	}
	if _, _, err := NewOpener(ring, self, nil).Open(plainDatagram(t, 60), nil); !errors.Is(err, ErrUnsealed) {
		t.Fatalf("plain datagram: %v, want ErrUnsealed", err)
	}
	other := mustRing(t, testKey(2))
	if _, _, err := NewOpener(other, self, nil).Open(bytes.Clone(sealed), nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("another deployment's key: %v, want ErrUnknownKey", err)
	}
}

// Datagrams reordered within the window are taken once each; older ones
// are refused.
func TestReplayWindow(t *testing.T) {
	ring := mustRing(t, testKey(1))
	s, o := NewSealer(ring), NewOpener(ring, self, nil)
	k := ring.Primary()
	var all [][]byte
	for i := 0; i < 3*WindowSize; i++ {
		b, _ := s.Seal(nil, k, 1, AddrTag(self), plainDatagram(t, 8))
		all = append(all, b)
	}
	// Deliver 0..WindowSize+100 with each pair swapped, then replay.
	n := WindowSize + 100
	for i := 0; i+1 < n; i += 2 {
		for _, j := range []int{i + 1, i} {
			if _, _, err := o.Open(bytes.Clone(all[j]), nil); err != nil {
				t.Fatalf("datagram %d reordered: %v", j, err)
			}
		}
	}
	for j := 0; j < n; j++ {
		if _, _, err := o.Open(bytes.Clone(all[j]), nil); !errors.Is(err, ErrReplay) {
			t.Fatalf("datagram %d replayed: %v", j, err)
		}
	}
	// Skip ahead two windows: everything skipped is too old now.
	last := len(all) - 1
	if _, _, err := o.Open(bytes.Clone(all[last]), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Open(bytes.Clone(all[n]), nil); !errors.Is(err, ErrReplay) {
		t.Fatalf("datagram a window behind: %v, want refused", err)
	}
	if _, _, err := o.Open(bytes.Clone(all[last-10]), nil); err != nil {
		t.Fatalf("datagram within the window: %v", err)
	}
}

// Rotation: install the new key, use it, remove the old one; datagrams
// sealed under a removed key are refused, under an installed one taken.
func TestRotation(t *testing.T) {
	old, next := testKey(1), testKey(2)
	a, b := mustRing(t, old), mustRing(t, old)
	sa, ob := NewSealer(a), NewOpener(b, self, nil)
	send := func() error {
		k := a.Primary()
		d, err := sa.Seal(nil, k, k.GroupID("g"), AddrTag(self), plainDatagram(t, 16))
		if err != nil {
			return err
		}
		_, _, err = ob.Open(d, nil)
		return err
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"install at b", func() error { return b.Install(next) }},
		{"install at a", func() error { return a.Install(next) }},
		{"use at a", func() error { return a.Use(next) }},
		{"use at b", func() error { return b.Use(next) }},
		{"remove at a", func() error { return a.Remove(old) }},
		{"remove at b", func() error { return b.Remove(old) }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if err := send(); err != nil {
			t.Fatalf("after %s: %v", st.what, err)
		}
	}
	if err := b.Remove(next); !errors.Is(err, ErrKeyPrimary) {
		t.Fatalf("removing the primary: %v", err)
	}
	if err := b.Use(old); !errors.Is(err, ErrKeyUnknown) {
		t.Fatalf("using a removed key: %v", err)
	}
	// a seals under the old key again: b refuses it.
	stale := mustRing(t, old)
	d, _ := NewSealer(stale).Seal(nil, stale.Primary(), 1, AddrTag(self), plainDatagram(t, 16))
	if _, _, err := ob.Open(d, nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a removed key's datagram: %v, want ErrUnknownKey", err)
	}
	if got := b.Keys(); len(got) != 1 || !bytes.Equal(got[0], next) {
		t.Fatalf("keys left: %x", got)
	}
}

// A datagram sealed for one addressee is refused by another, unless the
// engine lets it through (a first contact); a multicast (addressee 0) is
// taken by any; an engine refuses its own datagrams.
func TestAddressee(t *testing.T) {
	ring := mustRing(t, testKey(1))
	s := NewSealer(ring)
	k := ring.Primary()
	other := netip.MustParseAddrPort("127.0.0.1:7001")
	d, _ := s.Seal(nil, k, 1, AddrTag(other), plainDatagram(t, 8))
	if _, _, err := NewOpener(ring, self, nil).Open(bytes.Clone(d), nil); !errors.Is(err, ErrMisdirected) {
		t.Fatalf("sealed for another: %v, want ErrMisdirected", err)
	}
	if _, _, err := NewOpener(ring, self, nil).Open(bytes.Clone(d), func([]byte) bool { return true }); err != nil {
		t.Fatalf("a first contact let through: %v", err)
	}
	if _, _, err := NewOpener(ring, other, nil).Open(bytes.Clone(d), nil); err != nil {
		t.Fatalf("its addressee: %v", err)
	}
	m, _ := s.Seal(nil, k, 1, 0, plainDatagram(t, 8))
	if _, _, err := NewOpener(ring, self, nil).Open(bytes.Clone(m), nil); err != nil {
		t.Fatalf("a multicast: %v", err)
	}
	if _, _, err := NewOpener(ring, self, s).Open(bytes.Clone(m), nil); !errors.Is(err, ErrReplay) {
		t.Fatalf("its own datagram: %v, want ErrReplay", err)
	}
}

func TestGroupIDDependsOnKey(t *testing.T) {
	a, b := mustRing(t, testKey(1)).Primary(), mustRing(t, testKey(2)).Primary()
	if a.GroupID("g") == b.GroupID("g") || a.GroupID("g") == a.GroupID("h") || a.GroupID("g") == wire.GroupID("g") {
		t.Fatal("group ids do not depend on both the name and the key")
	}
}

func TestParseKey(t *testing.T) {
	if _, err := ParseKey("not base64!"); err == nil {
		t.Fatal("took bad base64")
	}
	if _, err := ParseKey("AAAA"); err == nil {
		t.Fatal("took a 3-byte key")
	}
	k, err := ParseKey(" AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n")
	if err != nil || !bytes.Equal(k, testKey(1)) {
		t.Fatalf("ParseKey: %x, %v", k, err)
	}
	if _, err := NewKeyring(make([]byte, 16)); err == nil {
		t.Fatal("took an AES-128 key")
	}
}

// The opener keeps at most MaxSenders windows.
func TestOpenerBounded(t *testing.T) {
	ring := mustRing(t, testKey(1))
	o := NewOpener(ring, self, nil)
	for i := 0; i < MaxSenders+50; i++ {
		d, _ := NewSealer(ring).Seal(nil, ring.Primary(), 1, AddrTag(self), plainDatagram(t, 4))
		if _, _, err := o.Open(d, nil); err != nil {
			t.Fatal(err)
		}
	}
	if o.Senders() != MaxSenders {
		t.Fatalf("%d senders remembered, bound %d", o.Senders(), MaxSenders)
	}
}

func FuzzOpen(f *testing.F) {
	ring := mustRing(f, testKey(1))
	s := NewSealer(ring)
	d, _ := s.Seal(nil, ring.Primary(), 1, AddrTag(self), plainDatagram(f, 40))
	f.Add(d)
	f.Add(plainDatagram(f, 10))
	o := NewOpener(ring, self, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, _, err := o.Open(b, nil); err == nil && len(p) < wire.HeaderSize {
			t.Fatalf("opened %d bytes", len(p))
		}
	})
}

func benchSealOpen(b *testing.B, size int) {
	ring := mustRing(b, testKey(1))
	s, o := NewSealer(ring), NewOpener(ring, self, nil)
	k := ring.Primary()
	plain := plainDatagram(b, size-wire.HeaderSize)
	buf := make([]byte, 0, size+Overhead)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		d, err := s.Seal(buf, k, 1, AddrTag(self), plain)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := o.Open(d, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpen8K(b *testing.B)  { benchSealOpen(b, 8192) }
func BenchmarkSealOpen128(b *testing.B) { benchSealOpen(b, 128) }
