package sim

import (
	"bytes"
	"testing"
)

// seedCount is how many seeds a campaign test runs: full, short with
// -short, and race under the race detector. The simulator and every
// package it drives run on one goroutine, so the detector can find
// nothing there that more seeds would show; under it a few seeds cover
// the code, and the seeds' own checks are the ordinary run's (and the
// simulation campaigns').
func seedCount(full, short, race int) int {
	switch {
	case raceEnabled:
		return race
	case testing.Short():
		return short
	}
	return full
}

// firstSeed is where the tests' seeds start for the options the
// simulation campaigns also draw (network faults, membership, groups):
// CI runs the campaigns on seeds 1 to 1000, so the tests take the ones
// after, and their time adds coverage rather than repeating it.
const firstSeed = 1001

// The network-fault campaign: loss, duplication, reordering and delay.
func TestSeeds(t *testing.T) {
	seeds := seedCount(600, 100, 10)
	var retransmits, naks, dups, malformed uint64
	for s := uint64(firstSeed); s < firstSeed+uint64(seeds); s++ {
		res := Run(StaticOptions(s))
		if len(res.Violations) > 0 {
			t.Fatalf("seed %d: %v (replay: go run ./cmd/vssim -faults network -seed %d -v)", s, res.Violations, s)
		}
		for _, st := range res.Stats {
			retransmits += st.Retransmits
			naks += st.NAKsSent
			dups += st.Duplicates
			malformed += st.Malformed
		}
	}
	// The fault mix must really exercise recovery.
	if retransmits == 0 || naks == 0 || dups == 0 {
		t.Fatalf("faults not exercised: %d retransmits, %d NAKs, %d duplicates", retransmits, naks, dups)
	}
	if malformed != 0 {
		t.Fatalf("%d datagrams between correct members failed to decode", malformed)
	}
}

// The membership campaign: crashes and restarts, joins, leaves and
// partitions on top of the network faults; every run is checked for view
// synchrony and must settle into one view.
func TestMembershipSeeds(t *testing.T) {
	seeds := seedCount(300, 50, 5)
	views, crashes := 0, 0
	for s := uint64(firstSeed); s < firstSeed+uint64(seeds); s++ {
		o := RandomOptions(s)
		res := Run(o)
		if len(res.Violations) > 0 {
			t.Fatalf("seed %d: %v (replay: go run ./cmd/vssim -seed %d -v)", s, res.Violations, s)
		}
		views += res.Views
		crashes += o.Crashes
	}
	if views < seeds*3 || crashes == 0 {
		t.Fatalf("membership not exercised: %d views, %d crashes over %d runs", views, crashes, seeds)
	}
}

// A seed replays exactly: the same trace, byte for byte.
func TestReplay(t *testing.T) {
	var a, b bytes.Buffer
	for _, w := range []*bytes.Buffer{&a, &b} {
		o := RandomOptions(12345)
		o.Trace = w
		Run(o)
	}
	if a.Len() == 0 || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("traces differ (%d vs %d bytes)", a.Len(), b.Len())
	}
}

// The checker must see a broken run: a network that loses every datagram
// to one member can deliver nothing there, and completeness must say so.
func TestCheckerCatchesLoss(t *testing.T) {
	o := RandomOptions(7)
	o.Loss = 1
	o.TimeLimit = 2_000_000
	res := Run(o)
	if len(res.Violations) == 0 {
		t.Fatal("a run that lost every datagram passed the checker")
	}
}

// Heavy loss with tiny windows and a slow consumer still delivers
// everything, in order, exactly once.
func TestHeavyLossTinyWindow(t *testing.T) {
	o := StaticOptions(99)
	o.Members, o.Messages = 4, 300
	o.Loss, o.Duplicate, o.Reorder = 0.3, 0.1, 0.2
	o.SlowConsume = 0.5
	o.Protocol.Member.WindowMessages, o.Protocol.Member.DeliveryQueue = 16, 4
	// Pieces go 16 at a time here: a message of four byte windows (about
	// 100 pieces) would take the whole sending period at 30% loss.
	o.HugeShare = 0
	res := Run(o)
	if len(res.Violations) > 0 {
		t.Fatal(res.Violations)
	}
	if res.Sent != 4*300 || res.Delivered < 4*300 {
		t.Fatalf("sent %d, delivered %d", res.Sent, res.Delivered)
	}
}

// A member slowed down for a while under the evict policy is removed (by
// a sender's suspicion) and rejoins; under block it is only waited for.
// Either way every guarantee holds.
func TestSlowMemberPolicies(t *testing.T) {
	seeds := seedCount(60, 60, 10)
	for _, evict := range []bool{false, true} {
		evictions, views := 0, 0
		for s := uint64(1); s <= uint64(seeds); s++ {
			o := StaticOptions(s)
			o.Members, o.SlowMembers, o.Messages, o.SendGap = 4, 1, 150, 100
			if evict {
				o.Protocol.EvictTicks, o.Protocol.EvictLag = 50, 0.5
			}
			res := Run(o)
			if len(res.Violations) > 0 {
				t.Fatalf("evict %v, seed %d: %v", evict, s, res.Violations)
			}
			evictions += res.Evictions
			views += res.Views
		}
		if evict && evictions == 0 {
			t.Error("no slow member was evicted under the evict policy")
		}
		if !evict && evictions != 0 {
			t.Errorf("%d members evicted under the block policy", evictions)
		}
		t.Logf("evict %v: %d evictions, %d views installed", evict, evictions, views)
	}
}

// Processes that share three groups, watched once for all of them: every
// group checked on its own through crashes, restarts, joins, leaves and
// partitions; and idle groups are silent (no heartbeat of their own), so
// it also holds that nothing in a group needed them.
func TestGroupsSeeds(t *testing.T) {
	seeds := seedCount(100, 20, 2)
	for s := uint64(firstSeed); s < firstSeed+uint64(seeds); s++ {
		o := RandomOptions(s)
		o.Groups = 3
		res := Run(o)
		if len(res.Violations) > 0 {
			t.Fatalf("seed %d: %v (replay: go run ./cmd/vssim -groups 3 -seed %d -v)", s, res.Violations, s)
		}
	}
}

// Idle groups ticked coarsely (100 ticks in one step, caught up before
// anything reaches them, as the engine ticks them) keep every guarantee
// through the membership campaign, and the coarse path is taken.
func TestIdleTicksSeeds(t *testing.T) {
	seeds := seedCount(100, 20, 2)
	skipped := 0
	for s := uint64(1); s <= uint64(seeds); s++ {
		o := RandomOptions(s)
		o.Groups, o.IdleTicks = 2, 100
		res := Run(o)
		if len(res.Violations) > 0 {
			t.Fatalf("seed %d: %v (replay: go run ./cmd/vssim -groups 2 -idle 100 -seed %d -v)", s, res.Violations, s)
		}
		skipped += res.IdleSkipped
	}
	if skipped == 0 {
		t.Fatal("no idle group was ticked coarsely")
	}
	t.Logf("%d ticks of idle groups taken in coarse steps", skipped)
}

// Each group's own failure detector (no shared liveness: heartbeats per
// group) still passes the membership campaign; the protocol keeps both.
func TestPerGroupDetectorSeeds(t *testing.T) {
	seeds := seedCount(100, 20, 3)
	for s := uint64(1); s <= uint64(seeds); s++ {
		o := RandomOptions(s)
		o.SharedLiveness = false
		if res := Run(o); len(res.Violations) > 0 {
			t.Fatalf("seed %d: %v (replay: go run ./cmd/vssim -shared=false -seed %d -v)", s, res.Violations, s)
		}
	}
}
