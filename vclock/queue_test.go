package vclock

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestDeliverable(t *testing.T) {
	tests := []struct {
		name      string
		vt        []uint64
		delivered []uint64
		j         int
		want      bool
	}{
		{"first message, nothing seen", []uint64{1, 0, 0}, []uint64{0, 0, 0}, 0, true},
		{"next in sequence", []uint64{3, 1, 2}, []uint64{2, 1, 2}, 0, true},
		{"deps more than met", []uint64{3, 1, 0}, []uint64{2, 5, 7}, 0, true},
		{"gap in own sequence", []uint64{3, 0, 0}, []uint64{1, 0, 0}, 0, false},
		{"own already delivered", []uint64{2, 0, 0}, []uint64{2, 0, 0}, 0, false},
		{"missing dependency", []uint64{1, 2, 0}, []uint64{0, 1, 0}, 0, false},
		{"missing last dependency", []uint64{0, 1, 4}, []uint64{0, 0, 3}, 1, false},
		{"sender in the middle", []uint64{5, 1, 4}, []uint64{5, 0, 4}, 1, true},
		{"single member", []uint64{1}, []uint64{0}, 0, true},
		{"length mismatch", []uint64{1, 0}, []uint64{0}, 0, false},
		{"rank out of range", []uint64{1, 0}, []uint64{0, 0}, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Deliverable(tc.vt, tc.delivered, tc.j); got != tc.want {
				t.Errorf("Deliverable(%v, %v, %d) = %v, want %v", tc.vt, tc.delivered, tc.j, got, tc.want)
			}
		})
	}
}

type pushOp struct {
	sender int
	vt     []uint64
}

func TestQueueOrder(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		pushes []pushOp
		want   []string // "sender:seq" in delivery order
	}{
		{
			name:   "independent senders in push order",
			n:      3,
			pushes: []pushOp{{0, []uint64{1, 0, 0}}, {1, []uint64{0, 1, 0}}, {2, []uint64{0, 0, 1}}},
			want:   []string{"0:1", "1:1", "2:1"},
		},
		{
			name:   "reply arrives before the message it answers",
			n:      2,
			pushes: []pushOp{{1, []uint64{1, 1}}, {0, []uint64{1, 0}}},
			want:   []string{"0:1", "1:1"},
		},
		{
			name: "chain pushed backwards",
			n:    4,
			pushes: []pushOp{
				{3, []uint64{1, 1, 1, 1}},
				{2, []uint64{1, 1, 1, 0}},
				{1, []uint64{1, 1, 0, 0}},
				{0, []uint64{1, 0, 0, 0}},
			},
			want: []string{"0:1", "1:1", "2:1", "3:1"},
		},
		{
			name: "blocked head holds back its sender's later messages",
			n:    3,
			pushes: []pushOp{
				{1, []uint64{2, 1, 0}},
				{1, []uint64{2, 2, 0}},
				{2, []uint64{0, 0, 1}},
				{0, []uint64{1, 0, 0}},
				{0, []uint64{2, 0, 0}},
			},
			want: []string{"2:1", "0:1", "0:2", "1:1", "1:2"},
		},
		{
			name: "waits on two ranks in turn",
			n:    3,
			pushes: []pushOp{
				{2, []uint64{1, 1, 1}},
				{0, []uint64{1, 0, 0}},
				{1, []uint64{0, 1, 0}},
			},
			want: []string{"0:1", "1:1", "2:1"},
		},
		{
			name: "never deliverable",
			n:    2,
			pushes: []pushOp{
				{1, []uint64{3, 1}},
				{0, []uint64{1, 0}},
			},
			want: []string{"0:1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := New[int](tc.n, 4)
			var got []string
			drain := func() {
				for {
					s, seq, h, ok := q.Next()
					if !ok {
						return
					}
					if h != s*100+int(seq) {
						t.Errorf("handle %d for %d:%d", h, s, seq)
					}
					got = append(got, fmt.Sprintf("%d:%d", s, seq))
				}
			}
			for _, p := range tc.pushes {
				if !q.Push(p.sender, p.vt, p.sender*100+int(p.vt[p.sender])) {
					t.Fatalf("push %v refused", p)
				}
			}
			drain()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("order %v, want %v", got, tc.want)
			}
			if q.Len() != len(tc.pushes)-len(tc.want) {
				t.Errorf("Len %d, want %d", q.Len(), len(tc.pushes)-len(tc.want))
			}
		})
	}
}

