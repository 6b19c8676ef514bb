package check

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// logWriter builds a synthetic member log.
type logWriter struct {
	t     *testing.T
	lines []string
	clock int64
}

func (w *logWriter) add(format string, args ...any) *logWriter {
	w.clock += 1000
	w.lines = append(w.lines, fmt.Sprintf(`{"t":%d,`, w.clock)+fmt.Sprintf(format, args...)+"}")
	return w
}

func (w *logWriter) start() *logWriter {
	return w.add(`"ev":"start","group":"g","addr":"127.0.0.1:1","pid":1,"seeds":[],"order":"fifo","rate":0,"size":64,"state_size":0`)
}

func (w *logWriter) view(v int, self string, members ...string) *logWriter {
	ms, _ := json.Marshal(members)
	return w.add(`"ev":"view","group":"g","view":%d,"self":%q,"members":%s`, v, self, ms)
}

func (w *logWriter) state(v int, hash string) *logWriter {
	return w.add(`"ev":"state","group":"g","view":%d,"hash":%q`, v, hash)
}

func (w *logWriter) send(v int, id string) *logWriter {
	return w.add(`"ev":"send","group":"g","view":%d,"id":%q,"order":"fifo"`, v, id)
}

// sendAs logs a send with an ordering and, if safe, the safe flag.
func (w *logWriter) sendAs(v int, id, order string, safe bool) *logWriter {
	return w.add(`"ev":"send","group":"g","view":%d,"id":%q,"order":%q%s`, v, id, order, safeField(safe))
}

// deliverAs logs deliveries with an ordering and, if safe, the safe flag.
func (w *logWriter) deliverAs(v int, order string, safe bool, ids ...string) *logWriter {
	for _, id := range ids {
		w.add(`"ev":"deliver","group":"g","view":%d,"id":%q,"order":%q%s`, v, id, order, safeField(safe))
	}
	return w
}

func safeField(safe bool) string {
	if safe {
		return `,"safe":true`
	}
	return ""
}

func (w *logWriter) unsent(v int, id string) *logWriter {
	return w.add(`"ev":"unsent","group":"g","view":%d,"id":%q,"err":"context canceled"`, v, id)
}

func (w *logWriter) deliver(v int, ids ...string) *logWriter {
	for _, id := range ids {
		w.add(`"ev":"deliver","group":"g","view":%d,"id":%q,"order":"fifo"`, v, id)
	}
	return w
}

func (w *logWriter) ended(v int, err string) *logWriter {
	return w.add(`"ev":"ended","group":"g","view":%d,"err":%q`, v, err)
}

func (w *logWriter) exit(code int) *logWriter {
	return w.add(`"ev":"exit","group":"g","code":%d`, code)
}

func (w *logWriter) write(dir, name string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(w.lines, "\n")+"\n"), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return p
}

const (
	a = "127.0.0.1:1/10"
	b = "127.0.0.1:2/20"
	c = "127.0.0.1:3/30"
)

// twoMembers writes logs of a and b in view 1, each sending two messages
// that both deliver, then both leaving; edit changes b's log.
func twoMembers(t *testing.T, dir string, editB func(w *logWriter)) (string, string) {
	wa := &logWriter{t: t}
	wa.start().view(1, a, a, b).state(1, "0000000000000000").
		send(1, a+"#1").send(1, a+"#2").
		deliver(1, a+"#1", b+"#1", a+"#2", b+"#2").ended(1, "left").exit(0)
	wb := &logWriter{t: t}
	wb.start().view(1, b, a, b).state(1, "0000000000000000").send(1, b+"#1").send(1, b+"#2")
	if editB != nil {
		editB(wb)
	} else {
		wb.deliver(1, b+"#1", a+"#1", a+"#2", b+"#2").ended(1, "left").exit(0)
	}
	return wa.write(dir, "a.log"), wb.write(dir, "b.log")
}

