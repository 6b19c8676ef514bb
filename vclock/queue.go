package vclock

import "fmt"

// Queue is one member's causal delivery queue for one view.
//
// Messages are pushed per sender in sequence order (the caller's FIFO
// cursor feeds it) and come out of Next in an order that respects
// causality. Only the head of each sender's queue can be deliverable, since
// a sender's own messages are delivered in sequence.
//
// Cost: each blocked head waits on exactly one rank k: the first rank, in
// order, whose entry it needs that is not yet delivered (vt[k] >
// delivered[k]). The head is parked on k's wait list with that threshold.
// When delivered[k] advances, Next compares the thresholds of k's waiters
// (at most one per sender, so at most n compares) and re-examines only
// those now satisfied, resuming each one's scan at the rank it was waiting
// on: the entries before it were satisfied already and delivered counters
// only grow. A head therefore scans its n entries once in all, plus one
// step per wake-up, and a delivery costs O(n) compares: O(members) per
// delivered message. Senders whose head is deliverable sit in a FIFO ready
// ring (each at most once, as it has one head), which Next serves in turn.
//
// Nothing is allocated after New: per-sender rings of fixed capacity hold
// the timestamps (a message's sequence number is its sender's entry) and
// handles. H is an opaque handle the caller uses to find the payload (a
// window slot, an index).
//
// A Queue is not safe for concurrent use.
type Queue[H any] struct {
	n, capacity int

	delivered []uint64 // per rank: messages delivered (last sequence number)
	pushed    []uint64 // per rank: last sequence number pushed

	// Per-sender rings: slot s of sender j is index j*capacity+s.
	vts     []uint64 // timestamps: n entries per slot
	handles []H
	head    []int // per sender: ring index of the oldest message
	count   []int // per sender: messages held

	// Waiting: waiters[k*n:k*n+nwait[k]] lists the senders whose head
	// waits on rank k; sender j's waits until delivered[k] >= waitFor[j].
	waitFor []uint64
	waiters []int32
	nwait   []int

	// ready is a FIFO ring of senders whose head is deliverable.
	ready     []int32
	readyHead int
	readyLen  int
	total     int // messages held, all senders
}

// New returns a queue for a view of n members holding at most capacity
// messages per sender. Its timestamps take 8*n*n*capacity bytes.
func New[H any](n, capacity int) *Queue[H] {
	if n <= 0 || capacity <= 0 {
		panic(fmt.Sprintf("vclock: New(%d, %d): need n > 0 and capacity > 0", n, capacity))
	}
	q := &Queue[H]{
		n:         n,
		capacity:  capacity,
		delivered: make([]uint64, n),
		pushed:    make([]uint64, n),
		vts:       make([]uint64, n*capacity*n),
		handles:   make([]H, n*capacity),
		head:      make([]int, n),
		count:     make([]int, n),
		waitFor:   make([]uint64, n),
		waiters:   make([]int32, n*n),
		nwait:     make([]int, n),
		ready:     make([]int32, n),
	}
	return q
}

// Reset empties the queue and zeroes every counter, keeping its memory,
// for a new view of the same size.
func (q *Queue[H]) Reset() {
	var zero H
	clear(q.delivered)
	clear(q.pushed)
	for i := range q.handles {
		q.handles[i] = zero // drop references held by handles
	}
	clear(q.head)
	clear(q.count)
	clear(q.nwait)
	q.readyHead, q.readyLen, q.total = 0, 0, 0
}

// Members is the view size n.
func (q *Queue[H]) Members() int { return q.n }

// Len is the number of messages held.
func (q *Queue[H]) Len() int { return q.total }

// Pending is the number of messages held from sender.
func (q *Queue[H]) Pending(sender int) int { return q.count[sender] }

// Full reports whether sender's ring is full.
func (q *Queue[H]) Full(sender int) bool { return q.count[sender] == q.capacity }

// Delivered is the number of sender's messages returned by Next (the
// sequence number of the last one): the entry for sender of the timestamp
// of a message this member sends now.
func (q *Queue[H]) Delivered(sender int) uint64 { return q.delivered[sender] }

