// Command vsreport turns the outputs of vsbench (--json), go test (-json,
// or -bench text) and vssim into the markdown of BENCHMARKS.md, and
// replaces a generated section of that file between its markers.
// bench/report.sh runs the measurements and drives it; each subcommand
// prints markdown on standard output, or fails, naming the file and what
// is wrong with it, and prints nothing:
//
//	vsreport header KIND                              a table's header: vsbench, checks, state, perturb-targets, perturb-levels
//	vsreport vsbench -figure F -metric M [-order O] [-safe] -command C RUN.json...
//	                                                  one row: the run with the median figure, its raw-UDP baseline, their ratio
//	vsreport crash -what W -command C OUT.json        one row of vsbench crash --json runs: kill to new view
//	vsreport check -what W -command C [-log] -gotest OUT.json | -summary OUT.txt
//	                                                  one row: a passing go test -json run (-log: and what it logged), or a command's last line
//	vsreport testlog [-cut] -command C OUT.json       what a passing go test -json run logged, as a code block
//	vsreport losstable OUT.json                       TestLargeMessagesUnderLoss's repair ratios
//	vsreport gobench -command C -units U,... OUT.txt  a go test -bench run's table
//	vsreport sweep sweep.json                         a vsbench sweep's table
//	vsreport groups RUN.json...                       vsbench --groups runs (or report.sh's record of a failed one): a row per number of groups, the median run, its ratio to one group's
//	vsreport perturb-targets -command C perturb_M.json...  one method's runs straight to the target level
//	vsreport perturb-levels -command C perturb_M.json      one study over time, a row per step
//	vsreport lab OUT.json...                          vsbench lab --json runs: views after each step, deliveries
//	vsreport state -load L -command C -joiner LOG -member LOG   a real-process state transfer from the members' logs
//	vsreport machine                                  this machine: processor, CPUs, memory, kernel, Go
//	vsreport replace -file F NAME=CONTENT.md...       replace the sections, all or none
//	vsreport replace -check -file F NAME...           check that the sections' markers are there
//
// A section NAME of a markdown file is what lies between the lines
// <!-- NAME:begin --> and <!-- NAME:end -->.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// errUsage: the flags were wrong; the flag package said so.
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vsreport SUBCOMMAND [flags] [files] (go doc ./cmd/vsreport lists them)")
		os.Exit(2)
	}
	out, err := run(os.Args[1], os.Args[2:], os.Stderr)
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "vsreport %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	if out != "" {
		fmt.Println(out)
	}
}