func TestReadLogs(t *testing.T) {
	cases := []struct {
		name  string
		editB func(w *logWriter)
		opt   LogOptions
		want  string // rule of the first violation; "" for none
	}{
		{"clean", nil, LogOptions{Stopped: true}, ""},
		{"fifo", func(w *logWriter) {
			w.deliver(1, b+"#1", a+"#2", a+"#1", b+"#2").ended(1, "left").exit(0)
		}, LogOptions{Stopped: true}, "fifo"},
		{"duplicate", func(w *logWriter) {
			w.deliver(1, b+"#1", a+"#1", a+"#1", a+"#2", b+"#2").ended(1, "left").exit(0)
		}, LogOptions{Stopped: true}, "exactly-once"},
		{"never sent", func(w *logWriter) {
			w.deliver(1, b+"#1", a+"#1", a+"#2", a+"#3", b+"#2").ended(1, "left").exit(0)
		}, LogOptions{Stopped: true}, "integrity"},
		{"unreadable id", func(w *logWriter) {
			w.deliver(1, b+"#1", a+"#1", a+"#2", "garbage", b+"#2").ended(1, "left").exit(0)
		}, LogOptions{Stopped: true}, "integrity"},
		{"own message lost", func(w *logWriter) {
			w.deliver(1, b+"#1", a+"#1", a+"#2")
		}, LogOptions{}, "self-delivery"},
		{"unsent is not expected", func(w *logWriter) {
			w.send(1, b+"#3").unsent(1, b+"#3").deliver(1, b+"#1", a+"#1", a+"#2", b+"#2").ended(1, "left").exit(0)
		}, LogOptions{Stopped: true}, ""},
		{"still running", func(w *logWriter) {
			// b never ended: without options it is in view 1 at the end.
			w.deliver(1, b+"#1", a+"#1", a+"#2", b+"#2")
		}, LogOptions{}, ""},
		{"killed may miss messages", func(w *logWriter) {
			w.deliver(1, b+"#1", a+"#1")
		}, LogOptions{Killed: []string{"KILLED"}}, ""},
		{"stopped without ended is crashed", func(w *logWriter) {
			w.deliver(1, b+"#1")
		}, LogOptions{Stopped: true}, ""},
		{"exit without ended is crashed", func(w *logWriter) {
			w.deliver(1, b+"#1").exit(4)
		}, LogOptions{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pa, pb := twoMembers(t, dir, tc.editB)
			for i, k := range tc.opt.Killed {
				if k == "KILLED" {
					tc.opt.Killed[i] = pb
				}
			}
			h, err := ReadLogsWith(tc.opt, pa, pb)
			if err != nil {
				t.Fatal(err)
			}
			v := h.Check(0)
			switch {
			case tc.want == "" && len(v) > 0:
				t.Errorf("unexpected %v", v)
			case tc.want != "" && (len(v) == 0 || v[0].Rule != tc.want):
				t.Errorf("got %v, want a %s violation", v, tc.want)
			default:
				t.Logf("%v", v)
			}
		})
	}
}

// A member that misses a message in a view it passed through with
// another: the virtual synchrony violation the lab tests look for.
func TestReadLogsVirtualSynchrony(t *testing.T) {
	dir := t.TempDir()
	wa := &logWriter{t: t}
	wa.start().view(1, a, a, b, c).send(1, a+"#1").deliver(1, a+"#1", c+"#1").
		view(2, a, a, b).deliver(2, b+"#1").ended(2, "left").exit(0)
	wb := &logWriter{t: t}
	wb.start().view(1, b, a, b, c).deliver(1, a+"#1"). // c#1 missing
								view(2, b, a, b).send(2, b+"#1").deliver(2, b+"#1").ended(2, "left").exit(0)
	wc := &logWriter{t: t}
	wc.start().view(1, c, a, b, c).send(1, c+"#1").deliver(1, c+"#1") // killed
	pa, pb, pc := wa.write(dir, "a.log"), wb.write(dir, "b.log"), wc.write(dir, "c.log")
	h, err := ReadLogsWith(LogOptions{Killed: []string{pc}}, pa, pb, pc)
	if err != nil {
		t.Fatal(err)
	}
	v := h.Check(0)
	if len(v) != 1 || v[0].Rule != "virtual-synchrony" {
		t.Fatalf("got %v, want one virtual-synchrony violation", v)
	}
	t.Log(v[0])

	// With b's delivery in place the same logs are clean.
	wb = &logWriter{t: t}
	wb.start().view(1, b, a, b, c).deliver(1, a+"#1", c+"#1").
		view(2, b, a, b).send(2, b+"#1").deliver(2, b+"#1").ended(2, "left").exit(0)
	pb = wb.write(dir, "b.log")
	h, err = ReadLogsWith(LogOptions{Killed: []string{pc}}, pa, pb, pc)
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Check(0); len(v) != 0 {
		t.Fatalf("unexpected %v", v)
	}
}

