package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// testEvent is one line of go test -json output (go doc test2json).
type testEvent struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// testRun is one test's outcome and what it logged.
type testRun struct {
	Name    string
	Action  string // pass, fail or skip ("" : no outcome, it never ended)
	Elapsed time.Duration
	Logs    []string // t.Log lines: "file_test.go:12: text"
	Skip    string   // why it skipped
}

// testOutput is a go test -json run: its tests in the order they began.
type testOutput struct {
	Tests    []*testRun
	byName   map[string]*testRun
	Failures []string // packages that failed outside any test (a build error)
}

// logLine matches a t.Log line as go test -v prints it.
var logLine = regexp.MustCompile(`^\s+(\w+_test\.go:\d+: .*?)\s*$`)

// readGoTest reads go test -json output.
func readGoTest(path string) (*testOutput, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := &testOutput{byName: map[string]*testRun{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	events := 0
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if line[0] != '{' { // go's own lines (a build error) are not JSON
			out.Failures = append(out.Failures, string(line))
			continue
		}
		var ev testEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("%s:%d: not go test -json output: %w", path, n, err)
		}
		events++
		if ev.Test == "" {
			if ev.Action == "fail" {
				out.Failures = append(out.Failures, "package "+ev.Package+" failed")
			}
			continue
		}
		t := out.byName[ev.Test]
		if t == nil {
			t = &testRun{Name: ev.Test}
			out.byName[ev.Test] = t
			out.Tests = append(out.Tests, t)
		}
		switch ev.Action {
		case "pass", "fail", "skip":
			t.Action = ev.Action
			t.Elapsed = time.Duration(ev.Elapsed * float64(time.Second))
		case "output":
			if m := logLine.FindStringSubmatch(ev.Output); m != nil {
				t.Logs = append(t.Logs, m[1])
				if t.Skip == "" {
					t.Skip = m[1]
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if events == 0 {
		return nil, fmt.Errorf("%s: not go test -json output: no event", path)
	}
	return out, nil
}

// topLevel lists the tests that are not subtests.
func (o *testOutput) topLevel() []*testRun {
	var out []*testRun
	for _, t := range o.Tests {
		if !strings.Contains(t.Name, "/") {
			out = append(out, t)
		}
	}
	return out
}

// subtests lists the direct subtests of a test.
func (o *testOutput) subtests(name string) []*testRun {
	var out []*testRun
	for _, t := range o.Tests {
		rest, ok := strings.CutPrefix(t.Name, name+"/")
		if ok && !strings.Contains(rest, "/") {
			out = append(out, t)
		}
	}
	return out
}

// passed checks that every test ran and passed: a failure, a skip, a
// test that never ended or no test at all is an error.
func (o *testOutput) passed() error {
	if len(o.Failures) > 0 {
		return fmt.Errorf("go test failed: %s", strings.Join(o.Failures, "; "))
	}
	top := o.topLevel()
	if len(top) == 0 {
		return errors.New("no test ran (does -run match a test?)")
	}
	for _, t := range o.Tests {
		switch t.Action {
		case "pass":
		case "skip":
			return fmt.Errorf("%s skipped: %s", t.Name, t.Skip)
		case "fail":
			return fmt.Errorf("%s failed", t.Name)
		default:
			return fmt.Errorf("%s never ended (the run was cut short?)", t.Name)
		}
	}
	return nil
}

// goTestResult is what a passing go test run says in a table cell: the
// tests that passed, how many subtests each had, and how long it took.
func goTestResult(path string) (string, error) {
	o, err := readGoTest(path)
	if err != nil {
		return "", err
	}
	if err := o.passed(); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	var parts []string
	for _, t := range o.topLevel() {
		s := "pass"
		if len(o.topLevel()) > 1 {
			s = t.Name + " pass"
		}
		if subs := o.subtests(t.Name); len(subs) > 1 {
			s += fmt.Sprintf(" (%d of %d subtests)", len(subs), len(subs))
		}
		s += ", " + seconds(t.Elapsed)
		parts = append(parts, s)
	}
	return strings.Join(parts, "; "), nil
}

// seconds formats a duration in seconds: 0.4 s, 12 s, 212 s.
func seconds(d time.Duration) string {
	s := d.Seconds()
	if s < 10 {
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	}
	return grouped(s) + " s"
}

// lastLine is the last line of a file that is not blank: a command's
// summary (vssim prints "runs: N  violations: 0 ...").
func lastLine(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return strings.Join(strings.Fields(last), " "), nil
}

// checkRow renders one experiment whose result is a go test run (-gotest;
// withLog adds what its tests logged) or a command's last line
// (-summary).
func checkRow(what, command, goTestFile, summaryFile string, withLog bool) (string, error) {
	var res string
	var err error
	switch {
	case goTestFile != "" && summaryFile != "":
		return "", errors.New("name -gotest or -summary, not both")
	case goTestFile != "":
		res, err = goTestResult(goTestFile)
		if err == nil && withLog {
			var logs []string
			if logs, err = loggedText(goTestFile); err == nil {
				res += "; " + strings.Join(logs, "; ")
			}
		}
	case withLog:
		return "", errors.New("-log goes with -gotest")
	case summaryFile != "":
		res, err = lastLine(summaryFile)
	default:
		return "", errors.New("name the run's output: -gotest FILE or -summary FILE")
	}
	if err != nil {
		return "", err
	}
	return row(what, code(command), res), nil
}

// fileLine is the "file_test.go:12: " that begins a logged line.
var fileLine = regexp.MustCompile(`^\w+_test\.go:\d+: `)

// loggedText is what the tests logged, without the file and line.
func loggedText(path string) ([]string, error) {
	o, err := readGoTest(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range o.Tests {
		for _, l := range t.Logs {
			out = append(out, fileLine.ReplaceAllString(l, ""))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: the tests logged nothing", path)
	}
	return out, nil
}

// testLog renders what a passing go test run logged (t.Log lines) as a
// code block under its command; cut keeps each line up to its first
// "; " (what follows is a test's diagnostics).
func testLog(command, path string, cut bool) (string, error) {
	o, err := readGoTest(path)
	if err != nil {
		return "", err
	}
	if err := o.passed(); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	var b strings.Builder
	b.WriteString("```\n$ " + command + "\n")
	n := 0
	for _, t := range o.Tests {
		for _, l := range t.Logs {
			if cut {
				l, _, _ = strings.Cut(l, "; ")
			}
			b.WriteString(l + "\n")
			n++
		}
	}
	if n == 0 {
		return "", fmt.Errorf("%s: the tests logged nothing", path)
	}
	for _, t := range o.topLevel() {
		fmt.Fprintf(&b, "--- PASS: %s (%s)\n", t.Name, seconds(t.Elapsed))
	}
	b.WriteString("```")
	return b.String(), nil
}

// lossName is a subtest of TestLargeMessagesUnderLoss: loss, mode, size.
var lossName = regexp.MustCompile(`/loss(\d+)%/([a-z-]+)/(\d+)KiB$`)

// lossRatio is the datagrams lost and the repair ratio in its log line:
// "lost 3 datagrams (24576 B), resent 25000 B (1.02x)".
var lossRatio = regexp.MustCompile(`lost (\d+) datagrams .*\((\d+\.\d+)x\)`)

// lossTable renders TestLargeMessagesUnderLoss's repairs: for each loss
// rate and mode, the payload bytes sent again against the bytes lost, by
// message size ("none lost" where the network happened to lose nothing).
func lossTable(path string) (string, error) {
	o, err := readGoTest(path)
	if err != nil {
		return "", err
	}
	if err := o.passed(); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	type key struct{ loss, mode string }
	var rows []key
	var sizes []int
	cellOf := map[key]map[int]string{}
	for _, t := range o.Tests {
		m := lossName.FindStringSubmatch(t.Name)
		if m == nil {
			continue
		}
		var r string
		for _, l := range t.Logs {
			if mm := lossRatio.FindStringSubmatch(l); mm != nil {
				r = mm[2] + "x"
				if mm[1] == "0" {
					r = "none lost"
				}
			}
		}
		if r == "" {
			return "", fmt.Errorf("%s: %s logged no repair ratio", path, t.Name)
		}
		k := key{m[1] + "%", m[2]}
		kib, _ := strconv.Atoi(m[3])
		if cellOf[k] == nil {
			cellOf[k] = map[int]string{}
			rows = append(rows, k)
		}
		cellOf[k][kib] = r
		if !slices.Contains(sizes, kib) {
			sizes = append(sizes, kib)
		}
	}
	if len(rows) == 0 {
		return "", fmt.Errorf("%s: no loss subtests (TestLargeMessagesUnderLoss)", path)
	}
	head := []string{"loss", "mode"}
	for _, s := range sizes {
		head = append(head, size(s<<10))
	}
	lines := []string{header(head...)}
	for _, k := range rows {
		cs := []string{k.loss, strings.NewReplacer("singly", "one at a time", "flat-out", "flat out").Replace(k.mode)}
		for _, s := range sizes {
			c := cellOf[k][s]
			if c == "" {
				c = "-"
			}
			cs = append(cs, c)
		}
		lines = append(lines, row(cs...))
	}
	return strings.Join(lines, "\n"), nil
}
