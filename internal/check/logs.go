package check

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Event names of a member log (docs/LOGS.md).
const (
	EvStart   = "start"   // the process started
	EvView    = "view"    // a view was installed
	EvState   = "state"   // the application state at a view's start
	EvSend    = "send"    // a message is about to be handed to Send
	EvUnsent  = "unsent"  // that Send failed: the message was not sent
	EvDeliver = "deliver" // a message was delivered
	EvEnded   = "ended"   // membership ended: "left" or "removed"
	EvExit    = "exit"    // the process is exiting
)

// LogEvent is one line of a member log. Fields an event does not have
// are zero.
type LogEvent struct {
	T       int64    `json:"t"` // wall clock, unix ns
	Ev      string   `json:"ev"`
	Group   string   `json:"group,omitempty"`
	View    uint64   `json:"view,omitempty"`
	Self    string   `json:"self,omitempty"`    // view: this member's ID
	Members []string `json:"members,omitempty"` // view: in view order
	Joined  []string `json:"joined,omitempty"`  // view
	Left    []string `json:"left,omitempty"`    // view
	Failed  []string `json:"failed,omitempty"`  // view
	ID      string   `json:"id,omitempty"`      // send, unsent, deliver: "SENDER#N"
	Order   string   `json:"order,omitempty"`   // start, send, deliver
	Safe    bool     `json:"safe,omitempty"`    // start, send, deliver: sent safe
	Hash    string   `json:"hash,omitempty"`    // state: 16 hex digits
	Err     string   `json:"err,omitempty"`     // ended: "left" or "removed"; unsent: why
	Addr    string   `json:"addr,omitempty"`    // start
	PID     int      `json:"pid,omitempty"`     // start
	Code    int      `json:"code,omitempty"`    // exit: the exit status
}

// ParseLog reads one member log. A last line without its newline (the
// process died while writing it) is ignored; any other line that is not
// a JSON object is an error.
func ParseLog(path string) ([]LogEvent, error) {
	var out []LogEvent
	err := ScanLog(path, func(ev *LogEvent) error {
		out = append(out, *ev)
		return nil
	})
	return out, err
}

// ScanLog reads one member log as ParseLog does, calling fn with each
// event in turn (the event is reused: copy it to keep it). It stops at
// fn's first error.
func ScanLog(path string, fn func(ev *LogEvent) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return scanLog(path, f, fn)
}

func scanLog(name string, r io.Reader, fn func(ev *LogEvent) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	var p lineParser
	var ev LogEvent
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: a view of many members.
			rest, err2 := br.ReadBytes('\n')
			b, err = append(append([]byte(nil), b...), rest...), err2
		}
		if errors.Is(err, io.EOF) {
			return nil // b, if any, is a torn last line
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		ev = LogEvent{}
		if !p.parseFlat(b, &ev) {
			ev = LogEvent{}
			if err := json.Unmarshal(b, &ev); err != nil {
				return fmt.Errorf("%s:%d: %w", name, line, err)
			}
		}
		if ev.Ev == "" {
			return fmt.Errorf("%s:%d: no \"ev\"", name, line)
		}
		if err := fn(&ev); err != nil {
			return err
		}
	}
}

// lineParser remembers the last group name, so that a line does not
// allocate a copy of it.
type lineParser struct {
	group string
}

