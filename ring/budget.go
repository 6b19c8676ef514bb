package ring

import "sync/atomic"

// Budget bounds the memory that stores (Stash, Window) sharing it may
// take beyond their first allocation, together: an engine-wide limit on
// what its groups' windows grow to. A store that cannot grow acts as if
// it were full (flow control holds its senders, a receiver drops and has
// the message sent again later), except where it must grow to make
// progress: an empty store takes what one message needs, and a window
// always stores the message that fills its first gap (see Window.Put). A
// group is slowed by the budget, never stopped. A nil *Budget is no
// limit.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget makes a budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Used is the bytes taken now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit is the budget's size.
func (b *Budget) Limit() int64 {
	if b == nil {
		return -1
	}
	return b.limit
}

// take reserves n bytes; with force it always succeeds.
func (b *Budget) take(n int64, force bool) bool {
	if b == nil {
		return true
	}
	for {
		u := b.used.Load()
		if !force && u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// give returns n bytes.
func (b *Budget) give(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}
