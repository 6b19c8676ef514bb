package light

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// The carrier's own state, moved to a process that joins the carrier:
// the replicated part of the table, taken at the carrier's view change
// (before the cut settles it, which the joiner then does as everyone).
const tableVersion = 1

// snapshot is the carrier's Snapshot handler.
func (t *table) snapshot(w io.Writer) error {
	b := []byte{tableVersion}
	b = binary.AppendUvarint(b, t.nextID)
	ids := make([]uint64, 0, len(t.byID))
	for id := range t.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		lg := t.byID[id]
		b = binary.AppendUvarint(b, lg.id)
		b = appendBytes(b, []byte(lg.name))
		b = binary.AppendUvarint(b, lg.epoch)
		b = binary.AppendUvarint(b, lg.req)
		b = binary.AppendUvarint(b, lg.xfers)
		b = binary.AppendUvarint(b, uint64(len(lg.members)))
		for _, m := range lg.members {
			b = appendMember(b, m)
		}
		b = binary.AppendUvarint(b, uint64(len(lg.restoring)))
		for _, tr := range lg.restoring {
			b = appendMember(b, tr.joiner)
			b = appendMember(b, tr.donor)
			b = binary.AppendUvarint(b, tr.xfer)
			b = append(b, boolByte(tr.failed))
		}
		b = binary.AppendUvarint(b, uint64(len(lg.queue)))
		for _, rq := range lg.queue {
			b = append(b, boolByte(rq.join))
			b = appendMember(b, rq.who)
		}
		b = append(b, boolByte(lg.flushing))
		if len(b) > 1<<20 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	_, err := w.Write(b)
	return err
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// restore is the carrier's Restore handler.
func (t *table) restore(rd io.Reader) error {
	data, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	r := reader{b: data}
	if v := r.byte(); r.err == nil && v != tableVersion {
		return fmt.Errorf("light: carrier state version %d, this build reads %d", v, tableVersion)
	}
	nextID := r.uvarint()
	const minMember = 3 // an empty address, a length and an incarnation
	n := r.count(8)
	byID := make(map[uint64]*lgroup, n)
	byName := make(map[string]*lgroup, n)
	for range n {
		lg := &lgroup{id: r.uvarint(), name: string(r.bytes(MaxNameBytes)), epoch: r.uvarint(), req: r.uvarint(), xfers: r.uvarint()}
		for range r.count(minMember) {
			lg.members = append(lg.members, r.member())
		}
		for range r.count(2*minMember + 2) {
			tr := transfer{joiner: r.member(), donor: r.member(), xfer: r.uvarint()}
			tr.failed = r.byte() == 1
			lg.restoring = append(lg.restoring, tr)
		}
		for range r.count(1 + minMember) {
			rq := request{join: r.byte() == 1}
			rq.who = r.member()
			lg.queue = append(lg.queue, rq)
		}
		lg.flushing = r.byte() == 1
		if r.err != nil {
			break
		}
		if lg.id == 0 || lg.id >= nextID || !validName(lg.name) || len(lg.members) == 0 ||
			byID[lg.id] != nil || byName[lg.name] != nil || (lg.flushing && len(lg.queue) == 0) {
			return errTable
		}
		byID[lg.id], byName[lg.name] = lg, lg
	}
	if r.err != nil || len(r.b) != 0 {
		return errTable
	}
	t.nextID, t.byID, t.byName = nextID, byID, byName
	t.cache = [cacheSize]*lgroup{}
	t.c.stats.groups.Store(int64(len(byID)))
	return nil
}
