package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"testing"
)

func payload(seq uint64, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(seq) + byte(i)
	}
	return p
}

func TestStashWrapAndLimits(t *testing.T) {
	s := NewStash(8, 100)
	// Fill by slots.
	for i := 1; i <= 8; i++ {
		if seq, err := s.Append(1, 0, payload(uint64(i), 5), true); err != nil || seq != uint64(i) {
			t.Fatalf("append %d: %d %v", i, seq, err)
		}
	}
	if _, err := s.Append(1, 0, payload(9, 5), true); !errors.Is(err, ErrFull) {
		t.Fatalf("9th append: %v, want ErrFull", err)
	}
	s.Release(4)
	// Bytes: 40 written, 20 held; 60 more fill the arena to its end.
	if _, err := s.Append(1, 0, payload(9, 60), true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(1, 0, payload(10, 30), true); !errors.Is(err, ErrFull) {
		t.Fatalf("arena overflow: %v", err)
	}
	s.Release(9)
	if _, err := s.Append(2, 7, payload(10, 60), true); err != nil {
		t.Fatal(err)
	}
	// At offset 60 a 60-byte payload would wrap: it skips to the start,
	// which is still held by 10.
	if _, err := s.Append(2, 7, payload(11, 60), true); !errors.Is(err, ErrFull) {
		t.Fatalf("wrap: %v", err)
	}
	s.Release(10)
	seq, err := s.Append(2, 7, payload(11, 60), true)
	if err != nil {
		t.Fatal(err)
	}
	if s.Reserved != 40 {
		t.Fatalf("wrap waste %d, want 40", s.Reserved)
	}
	for q := uint64(5); q <= seq; q++ {
		_, _, p, ok := s.Get(q)
		if q <= 10 {
			if ok {
				t.Fatalf("released %d still readable", q)
			}
			continue
		}
		if !ok || !bytes.Equal(p, payload(q, 60)) {
			t.Fatalf("seq %d: %v", q, ok)
		}
	}
	if f, tot, _, _ := s.Get(seq); f != 2 || tot != 7 {
		t.Fatalf("flags %d total %d", f, tot)
	}
	if _, err := s.Append(0, 0, make([]byte, 101), true); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
}

// BytesBetween up to the newest message: what releasing up to a sequence
// number would leave, wrap-around waste included.
func TestStashBytesToHead(t *testing.T) {
	s := NewStash(8, 100)
	for i := 1; i <= 4; i++ {
		if _, err := s.Append(1, 0, payload(uint64(i), 10*i), true); err != nil {
			t.Fatal(err)
		}
	}
	// Held: 10+20+30+40 bytes.
	for _, c := range []struct {
		seq  uint64
		want int
	}{{0, 100}, {1, 90}, {2, 70}, {3, 40}, {4, 0}} {
		if got := s.BytesBetween(c.seq, 4); got != c.want {
			t.Errorf("BytesBetween(%d, 4) = %d, want %d", c.seq, got, c.want)
		}
	}
	s.Release(2)
	// 30 more bytes take the room released at the arena's start.
	if _, err := s.Append(1, 0, payload(5, 30), true); err != nil {
		t.Fatal(err)
	}
	if got := s.BytesBetween(1, 5); got != 100 {
		t.Errorf("after release, BytesBetween(1, 5) = %d, want everything held (100)", got)
	}
	if got := s.BytesBetween(3, 5); got != 70 {
		t.Errorf("BytesBetween(3, 5) = %d, want 70", got)
	}
}

// BytesBetween measures the messages between two sequence numbers, and
// what is appended after them does not change it (a difference of two
// readings from the newest message, taken before and after an append,
// would).
func TestStashBytesBetween(t *testing.T) {
	s := NewStash(8, 100)
	for i := 1; i <= 3; i++ {
		if _, err := s.Append(1, 0, payload(uint64(i), 10*i), true); err != nil {
			t.Fatal(err)
		}
	}
	check := func(from, to uint64, want int) {
		t.Helper()
		if got := s.BytesBetween(from, to); got != want {
			t.Errorf("BytesBetween(%d, %d) = %d, want %d", from, to, got, want)
		}
	}
	check(0, 3, 60)
	check(1, 3, 50)
	check(1, 2, 20)
	check(2, 2, 0)
	if _, err := s.Append(1, 0, payload(4, 40), true); err != nil {
		t.Fatal(err)
	}
	check(1, 3, 50)
	s.Release(1)
	check(0, 3, 50) // from the oldest message held
	check(1, 4, 90)
}

// Producers append concurrently while the consumer reads and releases;
// every message must come out intact and in sequence.
func TestStashConcurrent(t *testing.T) {
	s := NewStash(64, 4096)
	const producers, each = 4, 5000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			buf := make([]byte, 16)
			for i := 0; i < each; i++ {
				binary.LittleEndian.PutUint64(buf, uint64(p))
				binary.LittleEndian.PutUint64(buf[8:], uint64(i))
				for {
					if _, err := s.Append(0, 0, buf, true); err == nil {
						break
					}
					runtime.Gosched() // let the consumer run; a real producer parks
				}
			}
		}(p)
	}
	last := make([]int64, producers)
	for i := range last {
		last[i] = -1
	}
	for read := uint64(1); read <= producers*each; {
		if read > s.Head() {
			continue
		}
		_, _, b, ok := s.Get(read)
		if !ok || len(b) != 16 {
			t.Fatalf("seq %d unreadable", read)
		}
		p, i := binary.LittleEndian.Uint64(b), int64(binary.LittleEndian.Uint64(b[8:]))
		if i != last[p]+1 {
			t.Fatalf("producer %d: got %d after %d", p, i, last[p])
		}
		last[p] = i
		s.Release(read)
		read++
	}
	wg.Wait()
}

