package transfer

import (
	"bytes"
	"math/rand"
	"testing"
)

type flight struct {
	at  int64
	msg []byte
}

// run moves data through a simulated channel dropping, duplicating and
// reordering messages in both directions, and returns what arrived and
// the ticks it took.
func run(t *testing.T, data []byte, loss, dup float64, maxDelay int, seed int64, consumeEvery int) ([]byte, int64) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	const chunk, window, buffer, rto = 1000, 16000, 32000, 20
	s := NewSender(7, data, chunk, window, rto, false, false)
	r := NewReceiver(7, buffer, rto)
	var toR, toS []flight
	var now int64
	post := func(q *[]flight, m []byte) {
		if rng.Float64() < loss {
			return
		}
		n := 1
		if rng.Float64() < dup {
			n = 2
		}
		for i := 0; i < n; i++ {
			*q = append(*q, flight{at: now + 1 + int64(rng.Intn(maxDelay+1)), msg: m})
		}
	}
	deliver := func(q *[]flight, f func(Msg)) {
		rest := (*q)[:0]
		var due []flight
		for _, x := range *q {
			if x.at <= now {
				due = append(due, x)
			} else {
				rest = append(rest, x)
			}
		}
		*q = rest
		rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
		for _, x := range due {
			m, err := Parse(x.msg)
			if err != nil {
				t.Fatal(err)
			}
			f(m)
		}
	}
	var got []byte
	var consumed uint64
	var pending [][]byte
	for now = 0; now < 200000; now++ {
		s.Tick()
		r.Tick()
		for {
			off, total, fl, d, ok := s.Next()
			if !ok {
				break
			}
			post(&toR, AppendChunk(nil, s.ID(), off, total, fl, d))
		}
		deliver(&toR, func(m Msg) {
			if m.Kind != KindChunk || m.ID != 7 {
				t.Fatalf("unexpected %+v", m)
			}
			r.OnChunk(m.Offset, m.Total, m.Flags, m.Data)
		})
		pending = append(pending, r.Take()...)
		if consumeEvery <= 1 || now%int64(consumeEvery) == 0 {
			for _, p := range pending {
				got = append(got, p...)
				consumed += uint64(len(p))
			}
			pending = nil
			r.Consumed(consumed)
		}
		if next, limit, ok := r.Ack(); ok {
			post(&toS, AppendAck(nil, 7, next, limit))
		}
		deliver(&toS, func(m Msg) {
			if m.Kind != KindAck {
				t.Fatalf("unexpected %+v", m)
			}
			s.OnAck(m.Offset, m.Total)
		})
		if s.Done() && r.Complete() && len(pending) == 0 {
			return got, now
		}
	}
	t.Fatalf("no completion: acked %d of %d, receiver next %d", s.acked, len(data), r.next)
	return nil, 0
}

func TestTransfer(t *testing.T) {
	data := make([]byte, 300_000+123)
	rand.New(rand.NewSource(1)).Read(data)
	cases := []struct {
		name      string
		loss, dup float64
		delay     int
		consume   int
	}{
		{"clean", 0, 0, 0, 1},
		{"loss", 0.05, 0, 0, 1},
		{"heavy-loss", 0.3, 0, 2, 1},
		{"dup", 0, 0.3, 0, 1},
		{"reorder", 0, 0, 8, 1},
		{"all", 0.1, 0.1, 5, 1},
		{"slow-consumer", 0.05, 0.05, 3, 50},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for seed := int64(0); seed < 5; seed++ {
				got, ticks := run(t, data, c.loss, c.dup, c.delay, seed, c.consume)
				if !bytes.Equal(got, data) {
					t.Fatalf("seed %d: state differs (%d bytes, want %d)", seed, len(got), len(data))
				}
				if seed == 0 {
					t.Logf("%d ticks", ticks)
				}
			}
		})
	}
}

