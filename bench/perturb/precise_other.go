//go:build !linux

package perturb

import "time"

// preciseThread: only Linux offers the study a real-time thread.
func preciseThread() bool { return false }

func threadSleep(d time.Duration) { time.Sleep(d) }
