package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"
)

// logEvent is what the state-transfer figures need of a member's event
// log line (docs/LOGS.md).
type logEvent struct {
	T             int64    `json:"t"`
	Ev            string   `json:"ev"`
	Members       []string `json:"members"`
	RestoredBytes int64    `json:"restored_bytes"`
	RestoreMS     float64  `json:"restore_ms"`
}

// memberLog is one member's event log, reduced: its start, its views (and
// the state of each), and its delivery times.
type memberLog struct {
	start    int64
	views    []logEvent // view events
	restored []logEvent // state events that restored a transfer
	deliver  []int64
}

var deliverMark = []byte(`"ev":"deliver"`)

// readMemberLog reads a vsbench member's event log. Deliveries, by far
// the most lines, are read by their time alone.
func readMemberLog(path string) (*memberLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l := &memberLog{start: -1}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if bytes.Contains(line, deliverMark) {
			t, ok := leadingTime(line)
			if !ok {
				return nil, fmt.Errorf("%s:%d: not a member's event log line", path, n)
			}
			l.deliver = append(l.deliver, t)
			continue
		}
		var ev logEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("%s:%d: not a member's event log line: %w", path, n, err)
		}
		switch ev.Ev {
		case "start":
			if l.start < 0 {
				l.start = ev.T
			}
		case "view":
			l.views = append(l.views, ev)
		case "state":
			if ev.RestoredBytes > 0 {
				l.restored = append(l.restored, ev)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if l.start < 0 {
		return nil, fmt.Errorf("%s: no start event: not a member's event log", path)
	}
	sort.Slice(l.deliver, func(i, j int) bool { return l.deliver[i] < l.deliver[j] })
	return l, nil
}

// leadingTime reads the "t" that begins every line: {"t":123,...
func leadingTime(line []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"t":`))
	if !ok {
		return 0, false
	}
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	t, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return t, err == nil
}

// rate is the deliveries per second in [a, b).
func (l *memberLog) rate(a, b int64) float64 {
	lo := sort.Search(len(l.deliver), func(i int) bool { return l.deliver[i] >= a })
	hi := sort.Search(len(l.deliver), func(i int) bool { return l.deliver[i] >= b })
	return float64(hi-lo) / (float64(b-a) / 1e9)
}

func stateHeader() string {
	return header("load", "joiner's start to first view (restore included)", "restore (read and verify)",
		"a member's deliveries/s: before / during / after the transfer", "command")
}

// stateWindow is how long "before" and "after" the transfer a member's
// delivery rate is measured.
const stateWindow = 2 * time.Second

// stateRow renders one real-process state transfer from the joiner's log
// and an old member's: the time from the joiner's start to its first
// view, which includes receiving and restoring the state; the restore's
// own time (read and verify, as the joiner logged it); and the old
// member's delivery rate over the stateWindow before the joiner started,
// from its start to its first view, and over the stateWindow after.
func stateRow(load, command, joinerPath, memberPath string) (string, error) {
	j, err := readMemberLog(joinerPath)
	if err != nil {
		return "", err
	}
	m, err := readMemberLog(memberPath)
	if err != nil {
		return "", err
	}
	if len(j.views) == 0 {
		return "", fmt.Errorf("%s: the joiner installed no view", joinerPath)
	}
	if len(j.restored) == 0 {
		return "", fmt.Errorf("%s: the joiner restored no state", joinerPath)
	}
	t0, t1 := j.start, j.views[0].T
	st := j.restored[0]
	w := int64(stateWindow)
	switch {
	case len(m.views) == 0 || m.views[0].T > t0-w:
		return "", fmt.Errorf("%s: the member was not in a view %v before the joiner started", memberPath, stateWindow)
	case len(m.deliver) == 0 || m.deliver[len(m.deliver)-1] < t1+w:
		return "", fmt.Errorf("%s: the member's deliveries end less than %v after the joiner's first view", memberPath, stateWindow)
	}
	if m.rate(t0-w, t0) == 0 {
		return "", fmt.Errorf("%s: the member delivered nothing in the %v before the joiner started", memberPath, stateWindow)
	}
	took := time.Duration(t1 - t0)
	mb := float64(st.RestoredBytes) / 1e6
	return row(load,
		fmt.Sprintf("%s (%s MB at %.0f MB/s)", millis(took), grouped(mb), mb/took.Seconds()),
		fmt.Sprintf("%s ms", strconv.FormatFloat(st.RestoreMS, 'f', 0, 64)),
		fmt.Sprintf("%s / %s (%s) / %s", grouped(m.rate(t0-w, t0)), grouped(m.rate(t0, t1)), percent(m.rate(t0, t1)/m.rate(t0-w, t0)), grouped(m.rate(t1, t1+w))),
		code(command)), nil
}
