package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// A window takes no memory until messages come, grows as they do (payloads
// handed out before a growth stay intact), and gives it back once empty.
func TestWindowGrowsAndTrims(t *testing.T) {
	b := NewBudget(1 << 30)
	w := NewWindow(4096, 1<<20)
	w.SetBudget(b)
	if w.Bytes() != 0 || b.Used() != 0 {
		t.Fatalf("a new window holds %d bytes (budget %d)", w.Bytes(), b.Used())
	}
	// Out of order, so that growth re-lays a fragmented arena.
	var early []byte
	for _, seq := range []uint64{1, 3, 2, 5, 4} {
		if w.Put(seq, 0, 0, payload(seq, 1000)) != Stored {
			t.Fatalf("put %d", seq)
		}
	}
	_, _, early, _ = w.Get(1)
	small := w.Bytes()
	for seq := uint64(6); seq <= 3000; seq++ {
		if r := w.Put(seq, 0, 0, payload(seq, 300)); r != Stored {
			t.Fatalf("put %d: %v", seq, r)
		}
	}
	if w.Bytes() <= small || b.Used() != int64(w.Bytes()) {
		t.Fatalf("grew from %d to %d bytes, budget %d", small, w.Bytes(), b.Used())
	}
	if !bytes.Equal(early, payload(1, 1000)) {
		t.Fatal("a payload handed out before growth changed")
	}
	for seq := uint64(1); seq <= 3000; seq++ {
		n := 300
		if seq <= 5 {
			n = 1000
		}
		if _, _, p, ok := w.Get(seq); !ok || !bytes.Equal(p, payload(seq, n)) {
			t.Fatalf("seq %d lost or changed by growth", seq)
		}
	}
	w.Trim()
	if w.Bytes() == 0 {
		t.Fatal("trimmed while holding messages")
	}
	w.Release(3000)
	w.Trim()
	if w.Bytes() != 0 || b.Used() != 0 {
		t.Fatalf("after trim: %d bytes, budget %d", w.Bytes(), b.Used())
	}
	if w.Put(3001, 0, 0, payload(3001, 10)) != Stored || w.Contiguous() != 3001 {
		t.Fatal("no put after trim")
	}
}

// A window refuses to grow past its budget (NoRoom, as if full), except
// for what it needs to move: when it is empty, and for the message that
// fills its first gap.
func TestWindowBudget(t *testing.T) {
	b := NewBudget(40 << 10)
	w := NewWindow(4096, 1<<20)
	w.SetBudget(b)
	stored := uint64(0)
	for seq := uint64(2); seq <= 200; seq++ { // 1 is missing
		if w.Put(seq, 0, 0, payload(seq, 1000)) != Stored {
			break
		}
		stored = seq
	}
	if stored == 0 || stored == 200 || b.Used() > 40<<10 {
		t.Fatalf("stored up to %d of 200 with a 40 KiB budget (used %d)", stored, b.Used())
	}
	// It may displace the newest message to get room (see displaceNewest).
	if w.Put(1, 0, 0, payload(1, 1000)) != Stored || w.Contiguous() < stored-1 {
		t.Fatalf("the gap filler was refused (contiguous %d, stored to %d)", w.Contiguous(), stored)
	}
	other := NewWindow(4096, 1<<20)
	other.SetBudget(b)
	if other.Put(2, 0, 0, payload(2, 1000)) != Stored {
		t.Fatal("an empty window could not take one message over the budget")
	}
	if other.Put(3, 0, 0, payload(3, 30000)) != NoRoom {
		t.Fatal("a non-empty window grew over the budget")
	}
}

