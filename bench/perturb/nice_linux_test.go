package perturb

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNiceHelperProcess is not a test: TestSetNice runs the test binary
// as a child in this mode, a Go process with several threads, until its
// standard input closes.
func TestNiceHelperProcess(t *testing.T) {
	if os.Getenv("PERTURB_NICE_HELPER") != "1" {
		t.Skip("the child process of TestSetNice")
	}
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// threadNices reads the nice value of every thread of process pid.
func threadNices(t *testing.T, pid int) map[int]int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	nices := map[int]int{}
	for _, task := range tasks {
		b, err := os.ReadFile(dir + task.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		// Fields after "(comm)": state is field 3, nice field 19.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		tid, _ := strconv.Atoi(task.Name())
		if nices[tid], err = strconv.Atoi(f[19-3]); err != nil {
			t.Fatalf("task %d: stat %q", tid, b)
		}
	}
	return nices
}

// setNice reaches every thread of a multi-threaded process, not only its
// main one (which is all that setpriority on the process id changes).
// A positive value needs no privilege.
func TestSetNice(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestNiceHelperProcess$")
	cmd.Env = append(os.Environ(), "PERTURB_NICE_HELPER=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	// The runtime starts its threads at once; wait for a few.
	for deadline := time.Now().Add(5 * time.Second); len(threadNices(t, pid)) < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the child has %d threads; want several", len(threadNices(t, pid)))
		}
	}
	if err := setNice(pid, 7); err != nil {
		t.Fatal(err)
	}
	for tid, n := range threadNices(t, pid) {
		if n != 7 {
			t.Errorf("thread %d of %d: nice %d, want 7", tid, pid, n)
		}
	}
}