func TestWindowOutOfOrder(t *testing.T) {
	w := NewWindow(8, 64)
	put := func(seq uint64, n int) PutResult { return w.Put(seq, 1, 0, payload(seq, n)) }
	if r := put(3, 10); r != Stored || w.Contiguous() != 0 || w.Highest() != 3 {
		t.Fatalf("put 3: %v contig %d", r, w.Contiguous())
	}
	if r := put(3, 10); r != Duplicate {
		t.Fatalf("dup: %v", r)
	}
	if r := put(9, 1); r != Beyond {
		t.Fatalf("beyond: %v", r)
	}
	put(1, 10)
	put(2, 10)
	if w.Contiguous() != 3 {
		t.Fatalf("contig %d", w.Contiguous())
	}
	w.SetMark(2, 4)
	if w.Mark(2) != 4 || w.Mark(1) != 0 {
		t.Fatal("marks")
	}
	// Arena: 30 of 64 used; 40 more do not fit (5 is not the gap's filler).
	if r := put(5, 40); r != NoRoom {
		t.Fatalf("arena: %v", r)
	}
	w.Release(2)
	// 3 was allocated first and is live, so releasing 1 and 2 reclaims
	// nothing at the tail; but they were the newest allocations, and the
	// message that fills the first gap takes their space back.
	if r := put(4, 40); r != Stored || w.Displaced != 0 {
		t.Fatalf("put 4 after release 2: %v, displaced %d", r, w.Displaced)
	}
	w.Release(3)
	if _, _, p, ok := w.Get(4); !ok || !bytes.Equal(p, payload(4, 40)) {
		t.Fatal("get 4")
	}
	if w.Has(3) || w.Base() != 3 || w.Held() != 1 {
		t.Fatalf("base %d held %d", w.Base(), w.Held())
	}
	if r := put(2, 1); r != Duplicate {
		t.Fatalf("released seq: %v", r)
	}
	// Release never passes a gap.
	put(6, 1)
	w.Release(6)
	if w.Base() != 4 || !w.Has(6) {
		t.Fatalf("release passed a gap: base %d", w.Base())
	}
}

func TestWindowSkip(t *testing.T) {
	w := NewWindow(4, 64)
	w.Skip(100)
	if w.Base() != 100 || w.Contiguous() != 100 || w.Put(101, 0, 0, nil) != Stored || w.Contiguous() != 101 {
		t.Fatal("skip")
	}
}

func TestNoAllocs(t *testing.T) {
	s := NewStash(1024, 1<<16)
	w := NewWindow(1024, 1<<16)
	p := make([]byte, 64)
	seq := uint64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		q, _ := s.Append(1, 0, p, true)
		_, _, b, _ := s.Get(q)
		seq++
		w.Put(seq, 1, 0, b)
		w.Release(seq)
		s.Release(q)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

func BenchmarkStashAppendRelease(b *testing.B) {
	s := NewStash(4096, 1<<20)
	p := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		q, _ := s.Append(1, 0, p, true)
		s.Release(q)
	}
}

func BenchmarkWindowPutRelease(b *testing.B) {
	w := NewWindow(4096, 1<<20)
	p := make([]byte, 64)
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		w.Put(seq, 1, 0, p)
		w.Release(seq)
	}
}

func TestSPSC(t *testing.T) {
	q := NewSPSC[int](4)
	for i := 0; i < 4; i++ {
		if !q.Push(i) {
			t.Fatal("push")
		}
	}
	if q.Push(9) {
		t.Fatal("push into a full queue")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 4; i < 100000; {
			if q.Push(i) {
				i++
			}
		}
	}()
	for want := 0; want < 100000; {
		v, ok := q.Peek()
		if !ok {
			continue
		}
		if *v != want {
			t.Errorf("got %d want %d", *v, want)
			return
		}
		q.Pop()
		want++
	}
	<-done
	if q.Popped() != 100000 || q.Len() != 0 {
		t.Fatalf("popped %d len %d", q.Popped(), q.Len())
	}
}

