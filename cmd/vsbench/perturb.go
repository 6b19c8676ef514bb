package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/bench/perturb"
)

// perturbMain runs `vsbench perturb`, the slow-member study (see package
// perturb): it writes perturb_<method>.csv and .json and two PNG charts
// into --out and prints a summary with PASS/FAIL lines. It returns the exit
// status: 0 when the study ran and every target checked passed.
func perturbMain(args []string) int {
	cfg, err := perturb.ParseArgs(args, os.Stderr)
	if status, goOn := argsStatus("vsbench perturb", err, perturb.ErrUsage); !goOn {
		return status
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "vsbench perturb: --out: %v\n", err)
		return 1
	}
	exe, ctx, stop, ok := start("vsbench perturb")
	if !ok {
		return 1
	}
	defer stop()
	res, err := perturb.Run(ctx, cfg, perturb.Options{
		Child:    bench.ChildSpec{Path: exe, Args: []string{bench.ChildCommand}},
		Progress: os.Stderr,
		Stderr:   os.Stderr,
	})
	if res == nil {
		fmt.Fprintln(os.Stderr, "vsbench perturb:", err)
		return 1
	}
	status := 0
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		fmt.Fprintln(os.Stderr, "vsbench perturb:", err)
		status = 1
	}
	if err := perturb.WriteFiles(cfg.Out, res); err != nil {
		fmt.Fprintln(os.Stderr, "vsbench perturb:", err)
		return 1
	}
	charts, err := perturb.WriteCharts(cfg.Out, res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsbench perturb: charts:", err)
		status = 1
	}
	fmt.Println()
	if err := perturb.WriteSummary(os.Stdout, res); err != nil {
		fmt.Fprintln(os.Stderr, "vsbench perturb:", err)
		return 1
	}
	fmt.Println()
	csvPath, jsonPath := perturb.Files(cfg.Out, cfg.Method)
	for _, f := range append([]string{csvPath, jsonPath}, charts...) {
		fmt.Println(f)
	}
	for _, c := range res.Checks {
		if c.Checked && !c.Pass {
			status = 1
		}
	}
	return status
}