func TestQueueFullAndReset(t *testing.T) {
	q := New[uint64](2, 2)
	if !q.Push(1, []uint64{1, 1}, 1) || !q.Push(1, []uint64{1, 2}, 2) {
		t.Fatal("push refused")
	}
	if !q.Full(1) || q.Push(1, []uint64{1, 3}, 3) {
		t.Fatal("full ring accepted a push")
	}
	if _, _, _, ok := q.Next(); ok {
		t.Fatal("delivered a message whose dependency is missing")
	}
	q.Push(0, []uint64{1, 0}, 10)
	for _, want := range []uint64{10, 1, 2} {
		_, _, h, ok := q.Next()
		if !ok || h != want {
			t.Fatalf("Next = %d, %v; want %d", h, ok, want)
		}
	}
	if !q.Push(1, []uint64{1, 3}, 3) {
		t.Fatal("push refused after room was made")
	}
	q.Reset()
	if q.Len() != 0 || q.Delivered(0) != 0 || q.Delivered(1) != 0 {
		t.Fatal("Reset left state")
	}
	if !q.Push(1, []uint64{0, 1}, 7) {
		t.Fatal("push refused after Reset")
	}
	if s, seq, h, ok := q.Next(); !ok || s != 1 || seq != 1 || h != 7 {
		t.Fatalf("Next after Reset = %d, %d, %d, %v", s, seq, h, ok)
	}
}

func TestPushOutOfSequencePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	q := New[int](2, 4)
	q.Push(0, []uint64{2, 0}, 0)
}

// TestCausalProperty simulates n members exchanging messages over FIFO
// links in random interleavings, each delivering through a Queue, with
// timestamps going through the wire encoding. Causality is derived from
// the history alone: a message depends on every message its sender had
// delivered before sending it and on the sender's earlier messages. Every
// member must deliver every message, and each after all it depends on.
func TestCausalProperty(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		n := 1 + r.IntN(8)
		capacity := 1 + r.IntN(6)
		perSender := 10 + r.IntN(60)
		simulate(t, r, n, capacity, perSender)
	}
}

type simMsg struct {
	sender int
	seq    uint64
	wire   []byte
	deps   []int // message ids: the sender's deliveries before sending
	prev   int   // the sender's previous message id, -1 if none
}

