package sequencer

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSequencerTable(t *testing.T) {
	type obs struct {
		sender int
		upTo   uint64
	}
	tests := []struct {
		name string
		obs  []obs
		want []Record
	}{
		{"empty", nil, nil},
		{"one", []obs{{0, 3}}, []Record{{1, 0, 1, 3}}},
		{"coalesce", []obs{{1, 2}, {1, 5}, {1, 6}}, []Record{{1, 1, 1, 6}}},
		{"stale ignored", []obs{{1, 5}, {1, 3}, {1, 5}}, []Record{{1, 1, 1, 5}}},
		{"interleave", []obs{{0, 2}, {1, 1}, {0, 4}}, []Record{{1, 0, 1, 2}, {3, 1, 1, 1}, {4, 0, 3, 2}}},
		{"bad sender", []obs{{-1, 2}, {3, 2}, {2, 1}}, []Record{{1, 2, 1, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSequencer(3, 8)
			for _, o := range tc.obs {
				if !s.Observe(o.sender, o.upTo) {
					t.Fatal("full")
				}
			}
			if got := s.Records(); !slices.Equal(got, tc.want) && len(got)+len(tc.want) > 0 {
				t.Fatalf("got %+v want %+v", got, tc.want)
			}
		})
	}
}

func TestSequencerFullAndAdvance(t *testing.T) {
	s := NewSequencer(2, 2)
	if !s.Observe(0, 1) || !s.Observe(1, 1) {
		t.Fatal("full too early")
	}
	if s.Observe(0, 2) {
		t.Fatal("want full")
	}
	if s.Ordered(0) != 1 || s.NextGlobal() != 3 {
		t.Fatal("full observation changed state")
	}
	s.Advance(1)
	if !s.Observe(0, 2) {
		t.Fatal("room after Advance")
	}
	want := []Record{{2, 1, 1, 1}, {3, 0, 2, 1}}
	if got := s.Records(); !slices.Equal(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
	s.Advance(5)
	if len(s.Records()) != 0 {
		t.Fatal("not drained")
	}
}

// TestSequencerNoCoalesceAfterDrain: a drained record never changes.
func TestSequencerNoCoalesceAfterDrain(t *testing.T) {
	s := NewSequencer(1, 4)
	s.Observe(0, 2)
	s.Advance(len(s.Records()))
	s.Observe(0, 4)
	if got, want := s.Records(), []Record{{3, 0, 3, 2}}; !slices.Equal(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
}

func TestOrdererTable(t *testing.T) {
	o := NewOrderer(2, 4)
	o.Available(0, 2)
	if _, _, _, ok := o.Next(); ok {
		t.Fatal("delivered without record")
	}
	// Out of order: the second record first.
	if n := o.AddRecords([]Record{{3, 1, 1, 1}}); n != 1 {
		t.Fatal(n)
	}
	if _, _, _, ok := o.Next(); ok {
		t.Fatal("delivered past a missing record")
	}
	o.AddRecords([]Record{{1, 0, 1, 2}, {1, 0, 1, 2}, {1, 0, 1, 3}, {2, 1, 1, 1}, {0, 0, 1, 1}, {5, 7, 1, 1}})
	st := o.Stats()
	if st.Duplicate != 1 || st.Conflict != 2 || st.Invalid != 2 {
		t.Fatalf("stats %+v", st)
	}
	for g := uint64(1); g <= 2; g++ {
		s, q, gg, ok := o.Next()
		if !ok || s != 0 || q != g || gg != g {
			t.Fatalf("got %d %d %d %v", s, q, gg, ok)
		}
	}
	if _, _, _, ok := o.Next(); ok {
		t.Fatal("delivered without data")
	}
	o.Available(1, 1)
	if s, q, g, ok := o.Next(); !ok || s != 1 || q != 1 || g != 3 {
		t.Fatalf("got %d %d %d %v", s, q, g, ok)
	}
	if o.Room() != 4-2 {
		t.Fatalf("room %d with 2 records held", o.Room())
	}
	o.Release(4)
	if o.Room() != 4 {
		t.Fatalf("room %d after release", o.Room())
	}
	o.AddRecords([]Record{{1, 0, 1, 2}})
	if o.Stats().Duplicate != 2 {
		t.Fatal("released record not a duplicate")
	}
}

func TestOrdererFull(t *testing.T) {
	o := NewOrderer(1, 2)
	if o.AddRecords([]Record{{1, 0, 1, 1}, {2, 0, 2, 1}, {3, 0, 3, 1}}) != 2 || !o.Full() || o.Stats().Full != 1 {
		t.Fatal("capacity not enforced")
	}
	o.Available(0, 3)
	o.Next()
	o.Next()
	o.Release(3)
	if o.Full() || o.AddRecords([]Record{{3, 0, 3, 1}}) != 1 {
		t.Fatal("no room after release")
	}
	if _, q, _, ok := o.Next(); !ok || q != 3 {
		t.Fatal("third not delivered")
	}
}

func TestOrdererRefusesFIFOBreak(t *testing.T) {
	o := NewOrderer(1, 4)
	o.Available(0, 10)
	o.AddRecords([]Record{{1, 0, 2, 1}}) // skips seq 1
	if _, _, _, ok := o.Next(); ok || o.Stats().Gap == 0 {
		t.Fatal("delivered out of FIFO order")
	}
}

type delivery struct {
	sender int
	seq    uint64
}

// TestRandomized runs n members: each sends total-order messages; the
// sequencer (member 0) observes what it has received in random order;
// records (encoded in batches) and data reach every member in random
// order with duplicates. Every member must deliver the same sequence,
// FIFO per sender, with no message missing.
func TestRandomized(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := 2 + rng.IntN(5)
		perSender := 50 + rng.IntN(300)
		seq := NewSequencer(n, 4+rng.IntN(8))
		ords := make([]*Orderer, n)
		for i := range ords {
			ords[i] = NewOrderer(n, 1024)
		}
		type batch struct {
			to  int
			buf []byte
		}
		type data struct {
			to, sender int
			upTo       uint64
		}
		var batches []batch
		var datas []data
		seqAvail := make([]uint64, n)
		got := make([][]delivery, n)
		drain := func() {
			for {
				recs := seq.Records()
				if len(recs) == 0 {
					return
				}
				k := 1 + rng.IntN(len(recs))
				b := AppendRecords(nil, recs[0].Global, recs[:k])
				for to := range n {
					for range 1 + rng.IntN(2) {
						batches = append(batches, batch{to, b})
					}
				}
				seq.Advance(k)
			}
		}
		for step := 0; ; step++ {
			progress := false
			// Senders send a little; data reaches the sequencer and members.
			s := rng.IntN(n)
			if seqAvail[s] < uint64(perSender) {
				up := min(uint64(perSender), seqAvail[s]+uint64(1+rng.IntN(5)))
				seqAvail[s] = up
				if !seq.Observe(s, up) {
					drain()
					seq.Observe(s, up)
				}
				for to := range n {
					datas = append(datas, data{to, s, up})
				}
				progress = true
			}
			if rng.IntN(3) == 0 {
				drain()
			}
			// Deliver a random pending item.
			for range 3 {
				if len(batches) > 0 && rng.IntN(2) == 0 {
					i := rng.IntN(len(batches))
					bt := batches[i]
					batches[i] = batches[len(batches)-1]
					batches = batches[:len(batches)-1]
					recs, _, err := DecodeRecords(nil, bt.buf)
					if err != nil {
						t.Fatal(err)
					}
					ords[bt.to].AddRecords(recs)
					progress = true
				} else if len(datas) > 0 {
					i := rng.IntN(len(datas))
					d := datas[i]
					datas[i] = datas[len(datas)-1]
					datas = datas[:len(datas)-1]
					ords[d.to].Available(d.sender, d.upTo)
					progress = true
				}
			}
			for m, o := range ords {
				for {
					s, q, g, ok := o.Next()
					if !ok {
						break
					}
					if g != uint64(len(got[m])+1) {
						t.Fatalf("seed %d member %d: global %d at position %d", seed, m, g, len(got[m]))
					}
					got[m] = append(got[m], delivery{s, q})
				}
			}
			if !progress {
				drain()
				if len(batches) == 0 && len(datas) == 0 {
					break
				}
			}
		}
		total := n * perSender
		for m := range n {
			if len(got[m]) != total {
				t.Fatalf("seed %d member %d delivered %d of %d", seed, m, len(got[m]), total)
			}
			if !slices.Equal(got[m], got[0]) {
				t.Fatalf("seed %d: member %d order differs", seed, m)
			}
			if st := ords[m].Stats(); st.Conflict+st.Invalid+st.Gap+st.Full != 0 {
				t.Fatalf("seed %d member %d stats %+v", seed, m, st)
			}
		}
		last := make([]uint64, n)
		for _, d := range got[0] {
			if d.seq != last[d.sender]+1 {
				t.Fatalf("seed %d: FIFO broken for %d at %d", seed, d.sender, d.seq)
			}
			last[d.sender] = d.seq
		}
	}
}

// TestCausal: a member that sends only after delivering sees its message
// ordered after everything it delivered.
func TestCausal(t *testing.T) {
	seq := NewSequencer(2, 16)
	o := NewOrderer(2, 16)
	seq.Observe(0, 3)
	o.AddRecords(seq.Records())
	seq.Advance(len(seq.Records()))
	o.Available(0, 3)
	var lastG uint64
	for {
		_, _, g, ok := o.Next()
		if !ok {
			break
		}
		lastG = g
	}
	// Member 1 sends now; the sequencer observes it after.
	seq.Observe(1, 1)
	if r := seq.Records()[0]; r.Global <= lastG {
		t.Fatalf("reply ordered at %d, before delivered %d", r.Global, lastG)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	recs := []Record{{10, 0, 1, 5}, {15, 65535, 1 << 40, 1}, {16, 2, 7, 300}}
	b := AppendRecords([]byte{0xAA}, 10, recs)
	got, n, err := DecodeRecords(nil, b[1:])
	if err != nil || n != len(b)-1 || !slices.Equal(got, recs) {
		t.Fatalf("got %+v %d %v", got, n, err)
	}
	if len(b)-1 > 2+3*len(recs)+8 {
		t.Logf("size %d", len(b)-1)
	}
	for _, bad := range [][]byte{
		nil, {0}, {1}, {1, 1}, {1, 1, 0, 1, 0}, {1, 1, 0, 0, 1}, {1, 5, 0, 1, 1},
		AppendRecords(nil, 1, []Record{{Sender: MaxSenders, First: 1, Count: 1}}),
		AppendRecords(nil, ^uint64(0), []Record{{First: 1, Count: 2}}),
	} {
		if _, _, err := DecodeRecords(nil, bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: err %v", bad, err)
		}
	}
}

func FuzzDecodeRecords(f *testing.F) {
	f.Add(AppendRecords(nil, 1, []Record{{Sender: 1, First: 1, Count: 3}, {Sender: 0, First: 1, Count: 1}}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, n, err := DecodeRecords(nil, b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatal("read past end")
		}
		for i, r := range recs {
			if !r.valid(MaxSenders) || (i > 0 && r.Global != recs[i-1].End()) {
				t.Fatalf("bad record %+v", r)
			}
		}
		g := uint64(1)
		if len(recs) > 0 {
			g = recs[0].Global
		}
		again, _, err := DecodeRecords(nil, AppendRecords(nil, g, recs))
		if err != nil || !slices.Equal(again, recs) {
			t.Fatalf("round trip: %v", err)
		}
		// Whatever decodes, an Orderer takes without panicking.
		o := NewOrderer(4, 8)
		o.AddRecords(recs)
		o.Available(0, 100)
		for range 200 {
			if _, _, _, ok := o.Next(); !ok {
				break
			}
		}
	})
}