// Stamp writes the timestamp for the message this member (rank self) is
// about to send with sequence number seq into vt (len n): the delivered
// counters, with vt[self] = seq.
func (q *Queue[H]) Stamp(vt []uint64, self int, seq uint64) {
	copy(vt[:q.n], q.delivered)
	vt[self] = seq
}

// Push appends sender's next message, with timestamp vt (len n, copied) and
// handle h. Its sequence number is vt[sender], which must be one more than
// that of sender's previous push in this view (the first is 1): Push
// panics otherwise, as that is a bug of the caller's FIFO cursor. Push
// returns false, and keeps nothing, when sender's ring is full: the caller
// holds the message back and pushes it again after Next made room.
func (q *Queue[H]) Push(sender int, vt []uint64, h H) bool {
	if len(vt) != q.n {
		panic(fmt.Sprintf("vclock: Push: timestamp of %d entries in a view of %d", len(vt), q.n))
	}
	if q.count[sender] == q.capacity {
		return false
	}
	if vt[sender] != q.pushed[sender]+1 {
		panic(fmt.Sprintf("vclock: Push: sender %d sequence %d after %d", sender, vt[sender], q.pushed[sender]))
	}
	q.pushed[sender] = vt[sender]
	s := q.head[sender] + q.count[sender]
	if s >= q.capacity {
		s -= q.capacity
	}
	i := sender*q.capacity + s
	copy(q.vts[i*q.n:(i+1)*q.n], vt)
	q.handles[i] = h
	q.count[sender]++
	q.total++
	if q.count[sender] == 1 {
		q.examine(sender, 0)
	}
	return true
}

// Next removes and returns a deliverable message: its sender, sequence
// number and handle. ok is false when no held message is deliverable.
func (q *Queue[H]) Next() (sender int, seq uint64, h H, ok bool) {
	if q.readyLen == 0 {
		return 0, 0, h, false
	}
	j := int(q.ready[q.readyHead])
	q.readyHead++
	if q.readyHead == q.n {
		q.readyHead = 0
	}
	q.readyLen--

	i := j*q.capacity + q.head[j]
	h = q.handles[i]
	var zero H
	q.handles[i] = zero
	q.head[j]++
	if q.head[j] == q.capacity {
		q.head[j] = 0
	}
	q.count[j]--
	q.total--
	seq = q.delivered[j] + 1
	q.delivered[j] = seq

	// Wake the heads waiting on j that are now satisfied.
	w := q.waiters[j*q.n : j*q.n+q.nwait[j]]
	for x := 0; x < len(w); {
		s := int(w[x])
		if q.waitFor[s] > seq {
			x++
			continue
		}
		w[x] = w[len(w)-1]
		w = w[:len(w)-1]
		q.examine(s, j+1) // entries 0..j are satisfied
	}
	q.nwait[j] = len(w)

	if q.count[j] > 0 {
		q.examine(j, 0)
	}
	return j, seq, h, true
}

// examine checks sender j's head from rank `from` on, and either marks j
// ready or parks it on the first rank it still waits on.
func (q *Queue[H]) examine(j, from int) {
	i := j*q.capacity + q.head[j]
	vt := q.vts[i*q.n : (i+1)*q.n]
	for k := from; k < q.n; k++ {
		if k == j || vt[k] <= q.delivered[k] {
			continue
		}
		q.waitFor[j] = vt[k]
		q.waiters[k*q.n+q.nwait[k]] = int32(j)
		q.nwait[k]++
		return
	}
	// vt[j] == delivered[j]+1 holds: pushes are in sequence and the head is
	// the first message not yet delivered.
	t := q.readyHead + q.readyLen
	if t >= q.n {
		t -= q.n
	}
	q.ready[t] = int32(j)
	q.readyLen++
}

// Deliverable reports whether a message from sender j with timestamp vt
// is deliverable after delivered[k] messages from each rank k: vt[j] ==
// delivered[j]+1 and vt[k] <= delivered[k] for every k != j.
func Deliverable(vt, delivered []uint64, j int) bool {
	if len(vt) != len(delivered) || j < 0 || j >= len(vt) || vt[j] != delivered[j]+1 {
		return false
	}
	for k := range vt {
		if k != j && vt[k] > delivered[k] {
			return false
		}
	}
	return true
}