func simulate(t *testing.T, r *rand.Rand, n, capacity, perSender int) {
	t.Helper()
	var msgs []simMsg
	queues := make([]*Queue[int], n)
	log := make([][]int, n)   // per member: delivered message ids in order
	seen := make([][]bool, n) // per member, per message id: delivered
	sent := make([]int, n)
	// links[from][to]: message ids in flight, FIFO.
	links := make([][][]int, n)
	for i := range queues {
		queues[i] = New[int](n, capacity)
		links[i] = make([][]int, n)
	}
	lastSent := make([]int, n)
	for i := range lastSent {
		lastSent[i] = -1
	}
	vt := make([]uint64, n)
	deliver := func(me int) bool {
		s, seq, id, ok := queues[me].Next()
		if !ok {
			if j := anyDeliverable(queues[me]); j >= 0 {
				t.Fatalf("member %d: Next found nothing, but sender %d's head is deliverable", me, j)
			}
			return false
		}
		m := msgs[id]
		if m.sender != s || m.seq != seq {
			t.Fatalf("member %d: Next says %d:%d, message %d is %d:%d", me, s, seq, id, m.sender, m.seq)
		}
		if seen[me][id] {
			t.Fatalf("member %d delivered message %d twice", me, id)
		}
		if m.prev >= 0 && !seen[me][m.prev] {
			t.Fatalf("member %d delivered %d:%d before its predecessor", me, s, seq)
		}
		for _, d := range m.deps {
			if !seen[me][d] {
				t.Fatalf("member %d delivered message %d (%d:%d) before %d (%d:%d), which its sender had delivered before sending it",
					me, id, s, seq, d, msgs[d].sender, msgs[d].seq)
			}
		}
		for len(seen[me]) < len(msgs) {
			seen[me] = append(seen[me], false)
		}
		seen[me][id] = true
		log[me] = append(log[me], id)
		return true
	}
	receive := func(me, from int) bool {
		l := links[from][me]
		if len(l) == 0 {
			return false
		}
		id := l[0]
		if _, err := ReadTimestamp(msgs[id].wire, vt); err != nil {
			t.Fatal(err)
		}
		vt[from] = msgs[id].seq
		if !queues[me].Push(from, vt, id) {
			return false // held back in the link
		}
		links[from][me] = l[1:]
		return true
	}
	growSeen := func() {
		for i := range seen {
			for len(seen[i]) < len(msgs) {
				seen[i] = append(seen[i], false)
			}
		}
	}
	for steps := 0; ; steps++ {
		me := r.IntN(n)
		switch op := r.IntN(10); {
		case op < 2 && sent[me] < perSender && !queues[me].Full(me):
			sent[me]++
			seq := uint64(sent[me])
			queues[me].Stamp(vt, me, seq)
			id := len(msgs)
			msgs = append(msgs, simMsg{
				sender: me, seq: seq,
				wire: AppendTimestamp(nil, vt, me),
				deps: append([]int(nil), log[me]...),
				prev: lastSent[me],
			})
			lastSent[me] = id
			growSeen()
			if !queues[me].Push(me, vt, id) {
				t.Fatal("own push refused")
			}
			for to := range n {
				if to != me {
					links[me][to] = append(links[me][to], id)
				}
			}
		case op < 6:
			receive(me, r.IntN(n))
		default:
			deliver(me)
		}
		done := true
		for i := range n {
			if sent[i] < perSender {
				done = false
			}
		}
		if done {
			break
		}
		if steps > 1e7 {
			t.Fatal("simulation does not finish")
		}
	}
	// Drain: receive and deliver everything left.
	for progress := true; progress; {
		progress = false
		for me := range n {
			for from := range n {
				for receive(me, from) {
					progress = true
				}
			}
			for deliver(me) {
				progress = true
			}
		}
	}
	for me := range n {
		if len(log[me]) != len(msgs) || queues[me].Len() != 0 {
			t.Fatalf("n=%d cap=%d: member %d delivered %d of %d messages, %d held", n, capacity, me, len(log[me]), len(msgs), queues[me].Len())
		}
	}
}

func TestSteadyStateAllocatesNothing(t *testing.T) {
	for _, n := range []int{3, 16} {
		q := New[uint64](n, 8)
		vt := make([]uint64, n)
		var round uint64
		allocs := testing.AllocsPerRun(1000, func() {
			pushChain(q, vt, &round)
			for {
				if _, _, _, ok := q.Next(); !ok {
					break
				}
			}
		})
		if allocs != 0 {
			t.Errorf("n=%d: %v allocations per round", n, allocs)
		}
		if q.Len() != 0 {
			t.Fatalf("n=%d: %d messages left", n, q.Len())
		}
	}
}