func TestEmptyAndAbort(t *testing.T) {
	got, _ := run(t, nil, 0.2, 0.2, 3, 1, 1)
	if len(got) != 0 {
		t.Fatal("empty state grew")
	}
	s := NewSender(1, []byte("x"), 10, 10, 5, true, false)
	r := NewReceiver(1, 100, 5)
	off, total, fl, d, ok := s.Next()
	if !ok {
		t.Fatal("abort sends nothing")
	}
	r.OnChunk(off, total, fl, d)
	if !r.Aborted() || !r.Complete() {
		t.Fatal("receiver did not see the abort")
	}
	next, limit, _ := r.Ack()
	s.OnAck(next, limit)
	if !s.Done() {
		t.Fatal("sender not done after abort acked")
	}
	s = NewSender(1, []byte("x"), 10, 10, 5, false, true)
	r = NewReceiver(1, 100, 5)
	off, total, fl, d, _ = s.Next()
	r.OnChunk(off, total, fl, d)
	if !r.Aborted() || !r.None() {
		t.Fatal("receiver did not see that the donor keeps no state")
	}
}

func TestParseRejects(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		{KindChunk},
		AppendChunk(nil, 1, 10, 5, 0, nil), // offset past total
		AppendChunk(nil, 1, 0, 3, 0, []byte("abcd")), // data past total
		AppendChunk(nil, 1, 0, 3, 9, nil),            // unknown flag
		append(AppendAck(nil, 1, 2, 3), 0),           // trailing byte
		{9, 0, 0, 0, 0, 0, 0, 0, 0, 0},               // unknown kind
		append(AppendDone(nil, 1), 1),                // trailing byte
	} {
		if _, err := Parse(b); err == nil {
			t.Errorf("Parse(%x) accepted", b)
		}
	}
	m, err := Parse(AppendChunk(nil, 3, 4, 10, 0, []byte("abc")))
	if err != nil || m.ID != 3 || m.Offset != 4 || m.Total != 10 || string(m.Data) != "abc" {
		t.Fatalf("round trip: %+v %v", m, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(AppendChunk(nil, 1, 0, 3, 0, []byte("abc")))
	f.Add(AppendAck(nil, 1, 2, 3))
	f.Add(AppendDone(nil, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		var re []byte
		switch m.Kind {
		case KindChunk:
			re = AppendChunk(nil, m.ID, m.Offset, m.Total, m.Flags, m.Data)
		case KindAck:
			re = AppendAck(nil, m.ID, m.Offset, m.Total)
		case KindDone:
			re = AppendDone(nil, m.ID)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs: %x vs %x", re, b)
		}
	})
}

// FuzzReceiver feeds arbitrary chunks to a receiver: it must not panic,
// and what it hands out in order must be consistent.
func FuzzReceiver(f *testing.F) {
	f.Add([]byte{0, 0, 10, 3, 3, 0, 10, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReceiver(1, 64, 3)
		var got uint64
		for len(b) >= 4 {
			off, total, n := uint64(b[0]), uint64(b[1]), int(b[2]%32)
			fl := b[3] & FlagAbort
			b = b[4:]
			if off > total || uint64(n) > total-off {
				continue
			}
			r.OnChunk(off, total, fl, make([]byte, n))
			for _, p := range r.Take() {
				got += uint64(len(p))
			}
			r.Consumed(got)
			r.Tick()
			if got != r.next {
				t.Fatalf("handed out %d, next %d", got, r.next)
			}
		}
	})
}

// Chunks kept out of order never exceed the buffer, whatever offsets
// damaged or forged chunks name (overlapping ones at every offset would
// otherwise each be kept).
func TestReceiverOutOfOrderBounded(t *testing.T) {
	r := NewReceiver(1, 1000, 5)
	data := make([]byte, 100)
	for off := uint64(1); off < 1000; off++ {
		r.OnChunk(off, 1<<20, 0, data)
	}
	if r.oooBytes > 1000 || r.oooBytes == 0 {
		t.Fatalf("%d bytes kept out of order, buffer 1000", r.oooBytes)
	}
}
