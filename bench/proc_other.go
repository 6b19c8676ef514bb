//go:build !unix

package bench

import (
	"errors"
	"os"
	"os/exec"
)

// configureProcess keeps exec's default cancellation: kill the process.
func configureProcess(cmd *exec.Cmd) {}

var errNoStop = errors.New("bench: stopping a process is not supported on this system")

func stopProcess(p *os.Process) error     { return errNoStop }
func continueProcess(p *os.Process) error { return errNoStop }
