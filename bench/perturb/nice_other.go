//go:build !linux

package perturb

import "errors"

var errNoNice = errors.New("setting a process's threads' nice value is supported on Linux only")

func setNice(pid, nice int) error { return errNoNice }

func niceRefused(err error) bool { return errors.Is(err, errNoNice) }
