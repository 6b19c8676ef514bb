package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cohort-vs/cohort/internal/check"
)

// Lab runs member processes (`vsbench member`) on loopback and follows
// their event logs: the real-process tests and `vsbench crash` are built
// on it. Every process it starts is killed and waited for by Close.
type Lab struct {
	// Program runs a member: Path with Args, then MemberCommand and the
	// member's flags. For vsbench, its own executable and no Args.
	Program ChildSpec
	Dir     string    // where the logs go
	Stderr  io.Writer // the members' standard error, each line prefixed with its name; nil: os.Stderr
	// Procs is each member's GOMAXPROCS; 0: max(1, CPUs/Expected).
	Procs    int
	Expected int // how many members run at once, for Procs' default

	ctx    context.Context
	cancel context.CancelFunc
	errMu  sync.Mutex
	mu     sync.Mutex
	procs  []*LabMember
}

// NewLab returns a lab whose processes are all killed when ctx ends.
func NewLab(ctx context.Context, program ChildSpec, dir string) *Lab {
	l := &Lab{Program: program, Dir: dir}
	l.ctx, l.cancel = context.WithCancel(ctx)
	return l
}

// LabMember is one member process of a lab.
type LabMember struct {
	Name string // the lab's name for it ("m0", ...)
	Addr string // its UDP address
	Log  string // its event log

	cmd     *exec.Cmd
	stderr  *prefixWriter
	done    chan struct{} // closed once waited for
	waitErr error

	mu   sync.Mutex
	tail logTail
}

// FreeAddrs returns n loopback UDP addresses that were free a moment ago
// (the system picked the ports; another process could take one before
// the member binds it, which is unlikely on a test machine).
func FreeAddrs(n int) ([]string, error) {
	var conns []net.PacketConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var out []string
	for i := 0; i < n; i++ {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		out = append(out, c.LocalAddr().String())
	}
	return out, nil
}

// Start starts a member called name listening on addr with the given
// seeds; extra are more `vsbench member` flags (--rate, --duration, ...).
// Its log is Dir/name.log.
func (l *Lab) Start(name, addr string, seeds []string, extra ...string) (*LabMember, error) {
	logPath := filepath.Join(l.Dir, name+".log")
	args := append([]string(nil), l.Program.Args...)
	args = append(args, MemberCommand, "--listen", addr, "--log", logPath)
	if len(seeds) > 0 {
		args = append(args, "--seeds", joinComma(seeds))
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(l.ctx, l.Program.Path, args...)
	cmd.Env = append(os.Environ(), l.Program.Env...)
	procs := l.Procs
	if procs <= 0 {
		procs = max(1, runtime.NumCPU()/max(1, l.Expected))
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", procs))
	w := l.Stderr
	if w == nil {
		w = os.Stderr
	}
	m := &LabMember{Name: name, Addr: addr, Log: logPath, cmd: cmd, done: make(chan struct{})}
	m.stderr = &prefixWriter{w: w, mu: &l.errMu, prefix: "[" + name + "] "}
	m.tail.path = logPath
	cmd.Stderr = m.stderr
	cmd.WaitDelay = killWait
	configureProcess(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, m)
	l.mu.Unlock()
	go func() {
		m.waitErr = cmd.Wait()
		m.stderr.flush()
		close(m.done)
	}()
	return m, nil
}

// Close kills every member still running and waits for them all.
func (l *Lab) Close() {
	l.cancel()
	l.mu.Lock()
	procs := append([]*LabMember(nil), l.procs...)
	l.mu.Unlock()
	for _, m := range procs {
		<-m.done
	}
}

// Kill sends SIGKILL and waits for the process; it returns the time just
// before the signal.
func (m *LabMember) Kill() (time.Time, error) {
	at := time.Now()
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return at, fmt.Errorf("%s: kill: %w", m.Name, err)
	}
	<-m.done
	return at, nil
}

// Signal sends sig to the member.
func (m *LabMember) Signal(sig os.Signal) error {
	if err := m.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %v: %w", m.Name, sig, err)
	}
	return nil
}

// Pause stops the process (SIGSTOP) for d, then lets it go on (SIGCONT).
// It returns the time just before the stop.
func (m *LabMember) Pause(d time.Duration) (time.Time, error) {
	at := time.Now()
	if err := stopProcess(m.cmd.Process); err != nil {
		return at, fmt.Errorf("%s: stop: %w", m.Name, err)
	}
	time.Sleep(d)
	if err := continueProcess(m.cmd.Process); err != nil {
		return at, fmt.Errorf("%s: continue: %w", m.Name, err)
	}
	return at, nil
}

