package perturb

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setNice gives every thread of process pid the nice value nice. On
// Linux a nice value belongs to a thread, and a thread starts with its
// creator's: once all of them have it, threads the process starts later
// do too. Two passes, so that a thread started during the first one,
// with its creator's old value, is caught by the second.
func setNice(pid, nice int) error {
	for range 2 {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
		}
	}
	return nil
}

// niceRefused reports whether err says the system refused a nice value
// (a negative one needs root or CAP_SYS_NICE).
func niceRefused(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}
