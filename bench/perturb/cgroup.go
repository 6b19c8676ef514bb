package perturb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Where the cpu method looks for a CPU controller it may write to.
var (
	cgroupV2Root = "/sys/fs/cgroup"
	cgroupV1Root = "/sys/fs/cgroup/cpu"
)

// cgroupRoot is a directory under which the study makes its cgroups:
// version 2 (cpu.max) or version 1 (cpu.cfs_quota_us, cpu.cfs_period_us).
type cgroupRoot struct {
	dir string
	v2  bool
}

// ErrNoCgroup: the machine offers no CPU controller this process may
// write to.
var ErrNoCgroup = errors.New("method cpu: no writable cgroup CPU controller (neither cgroup v2 with the cpu controller nor v1's cpu.cfs_quota_us); run as root where one is mounted, or use --method delay or stop")

// findCgroup returns the first CPU controller where a test cgroup can be
// made (and is removed at once).
func findCgroup() (cgroupRoot, error) {
	var tried []string
	if b, err := os.ReadFile(filepath.Join(cgroupV2Root, "cgroup.controllers")); err == nil &&
		containsWord(string(b), "cpu") {
		root := cgroupRoot{dir: cgroupV2Root, v2: true}
		root.removeStale()
		// The cpu controller must be enabled for the root's children.
		os.WriteFile(filepath.Join(cgroupV2Root, "cgroup.subtree_control"), []byte("+cpu"), 0)
		if err := root.probe(); err == nil {
			return root, nil
		} else {
			tried = append(tried, err.Error())
		}
	}
	if _, err := os.Stat(filepath.Join(cgroupV1Root, "cpu.cfs_quota_us")); err == nil {
		root := cgroupRoot{dir: cgroupV1Root}
		root.removeStale()
		if err := root.probe(); err == nil {
			return root, nil
		} else {
			tried = append(tried, err.Error())
		}
	}
	if len(tried) > 0 {
		return cgroupRoot{}, fmt.Errorf("%w: %s", ErrNoCgroup, strings.Join(tried, "; "))
	}
	return cgroupRoot{}, ErrNoCgroup
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// removeStale removes the empty cgroups that studies whose process is
// gone left under r (a study killed before it could clean up).
func (r cgroupRoot) removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(r.dir, "cohort-perturb-*-*"))
	for _, d := range dirs {
		f := strings.Split(filepath.Base(d), "-")
		pid, err := strconv.Atoi(f[len(f)-2])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		os.Remove(d) // fails, harmlessly, while a process is still in it
	}
}

// probe makes and removes a cgroup, and sets its quota, to learn
// whether the study could.
func (r cgroupRoot) probe() error {
	dir, err := r.make()
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	return r.setQuota(dir, 100*time.Millisecond, 0.5)
}

var cgroupSerial atomic.Int64

func (r cgroupRoot) make() (string, error) {
	dir := filepath.Join(r.dir, fmt.Sprintf("cohort-perturb-%d-%d", os.Getpid(), cgroupSerial.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// setQuota limits dir to cpus CPUs per period; cpus <= 0 lifts the
// limit.
func (r cgroupRoot) setQuota(dir string, period time.Duration, cpus float64) error {
	periodUs := period.Microseconds()
	quotaUs := int64(cpus * float64(periodUs))
	if r.v2 {
		v := "max " + strconv.FormatInt(periodUs, 10)
		if cpus > 0 {
			v = fmt.Sprintf("%d %d", max(quotaUs, 1000), periodUs)
		}
		return os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(v), 0)
	}
	quota := "-1"
	if cpus > 0 {
		quota = strconv.FormatInt(max(quotaUs, 1000), 10)
	}
	// The quota may not exceed what the period allows while the old
	// period stands: lift it, set the period, then set it.
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte("-1"), 0); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.FormatInt(periodUs, 10)), 0); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(quota), 0)
}

// attach moves process pid (all its threads) into a new cgroup under r.
func (r cgroupRoot) attach(pid int, period time.Duration) (perturber, error) {
	dir, err := r.make()
	if err != nil {
		return nil, fmt.Errorf("method cpu: %w", err)
	}
	g := &cgroupPerturber{root: r, dir: dir, pid: pid, period: period}
	if err := r.setQuota(dir, period, 0); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("method cpu: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("method cpu: moving member process %d: %w", pid, err)
	}
	return g, nil
}

type cgroupPerturber struct {
	root   cgroupRoot
	dir    string
	pid    int
	period time.Duration
}

func (g *cgroupPerturber) set(cpus float64) error { return g.root.setQuota(g.dir, g.period, cpus) }

// close moves the process back to the root (if it still runs) and
// removes the cgroup, waiting briefly for an exiting process to leave.
func (g *cgroupPerturber) close() error {
	g.root.setQuota(g.dir, g.period, 0)
	procs := filepath.Join(g.dir, "cgroup.procs")
	if b, err := os.ReadFile(procs); err == nil {
		for _, f := range strings.Fields(string(b)) {
			os.WriteFile(filepath.Join(g.root.dir, "cgroup.procs"), []byte(f), 0)
		}
	}
	var err error
	for deadline := time.Now().Add(2 * time.Second); ; {
		if err = os.Remove(g.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("method cpu: removing cgroup %s: %w", g.dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processCPU is the CPU time (user and system) process pid has used.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces), from ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	// utime and stime are fields 14 and 15 of stat: 12 and 13 here.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unreadable /proc stat times")
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond, nil
}
