package netlab

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/bench"
)

// The lab tests replay the shipped scenarios over real namespaces with
// real member processes, as root. Each takes its scenario's length plus
// a few seconds; all of them about 45 s on 2 cores.

// needLab skips a test that runs the lab where it cannot run.
func needLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: builds vsbench and runs the fault lab")
	}
	if err := Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
}

// buildVsbench builds cmd/vsbench into the test's directory.
func buildVsbench(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipped: no go command on PATH to build vsbench with")
	}
	bin := filepath.Join(t.TempDir(), "vsbench")
	out, err := exec.Command(goTool, "build", "-o", bin, "github.com/cohort-vs/cohort/cmd/vsbench").CombinedOutput()
	if err != nil {
		t.Fatalf("building vsbench: %v\n%s", err, out)
	}
	return bin
}

// runShipped replays scenarios/name.lab and fails the test unless the
// logs pass the checker and every member exited cleanly.
func runShipped(t *testing.T, name string) *Report {
	t.Helper()
	needLab(t)
	sc, err := ParseScenarioFile(filepath.Join("scenarios", name+".lab"))
	if err != nil {
		t.Fatal(err)
	}
	bin := buildVsbench(t)
	var stderr, progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), sc.End+60*time.Second)
	defer cancel()
	rep, err := RunScenario(ctx, RunConfig{
		Scenario: sc,
		Program:  bench.ChildSpec{Path: bin},
		Dir:      t.TempDir(),
		Stderr:   &stderr,
		Progress: &progress,
	})
	var out bytes.Buffer
	if rep != nil {
		rep.Print(&out)
	}
	t.Logf("progress:\n%s\nreport:\n%s\nmembers' stderr:\n%s", &progress, &out, &stderr)
	if err != nil {
		if strings.Contains(err.Error(), ErrNoFilter.Error()) {
			t.Skipf("skipped: %v", err)
		}
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("violation: %v", v)
	}
	for _, e := range rep.BadExits {
		t.Errorf("bad exit: %s", e)
	}
	return rep
}

// addrs is the set of member addresses (ip:port) of a view.
func addrs(members []string) map[string]bool {
	out := map[string]bool{}
	for _, m := range members {
		a, _, _ := strings.Cut(m, "/")
		out[a] = true
	}
	return out
}

// TestLabPartition: 5 namespaces split 3|2 then healed. The majority
// installs a view of its 3 within 2 s and keeps delivering; the minority
// installs no view while cut off; after the heal the minority rejoins as
// new incarnations with state transfer; the logs pass the checker.
func TestLabPartition(t *testing.T) { checkSplit(t, runShipped(t, "partition-3-2"), 5) }

// TestLabTieBreakerSplit: under the tiebreaker quorum, of a 2|2 split of
// 4 the half holding the oldest member goes on, the other blocks, and
// all are back in one view after the heal.
func TestLabTieBreakerSplit(t *testing.T) {
	checkSplit(t, runShipped(t, "partition-2-2-tiebreaker"), 4)
}

// checkSplit checks a partition then a heal of total members: the first
// side goes on (a view of its own within 2 s, deliveries continuing),
// the second blocks (no view, no delivery after 2 s) and rejoins with
// state transfer after the heal; all end in one view of total.
func checkSplit(t *testing.T, rep *Report, total int) {
	t.Helper()
	cut, heal := rep.Steps[0], rep.Steps[1]
	if cut.Step.Kind != StepPartition || heal.Step.Kind != StepHeal {
		t.Fatalf("steps %v, %v: want a partition then a heal", cut.Step, heal.Step)
	}
	majority := map[string]bool{}
	for _, m := range cut.Step.Sides[0] {
		majority[netipPort(m)] = true
	}
	for _, mv := range cut.Views {
		switch mv.Side {
		case 0:
			if len(mv.Views) == 0 {
				t.Errorf("m%d (majority) installed no view after the cut", mv.Member)
				continue
			}
			v := mv.Views[0]
			if got := addrs(v.Members); len(got) != len(majority) || !sameKeys(got, majority) {
				t.Errorf("m%d (majority): first view after the cut has %v, want the majority %v", mv.Member, v.Members, majority)
			}
			if v.After > 2*time.Second {
				t.Errorf("m%d (majority): new view %v after the cut, want within 2s", mv.Member, v.After)
			}
			if phase := heal.At - cut.At; mv.LastDelivery < phase-time.Second {
				t.Errorf("m%d (majority): last delivery %v after the cut, heal %v after it: it stopped delivering", mv.Member, mv.LastDelivery, phase)
			}
		case 1:
			for _, v := range mv.Views {
				t.Errorf("m%d (minority) installed view %d %v during the partition", mv.Member, v.View, v.Members)
			}
			// Blocked: it delivers nothing from 2 s after the cut on.
			if mv.LastDelivery > 2*time.Second {
				t.Errorf("m%d (minority): delivered %v after the cut", mv.Member, mv.LastDelivery)
			}
		}
	}
	// The majority kept delivering: in the partition's phase, at least a
	// quarter of what it delivered before.
	before, during := rep.Phases[0], rep.Phases[1]
	for _, m := range cut.Step.Sides[0] {
		if during.Delivered[m] < before.Delivered[m]/4 {
			t.Errorf("m%d (majority) delivered %.0f/s during the partition, %.0f/s before", m, during.Delivered[m], before.Delivered[m])
		}
	}
	for _, m := range cut.Step.Sides[1] {
		var rejoined *ViewSeen
		for _, mv := range heal.Views {
			if mv.Member != m {
				continue
			}
			for i := range mv.Views {
				if mv.Views[i].NewIncarnation {
					rejoined = &mv.Views[i]
					break
				}
			}
		}
		switch {
		case rejoined == nil:
			t.Errorf("m%d (minority) did not rejoin as a new incarnation after the heal", m)
		case rejoined.Restored <= 0:
			t.Errorf("m%d (minority) rejoined as %s without state transfer", m, rejoined.Self)
		}
	}
	// After the heal every member ends in a view of all.
	for _, mv := range heal.Views {
		if len(mv.Views) == 0 || len(mv.Views[len(mv.Views)-1].Members) != total {
			t.Errorf("m%d: no view of all %d after the heal: %+v", mv.Member, total, mv.Views)
		}
	}
}