// Producers grow the stash from nothing while the consumer reads and
// releases: every message arrives intact, in order, and memory comes back
// once it is empty.
func TestStashGrowsUnderConcurrency(t *testing.T) {
	b := NewBudget(1 << 30)
	s := NewStash(1<<14, 1<<20)
	s.SetBudget(b)
	if s.Bytes() != 0 {
		t.Fatalf("a new stash holds %d bytes", s.Bytes())
	}
	const producers, each = 3, 20000
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16+p*100)
			for i := range each {
				binary.LittleEndian.PutUint64(buf, uint64(p))
				binary.LittleEndian.PutUint64(buf[8:], uint64(i))
				for {
					if _, err := s.Append(0, 0, buf, true); err == nil {
						break
					}
					runtime.Gosched()
				}
			}
		}()
	}
	last := []int64{-1, -1, -1}
	lag := uint64(0)
	for read := uint64(1); read <= producers*each; {
		if read > s.Head() {
			runtime.Gosched()
			continue
		}
		_, _, p, ok := s.Get(read)
		if !ok {
			t.Fatalf("seq %d unreadable", read)
		}
		who, i := binary.LittleEndian.Uint64(p), int64(binary.LittleEndian.Uint64(p[8:]))
		if len(p) != 16+int(who)*100 || i != last[who]+1 {
			t.Fatalf("producer %d: %d after %d (%d bytes)", who, i, last[who], len(p))
		}
		last[who] = i
		s.NoteResent(read, 1, 1)
		// Release in bursts, so the stash fills and grows.
		if lag++; lag == 2000 || read == producers*each {
			s.Release(read)
			lag = 0
		}
		read++
	}
	wg.Wait()
	if s.Len() != 0 {
		t.Fatalf("%d held", s.Len())
	}
	s.Trim()
	if s.Bytes() != 0 || b.Used() != 0 {
		t.Fatalf("after trim: %d bytes, budget %d", s.Bytes(), b.Used())
	}
}

// A stash over its budget is full (the sender waits), unless it is empty.
func TestStashBudget(t *testing.T) {
	b := NewBudget(64 << 10)
	s := NewStash(1<<14, 1<<20)
	s.SetBudget(b)
	var err error
	n := 0
	for ; n < 1000; n++ {
		if _, err = s.Append(0, 0, make([]byte, 1000), true); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) || n == 0 || b.Used() > 64<<10 {
		t.Fatalf("%d appended, then %v (used %d)", n, err, b.Used())
	}
	other := NewStash(1<<14, 1<<20)
	other.SetBudget(b)
	if _, err := other.Append(0, 0, make([]byte, 100000), true); err != nil {
		t.Fatalf("an empty stash could not take one message over the budget: %v", err)
	}
}

// A queue larger than a segment fills to its capacity exactly, and keeps
// order across segments while producer and consumer run at once.
func TestSPSCSegments(t *testing.T) {
	q := NewSPSC[uint64](1000)
	for i := range uint64(1000) {
		if !q.Push(i) {
			t.Fatalf("push %d into a queue of 1000", i)
		}
	}
	if q.Push(1000) {
		t.Fatal("push into a full queue")
	}
	const total = 300000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1000); i < total; {
			if q.Push(i) {
				i++
			} else {
				runtime.Gosched()
			}
		}
	}()
	for want := uint64(0); want < total; {
		v, ok := q.Peek()
		if !ok {
			runtime.Gosched()
			continue
		}
		if *v != want {
			t.Fatalf("got %d want %d", *v, want)
		}
		q.Pop()
		want++
	}
	<-done
	if q.Len() != 0 || q.Popped() != total {
		t.Fatalf("len %d popped %d", q.Len(), q.Popped())
	}
}

// Stashes that share a counter keep it equal to what they hold together:
// appends add, releases subtract, and a stash that stops sharing takes
// its part away.
func TestShareCount(t *testing.T) {
	var c atomic.Int64
	a, b := NewStash(1<<10, 1<<16), NewStash(1<<10, 1<<16)
	b.Append(0, 0, make([]byte, 100), true) // held before it shares
	a.ShareCount(&c)
	b.ShareCount(&c)
	held := func() int64 { return int64(a.BytesHeld() + b.BytesHeld()) }
	for i := range 300 {
		a.Append(0, 0, make([]byte, 10+i%200), true)
		b.Append(0, 0, make([]byte, 7+i%300), true)
		if i%7 == 0 {
			a.Release(a.Head() - 3)
			b.Release(b.Head() - 1)
		}
		if c.Load() != held() {
			t.Fatalf("after %d appends: counter %d, held %d", i, c.Load(), held())
		}
	}
	b.ShareCount(nil)
	if c.Load() != int64(a.BytesHeld()) {
		t.Fatalf("counter %d after b left, a holds %d", c.Load(), a.BytesHeld())
	}
	a.Release(a.Head())
	if c.Load() != 0 {
		t.Fatalf("counter %d with nothing held", c.Load())
	}
}
