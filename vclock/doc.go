// Package vclock provides the vector timestamps of causal delivery for one
// group view and their compact wire encoding.
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
// counter at zero and ranks are those of the new view. That is sound
// because the flush that ends a view delivers every message of the old
// view (up to the agreed cut) before the new view is installed, and the
// new view numbers sequences from 1 again. A message of the new view
// therefore causally follows every message of the old one at every
// member, which view-synchronous delivery already guarantees; only
// dependencies inside the view need to be tracked, and they are all
// between ranks of that view.
//
// # Use in a member
//
// The protocol package stamps a causal message when its sender first
// multicasts it (and keeps the stamp for retransmissions), and its
// per-sender delivery cursor, stopped at a causal message, checks the
// condition above against what it has delivered of every rank: the
// receive window is the queue, and only each sender's head is checked.
package vclock