// TestLabTieBreakerPair: under the tiebreaker quorum a group of 2
// outlives the crash of its younger member: the oldest installs a view
// of itself alone and goes on delivering.
func TestLabTieBreakerPair(t *testing.T) {
	rep := runShipped(t, "pair-tiebreaker")
	checkShrinks(t, rep, shippedEnd(t, "pair-tiebreaker")-rep.Steps[len(rep.Steps)-1].At)
}

// TestLabLastManStanding: under the last-man-standing quorum a group of
// 5 loses its youngest member every 3 s and shrinks one failure at a
// time down to its oldest member alone, delivering all along.
func TestLabLastManStanding(t *testing.T) {
	rep := runShipped(t, "shrink-laststanding")
	checkShrinks(t, rep, shippedEnd(t, "shrink-laststanding")-rep.Steps[len(rep.Steps)-1].At)
}

// shippedEnd is when a shipped scenario ends, from time 0.
func shippedEnd(t *testing.T, name string) time.Duration {
	sc, err := ParseScenarioFile(filepath.Join("scenarios", name+".lab"))
	if err != nil {
		t.Fatal(err)
	}
	return sc.End
}

// checkShrinks checks crash steps: after each, m0 installs a view
// without the victim (of one member fewer) and delivers until the next
// step; after the last, until within a second of the end (last phase
// long).
func checkShrinks(t *testing.T, rep *Report, last time.Duration) {
	t.Helper()
	want := rep.Members
	for i, st := range rep.Steps {
		want--
		phase := last
		if i+1 < len(rep.Steps) {
			phase = rep.Steps[i+1].At - st.At
		}
		for _, mv := range st.Views {
			if mv.Member != 0 {
				continue
			}
			if len(mv.Views) == 0 || len(mv.Views[len(mv.Views)-1].Members) != want {
				t.Errorf("after %v: m0 has no view of %d members: %+v", st.Step, want, mv.Views)
			}
			if mv.LastDelivery < phase-time.Second {
				t.Errorf("after %v: m0's last delivery %v into a %v phase: it stopped delivering", st.Step, mv.LastDelivery, phase)
			}
		}
	}
}

func netipPort(m int) string { return netip.AddrPortFrom(nodeAddr(m), 7000).String() }

func sameKeys(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return len(a) == len(b)
}

// TestLabLoss: 5% loss on every link; the members go on delivering and
// the logs pass the checker.
func TestLabLoss(t *testing.T) {
	rep := runShipped(t, "loss-5")
	lossy := rep.Phases[len(rep.Phases)-1]
	for m, d := range lossy.Delivered {
		if d <= 0 {
			t.Errorf("m%d delivered nothing under 5%% loss", m)
		}
	}
}

// TestLabCrashCoordinator: the coordinator is killed; the 4 others
// install a view without it.
func TestLabCrashCoordinator(t *testing.T) {
	rep := runShipped(t, "crash-coordinator")
	crash := rep.Steps[0]
	for _, mv := range crash.Views {
		if mv.Member == crash.Step.Member {
			continue
		}
		if len(mv.Views) == 0 || addrs(mv.Views[0].Members)[strings.Split(crash.Victim, "/")[0]] {
			t.Errorf("m%d: no view without the killed coordinator %s: %+v", mv.Member, crash.Victim, mv.Views)
		}
	}
}

// TestLabJoinDuringPartition: a member joins the majority while the
// minority is cut off, with state transfer; all rejoin after the heal.
func TestLabJoinDuringPartition(t *testing.T) {
	rep := runShipped(t, "join-during-partition")
	join := rep.Steps[1]
	for _, mv := range join.Views {
		if mv.Member != join.Step.Member {
			continue
		}
		if len(mv.Views) == 0 || mv.Views[0].Restored <= 0 {
			t.Errorf("joiner m%d: no view with state transfer: %+v", mv.Member, mv.Views)
		}
	}
	last := rep.Steps[2].Views
	for _, mv := range last {
		if len(mv.Views) == 0 || len(mv.Views[len(mv.Views)-1].Members) != 6 {
			t.Errorf("m%d: no view of all 6 after the heal: %+v", mv.Member, mv.Views)
		}
	}
}

// TestLabInterrupt: SIGINT to a running `vsbench lab` ends it with the
// namespaces it made removed.
func TestLabInterrupt(t *testing.T) {
	needLab(t)
	bin := buildVsbench(t)
	cmd := exec.Command(bin, "lab", filepath.Join("scenarios", "partition-3-2.lab"))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "time 0") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no full view within 30s:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	prefix := NamePrefix + strconv.Itoa(cmd.Process.Pid) + "-"
	if n := countNamespaces(prefix); n != 6 {
		t.Errorf("%d namespaces named %s*, want 6", n, prefix)
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("vsbench lab did not exit within 30s of SIGINT")
	}
	if n := countNamespaces(prefix); n != 0 {
		t.Errorf("%d namespaces named %s* left after SIGINT", n, prefix)
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("no word of the interrupt on stderr:\n%s", stderr.String())
	}
}

func countNamespaces(prefix string) int {
	entries, _ := os.ReadDir("/run/netns")
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			n++
		}
	}
	return n
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
