// Package sequencer provides total order for a group view with a
// pipelined, data-free sequencer.
//
// Every member multicasts its own total-order messages directly, numbered
// per sender from 1 with no gaps (a numbering of the sender's total-order
// messages only). One member, the sequencer (by default the coordinator),
// watches how far each sender's total-order messages are contiguous at it
// and assigns global sequence numbers to whole ranges at once: an order
// [Record] says that messages First..First+Count-1 of Sender take the
// global numbers Global..Global+Count-1. Records are contiguous in global
// numbers, so a batch encodes as a first global number followed by
// (sender, first, count) triples ([AppendRecords], [DecodeRecords]); many
// fit one datagram, and the sequencer never waits for acknowledgements.
//
// [Sequencer] turns observations into records; [Orderer], at every member,
// combines records with data availability and yields deliveries in global
// order. The protocol carries records reliably in the view's order stream
// (see the protocol package), so a view change agrees on them like on any
// other message, and orders what they leave unordered by the messages' order hints.
//
// # Guarantees
//
//   - Total order: every Orderer fed records of one Sequencer (in any
//     order, with duplicates) delivers the same sequence of (sender, seq),
//     a prefix of the global order.
//   - FIFO: a Sequencer only ever orders a sender's messages in increasing
//     per-sender sequence order (its records for a sender are contiguous
//     and increasing), so the total order extends each sender's FIFO order.
//   - Causality, precisely: if a member sends total-order message m2 only
//     after it has delivered total-order message m1 (or m1 is its own
//     earlier message), then m1 precedes m2 in the total order. m1 was
//     delivered, so its global number g1 was already assigned; m2 is
//     observed later by the sequencer, which assigns numbers in increasing
//     order, so g2 > g1. This holds through transitive chains of such
//     "delivered, then sent" steps among total-order messages. It does not
//     cover a message sent after delivering only a FIFO or unordered
//     message, nor information passed outside the group.
//
// Nothing on the steady-state path allocates: the Sequencer's pending list
// and the Orderer's record set are fixed at construction.
package sequencer
