// Package vclock provides causal delivery for one member of one group
// view: vector timestamps, a queue that releases messages in causal order,
// and a compact wire encoding of a timestamp.
//
// # Timestamps
//
// A timestamp has one entry per rank of the current view (a view of n
// members). When the member of rank j sends message m, entry k (k != j) is
// the sequence number of the last message from rank k that j had delivered
// before sending m: since each sender's messages are numbered from 1 in
// every view and delivered in FIFO order, that is also how many of k's
// messages j had delivered. Entry j is m's own sequence number.
//
// Message m from j is deliverable at a member that has delivered
// delivered[k] messages from each rank k when
//
//	vt[j] == delivered[j]+1 && vt[k] <= delivered[k] for every k != j.
//
// # Views
//
// Timestamps are reset at every view install: a new view starts every
// counter at zero, ranks are those of the new view, and a Queue belongs to
// one view. That is sound because the flush that ends a view delivers every
// message of the old view (up to the agreed cut) before the new view is
// installed, and the new view numbers sequences from 1 again. A message of
// the new view therefore causally follows every message of the old one at
// every member, which view-synchronous delivery already guarantees; only
// dependencies inside the view need to be tracked, and they are all
// between ranks of that view.
//
// # Queue
//
// A Queue holds, per sender, the messages received in FIFO order but not
// yet causally deliverable, in a preallocated ring, and returns them in a
// causal order with Next. See Queue for the cost model.
//
// # Use in a member
//
// A member makes one Queue per view (New(n, capacity), or Reset when the
// size is unchanged). Where FIFO delivery hands the application the next
// in-order message of origin o, causal delivery instead decodes its
// timestamp (ReadTimestamp, then vt[o] = seq) and pushes it with a handle
// to find the payload again; a false Push leaves the message where it is,
// and the cursor tries again after Next made room. The member then calls
// Next until it reports nothing, delivering each message it returns. Its
// own messages go through Push too, stamped with Stamp when they are given
// their sequence number (they are deliverable at once, and they advance
// the member's own counter, which others' timestamps refer to).
package vclock