// A queue that fills and empties over and over, as the engine's delivery
// queue does each protocol round, reuses its segments: after the first
// cycle it allocates nothing. Trim hands the spares to the collector.
func TestSPSCReusesSegments(t *testing.T) {
	const depth = 4096 + 64
	q := NewSPSC[[7]uint64](depth)
	cycle := func() {
		for i := range depth {
			if !q.Push([7]uint64{uint64(i)}) {
				t.Fatal("push")
			}
		}
		for i := range depth {
			v, ok := q.Peek()
			if !ok || v[0] != uint64(i) {
				t.Fatalf("element %d: %v %v", i, v, ok)
			}
			q.Pop()
		}
	}
	cycle()
	if a := testing.AllocsPerRun(10, cycle); a != 0 {
		t.Fatalf("%v allocations per cycle of %d elements", a, depth)
	}
	if q.sparesIn.Load() == q.sparesOut.Load() {
		t.Fatal("no spare segments kept")
	}
	q.Trim()
	if q.sparesIn.Load() != q.sparesOut.Load() {
		t.Fatal("Trim kept spare segments")
	}
	for i := range q.spares {
		if q.spares[i].Load() != nil {
			t.Fatal("Trim left a spare referenced")
		}
	}
	cycle() // still a queue
}

// The message that fills the first gap always finds room: messages
// beyond the gap, newest first, give theirs up (they are asked for again
// like any loss), while delivered ones below the gap stay.
func TestWindowGapFillDisplaces(t *testing.T) {
	w := NewWindow(64, 100)
	put := func(seq uint64, n int) PutResult { return w.Put(seq, 1, 0, payload(seq, n)) }
	put(1, 20) // delivered, not yet released: must stay
	for seq := uint64(3); seq <= 6; seq++ {
		if r := put(seq, 20); r != Stored {
			t.Fatalf("put %d: %v", seq, r)
		}
	}
	// The arena is full. A message beyond the gap finds no room and
	// displaces nothing.
	if r := put(8, 30); r != NoRoom || w.Displaced != 0 {
		t.Fatalf("beyond the gap: %v, displaced %d", r, w.Displaced)
	}
	// The gap's filler displaces 6, then 5 (newest first).
	if r := put(2, 35); r != Stored {
		t.Fatalf("gap filler: %v", r)
	}
	if w.Displaced != 2 || w.Has(5) || w.Has(6) || !w.Has(1) || !w.Has(3) || !w.Has(4) {
		t.Fatalf("displaced %d; held 1..6: %v %v %v %v %v", w.Displaced, w.Has(1), w.Has(3), w.Has(4), w.Has(5), w.Has(6))
	}
	if w.Contiguous() != 4 || w.Held() != 4 {
		t.Fatalf("contiguous %d held %d", w.Contiguous(), w.Held())
	}
	for _, seq := range []uint64{1, 2, 3, 4} {
		if _, _, p, ok := w.Get(seq); !ok || !bytes.Equal(p, payload(seq, len(p))) {
			t.Fatalf("payload of %d damaged", seq)
		}
	}
	// The displaced come back and fit once the prefix is released.
	w.Release(4)
	for _, seq := range []uint64{5, 6} {
		if r := put(seq, 20); r != Stored {
			t.Fatalf("put %d again: %v", seq, r)
		}
	}
	// A gap filler never displaces what lies below it: with only
	// contiguous messages live (waiting for releases that may never come
	// before it arrives), it goes outside the arena, up to the arena's
	// size in all.
	w2 := NewWindow(8, 50)
	w2.Put(1, 1, 0, payload(1, 40))
	if r := w2.Put(2, 1, 0, payload(2, 20)); r != Stored || !w2.Has(1) || w2.Displaced != 0 || w2.Overflowed != 1 {
		t.Fatalf("gap filler with only contiguous messages live: %v, displaced %d, overflowed %d", r, w2.Displaced, w2.Overflowed)
	}
	if _, _, p, ok := w2.Get(2); !ok || !bytes.Equal(p, payload(2, 20)) || w2.Contiguous() != 2 {
		t.Fatal("overflowed filler not held")
	}
	if r := w2.Put(3, 1, 0, payload(3, 31)); r != NoRoom {
		t.Fatalf("overflow past the arena's size: %v", r)
	}
	if r := w2.Put(3, 1, 0, payload(3, 30)); r != Stored || w2.Overflowed != 2 {
		t.Fatalf("second filler: %v", r)
	}
	w2.Release(3)
	if w2.Held() != 0 || w2.overflowBytes != 0 || len(w2.overflow) != 0 {
		t.Fatalf("release left %d held, %d overflow bytes", w2.Held(), w2.overflowBytes)
	}
	if r := w2.Put(4, 1, 0, payload(4, 50)); r != Stored || w2.Overflowed != 2 {
		t.Fatalf("the arena again: %v", r)
	}
}
