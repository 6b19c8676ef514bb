package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// benchLine matches a benchmark's result line: name, GOMAXPROCS suffix,
// iterations, then value-unit pairs.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// benchResult is one benchmark's results: per unit, one value per run
// (-count).
type benchResult struct {
	Name   string
	Values map[string][]float64
}

// readGoBench reads go test -bench output (text); a FAIL line, or a
// panic, is an error.
func readGoBench(path string) ([]*benchResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*benchResult
	byName := map[string]*benchResult{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "panic:") {
			return nil, fmt.Errorf("%s: the benchmark failed: %s", path, line)
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		if len(f)%2 != 0 {
			return nil, fmt.Errorf("%s: cannot read %q", path, line)
		}
		name := strings.TrimPrefix(m[1], "Benchmark")
		r := byName[name]
		if r == nil {
			r = &benchResult{Name: name, Values: map[string][]float64{}}
			byName[name] = r
			out = append(out, r)
		}
		for i := 0; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: cannot read %q: %w", path, line, err)
			}
			r.Values[f[i+1]] = append(r.Values[f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no benchmark result (does -bench match a benchmark?)", path)
	}
	return out, nil
}

// benchValue formats a benchmark's value of a unit.
func benchValue(v float64, unit string) string {
	switch {
	case unit == "allocs/op" || unit == "B/op" || unit == "retransmits":
		return strconv.FormatFloat(v, 'f', -1, 64)
	case strings.HasSuffix(unit, "/s"):
		return short(v)
	case v >= 1000:
		return grouped(v)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// goBenchTable renders go test -bench output: a row per benchmark, the
// median over its runs of each unit asked for, and with several runs
// each run's value of the first unit.
func goBenchTable(command, path string, units []string) (string, error) {
	if len(units) == 0 {
		return "", errors.New("name the units to show (-units)")
	}
	res, err := readGoBench(path)
	if err != nil {
		return "", err
	}
	runs := 1
	for _, r := range res {
		runs = max(runs, len(r.Values[units[0]]))
	}
	head := append([]string{"benchmark"}, units...)
	if runs > 1 {
		head = append(head, "each run, "+units[0])
	}
	lines := []string{"`" + command + "`:", "", header(head...)}
	for _, r := range res {
		cs := []string{r.Name}
		for _, u := range units {
			vs := r.Values[u]
			if len(vs) == 0 {
				return "", fmt.Errorf("%s: %s reports no %s", path, r.Name, u)
			}
			cs = append(cs, benchValue(median(vs), u))
		}
		if runs > 1 {
			cs = append(cs, join(r.Values[units[0]], func(v float64) string { return benchValue(v, units[0]) }))
		}
		lines = append(lines, row(cs...))
	}
	return strings.Join(lines, "\n"), nil
}
