package sequencer

import (
	"testing"
)

// TestAllocsPerMessage: the steady-state paths allocate nothing.
func TestAllocsPerMessage(t *testing.T) {
	const n = 3
	seq := NewSequencer(n, 64)
	ord := NewOrderer(n, 64)
	buf := make([]byte, 0, 4096)
	dec := make([]Record, 0, 64)
	var sent [n]uint64
	var stable uint64
	i := 0
	step := func() {
		s := i % n
		i++
		sent[s]++
		seq.Observe(s, sent[s])
		ord.Available(s, sent[s])
		if i%8 == 0 {
			recs := seq.Records()
			buf = AppendRecords(buf[:0], recs[0].Global, recs)
			seq.Advance(len(recs))
			var err error
			dec, _, err = DecodeRecords(dec[:0], buf)
			if err != nil {
				t.Fatal(err)
			}
			ord.AddRecords(dec)
			for {
				if _, _, g, ok := ord.Next(); !ok {
					break
				} else {
					stable = g + 1
				}
			}
			ord.Release(stable)
		}
	}
	for range 1000 {
		step()
	}
	if a := testing.AllocsPerRun(10000, step); a != 0 {
		t.Fatalf("%v allocations per message", a)
	}
	if ord.NextGlobal() < 10000 {
		t.Fatalf("only %d delivered", ord.NextGlobal())
	}
}

// BenchmarkSequencer: 3 members, one message per op observed by the
// sequencer; records drained every 64 messages.
func BenchmarkSequencer(b *testing.B) {
	const n = 3
	seq := NewSequencer(n, 64)
	var sent [n]uint64
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s := (i / 4) % n // runs of 4 messages per sender
		sent[s]++
		if !seq.Observe(s, sent[s]) {
			seq.Advance(len(seq.Records()))
			seq.Observe(s, sent[s])
		}
		if i%64 == 63 {
			seq.Advance(len(seq.Records()))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkOrderer: 3 members' messages through one Orderer, records
// encoded and decoded in batches, one message delivered per op.
func BenchmarkOrderer(b *testing.B) {
	const n = 3
	seq := NewSequencer(n, 256)
	ord := NewOrderer(n, 256)
	buf := make([]byte, 0, 8192)
	dec := make([]Record, 0, 256)
	var sent [n]uint64
	delivered := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s := (i / 4) % n
		sent[s]++
		seq.Observe(s, sent[s])
		ord.Available(s, sent[s])
		if i%64 == 63 {
			recs := seq.Records()
			buf = AppendRecords(buf[:0], recs[0].Global, recs)
			seq.Advance(len(recs))
			dec, _, _ = DecodeRecords(dec[:0], buf)
			ord.AddRecords(dec)
			for {
				if _, _, _, ok := ord.Next(); !ok {
					break
				}
				delivered++
			}
			ord.Release(ord.NextGlobal())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkOrdererOutOfOrder: records arrive in reverse within each batch.
func BenchmarkOrdererOutOfOrder(b *testing.B) {
	const n = 3
	seq := NewSequencer(n, 256)
	ord := NewOrderer(n, 256)
	var sent [n]uint64
	rev := make([]Record, 0, 256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s := (i / 4) % n
		sent[s]++
		seq.Observe(s, sent[s])
		ord.Available(s, sent[s])
		if i%64 == 63 {
			recs := seq.Records()
			rev = rev[:0]
			for j := len(recs) - 1; j >= 0; j-- {
				rev = append(rev, recs[j])
			}
			seq.Advance(len(recs))
			ord.AddRecords(rev)
			ord.AddRecords(rev) // duplicates
			for {
				if _, _, _, ok := ord.Next(); !ok {
					break
				}
			}
			ord.Release(ord.NextGlobal())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
