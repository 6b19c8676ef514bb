package netlab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// The nftables fallback, for where BPF programs may not be loaded or
// attached: random loss with `numgen random mod 10000 < N drop` (a
// resolution of 0.01%), cuts with drops by address. Rules are rewritten
// as a whole by `nft -f -` on every change.

// nftTablePrefix starts the name of every table this package makes,
// followed by the owner's pid, so a later run can remove a dead run's.
const nftTablePrefix = "cohort_"

// nft runs an nft script, inside the network namespace ns if not "".
func nft(ns, script string) error {
	args := []string{"-f", "-"}
	name := "nft"
	if ns != "" {
		name, args = "ip", append([]string{"netns", "exec", ns, "nft"}, args...)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// nftAvailable reports whether nft can run here (and why not).
func nftAvailable() error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("nft not found: %w", err)
	}
	return nil
}

// nftLossRule is a rule fragment dropping percent% of the packets.
func nftLossRule(percent float64) string {
	if percent >= 100 {
		return "drop"
	}
	return "numgen random mod 10000 < " + strconv.Itoa(int(percent*100+0.5)) + " drop"
}

// removeDeadNftTables deletes the root namespace's tables left by
// processes of this package that are gone (killed before their cleanup).
func removeDeadNftTables() {
	if nftAvailable() != nil {
		return
	}
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line) // table FAMILY NAME
		if len(f) != 3 || f[0] != "table" || !strings.HasPrefix(f[2], nftTablePrefix) {
			continue
		}
		pid, ok := ownerPid(strings.TrimPrefix(f[2], nftTablePrefix), "_")
		if ok && !processAlive(pid) {
			nft("", fmt.Sprintf("delete table %s %s\n", f[1], f[2]))
		}
	}
}

// ownerPid reads the pid at the start of rest, up to sep.
func ownerPid(rest, sep string) (int, bool) {
	s, _, _ := strings.Cut(rest, sep)
	pid, err := strconv.Atoi(s)
	return pid, err == nil && pid > 0
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}
