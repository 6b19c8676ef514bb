package sequencer

import "testing"

func TestOrdererFullEvictsLater(t *testing.T) {
	o := NewOrderer(1, 2)
	o.Available(0, 3)
	o.AddRecords([]Record{{2, 0, 2, 1}, {3, 0, 3, 1}})
	if !o.Full() {
		t.Fatal("not full")
	}
	// The record delivery waits for still gets in, evicting global 3.
	if o.AddRecords([]Record{{1, 0, 1, 1}}) != 1 {
		t.Fatal("needed record refused")
	}
	for g := uint64(1); g <= 2; g++ {
		if _, _, gg, ok := o.Next(); !ok || gg != g {
			t.Fatalf("global %d not delivered", g)
		}
	}
	if _, _, _, ok := o.Next(); ok {
		t.Fatal("evicted record delivered")
	}
	o.Release(3)
	o.AddRecords([]Record{{3, 0, 3, 1}})
	if _, q, _, ok := o.Next(); !ok || q != 3 {
		t.Fatal("resent record not delivered")
	}
}