// pushChain pushes one round of a causal chain, one message per sender,
// backwards: sender j's message depends on this round's messages from
// every rank below j, so every push but the last finds its head blocked.
func pushChain(q *Queue[uint64], vt []uint64, round *uint64) {
	*round++
	r := *round
	n := len(vt)
	for j := n - 1; j >= 0; j-- {
		for k := range vt {
			if k <= j {
				vt[k] = r
			} else {
				vt[k] = r - 1
			}
		}
		if !q.Push(j, vt, r) {
			panic("push refused")
		}
	}
}

func BenchmarkPushNext(b *testing.B) {
	for _, n := range []int{3, 16} {
		b.Run(fmt.Sprintf("chain/n=%d", n), func(b *testing.B) {
			q := New[uint64](n, 64)
			vt := make([]uint64, n)
			var round uint64
			b.ReportAllocs()
			for b.Loop() {
				pushChain(q, vt, &round)
				for range n {
					if _, _, _, ok := q.Next(); !ok {
						b.Fatal("nothing deliverable")
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
		})
		b.Run(fmt.Sprintf("ready/n=%d", n), func(b *testing.B) {
			// Each message is deliverable when pushed: its sender had
			// delivered exactly what this member has.
			q := New[uint64](n, 64)
			vt := make([]uint64, n)
			b.ReportAllocs()
			j := 0
			for b.Loop() {
				q.Stamp(vt, j, q.Delivered(j)+1)
				q.Push(j, vt, 0)
				if _, _, _, ok := q.Next(); !ok {
					b.Fatal("nothing deliverable")
				}
				if j++; j == n {
					j = 0
				}
			}
		})
	}
}

// anyDeliverable checks every held head by brute force and returns a
// sender whose head is deliverable, or -1.
func anyDeliverable[H any](q *Queue[H]) int {
	for j := range q.n {
		if q.count[j] == 0 {
			continue
		}
		i := j*q.capacity + q.head[j]
		if Deliverable(q.vts[i*q.n:(i+1)*q.n], q.delivered, j) {
			return j
		}
	}
	return -1
}

// FuzzQueue drives one queue with arbitrary timestamps (bogus ones too)
// and checks it against a brute-force scan of the heads: Next returns a
// message exactly when some head is deliverable, and only such a head.
func FuzzQueue(f *testing.F) {
	f.Add(uint8(3), uint8(2), []byte{0, 1, 0, 2, 0, 0, 9, 9, 1, 0, 0, 0})
	f.Add(uint8(1), uint8(1), []byte{0, 0, 9, 0, 0, 9})
	f.Fuzz(func(t *testing.T, nb, cb uint8, ops []byte) {
		n, capacity := 1+int(nb)%8, 1+int(cb)%4
		q := New[int](n, capacity)
		vt := make([]uint64, n)
		pushed := make([]uint64, n)
		before := make([]uint64, n)
		for len(ops) > 0 {
			op := ops[0]
			ops = ops[1:]
			if op >= 0x80 {
				copy(before, q.delivered)
				j := anyDeliverable(q)
				s, seq, h, ok := q.Next()
				if ok != (j >= 0) {
					t.Fatalf("Next ok=%v, brute force finds %d", ok, j)
				}
				if ok {
					if seq != before[s]+1 || h != s*1000+int(seq) {
						t.Fatalf("Next = %d:%d handle %d", s, seq, h)
					}
					i := s*q.capacity + (q.head[s]+q.capacity-1)%q.capacity
					if !Deliverable(q.vts[i*n:(i+1)*n], before, s) {
						t.Fatalf("Next returned %d:%d, not deliverable", s, seq)
					}
				}
				continue
			}
			sender := int(op) % n
			for k := range vt {
				vt[k] = 0
				if len(ops) > 0 {
					vt[k] = uint64(ops[0] % 8)
					ops = ops[1:]
				}
			}
			vt[sender] = pushed[sender] + 1
			if q.Push(sender, vt, sender*1000+int(vt[sender])) {
				pushed[sender]++
			} else if q.Pending(sender) != capacity {
				t.Fatal("push refused with room")
			}
		}
	})
}
