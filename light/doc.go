// Package light carries many light groups over one engine group, the
// carrier, as Isis' and Spread's lightweight groups do: processes that
// share many groups share one stream, one send window, one failure
// detector and one view change, whatever the number of groups.
//
// Open joins (or founds) the carrier group on an engine; Carrier.Join
// joins a light group by name, with the engine's Handlers (Deliver,
// View, Ended, Snapshot, Restore; not Rejoined) and the engine's
// orderings, which a light group keeps: its members deliver the same
// messages in each of its views, each sender's messages in send order,
// Total messages in one order, Causal and Safe as the engine defines
// them (Causal over all the carrier's messages, so at least as strong).
// A light group's members are carrier members; a message to it travels
// to every carrier member, and members not in the light group skip it
// (Stats.Foreign), so a carrier suits groups with mostly the same
// members: put processes that share little in carriers of their own.
//
// # How views change
//
// A light group's join or leave is one carrier message (Total and Safe:
// every carrier member applies the requests in one order, and a member
// that crashes cannot have applied one the others never see). A request
// starts a flush: every member of the light group sends a marker (Total,
// so it comes after the request everywhere) after its last message of
// the current view; a member's messages before its marker belong to the
// current view and those after to the next, so every member splits each
// sender's messages at the same place, whatever the interleaving. Once
// every member's marker is in, the view changes, and messages of the next
// view that came early are delivered in it. One request is flushed at a
// time, in the order of the requests.
//
// A carrier view change is a cut at which every survivor has delivered
// the same carrier messages, so every light group settles there at once:
// a flush under way completes, the requests still queued apply together,
// and members gone from the carrier leave every light group they were
// in (in the Failed or Left of the light view, as in the carrier's), in
// one more view. A process's crash therefore costs one suspicion and one
// carrier view change, and every light group it was in changes view in
// the same delivery pass.
//
// # State transfer
//
// A joiner gets its state from the oldest member of its first view: that
// member's Snapshot runs between its last delivery of the old view and
// its first of the new one, and the state travels in carrier messages of
// ChunkBytes; the joiner buffers its light group's messages meanwhile,
// then Restore runs, then its first View and what was buffered. Join
// returns after that. If the donor leaves the carrier before the state is
// complete, the transfer starts again at the carrier view change, from a
// member that has its state; if none has, the members still waiting end
// with engine.ErrStateTransfer.
//
// # Costs and limits
//
//   - A light group costs a few KiB at every carrier member (its name,
//     members and counters), nothing on the network when idle, and two
//     bytes or so per message (its id).
//   - Every handler of every light group runs on the carrier's delivery
//     goroutine: a slow handler delays every light group of the carrier,
//     and flow control holds back the carrier's senders (all groups).
//   - Snapshot and Restore also run there; a light group's state is held
//     whole in memory on both sides (MaxStateBytes), so light groups suit
//     states of megabytes, not gigabytes.
//   - A view change of a light group waits for a marker from each of its
//     members: a member whose carrier deliveries stall delays it (and a
//     carrier view change settles it).
//   - A message sent while its sender leaves may be delivered or not, the
//     same at every member.
package light
