package sequencer

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// ErrInconsistent is wrapped by Merge's error when two records disagree.
var ErrInconsistent = errors.New("sequencer: inconsistent order records")

// Merge returns the union of the records the survivors of a view know
// (each member's Orderer.Known), sorted by global number, duplicates
// removed and overlapping records joined, so that the result is disjoint.
// It returns an error wrapping ErrInconsistent if one global number maps
// to two different (sender, seq) pairs, or one (sender, seq) to two global
// numbers. The result may have gaps (records no survivor received).
func Merge(known [][]Record) ([]Record, error) {
	var all []Record
	for _, k := range known {
		for _, r := range k {
			if !r.valid(0) {
				return nil, fmt.Errorf("%w: invalid record %+v", ErrInconsistent, r)
			}
			all = append(all, r)
		}
	}
	slices.SortFunc(all, func(a, b Record) int { return cmp.Compare(a.Global, b.Global) })
	var out []Record
	for _, r := range all {
		if len(out) > 0 {
			p := &out[len(out)-1]
			if r.Global < p.End() {
				// Overlap: r must continue p's mapping.
				if r.Sender != p.Sender || r.First-p.First != r.Global-p.Global || r.First < p.First {
					return nil, fmt.Errorf("%w: global %d: %+v and %+v", ErrInconsistent, r.Global, *p, r)
				}
				if r.End() > p.End() {
					p.Count = r.End() - p.Global
				}
				continue
			}
		}
		out = append(out, r)
	}
	// One (sender, seq) must not have two global numbers.
	bySender := slices.Clone(out)
	slices.SortFunc(bySender, func(a, b Record) int {
		return cmp.Or(cmp.Compare(a.Sender, b.Sender), cmp.Compare(a.First, b.First))
	})
	for i := 1; i < len(bySender); i++ {
		a, b := bySender[i-1], bySender[i]
		if a.Sender == b.Sender && b.First <= a.Last() {
			return nil, fmt.Errorf("%w: sender %d seq %d ordered twice", ErrInconsistent, b.Sender, b.First)
		}
	}
	return out, nil
}

// Complete is CompleteFrom for records that start at the view's first
// global number (1), with no message of any sender ordered before them.
func Complete(records []Record, cut []uint64) []Record {
	return CompleteFrom(1, make([]uint64, len(cut)), records, cut)
}

// CompleteFrom returns the final order of a view being flushed. It keeps
// the longest prefix of records (as returned by Merge) that starts at
// nextGlobal, has no gap, continues each sender's sequence after
// ordered[s] without a gap, and stays within the cut (a record crossing
// cut[s] is cut short and ends the prefix). Then it appends, in sender
// rank order, one record per sender for its messages after the prefix up
// to cut[s]. The rule depends only on its inputs, so every survivor given
// the same merged records and cut computes the same order.
//
// The returned records are contiguous from nextGlobal. Records beyond the
// kept prefix are dropped: no survivor can have delivered them, since a
// member delivering a message holds its record and every earlier one and
// the cut covers the data it delivered.
func CompleteFrom(nextGlobal uint64, ordered []uint64, records []Record, cut []uint64) []Record {
	next := slices.Clone(ordered)
	out := make([]Record, 0, len(records)+len(cut))
	g := nextGlobal
	for _, r := range records {
		if r.End() <= g {
			continue // wholly before the start
		}
		if r.Global > g || r.Sender < 0 || r.Sender >= len(cut) {
			break
		}
		// Trim a record that starts before g.
		skip := g - r.Global
		r.Global, r.First, r.Count = g, r.First+skip, r.Count-skip
		if r.First != next[r.Sender]+1 {
			break
		}
		if r.Last() > cut[r.Sender] {
			if cut[r.Sender] >= r.First {
				r.Count = cut[r.Sender] - r.First + 1
				out = append(out, r)
				next[r.Sender] = r.Last()
				g = r.End()
			}
			break
		}
		out = append(out, r)
		next[r.Sender] = r.Last()
		g = r.End()
	}
	for s, c := range cut {
		if c > next[s] {
			r := Record{Global: g, Sender: s, First: next[s] + 1, Count: c - next[s]}
			out = append(out, r)
			g = r.End()
		}
	}
	return out
}
