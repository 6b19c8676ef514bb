// Package protocol is cohort's protocol for one member of one group view,
// written as a deterministic state machine: it owns no goroutine, clock,
// socket or randomness. Events go in (Receive a datagram, Tick, Consumed
// deliveries, messages appended to the Sender); actions come out of Ready
// (datagrams to send, messages to deliver), and Advance acknowledges them.
// The engine feeds it from I/O loops; the simulator (package sim) feeds it
// from a seeded network, so every run replays exactly.
//
// This stage implements reliable multicast within a fixed view: per-sender
// sequence numbers, stashes until stability, NAK-driven retransmission,
// stability gossip, window flow control, fragmentation, and Unordered and
// FIFO delivery.
package protocol
