// Package detector decides when a silent member is suspected of having
// crashed. It is a pure state machine over logical ticks: the protocol
// reports what it hears and asks, each tick, what to probe and whom to
// suspect.
//
// Any datagram from a member counts as a sign of life (the protocol sends
// status frames at least every few ticks, so an idle link still carries
// heartbeats). A member silent for SilentTicks is probed, directly and
// through up to Helpers other members (SWIM's indirect probe), so that one
// lossy link or a busy receiver does not remove it; only if nothing is
// heard for ProbeTicks more is it suspected. Time is counted in the
// protocol's logical ticks, which the engine does not advance across a
// stall of its own process: a member does not blame others for the
// silence its own stall caused (Lifeguard's idea).
package detector

// Config sets the detector's timing, in ticks.
type Config struct {
	SilentTicks int64 // silence before probing
	ProbeTicks  int64 // further silence, while probing, before suspicion
	Helpers     int   // members asked to probe indirectly
}

// Detector watches the members of one view, by rank.
type Detector struct {
	cfg       Config
	self      int
	lastHeard []int64
	probing   []int64 // tick a probe round started; -1: not probing
	probed    []int64 // tick of the last probe sent
	suspected []bool
	now       int64
	next      int // rotates the choice of helpers
}

// New watches n members; self is this member's own rank, never watched.
func New(cfg Config, n, self int, now int64) *Detector {
	d := &Detector{cfg: cfg, self: self, lastHeard: make([]int64, n), probing: make([]int64, n), probed: make([]int64, n), suspected: make([]bool, n), now: now}
	for i := range d.lastHeard {
		d.lastHeard[i] = now
		d.probing[i] = -1
	}
	return d
}

// Heard records a sign of life from rank r. It also refutes a
// suspicion: a member heard again (after a partition heals, say) is
// watched afresh rather than waited for forever.
func (d *Detector) Heard(r int) {
	if r >= 0 && r < len(d.lastHeard) {
		d.lastHeard[r] = d.now
		d.probing[r] = -1
		d.suspected[r] = false
	}
}

// HeardWithin reports whether rank r was heard from in the last ticks
// ticks.
func (d *Detector) HeardWithin(r int, ticks int64) bool {
	return r >= 0 && r < len(d.lastHeard) && d.now-d.lastHeard[r] < ticks
}

// Probe is one probe to send: ask Target directly, and each of Helpers to
// ask it on this member's behalf.
type Probe struct {
	Target  int
	Helpers []int
}

// Tick advances the clock one tick and returns the probes to start and
// the members newly suspected.
func (d *Detector) Tick(probes []Probe, suspects []int) ([]Probe, []int) {
	d.now++
	for r := range d.lastHeard {
		if r == d.self || d.suspected[r] {
			continue
		}
		switch {
		case d.probing[r] >= 0 && d.now-d.probing[r] >= d.cfg.ProbeTicks:
			d.suspected[r] = true
			suspects = append(suspects, r)
		case d.probing[r] < 0 && d.now-d.lastHeard[r] >= d.cfg.SilentTicks:
			d.probing[r], d.probed[r] = d.now, d.now
			probes = append(probes, Probe{Target: r, Helpers: d.helpers(r)})
		case d.probing[r] >= 0 && d.now-d.probed[r] >= max(1, d.cfg.ProbeTicks/3):
			// Probe again within the window: one lost probe or answer must
			// not condemn a member.
			d.probed[r] = d.now
			probes = append(probes, Probe{Target: r, Helpers: d.helpers(r)})
		}
	}
	return probes, suspects
}

// Advance moves the clock one tick and judges nothing: for a member
// whose process watches its peers for all its groups.
func (d *Detector) Advance() { d.now++ }

// Skip moves the clock n ticks on, as n calls of Advance.
func (d *Detector) Skip(n int64) { d.now += n }

// helpers picks up to cfg.Helpers live members other than self and r.
func (d *Detector) helpers(r int) []int {
	var h []int
	n := len(d.lastHeard)
	for i := 0; i < n && len(h) < d.cfg.Helpers; i++ {
		c := (d.next + i) % n
		if c != d.self && c != r && !d.suspected[c] && d.probing[c] < 0 {
			h = append(h, c)
		}
	}
	d.next++
	return h
}

// Suspected reports whether rank r is suspected.
func (d *Detector) Suspected(r int) bool { return d.suspected[r] }

// Suspect marks r suspected on another member's word.
func (d *Detector) Suspect(r int) {
	if r != d.self && r >= 0 && r < len(d.suspected) {
		d.suspected[r] = true
	}
}