// One file, two processes (restarted with the same log), and a member
// that is removed and rejoins within one process: each member ID is a
// member of its own, and the first process's member crashed.
func TestReadLogsIncarnations(t *testing.T) {
	dir := t.TempDir()
	const a2, a3 = "127.0.0.1:1/11", "127.0.0.1:1/12"
	wa := &logWriter{t: t}
	wa.start().view(1, a, a, b).send(1, a+"#1").deliver(1, a+"#1") // killed here
	wa.start().view(3, a2, b, a2).send(3, a2+"#1").deliver(3, a2+"#1").
		ended(3, "removed").
		view(5, a3, b, a3).deliver(5, b+"#1").ended(5, "left").exit(0)
	wb := &logWriter{t: t}
	wb.start().view(1, b, a, b).deliver(1, a+"#1").view(2, b, b).view(3, b, b, a2).deliver(3, a2+"#1").
		view(4, b, b).view(5, b, b, a3).send(5, b+"#1").deliver(5, b+"#1").view(6, b, b)
	pa, pb := wa.write(dir, "a.log"), wb.write(dir, "b.log")
	logs, err := LoadLogs(LogOptions{}, pa, pb)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range logs.Incarnations {
		got = append(got, fmt.Sprintf("%s crashed=%v ended=%q views=%d", in.Name, in.Crashed, in.Ended, len(in.Views)))
	}
	want := []string{
		a + ` crashed=true ended="" views=1`,
		a2 + ` crashed=false ended="removed" views=1`,
		a3 + ` crashed=false ended="left" views=1`,
		b + ` crashed=false ended="" views=6`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("incarnations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if v := logs.History().Check(0); len(v) != 0 {
		t.Fatalf("unexpected %v", v)
	}
}

func TestReadLogsErrors(t *testing.T) {
	cases := map[string]func(w *logWriter){
		"no self": func(w *logWriter) {
			w.add(`"ev":"view","group":"g","view":1,"members":["x"]`)
		},
		"deliver before view": func(w *logWriter) { w.start().deliver(1, a+"#1") },
		"send of another member": func(w *logWriter) {
			w.start().view(1, a, a).send(1, b+"#1")
		},
		"bad message id": func(w *logWriter) { w.start().view(1, a, a).send(1, a+"#x") },
		"two groups": func(w *logWriter) {
			w.start().view(1, a, a).add(`"ev":"view","group":"h","view":2,"self":%q,"members":[%q]`, a, a)
		},
		"bad line": func(w *logWriter) {
			w.start()
			w.lines = append(w.lines, `{"t":1,"ev":"view"`)
			w.view(1, a, a)
		},
	}
	for name, build := range cases {
		w := &logWriter{t: t}
		build(w)
		p := w.write(t.TempDir(), "x.log")
		if _, err := ReadLogs(p); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// A line torn by a kill (no newline at the end) is ignored.
func TestParseLogTornLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	data := `{"t":1,"ev":"start","group":"g"}` + "\n" + `{"t":2,"ev":"deliv`
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	evs, err := ParseLog(p)
	if err != nil || len(evs) != 1 || evs[0].Ev != EvStart {
		t.Fatalf("got %v, %v", evs, err)
	}
}

// The fast path reads what the standard decoder reads, and declines
// what it cannot.
func TestParseFlat(t *testing.T) {
	lines := []string{
		`{"t":1795668207399235604,"ev":"deliver","group":"vsbench","view":1,"id":"127.0.0.1:32936/1795668207009303782#1","order":"fifo"}`,
		`{"t":5,"ev":"send","group":"g","view":12,"id":"[::1]:7/3#9","order":"unordered"}`,
		`{"t":5,"ev":"state","group":"g","view":2,"hash":"00ff00ff00ff00ff"}`,
		`{"t":5,"ev":"ended","group":"g","view":2,"err":"left"}`,
		`{"t":5,"ev":"exit","group":"g","code":0}`,
		`{"t":5,"ev":"unsent","group":"g","view":2,"id":"x#1","err":"context canceled"}`,
		`{"t":5,"ev":"deliver","group":"g","view":2,"id":"x#1","order":"total","safe":true}`,
		`{"t":5,"ev":"send","group":"g","view":2,"id":"x#1","order":"causal","safe":false}`,
	}
	for _, l := range lines {
		var fast, std LogEvent
		var p lineParser
		if !p.parseFlat([]byte(l), &fast) {
			t.Errorf("declined %s", l)
			continue
		}
		if err := json.Unmarshal([]byte(l), &std); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Errorf("%s:\nfast %+v\nstd  %+v", l, fast, std)
		}
	}
	declined := []string{
		`{"t":1,"ev":"view","group":"g","view":1,"self":"a","members":["a"]}`, // array
		`{"t":1,"ev":"deliver","id":"a\"b#1"}`,                                // escape
		`{"t":1,"ev":"deliver","extra":"x"}`,                                  // unknown key
		`{"t":-1,"ev":"deliver"}`,                                             // negative
		`{"t":99999999999999999999,"ev":"deliver"}`,                           // overflow
		`{"t":"1","ev":"deliver"}`,                                            // string for a number
		`{"t":1,"ev":"deliver"`,                                               // torn
		`{"t":1 ,"ev":"deliver"}`,                                             // spacing
		`{"t":1,"ev":"deliver","safe":"true"}`,                                // string for a boolean
		`{"t":1,"ev":"deliver","safe":1}`,                                     // number for a boolean
		`{"t":true,"ev":"deliver"}`,                                           // boolean for a number
		`{"t":1,"ev":"deliver","safe":truex}`,                                 // malformed
	}
	for _, l := range declined {
		var ev LogEvent
		var p lineParser
		if p.parseFlat([]byte(l), &ev) {
			t.Errorf("accepted %s as %+v", l, ev)
		}
	}
}

func TestCheckStates(t *testing.T) {
	dir := t.TempDir()
	wa := &logWriter{t: t}
	wa.start().view(1, a, a, b).state(1, "00").view(2, a, a, b, c).state(2, "11").view(3, a, a, c).state(3, "22")
	wb := &logWriter{t: t}
	wb.start().view(1, b, a, b).state(1, "00").view(2, b, a, b, c).state(2, "11")
	wc := &logWriter{t: t}
	// c joined in view 2 and restored the donor's state taken at the cut.
	wc.start().view(2, c, a, b, c).state(2, "11").view(3, c, a, c).state(3, "22")
	paths := []string{wa.write(dir, "a.log"), wb.write(dir, "b.log"), wc.write(dir, "c.log")}
	logs, err := LoadLogs(LogOptions{}, paths...)
	if err != nil {
		t.Fatal(err)
	}
	if v := logs.CheckStates(0); len(v) != 0 {
		t.Fatalf("unexpected %v", v)
	}
	// A joiner that did not get the donor's state (or got another one).
	wc2 := &logWriter{t: t}
	wc2.start().view(2, c, a, b, c).state(2, "00").view(3, c, a, c).state(3, "22")
	wc2.write(dir, "c.log")
	logs, err = LoadLogs(LogOptions{}, paths...)
	if err != nil {
		t.Fatal(err)
	}
	if v := logs.CheckStates(0); len(v) != 2 || v[0].Rule != "state" {
		t.Fatalf("got %v, want a state violation against a and against b", v)
	} else {
		t.Log(v[0])
	}
}

// Causal, total and safe messages in logs: the send lines, interleaved
// with the deliveries, give what each sender had delivered before it
// sent; the order and safe fields give the rules their messages.
func TestReadLogsOrders(t *testing.T) {
	// a sends a#1 (total, safe); b delivers it, then sends b#1 (causal);
	// c delivers b#1, then a#1 (bad), or a#1 then b#1 (good).
	build := func(dir string, cFirst ...string) []string {
		wa := &logWriter{t: t}
		wa.start().view(1, a, a, b, c).sendAs(1, a+"#1", "total", true).
			deliverAs(1, "total", true, a+"#1").deliverAs(1, "causal", false, b+"#1").ended(1, "left").exit(0)
		wb := &logWriter{t: t}
		wb.start().view(1, b, a, b, c).deliverAs(1, "total", true, a+"#1").sendAs(1, b+"#1", "causal", false).
			deliverAs(1, "causal", false, b+"#1").ended(1, "left").exit(0)
		wc := &logWriter{t: t}
		wc.start().view(1, c, a, b, c)
		for _, id := range cFirst {
			if id == a+"#1" {
				wc.deliverAs(1, "total", true, id)
			} else {
				wc.deliverAs(1, "causal", false, id)
			}
		}
		wc.ended(1, "left").exit(0)
		return []string{wa.write(dir, "a.log"), wb.write(dir, "b.log"), wc.write(dir, "c.log")}
	}
	dir := t.TempDir()
	h, err := ReadLogs(build(dir, a+"#1", b+"#1")...)
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Check(0); len(v) != 0 {
		t.Fatalf("unexpected %v", v)
	}
	h, err = ReadLogs(build(dir, b+"#1", a+"#1")...)
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Check(0); len(v) != 1 || v[0].Rule != "causal" {
		t.Fatalf("got %v, want one causal violation", v)
	} else {
		t.Log(v[0])
	}
	// c misses the safe message and is still running in view 1 at the
	// end, the others having left: no other rule compares c with them,
	// the safe rule does.
	paths := build(dir, b+"#1")
	wc := &logWriter{t: t}
	wc.start().view(1, c, a, b, c).deliverAs(1, "causal", false, b+"#1")
	paths[2] = wc.write(dir, "c.log")
	h, err = ReadLogs(paths...)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	for _, v := range h.Check(0) {
		rules[v.Rule] = true
		t.Log(v)
	}
	if !rules["safe"] || !rules["causal"] {
		t.Fatalf("rules %v, want safe and causal", rules)
	}
	// Delivered without the flag it was sent with.
	wc = &logWriter{t: t}
	wc.start().view(1, c, a, b, c).deliverAs(1, "total", false, a+"#1").deliverAs(1, "causal", false, b+"#1").ended(1, "left").exit(0)
	paths = build(dir)
	paths[2] = wc.write(dir, "c.log")
	h, err = ReadLogs(paths...)
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Check(0); len(v) == 0 || v[0].Rule != "integrity" {
		t.Fatalf("got %v, want an integrity violation", v)
	} else {
		t.Log(v[0])
	}
}