// parseFlat decodes the common lines fast: an object of string, integer
// and boolean values only, strings without escapes. It returns false for
// anything else (arrays, escapes, unknown keys, malformed text), which
// the standard decoder then reads or rejects.
func (p *lineParser) parseFlat(b []byte, ev *LogEvent) bool {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' || bytes.IndexByte(b, '\\') >= 0 {
		return false
	}
	b = b[1 : len(b)-1]
	for len(b) > 0 {
		// "key":
		if b[0] != '"' {
			return false
		}
		k := bytes.IndexByte(b[1:], '"')
		if k < 0 || len(b) < k+3 || b[k+2] != ':' {
			return false
		}
		key := b[1 : k+1]
		b = b[k+3:]
		if len(b) == 0 {
			return false
		}
		var str []byte
		var num int64
		var flag, isFlag bool
		isStr := b[0] == '"'
		switch {
		case isStr:
			e := bytes.IndexByte(b[1:], '"')
			if e < 0 {
				return false
			}
			str = b[1 : e+1]
			b = b[e+2:]
		case bytes.HasPrefix(b, []byte("true")):
			flag, isFlag = true, true
			b = b[4:]
		case bytes.HasPrefix(b, []byte("false")):
			isFlag = true
			b = b[5:]
		default:
			e := bytes.IndexByte(b, ',')
			if e < 0 {
				e = len(b)
			}
			if e == 0 || e > 19 {
				return false // not a number, or one that could overflow
			}
			var u uint64 // 19 digits fit
			for _, c := range b[:e] {
				if c < '0' || c > '9' {
					return false
				}
				u = u*10 + uint64(c-'0')
			}
			if u > math.MaxInt64 {
				return false
			}
			num = int64(u)
			b = b[e:]
		}
		if len(b) > 0 {
			if b[0] != ',' {
				return false
			}
			b = b[1:]
		}
		switch string(key) {
		case "t":
			ev.T = num
		case "view":
			ev.View = uint64(num)
		case "pid":
			ev.PID = int(num)
		case "code":
			ev.Code = int(num)
		case "ev":
			ev.Ev = internEv(str)
		case "group":
			if string(str) != p.group {
				p.group = string(str)
			}
			ev.Group = p.group
		case "self":
			ev.Self = string(str)
		case "id":
			ev.ID = string(str)
		case "order":
			ev.Order = internOrder(str)
		case "hash":
			ev.Hash = string(str)
		case "err":
			ev.Err = string(str)
		case "addr":
			ev.Addr = string(str)
		case "safe":
			ev.Safe = flag
		default:
			return false
		}
		switch string(key) {
		case "t", "view", "pid", "code":
			if isStr || isFlag {
				return false
			}
		case "safe":
			if !isFlag {
				return false
			}
		default:
			if !isStr {
				return false
			}
		}
	}
	return true
}

