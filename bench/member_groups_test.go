package bench

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
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