// run runs a subcommand and returns its markdown.
func run(sub string, args []string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet("vsreport "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	command := fs.String("command", "", "the command that produced the output, as the table shows it")
	parse := func(min, max int) error {
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		if fs.NArg() < min || max >= 0 && fs.NArg() > max {
			fmt.Fprintf(stderr, "vsreport %s: want %s, got %d\n", sub, argCount(min, max), fs.NArg())
			return errUsage
		}
		return nil
	}
	need := func(name, v string) error {
		if v == "" {
			fmt.Fprintf(stderr, "vsreport %s: -%s is required\n", sub, name)
			return errUsage
		}
		return nil
	}
	switch sub {
	case "header":
		if err := parse(1, 1); err != nil {
			return "", err
		}
		switch kind := fs.Arg(0); kind {
		case "vsbench":
			return vsbenchHeader(), nil
		case "checks":
			return checksHeader(), nil
		case "state":
			return stateHeader(), nil
		case "perturb-targets":
			return perturbTargetsHeader(), nil
		case "perturb-levels":
			return perturbLevelsHeader(), nil
		default:
			return "", fmt.Errorf("no table kind %q (vsbench, checks, state, perturb-targets, perturb-levels)", kind)
		}
	case "vsbench":
		figure := fs.String("figure", "", "what the row shows, e.g. \"throughput\"")
		metric := fs.String("metric", metricMsgs, "the figure: "+strings.Join(metrics, ", "))
		order := fs.String("order", "", "the ordering's report, of an output that holds several (--order with a list)")
		safe := fs.Bool("safe", false, "the safe ordering's report")
		if err := parse(1, -1); err != nil {
			return "", err
		}
		if err := errors.Join(need("figure", *figure), need("command", *command)); err != nil {
			return "", errUsage
		}
		return vsbenchRow(*figure, *metric, *order, *safe, *command, fs.Args())
	case "crash":
		what := fs.String("what", "", "the experiment")
		if err := parse(1, 1); err != nil {
			return "", err
		}
		if err := errors.Join(need("what", *what), need("command", *command)); err != nil {
			return "", errUsage
		}
		return crashRow(*what, *command, fs.Arg(0))
	case "check":
		what := fs.String("what", "", "the experiment")
		gotest := fs.String("gotest", "", "go test -json output")
		summary := fs.String("summary", "", "a command's output, whose last line is its result")
		withLog := fs.Bool("log", false, "with -gotest: add what the tests logged")
		if err := parse(0, 0); err != nil {
			return "", err
		}
		if err := errors.Join(need("what", *what), need("command", *command)); err != nil {
			return "", errUsage
		}
		return checkRow(*what, *command, *gotest, *summary, *withLog)
	case "testlog":
		cut := fs.Bool("cut", false, "keep each logged line up to its first \"; \"")
		if err := parse(1, 1); err != nil {
			return "", err
		}
		if err := need("command", *command); err != nil {
			return "", err
		}
		return testLog(*command, fs.Arg(0), *cut)
	case "losstable":
		if err := parse(1, 1); err != nil {
			return "", err
		}
		return lossTable(fs.Arg(0))
	case "gobench":
		units := fs.String("units", "", "comma-separated units to show, e.g. msgs/s,allocs/op")
		if err := parse(1, 1); err != nil {
			return "", err
		}
		if err := errors.Join(need("units", *units), need("command", *command)); err != nil {
			return "", errUsage
		}
		return goBenchTable(*command, fs.Arg(0), strings.Split(*units, ","))
	case "groups":
		if err := parse(1, -1); err != nil {
			return "", err
		}
		return groupsTable(fs.Args())
	case "sweep":
		if err := parse(1, 1); err != nil {
			return "", err
		}
		return sweepTable(fs.Arg(0))
	case "perturb-targets":
		if err := parse(1, -1); err != nil {
			return "", err
		}
		if err := need("command", *command); err != nil {
			return "", err
		}
		return perturbTargetsRow(*command, fs.Args())
	case "perturb-levels":
		if err := parse(1, 1); err != nil {
			return "", err
		}
		if err := need("command", *command); err != nil {
			return "", err
		}
		return perturbLevelsRows(*command, fs.Arg(0))
	case "lab":
		if err := parse(1, -1); err != nil {
			return "", err
		}
		return labTables(fs.Args())
	case "state":
		load := fs.String("load", "", "the load, as the table shows it")
		joiner := fs.String("joiner", "", "the joiner's event log")
		member := fs.String("member", "", "an old member's event log")
		if err := parse(0, 0); err != nil {
			return "", err
		}
		if err := errors.Join(need("load", *load), need("command", *command), need("joiner", *joiner), need("member", *member)); err != nil {
			return "", errUsage
		}
		return stateRow(*load, *command, *joiner, *member)
	case "machine":
		if err := parse(0, 0); err != nil {
			return "", err
		}
		return machine(), nil
	case "replace":
		file := fs.String("file", "", "the markdown file")
		check := fs.Bool("check", false, "only check that each named section's markers are there")
		if err := parse(1, -1); err != nil {
			return "", err
		}
		if err := need("file", *file); err != nil {
			return "", err
		}
		if *check {
			data, err := os.ReadFile(*file)
			if err != nil {
				return "", err
			}
			if err := CheckSections(string(data), fs.Args()); err != nil {
				return "", fmt.Errorf("%s: %w", *file, err)
			}
			return "", nil
		}
		sections := map[string]string{}
		for _, a := range fs.Args() {
			name, path, ok := strings.Cut(a, "=")
			if !ok {
				return "", fmt.Errorf("%q: want NAME=FILE", a)
			}
			if _, dup := sections[name]; dup {
				return "", fmt.Errorf("section %s named twice", name)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return "", err
			}
			sections[name] = string(data)
		}
		return "", replaceFile(*file, sections)
	}
	return "", fmt.Errorf("no subcommand %q (go doc ./cmd/vsreport lists them)", sub)
}

func argCount(min, max int) string {
	switch {
	case max < 0:
		return fmt.Sprintf("at least %d arguments", min)
	case min == max:
		return fmt.Sprintf("%d arguments", min)
	}
	return fmt.Sprintf("%d to %d arguments", min, max)
}