// internEv and internOrder avoid an allocation per line for the few
// words these fields take.
func internEv(b []byte) string {
	for _, s := range [...]string{EvDeliver, EvSend, EvView, EvState, EvUnsent, EvEnded, EvStart, EvExit} {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

func internOrder(b []byte) string {
	for _, s := range [...]string{FIFO, Unordered, Causal, Total} {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

// ParseMsgID reads a message id "SENDER#N".
func ParseMsgID(s string) (MsgID, error) {
	i := strings.LastIndexByte(s, '#')
	if i <= 0 {
		return MsgID{}, fmt.Errorf("message id %q: want SENDER#N", s)
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || n == 0 {
		return MsgID{}, fmt.Errorf("message id %q: want SENDER#N with N from 1", s)
	}
	return MsgID{Sender: s[:i], N: n}, nil
}

// LogOptions says how to read logs whose member did not end its
// membership ("ended" event).
type LogOptions struct {
	// Stopped: every process behind the logs has exited, so a member whose
	// log stops without "ended" crashed (was killed). Without it such a
	// member is taken as still in the group at the end, in its last view,
	// unless its log is in Killed.
	Stopped bool
	// Killed lists log files whose last process was killed: its last
	// member incarnation, if it has no "ended", crashed.
	Killed []string
}

// Incarnation is one member incarnation found in the logs.
type Incarnation struct {
	Name    string // its member ID, "ip:port/incarnation"
	File    string
	Crashed bool // killed, restarted or exited without ending its membership
	Ended   string
	// Views lists the view events it installed, in order; States the
	// state hash logged at each view, by view number.
	Views  []LogEvent
	States map[uint64]string
	// Sends and Deliveries count its send (not unsent) and deliver events.
	Sends, Deliveries int
}

// Logs is a set of member logs, read into incarnations and their events.
type Logs struct {
	Incarnations []*Incarnation
	Group        string
	hist         *History
}

// ReadLogs reads member logs into a history for Check, taking every
// member whose log stops without ending its membership as still running.
// See ReadLogsWith.
func ReadLogs(paths ...string) (*History, error) {
	return ReadLogsWith(LogOptions{}, paths...)
}

// ReadLogsWith reads member logs (docs/LOGS.md) into a history for Check.
// Each log is one process, or several if a process was restarted with the
// same file (a "start" event begins each); each distinct member ID its
// views name as "self" is a member of the history. Views are recorded
// with Installed, sends with SentAs (unless an "unsent" event says Send
// failed) at their place among the member's deliveries, deliveries with
// DeliveredAs, "ended" with Gone.
// A member incarnation that stops without "ended" is recorded as crashed
// when its process was restarted or exited, and, at the end of its log,
// as opt says.
func ReadLogsWith(opt LogOptions, paths ...string) (*History, error) {
	l, err := LoadLogs(opt, paths...)
	if err != nil {
		return nil, err
	}
	return l.History(), nil
}

// LoadLogs reads member logs as ReadLogsWith does, keeping each member
// incarnation's views and states too.
func LoadLogs(opt LogOptions, paths ...string) (*Logs, error) {
	killed := map[string]bool{}
	for _, p := range opt.Killed {
		killed[filepath.Clean(p)] = true
	}
	b := &logBuilder{
		logs:   &Logs{hist: NewHistory()},
		byName: map[string]*Incarnation{},
		sends:  map[MsgID]sendRec{},
	}
	for _, p := range paths {
		if err := b.file(p, opt.Stopped || killed[filepath.Clean(p)]); err != nil {
			return nil, err
		}
	}
	b.finish()
	return b.logs, nil
}

// History is the history the logs make.
func (l *Logs) History() *History { return l.hist }

// Incarnation returns the member incarnation called name, or nil.
func (l *Logs) Incarnation(name string) *Incarnation {
	for _, in := range l.Incarnations {
		if in.Name == name {
			return in
		}
	}
	return nil
}

// CheckStates compares the application state logged at each view: two
// incarnations that started in the same view and installed the same
// views up to view V must hold the same state at V, since virtual
// synchrony makes them deliver the same messages in each view and the
// state digest does not depend on the order of delivery across senders
// (docs/LOGS.md). At most limit violations (0: no limit).
func (l *Logs) CheckStates(limit int) []Violation {
	var out []Violation
	ins := append([]*Incarnation(nil), l.Incarnations...)
	sort.Slice(ins, func(i, j int) bool { return ins[i].Name < ins[j].Name })
	for i, p := range ins {
		for _, q := range ins[i+1:] {
			// At the start of any view both installed, both hold the state
			// of everything delivered before it: an old member by
			// delivering it, a joiner by restoring a donor's snapshot
			// taken at the cut.
			for k := 0; k < len(p.Views); k++ {
				v := p.Views[k].View
				hp, okp := p.States[v]
				hq, okq := q.States[v]
				if okp && okq && hp != hq {
					out = append(out, Violation{Rule: "state", Detail: fmt.Sprintf(
						"%s and %s both installed view %d but held states %s and %s at its start", p.Name, q.Name, v, hp, hq)})
					if limit > 0 && len(out) >= limit {
						return out
					}
					break
				}
			}
		}
	}
	return out
}

type sendRec struct {
	order  string
	view   uint64
	before int // the sender's deliveries logged before its send line
	safe   bool
	unsent bool
}

type logBuilder struct {
	logs   *Logs
	byName map[string]*Incarnation
	sends  map[MsgID]sendRec
}

// file reads one log's events. stopped: its last process is gone.
func (b *logBuilder) file(path string, stopped bool) error {
	h := b.logs.hist
	var cur *Incarnation // the member incarnation of the current process, once it has a view
	exited := false
	closeProcess := func() {
		if cur != nil && cur.Ended == "" {
			cur.Crashed = true
		}
		cur, exited = nil, false
	}
	i := 0
	err := ScanLog(path, func(ev *LogEvent) error {
		i++
		where := func() string { return fmt.Sprintf("%s: event %d (%s)", path, i, ev.Ev) }
		if ev.Group != "" {
			if b.logs.Group == "" {
				b.logs.Group = ev.Group
			} else if ev.Group != b.logs.Group {
				return fmt.Errorf("%s: group %q; earlier logs are of group %q", where(), ev.Group, b.logs.Group)
			}
		}
		switch ev.Ev {
		case EvStart:
			closeProcess()
		case EvExit:
			exited = true
		case EvView:
			if ev.Self == "" {
				return fmt.Errorf("%s: no \"self\"", where())
			}
			if cur == nil || cur.Name != ev.Self {
				if cur != nil && cur.Ended == "" {
					return fmt.Errorf("%s: new member ID %s while %s has not ended", where(), ev.Self, cur.Name)
				}
				if _, dup := b.byName[ev.Self]; dup {
					return fmt.Errorf("%s: member %s appears in two logs or twice", where(), ev.Self)
				}
				cur = &Incarnation{Name: ev.Self, File: path, States: map[uint64]string{}}
				b.byName[ev.Self] = cur
				b.logs.Incarnations = append(b.logs.Incarnations, cur)
			} else if cur.Ended != "" {
				return fmt.Errorf("%s: %s installed a view after it ended", where(), cur.Name)
			}
			cur.Views = append(cur.Views, *ev)
			h.InstalledWhy(cur.Name, ev.View, ev.Members, map[string][]string{"left": ev.Left, "failed": ev.Failed})
		case EvState:
			if cur == nil {
				return fmt.Errorf("%s: before any view", where())
			}
			cur.States[ev.View] = ev.Hash
		case EvSend, EvUnsent:
			id, err := ParseMsgID(ev.ID)
			if err != nil {
				return fmt.Errorf("%s: %w", where(), err)
			}
			if cur == nil || id.Sender != cur.Name {
				return fmt.Errorf("%s: %s is not this log's member in a view", where(), ev.ID)
			}
			if ev.Ev == EvUnsent {
				s, ok := b.sends[id]
				if !ok {
					return fmt.Errorf("%s: %s was never logged as sent", where(), ev.ID)
				}
				if !s.unsent {
					s.unsent = true
					b.sends[id] = s
					cur.Sends--
				}
				return nil
			}
			if _, dup := b.sends[id]; dup {
				return fmt.Errorf("%s: %s sent twice", where(), ev.ID)
			}
			// The send line is written before Send is called, and each
			// delivery line inside the Deliver handler, under one lock:
			// the deliveries logged before it were delivered before Send.
			b.sends[id] = sendRec{order: ev.Order, view: ev.View, before: len(h.delivered[cur.Name]), safe: ev.Safe}
			cur.Sends++
		case EvDeliver:
			if cur == nil {
				return fmt.Errorf("%s: before any view", where())
			}
			id, err := ParseMsgID(ev.ID)
			if err != nil {
				// Delivered, but not a message anyone sent: a corrupt
				// payload. The checker reports it as never sent.
				id = MsgID{Sender: "(unreadable id " + strconv.Quote(ev.ID) + ")"}
			}
			h.DeliveredAs(cur.Name, id, ev.Order, ev.Safe, 0, ev.View)
			cur.Deliveries++
		case EvEnded:
			if cur == nil {
				return fmt.Errorf("%s: before any view", where())
			}
			if ev.Err != "left" && ev.Err != "removed" {
				return fmt.Errorf("%s: err %q, want left or removed", where(), ev.Err)
			}
			cur.Ended = ev.Err
			h.Gone(cur.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if exited || stopped {
		closeProcess()
	}
	return nil
}

// finish records the sends and the crashes.
func (b *logBuilder) finish() {
	h := b.logs.hist
	if len(h.sent) == 0 {
		h.sent = make(map[MsgID]sent, len(b.sends))
	}
	for id, s := range b.sends {
		if !s.unsent {
			h.sent[id] = sent{order: s.order, view: s.view, before: s.before, safe: s.safe}
		}
	}
	for _, in := range b.logs.Incarnations {
		if in.Crashed {
			h.Crashed(in.Name)
		}
	}
}
