package perturb

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// procState is the state letter of process pid ('T' when stopped).
func procState(t *testing.T, pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ...: comm may hold spaces, the last ')' ends it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		t.Fatalf("unexpected /proc stat %q", b)
	}
	return b[i+2]
}

func waitState(t *testing.T, pid int, what string, ok func(byte) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ok(procState(t, pid)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never %s", pid, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The stop method stops and continues its process in turn, and leaves it
// running when closed, whether or not its loop got a real-time thread.
func TestStopPerturberStopsAndContinues(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	sp := &stopPerturber{proc: cmd.Process, period: 20 * time.Millisecond, run: 1, quit: make(chan struct{}), done: make(chan struct{})}
	go sp.loop()
	if err := sp.set(0.5); err != nil {
		t.Fatal(err)
	}
	stopped := func(s byte) bool { return s == 'T' }
	running := func(s byte) bool { return s != 'T' }
	for i := 0; i < 3; i++ {
		waitState(t, pid, "stopped", stopped)
		waitState(t, pid, "continued", running)
	}
	start := time.Now()
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("close took %v", d)
	}
	// The loop has ended (close waits for it): nothing stops it again.
	waitState(t, pid, "left running", running)
}
