package perturb

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// preciseThread locks the calling goroutine to its thread and gives the
// thread a real-time (FIFO) priority, so that it wakes when its sleep
// ends rather than when the scheduler next has a core for it. It
// reports false, and leaves the thread as it was, where that is not
// allowed (it needs CAP_SYS_NICE). The thread stays locked: when the
// goroutine ends the runtime ends the thread with it, so the priority
// never reaches other goroutines.
func preciseThread() bool {
	runtime.LockOSThread()
	attr := unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 10}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		runtime.UnlockOSThread()
		return false
	}
	return true
}

// threadSleep blocks the calling thread for d.
func threadSleep(d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	unix.Nanosleep(&ts, nil)
}
