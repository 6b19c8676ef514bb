package sequencer

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMergeTable(t *testing.T) {
	tests := []struct {
		name  string
		known [][]Record
		want  []Record
		err   bool
	}{
		{"empty", nil, nil, false},
		{"duplicates", [][]Record{{{1, 0, 1, 2}}, {{1, 0, 1, 2}, {3, 1, 1, 1}}}, []Record{{1, 0, 1, 2}, {3, 1, 1, 1}}, false},
		{"overlap joins", [][]Record{{{1, 0, 1, 2}}, {{2, 0, 2, 3}}}, []Record{{1, 0, 1, 4}}, false},
		{"gap kept", [][]Record{{{1, 0, 1, 2}}, {{5, 1, 1, 1}}}, []Record{{1, 0, 1, 2}, {5, 1, 1, 1}}, false},
		{"same global other sender", [][]Record{{{1, 0, 1, 2}}, {{1, 1, 1, 2}}}, nil, true},
		{"same global other seq", [][]Record{{{1, 0, 1, 2}}, {{2, 0, 5, 1}}}, nil, true},
		{"seq ordered twice", [][]Record{{{1, 0, 1, 2}}, {{3, 0, 2, 1}}}, nil, true},
		{"invalid", [][]Record{{{1, 0, 1, 0}}}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Merge(tc.known)
			if tc.err {
				if !errors.Is(err, ErrInconsistent) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestCompleteTable(t *testing.T) {
	tests := []struct {
		name string
		recs []Record
		cut  []uint64
		want []Record
	}{
		{"nothing", nil, []uint64{0, 0}, []Record{}},
		{"no records", nil, []uint64{2, 0, 1}, []Record{{1, 0, 1, 2}, {3, 2, 1, 1}}},
		{"extend", []Record{{1, 1, 1, 2}}, []uint64{1, 3}, []Record{{1, 1, 1, 2}, {3, 0, 1, 1}, {4, 1, 3, 1}}},
		{"truncate at cut", []Record{{1, 0, 1, 5}, {6, 1, 1, 1}}, []uint64{3, 1}, []Record{{1, 0, 1, 3}, {4, 1, 1, 1}}},
		{"drop after gap", []Record{{1, 0, 1, 1}, {3, 1, 1, 1}}, []uint64{1, 1}, []Record{{1, 0, 1, 1}, {2, 1, 1, 1}}},
		{"record past cut dropped", []Record{{1, 0, 5, 1}}, []uint64{2, 0}, []Record{{1, 0, 1, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Complete(tc.recs, tc.cut)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %+v want %+v", got, tc.want)
			}
		})
	}
}

func TestCompleteFrom(t *testing.T) {
	// Globals 1..9 released everywhere; sender 0 ordered up to 4, sender 1 to 5.
	recs := []Record{{8, 1, 4, 2}, {10, 0, 5, 2}}
	got := CompleteFrom(10, []uint64{4, 5}, recs, []uint64{7, 6})
	want := []Record{{10, 0, 5, 2}, {12, 0, 7, 1}, {13, 1, 6, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
}

// TestSequencerCrash: the sequencer crashes mid-stream; each survivor got
// a different subset of its record batches and delivered what it could.
// Merge and Complete give every survivor the same final order, which
// extends what each of them already delivered and covers the whole cut.
func TestSequencerCrash(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 11))
		const n = 4 // member 0 is the sequencer and crashes
		seq := NewSequencer(n, 64)
		ords := make([]*Orderer, n)
		for i := range ords {
			ords[i] = NewOrderer(n, 4096)
		}
		sent := make([]uint64, n)
		got := make([][]delivery, n)
		for range 100 {
			s := rng.IntN(n)
			sent[s] += uint64(1 + rng.IntN(4))
			seq.Observe(s, sent[s])
			if rng.IntN(3) == 0 {
				recs := seq.Records()
				for m := 1; m < n; m++ {
					if rng.IntN(4) != 0 || seed%2 == 0 { // some survivors miss batches
						ords[m].AddRecords(recs)
					}
				}
				seq.Advance(len(recs))
			}
		}
		// Data: survivors hold all data of the survivors; of the dead
		// sequencer, only up to a random point (the same for all, for
		// simplicity: the cut's survivors' maximum is fetched in the flush).
		cut := slices.Clone(sent)
		cut[0] = uint64(rng.IntN(int(sent[0]) + 1))
		for m := 1; m < n; m++ {
			for s := range n {
				ords[m].Available(s, cut[s])
			}
			for {
				s, q, _, ok := ords[m].Next()
				if !ok {
					break
				}
				got[m] = append(got[m], delivery{s, q})
			}
		}
		known := make([][]Record, 0, n-1)
		for m := 1; m < n; m++ {
			known = append(known, ords[m].Known(nil))
		}
		merged, err := Merge(known)
		if err != nil {
			t.Fatal(err)
		}
		final := Complete(merged, cut)
		// Every survivor finishes the view with the final order.
		for m := 1; m < n; m++ {
			o := ords[m]
			start := o.NextGlobal()
			o.Resume(delivered(o, n), start)
			o.AddRecords(final)
			for {
				s, q, _, ok := o.Next()
				if !ok {
					break
				}
				got[m] = append(got[m], delivery{s, q})
			}
			if st := o.Stats(); st.Conflict+st.Gap != 0 {
				t.Fatalf("seed %d member %d: final order contradicts delivery: %+v", seed, m, st)
			}
		}
		var total uint64
		for _, c := range cut {
			total += c
		}
		for m := 1; m < n; m++ {
			if uint64(len(got[m])) != total || !slices.Equal(got[m], got[1]) {
				t.Fatalf("seed %d member %d: %d deliveries of %d, or order differs", seed, m, len(got[m]), total)
			}
		}
	}
}

func delivered(o *Orderer, n int) []uint64 {
	d := make([]uint64, n)
	for s := range d {
		d[s] = o.Delivered(s)
	}
	return d
}

func FuzzMergeComplete(f *testing.F) {
	f.Add(AppendRecords(nil, 1, []Record{{Sender: 1, First: 1, Count: 3}}), AppendRecords(nil, 2, []Record{{Sender: 1, First: 2, Count: 3}}), []byte{3, 4, 0})
	f.Fuzz(func(t *testing.T, a, b, cutb []byte) {
		ra, _, err1 := DecodeRecords(nil, a)
		rb, _, err2 := DecodeRecords(nil, b)
		if err1 != nil || err2 != nil {
			return
		}
		m, err := Merge([][]Record{ra, rb})
		if err != nil {
			return
		}
		for i := 1; i < len(m); i++ {
			if m[i].Global < m[i-1].End() {
				t.Fatalf("merge not disjoint: %+v", m)
			}
		}
		cut := make([]uint64, min(len(cutb), 8))
		for i := range cut {
			cut[i] = uint64(cutb[i])
		}
		final := Complete(m, cut)
		// Final order: contiguous from 1, each sender exactly 1..cut[s], FIFO.
		g := uint64(1)
		next := make([]uint64, len(cut))
		for _, r := range final {
			if r.Global != g || r.Sender >= len(cut) || r.First != next[r.Sender]+1 || r.Count == 0 {
				t.Fatalf("bad final %+v for cut %v", final, cut)
			}
			next[r.Sender] = r.Last()
			g = r.End()
		}
		if !slices.Equal(next, cut) {
			t.Fatalf("final %+v does not cover cut %v", final, cut)
		}
	})
}
