package batch

import "time"

// MaxLinger bounds Policy.Linger: a linger is for sharing datagrams
// among groups that send within microseconds of each other, not a
// timer the protocol's own timeouts could feel.
const MaxLinger = time.Millisecond

// Policy says when the datagrams a Batch holds leave. Its zero value is
// natural batching: what one protocol round produced leaves at the end
// of that round, so a datagram waits only for the round's other work,
// and under load many share a system call (and a bundle) because a round
// then has much to do.
type Policy struct {
	// Linger lets held datagrams wait up to this long past the end of a
	// round for others to share their bundles, as long as no bundle is
	// full: at low load, groups whose traffic comes in separate rounds
	// then share datagrams too, for up to Linger of latency. 0 (the
	// default) disables it; at most MaxLinger.
	Linger time.Duration
}

// Hold reports whether what a Batch holds may stay past the end of this
// round, and until when: oldest is when the first datagram held came,
// now the time (both in nanoseconds on one clock), full whether a bundle
// filled up (a full bundle has nothing to wait for, so everything goes).
func (p Policy) Hold(oldest, now int64, full bool) (hold bool, until int64) {
	if p.Linger <= 0 || full {
		return false, 0
	}
	until = oldest + int64(min(p.Linger, MaxLinger))
	return now < until, until
}
