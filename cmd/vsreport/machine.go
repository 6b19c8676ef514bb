package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// machine describes this machine: processor, CPUs, memory, kernel, Go.
func machine() string {
	parts := []string{cpuModel(), fmt.Sprintf("%d CPUs", runtime.NumCPU())}
	if kb := memTotalKB(); kb > 0 {
		parts = append(parts, fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20)))
	}
	os := runtime.GOOS
	if rel := kernelRelease(); rel != "" {
		os = "Linux " + rel
	}
	parts = append(parts, os, runtime.Version())
	return strings.Join(parts, ", ")
}

// cpuModel is the processor's model name where the system says (without
// trademark signs), else the architecture.
func cpuModel() string {
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		for _, mark := range []string{"(R)", "(TM)", "(tm)"} {
			v = strings.ReplaceAll(v, mark, "")
		}
		return strings.Join(strings.Fields(v), " ")
	}
	return runtime.GOARCH
}

func memTotalKB() int64 {
	v := strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB")
	n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	rel := strings.TrimSpace(string(b))
	// Keep major.minor.patch: what follows names a build.
	if i := strings.IndexAny(rel, "-+"); i > 0 {
		rel = rel[:i]
	}
	return rel
}

// procField is the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
