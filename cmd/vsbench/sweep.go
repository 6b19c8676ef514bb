package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/bench/sweep"
)

// sweepMain runs `vsbench sweep`: vsbench runs over message sizes, group
// sizes, sender counts and offered loads (see package sweep), written to
// --out as sweep.csv, sweep.json and PNG charts. It returns the exit
// status: 0 when every point ran, 1 when a point failed, the sweep was
// interrupted or a flag is wrong.
func sweepMain(args []string) int {
	cfg, err := sweep.ParseArgs(args, os.Stderr)
	if status, goOn := argsStatus("vsbench sweep", err, sweep.ErrUsage); !goOn {
		return status
	}
	// Fail before the first run, not after the last, if the results
	// cannot be written.
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "vsbench sweep: --out: %v\n", err)
		return 1
	}
	if err := sweep.WriteFiles(cfg.Out, sweep.NewResult(cfg)); err != nil {
		fmt.Fprintf(os.Stderr, "vsbench sweep: --out: %v\n", err)
		return 1
	}
	if err := sweep.RemoveCharts(cfg.Out); err != nil {
		fmt.Fprintf(os.Stderr, "vsbench sweep: removing the charts of an earlier sweep: %v\n", err)
		return 1
	}
	exe, ctx, stop, ok := start("vsbench sweep")
	if !ok {
		return 1
	}
	defer stop()
	res, err := sweep.Run(ctx, cfg, sweep.Options{
		Child:    bench.ChildSpec{Path: exe, Args: []string{bench.ChildCommand}},
		Stderr:   os.Stderr,
		Progress: os.Stderr,
		Done:     func(r *sweep.Result) error { return sweep.WriteFiles(cfg.Out, r) },
	})
	if res == nil {
		fmt.Fprintln(os.Stderr, "vsbench sweep:", err)
		return 1
	}
	status := 0
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(os.Stderr, "vsbench sweep: stopped after %d of %d points: %v; the files hold those points\n", res.Sweep.Done, res.Sweep.Runs, err)
		status = 1
	}
	if err := sweep.WriteFiles(cfg.Out, res); err != nil {
		fmt.Fprintln(os.Stderr, "vsbench sweep:", err)
		return 1
	}
	charts, err := sweep.WriteCharts(cfg.Out, res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsbench sweep: charts:", err)
		status = 1
	}
	fmt.Println(filepath.Join(cfg.Out, sweep.CSVFile))
	fmt.Println(filepath.Join(cfg.Out, sweep.JSONFile))
	for _, c := range charts {
		fmt.Println(c)
	}
	if n := res.Failed(); n > 0 {
		fmt.Fprintf(os.Stderr, "vsbench sweep: %d of %d points failed; their errors are in %s\n",
			n, res.Sweep.Done, filepath.Join(cfg.Out, sweep.CSVFile))
		status = 1
	}
	return status
}