// Wait waits up to timeout for the process to exit and returns its exit
// status (-1 if it was killed by a signal).
func (m *LabMember) Wait(timeout time.Duration) (int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-m.done:
	case <-t.C:
		return 0, fmt.Errorf("%s did not exit within %v", m.Name, timeout)
	}
	return m.cmd.ProcessState.ExitCode(), nil
}

// Exited reports whether the process has exited.
func (m *LabMember) Exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Views returns the view events the member logged so far, in order.
func (m *LabMember) Views() ([]check.LogEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.tail.poll(); err != nil {
		return nil, err
	}
	return append([]check.LogEvent(nil), m.tail.views...), nil
}

// LastView returns the member's last logged view, if any.
func (m *LabMember) LastView() (check.LogEvent, bool, error) {
	vs, err := m.Views()
	if err != nil || len(vs) == 0 {
		return check.LogEvent{}, false, err
	}
	return vs[len(vs)-1], true, nil
}

// Self returns the member ID of the member's latest incarnation, from
// its log ("" before its first view).
func (m *LabMember) Self() string {
	v, ok, _ := m.LastView()
	if !ok {
		return ""
	}
	return v.Self
}

// WaitUntil polls the logs every few milliseconds until ok returns true
// for every member (given its views so far), a member exits, or timeout.
func (l *Lab) WaitUntil(timeout time.Duration, what string, ms []*LabMember, ok func(m *LabMember, views []check.LogEvent) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, m := range ms {
			vs, err := m.Views()
			if err != nil {
				return err
			}
			if !ok(m, vs) {
				all = false
				if m.Exited() {
					return fmt.Errorf("%s exited (%v) before %s", m.Name, m.waitErr, what)
				}
			}
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			var last []string
			for _, m := range ms {
				if v, ok, _ := m.LastView(); ok {
					last = append(last, fmt.Sprintf("%s: view %d %v", m.Name, v.View, v.Members))
				} else {
					last = append(last, m.Name+": no view")
				}
			}
			return fmt.Errorf("timed out after %v waiting for %s; last views: %v", timeout, what, last)
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-l.ctx.Done():
			return l.ctx.Err()
		}
	}
}

// logTail reads a growing log's complete lines as they come, keeping the
// view events.
type logTail struct {
	path  string
	off   int64
	part  []byte // a line not complete yet
	views []check.LogEvent
}

var viewMarker = []byte(`"ev":"view"`)

func (t *logTail) poll() error {
	return readNewLines(t.path, &t.off, &t.part, viewMarker, func(line []byte) error {
		var ev check.LogEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("%s: %w", t.path, err)
		}
		t.views = append(t.views, ev)
		return nil
	})
}

// readNewLines calls each with every whole line appended to path since
// *off that holds marker (nil: every line); a file not created yet has
// none, and a line not complete yet waits in *part for the next call.
// The new bytes are read into one buffer of their size, and the lines
// with marker found by searching the buffer for it rather than line by
// line: a member's log under full load grows by tens of megabytes a
// second, and following it must not take the CPU the members need (the
// lab's phases would stretch, and the logs grow with them).
func readNewLines(path string, off *int64, part *[]byte, marker []byte, each func(line []byte) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	n := fi.Size() - *off
	if n <= 0 {
		return nil
	}
	data := make([]byte, len(*part)+int(n))
	copy(data, *part)
	k, err := f.ReadAt(data[len(*part):], *off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	*off += int64(k)
	data = data[:len(*part)+k]
	end := bytes.LastIndexByte(data, '\n') + 1
	lines, rest := data[:end], data[end:]
	for len(lines) > 0 {
		var line []byte
		if marker == nil {
			i := bytes.IndexByte(lines, '\n')
			line, lines = lines[:i], lines[i+1:]
		} else {
			i := bytes.Index(lines, marker)
			if i < 0 {
				break
			}
			start := bytes.LastIndexByte(lines[:i], '\n') + 1
			e := i + bytes.IndexByte(lines[i:], '\n')
			line, lines = lines[start:e], lines[e+1:]
		}
		if err := each(line); err != nil {
			return err
		}
	}
	*part = append((*part)[:0], rest...)
	return nil
}

func joinComma(ss []string) string {
	var b []byte
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s...)
	}
	return string(b)
}

// hasMember reports whether a view lists id.
func hasMember(v check.LogEvent, id string) bool {
	for _, m := range v.Members {
		if m == id {
			return true
		}
	}
	return false
}

// FirstViewWithout returns the first view logged at or after t that does
// not list id.
func FirstViewWithout(views []check.LogEvent, id string, t time.Time) (check.LogEvent, bool) {
	for _, v := range views {
		if v.T >= t.UnixNano() && !hasMember(v, id) {
			return v, true
		}
	}
	return check.LogEvent{}, false
}

// ms formats a duration as milliseconds with one decimal.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms"
}
