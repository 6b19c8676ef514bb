package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cohort-vs/cohort/internal/check"
)

func TestMemberLogs(t *testing.T) {
	for _, c := range []struct {
		path string
		n    int
		want []string
	}{
		{"m1.log", 1, []string{"m1.log"}},
		{"m1.log", 0, []string{"m1.log"}},
		{"d/m1.log", 3, []string{"d/m1.0.log", "d/m1.1.log", "d/m1.2.log"}},
		{"d.x/m1", 2, []string{"d.x/m1.0", "d.x/m1.1"}},
		{"", 2, []string{"", ""}},
	} {
		if got := MemberLogs(c.path, c.n); !reflect.DeepEqual(got, c.want) {
			t.Errorf("MemberLogs(%q, %d) = %v, want %v", c.path, c.n, got, c.want)
		}
	}
}

func TestWorseExit(t *testing.T) {
	for _, c := range []struct{ a, b, want int }{
		{ExitOK, ExitOK, ExitOK},
		{ExitOK, ExitNotLeft, ExitNotLeft},
		{ExitNotLeft, ExitRemoved, ExitRemoved},
		{ExitRemoved, ExitFailed, ExitFailed},
		{ExitFailed, ExitOK, ExitFailed},
	} {
		if got := worseExit(c.a, c.b); got != c.want {
			t.Errorf("worseExit(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestMemberGroupsValidate(t *testing.T) {
	m := DefaultMemberConfig()
	for _, n := range []int{0, 1, 3, MaxGroups} {
		m.Groups = n
		if err := m.Validate(); err != nil {
			t.Errorf("groups %d: %v", n, err)
		}
	}
	for _, n := range []int{-1, MaxGroups + 1} {
		m.Groups = n
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "groups") {
			t.Errorf("groups %d: %v, want an error naming groups", n, err)
		}
	}
	m.Groups, m.SendGroups = 3, []int{0, 2}
	if err := m.Validate(); err != nil {
		t.Errorf("send groups %v of 3: %v", m.SendGroups, err)
	}
	for _, c := range []struct {
		groups int
		send   []int
	}{{3, []int{3}}, {3, []int{-1}}, {1, []int{0}}} {
		m.Groups, m.SendGroups = c.groups, c.send
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "send group") {
			t.Errorf("send groups %v of %d: %v, want an error naming send groups", c.send, c.groups, err)
		}
	}
}

// TestLabGroups: 3 member processes share 3 groups (vsbench member
// --groups 3), each sending to all of them; one is killed -9. Every
// group's log at every member is a log of that group alone: every
// surviving group installs a view without the killed member, and each
// group's logs pass the checker on their own.
func TestLabGroups(t *testing.T) {
	program := buildVsbench(t)
	const groups = 3
	lab := newLab(t, program, 3)
	addrs, err := FreeAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	var members []*LabMember
	for i := range addrs {
		m, err := lab.Start(fmt.Sprintf("m%d", i), addrs[i], addrs, "--groups", strconv.Itoa(groups), "--rate", "3000", "--duration", "60s")
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	// logs[i][g] is member i's log of group g.
	logs := make([][]*logTail, len(members))
	for i, m := range members {
		for _, p := range MemberLogs(m.Log, groups) {
			logs[i] = append(logs[i], &logTail{path: p})
		}
	}
	// waitLogs polls the logs of the members given until ok holds for
	// each of their groups' views and deliveries so far.
	waitLogs := func(what string, ms []int, ok func(g int, views []check.LogEvent, delivered int) bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			all := true
			for _, i := range ms {
				for g, lt := range logs[i] {
					if err := lt.poll(); err != nil {
						t.Fatal(err)
					}
					data, err := os.ReadFile(lt.path)
					if err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
					if !ok(g, lt.views, bytes.Count(data, []byte(`"ev":"deliver"`))) {
						all = false
					}
				}
				if members[i].Exited() {
					t.Fatalf("%s exited before %s", members[i].Name, what)
				}
			}
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	every := []int{0, 1, 2}
	waitLogs("every group's view of 3 members and deliveries in it", every, func(_ int, vs []check.LogEvent, delivered int) bool {
		return len(vs) > 0 && len(vs[len(vs)-1].Members) == 3 && delivered >= 500
	})
	// The victim's member ID in each group (an incarnation per group).
	victim := members[1]
	var victimIDs []string
	for _, lt := range logs[1] {
		victimIDs = append(victimIDs, lt.views[len(lt.views)-1].Self)
	}
	killAt, err := victim.Kill()
	if err != nil {
		t.Fatal(err)
	}
	waitLogs("every survivor's view without the killed member in every group", []int{0, 2}, func(g int, vs []check.LogEvent, _ int) bool {
		_, ok := FirstViewWithout(vs, victimIDs[g], killAt)
		return ok
	})
	for _, i := range []int{0, 2} {
		if err := members[i].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 2} {
		code, err := members[i].Wait(15 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code != ExitOK {
			t.Errorf("%s exited with status %d", members[i].Name, code)
		}
	}
	for g := 0; g < groups; g++ {
		var paths []string
		for i := range members {
			paths = append(paths, logs[i][g].path)
		}
		l, err := check.LoadLogs(check.LogOptions{Stopped: true, Killed: []string{logs[1][g].path}}, paths...)
		if err != nil {
			t.Fatal(err)
		}
		if want := GroupNames(groups)[g]; l.Group != want {
			t.Errorf("group %d's logs are of group %q, want %q", g, l.Group, want)
		}
		for _, v := range append(l.History().Check(20), l.CheckStates(20)...) {
			t.Errorf("group %d: %v", g, v)
		}
		var detect []string
		for _, i := range []int{0, 2} {
			lt := logs[i][g]
			in := l.Incarnation(lt.views[0].Self)
			if in == nil || in.Deliveries == 0 || in.Ended != "left" {
				t.Errorf("group %d: %s: %+v", g, members[i].Name, in)
				continue
			}
			v, _ := FirstViewWithout(in.Views, victimIDs[g], killAt)
			d := time.Duration(v.T - killAt.UnixNano())
			if d > 2*time.Second {
				t.Errorf("group %d: %s: %v from the kill to the view without it", g, members[i].Name, d)
			}
			detect = append(detect, ms(d))
		}
		t.Logf("group %d: kill→view %s; %d incarnations", g, strings.Join(detect, ", "), len(l.Incarnations))
	}
}

func TestSampleGroups(t *testing.T) {
	for _, c := range []struct {
		n, k int
		want []int
	}{
		{1, 20, []int{0}},
		{5, 20, []int{0, 1, 2, 3, 4}},
		{20, 20, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
		{100, 5, []int{0, 24, 49, 74, 99}},
		{10000, 2, []int{0, 9999}},
		{10000, 1, []int{0}},
	} {
		if got := sampleGroups(c.n, c.k); !reflect.DeepEqual(got, c.want) {
			t.Errorf("sampleGroups(%d, %d) = %v, want %v", c.n, c.k, got, c.want)
		}
	}
	got := sampleGroups(10000, 20)
	if len(got) != 20 || got[0] != 0 || got[19] != 9999 {
		t.Errorf("sampleGroups(10000, 20) = %v", got)
	}
}

// TestCrashGroups: RunCrash with 3 member processes sharing 20 groups,
// one killed -9: every group installs a view without it at both
// survivors, and the sample's logs (10 of the 20 groups, the first and
// the last among them) pass the checker. With the load on the sample
// alone, the other groups send nothing.
func TestCrashGroups(t *testing.T) {
	program := buildVsbench(t)
	for _, run := range []struct {
		name, load string
		light      bool
	}{{LoadAll, LoadAll, false}, {LoadSample, LoadSample, false}, {"light", LoadAll, true}} {
		t.Run(run.name, func(t *testing.T) {
			cfg := DefaultCrashConfig()
			cfg.Members, cfg.Groups, cfg.Sample, cfg.Load, cfg.Light = 3, 20, 10, run.load, run.light
			cfg.Rate = 2000 // per member: 100 or 200 msgs/s per group
			cfg.Warmup, cfg.After = 500*time.Millisecond, 300*time.Millisecond
			cfg.Dir = t.TempDir()
			var stderr bytes.Buffer // written under the lab's lock, read after RunCrash
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := RunCrash(ctx, cfg, program, &stderr)
			if err != nil {
				t.Fatalf("%v\nmembers' standard error:\n%s", err, stderr.String())
			}
			t.Log(res.Summary())
			checkCrashGroups(t, cfg, res)
			if t.Failed() {
				t.Logf("members' standard error:\n%s", stderr.String())
			}
		})
	}
}

func checkCrashGroups(t *testing.T, cfg CrashConfig, res *CrashResult) {
	t.Helper()
	g := res.Groups
	if g == nil {
		t.Fatal("no groups in the result")
	}
	if g.Installed != cfg.Groups || g.Absent != 0 {
		t.Errorf("%d of %d groups installed the view without the victim (%d had lost it before)", g.Installed, cfg.Groups, g.Absent)
	}
	if len(g.Survivors) != 2 {
		t.Fatalf("%d survivors, want 2", len(g.Survivors))
	}
	for _, s := range g.Survivors {
		if s.Installed != cfg.Groups || s.Max <= 0 || s.Max > g.Max || s.First > s.Median {
			t.Errorf("survivor %+v (groups' max %v)", s, g.Max)
		}
		if s.Addr == addrOf(res.Victim) {
			t.Errorf("the victim %s is among the survivors", res.Victim)
		}
	}
	if g.Median <= 0 || g.Median > g.P99 || g.P99 > g.Max || g.Max > cfg.Timeout {
		t.Errorf("kill→view median %v, p99 %v, max %v", g.Median, g.P99, g.Max)
	}
	spread := 0
	for _, n := range g.Spread {
		spread += n
	}
	if spread != 2*cfg.Groups {
		t.Errorf("the spread counts %d installs, want %d", spread, 2*cfg.Groups)
	}
	sample := sampleGroups(cfg.Groups, cfg.Sample)
	if len(g.Sample) != len(sample) || g.Sample[0] != "vsbench-0" || g.Sample[len(g.Sample)-1] != "vsbench-19" {
		t.Errorf("sample %v", g.Sample)
	}
	if res.Deliveries == 0 || res.Sends == 0 {
		t.Errorf("the sample's logs hold %d sends and %d deliveries", res.Sends, res.Deliveries)
	}
	for _, v := range res.Violations {
		t.Error(v)
	}
	for _, e := range res.Exits {
		t.Error(e)
	}
	if !res.OK() {
		t.Error("the result is not OK")
	}
	inSample := map[int]bool{}
	for _, i := range sample {
		inSample[i] = true
	}
	// A survivor's views log holds each group's view lines as they are
	// in the group's own log, and nothing else; with the load on the
	// sample, only the sample's groups send.
	for _, s := range g.Survivors {
		m := s.Member
		views, err := os.ReadFile(filepath.Join(cfg.Dir, m+".views.log"))
		if err != nil {
			t.Fatal(err)
		}
		var own []string
		for i, p := range MemberLogs(filepath.Join(cfg.Dir, m+".log"), cfg.Groups) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sent := bytes.Contains(data, []byte(`"ev":"send"`))
			if want := cfg.Load != LoadSample || inSample[i]; sent != want {
				t.Errorf("%s: group %d sent: %v, want %v", m, i, sent, want)
			}
			for _, line := range strings.SplitAfter(string(data), "\n") {
				if strings.Contains(line, `"ev":"view"`) {
					own = append(own, line)
				}
			}
		}
		lines := strings.SplitAfter(string(views), "\n")
		lines = lines[:len(lines)-1] // after the last newline
		slices.Sort(lines)
		slices.Sort(own)
		if !slices.Equal(lines, own) {
			t.Errorf("%s: the views log's %d lines are not the %d view lines of the groups' logs", m, len(lines), len(own))
		}
	}
}
