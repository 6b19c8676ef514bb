package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/internal/netlab"
)

// labCommand is the subcommand that runs the multi-host fault lab.
const labCommand = "lab"

// labMain runs `vsbench lab SCENARIO...`: for each scenario file, K
// network namespaces joined through a bridge, one member per namespace,
// the scenario's cuts, heals, loss, crashes and joins, then the checker
// on the members' logs and a report. It needs root: without it, or
// without network namespaces, it says so and returns 2; otherwise 0 when
// every scenario ran and passed, 1 if not.
func labMain(args []string) int {
	fs := flag.NewFlagSet("vsbench lab", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: vsbench lab [flags] SCENARIO.lab...")
		fmt.Fprintln(fs.Output(), "Runs one member per network namespace, replays each scenario (partitions, heals, loss, crashes, joins; format in docs/LAB.md), checks the logs. Needs root.")
		fs.PrintDefaults()
	}
	dir := fs.String("dir", "", "keep the members' logs under this `directory` (one subdirectory per scenario)")
	useNft := fs.Bool("nft", false, "filter packets with nftables even where BPF works")
	asJSON := fs.Bool("json", false, "print one JSON object per scenario instead of text")
	quiet := fs.Bool("q", false, "no progress lines on standard error")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 1
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "vsbench lab: name at least one scenario file (internal/netlab/scenarios has some)")
		return 1
	}
	// Parse them all first: a bad line fails before anything is built.
	var scs []*netlab.Scenario
	for _, path := range fs.Args() {
		sc, err := netlab.ParseScenarioFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vsbench lab:", err)
			return 1
		}
		scs = append(scs, sc)
	}
	if err := netlab.Available(); err != nil {
		fmt.Fprintf(os.Stderr, "vsbench lab: %v; run it as root (e.g. with sudo)\n", err)
		return 2
	}
	exe, ctx, stop, ok := start("vsbench lab")
	if !ok {
		return 1
	}
	defer stop()

	status := 0
	for _, sc := range scs {
		cfg := netlab.RunConfig{Scenario: sc, Program: bench.ChildSpec{Path: exe}, ForceNft: *useNft, Stderr: os.Stderr}
		if !*quiet {
			cfg.Progress = os.Stderr
		}
		if *dir != "" {
			cfg.Dir = filepath.Join(*dir, sc.Name)
			if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "vsbench lab:", err)
				return 1
			}
		}
		rep, err := netlab.RunScenario(ctx, cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vsbench lab: %s: %v\n", sc.Name, err)
			status = 1
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "vsbench lab: interrupted; the namespaces are removed")
				break
			}
			continue
		}
		if !rep.OK() {
			status = 1
		}
		if *asJSON {
			json.NewEncoder(os.Stdout).Encode(rep)
		} else {
			rep.Print(os.Stdout)
			fmt.Println()
		}
	}
	return status
}
