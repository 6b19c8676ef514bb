package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/internal/check"
)

// TestLabJoinUnderLoad (opt-in: COHORT_LAB_STRESS=1; repeat with
// COHORT_LAB_RUNS=N): 5 members sending FIFO at 2,000 msg/s each with
// 8 MiB of state, started 200 ms apart; one is killed -9 at 5 s; a sixth
// starts at 8 s and joins, receiving the state, while the group runs on
// (6 processes on the machine's cores, the loopback queue dropping
// datagrams under the state transfer). No healthy member may be removed:
// every survivor installs the view of the survivors and the joiner, no
// view names a survivor as failed, everyone ends by leaving, and the
// joiner's state is the others'.
func TestLabJoinUnderLoad(t *testing.T) {
	if os.Getenv("COHORT_LAB_STRESS") == "" {
		t.Skip("opt-in: COHORT_LAB_STRESS=1 (about 15 s a run)")
	}
	program := buildVsbench(t)
	for i := 0; i < labRuns(t); i++ {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) { labJoinUnderLoad(t, program) })
	}
}

func labJoinUnderLoad(t *testing.T, program ChildSpec) {
	start := time.Now()
	lab := newLab(t, program, 6)
	addrs, err := FreeAddrs(6)
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--order", "fifo", "--rate", "2000", "--duration", "60s", "--state-size", "8388608"}
	var members []*LabMember
	for i := 0; i < 5; i++ {
		m, err := lab.Start(fmt.Sprintf("m%d", i), addrs[i], addrs[:5], flags...)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
		time.Sleep(200 * time.Millisecond)
	}
	sleepUntil(start.Add(5 * time.Second))
	victim := members[2]
	victimID := victim.Self()
	if _, err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	survivors := []*LabMember{members[0], members[1], members[3], members[4]}
	sleepUntil(start.Add(8 * time.Second))
	joiner, err := lab.Start("m5", addrs[5], addrs[:5], flags...)
	if err != nil {
		t.Fatal(err)
	}
	after := append(append([]*LabMember(nil), survivors...), joiner)
	waitErr := lab.WaitUntil(20*time.Second, "a view of the survivors and the joiner", after, func(_ *LabMember, vs []check.LogEvent) bool {
		if len(vs) == 0 {
			return false
		}
		var want []string
		for _, m := range after {
			want = append(want, m.Self()) // the joiner's is known once it has a view
		}
		return viewOf(vs[len(vs)-1], want...)
	})
	if waitErr == nil {
		time.Sleep(time.Second)
	}
	// Removals are counted up to here: members that all leave at once
	// disagree on who left and who failed (a separate matter).
	stopAt := time.Now()
	for _, m := range after {
		if !m.Exited() {
			if err := m.Signal(syscall.SIGTERM); err != nil {
				t.Error(err)
			}
		}
	}
	for _, m := range after {
		if _, err := m.Wait(20 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for _, m := range append(members, joiner) {
		paths = append(paths, m.Log)
	}
	if dir := os.Getenv("COHORT_LAB_KEEP"); dir != "" {
		t.Cleanup(func() {
			if t.Failed() {
				keepLogs(t, dir, paths)
			}
		})
	}
	logs, err := check.LoadLogs(check.LogOptions{Killed: []string{victim.Log}}, paths...)
	if err != nil {
		t.Fatal(err)
	}
	vs := append(logs.History().Check(20), logs.CheckStates(20)...)
	for _, v := range vs {
		t.Error(v)
	}
	var removed []string
	for _, in := range logs.Incarnations {
		if in.Name == victimID {
			continue
		}
		if in.Ended != "left" {
			removed = append(removed, fmt.Sprintf("%s ended %q", in.Name, in.Ended))
		}
		for _, v := range in.Views {
			if v.T >= stopAt.UnixNano() {
				break
			}
			for _, f := range v.Failed {
				if f != victimID {
					removed = append(removed, fmt.Sprintf("%s's view %d names %s failed", in.Name, v.View, f))
				}
			}
		}
	}
	slices.Sort(removed)
	removed = slices.Compact(removed)
	if len(removed) > 0 {
		t.Errorf("healthy members removed: %s", strings.Join(removed, "; "))
	}
	if waitErr != nil {
		t.Fatal(waitErr)
	}
	joined := logs.Incarnation(joiner.Self())
	if joined == nil || len(joined.States) == 0 {
		t.Fatalf("the joiner logged no state")
	}
	t.Logf("views: %d at the joiner; %d violations; total %v", len(joined.Views), len(vs), time.Since(start).Round(time.Millisecond))
}

// keepLogs copies the members' logs of a failed run into a new folder
// under dir (COHORT_LAB_KEEP), for reading after the test.
func keepLogs(t *testing.T, dir string, paths []string) {
	dst, err := os.MkdirTemp(dir, strings.ReplaceAll(t.Name(), "/", "-")+"-")
	if err != nil {
		t.Log(err)
		return
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, filepath.Base(p)), b, 0o644)
		}
		if err != nil {
			t.Log(err)
		}
	}
	t.Logf("logs kept in %s", dst)
}
