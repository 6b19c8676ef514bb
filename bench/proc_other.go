//go:build !unix

package bench

import (
	"errors"
	"os"
	"os/exec"
	"time"
)

// configureProcess keeps exec's default cancellation: kill the process.
func configureProcess(cmd *exec.Cmd) {}

var errNoStop = errors.New("bench: stopping a process is not supported on this system")

func stopProcess(p *os.Process) error     { return errNoStop }
func continueProcess(p *os.Process) error { return errNoStop }

// processCPU is 0: the system does not say.
func processCPU() time.Duration { return 0 }

// childCPU is 0: the system does not say.
func childCPU(pid int) time.Duration { return 0 }

// processRSS is 0: the system does not say.
func processRSS() uint64 { return 0 }
