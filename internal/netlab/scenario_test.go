package netlab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestShippedScenariosParse(t *testing.T) {
	files, err := filepath.Glob("scenarios/*.lab")
	if err != nil || len(files) < 4 {
		t.Fatalf("scenario files: %v %v", files, err)
	}
	for _, f := range files {
		if _, err := ParseScenarioFile(f); err != nil {
			t.Error(err)
		}
	}
}

func TestParseScenario(t *testing.T) {
	sc, err := ParseScenario("x", strings.NewReader(`
# comment
members 5   # five
order total+safe
rate 0
size 128
state-size 4096
leave-timeout 20s
mtu 1500
at 6s heal
at 2s partition 0,1,2,5 | m3, m4
at 3s join
at 1s loss 5%
at 1500ms loss m3 2.5%
at 4s crash coordinator
at 5s crash m1
end at 12s
`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Members != 5 || sc.Nodes() != 6 || sc.Order != "total" || !sc.Safe || sc.Rate != 0 || sc.Size != 128 || sc.StateSize != 4096 || sc.End != 12*time.Second || sc.LeaveTimeout != 20*time.Second || sc.MTU != 1500 {
		t.Errorf("settings: %+v", sc)
	}
	var got []string
	for _, st := range sc.Steps {
		got = append(got, st.String())
	}
	want := []string{
		"at 1s loss 5%", "at 1.5s loss m3 2.5%", "at 2s partition 0,1,2,5 | 3,4", "at 3s join (m5)",
		"at 4s crash coordinator", "at 5s crash m1", "at 6s heal",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseScenarioErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"members 5\nat 2s partition 0,1,2\nend at 3s", "x:2: partition needs two sides"},
		{"members 5\nat 2s partition 0,1,2 | 3\nend at 3s", "x:2: m4 is on no side"},
		{"members 5\nat 2s partition 0,1,2 | 2,3,4\nend at 3s", "x:2: m2 is on two sides"},
		{"members 5\nat 2s partition 0,1,2 | 3,4,5\nend at 3s", "x:2: m5: the scenario has members 0 to 4"},
		{"members 5\n\nat 2 heal\nend at 3s", `x:3: time "2"`},
		{"members 5\nat 2s loss 5\nend at 3s", `x:2: loss "5": want a percentage`},
		{"members 5\nat 2s loss 101%\nend at 3s", `x:2: loss "101%"`},
		{"members 5\nat 2s crash m9\nend at 3s", "x:2: m9: the scenario has members 0 to 4"},
		{"members 5\nat 2s crash\nend at 3s", `x:2: want "crash coordinator" or "crash mK"`},
		{"members 5\nat 2s explode\nend at 3s", `x:2: unknown step "explode"`},
		{"members 5\nat 2s heal now\nend at 3s", "x:2: heal takes no arguments"},
		{"members five\nend at 3s", `x:1: members "five"`},
		{"order sideways\nend at 3s", "x:1: "},
		{"members 5\nsenders all\nend at 3s", `x:2: unknown line "senders"`},
		{"leave-timeout 0s\nend at 3s", `x:1: leave-timeout "0s"`},
		{"mtu 100\nend at 3s", `x:1: mtu 100: want 576 to 65535`},
		{"members 5\nat 4s heal\nend at 3s", "x:3: end at 3s is not after the last step"},
		{"members 5\nat 4s heal", `x: no "end at TIME" line`},
	} {
		_, err := ParseScenario("x", strings.NewReader(tc.text))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: got error %v, want one starting %q", tc.text, err, tc.want)
		}
	}
}

// TestParseScenarioFileName: reports name a scenario by its file.
func TestParseScenarioFileName(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cut.lab")
	if err := os.WriteFile(p, []byte("members 2\nat 1s heal oops\nend at 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseScenarioFile(p); err == nil || !strings.HasPrefix(err.Error(), "cut:2: ") {
		t.Errorf("got %v, want an error starting cut:2:", err)
	}
}
