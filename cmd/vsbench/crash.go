package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cohort-vs/cohort/bench"
)

// crashMain runs `vsbench crash`: member processes on loopback under
// load, one killed with SIGKILL (or stopped with SIGSTOP for --pause);
// it prints, from the members' logs, the time from the kill to the new
// view at each survivor and to its first delivery in it (or the views
// that changed after the pause), and checks the logs. --victim
// coordinator kills the coordinator of the view current at the kill (the
// oldest member, which sequences total order): e.g.
// `vsbench crash --order total --victim coordinator --rate 0 --runs 20`.
// --groups N makes the members share N groups (see bench.CrashConfig's
// Groups): it prints, over every group at every survivor, the time from
// the kill to the new view (median, p99, max), how many groups installed
// it, each survivor's CPU time meanwhile, and the checker's verdict on
// the logs of a sample of the groups (--sample), e.g.
// `vsbench crash --members 3 --groups 10000 --rate 200 --timeout 5m`.
// It returns the exit status: 0 when every run was clean.
func crashMain(args []string) int {
	def := bench.DefaultCrashConfig()
	cfg := def
	fs := flag.NewFlagSet("vsbench crash", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: vsbench crash [flags]")
		fmt.Fprintln(fs.Output(), "Kills one member of a loaded group (or pauses it with --pause) and reports the time from the kill to the new view at each survivor.")
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.Members, "members", def.Members, "group size: one process per member")
	victim := fs.String("victim", strconv.Itoa(def.Victim), "the member killed: its rank in the full view (0: the coordinator), or \"coordinator\": the coordinator (and total order's sequencer) of the view current at the kill")
	fs.Float64Var(&cfg.Rate, "rate", def.Rate, "messages/s sent by each member (0: as fast as flow control allows); with --groups N, the member's total, split evenly over the groups that --load names (with all, each sends rate/N), and 0 is refused")
	fs.StringVar(&cfg.Order, "order", def.Order, "ordering: unordered, fifo, causal or total")
	fs.BoolVar(&cfg.Safe, "safe", false, "send safe messages (uniform delivery, or-ed with the ordering)")
	fs.IntVar(&cfg.Size, "size", def.Size, "message size in bytes")
	fs.DurationVar(&cfg.Warmup, "warmup", def.Warmup, "load before the fault")
	fs.DurationVar(&cfg.After, "after", def.After, "load after the new view (or after the pause)")
	fs.DurationVar(&cfg.Pause, "pause", 0, "instead of killing the victim, stop it (SIGSTOP) for this long, then continue it")
	fs.DurationVar(&cfg.Timeout, "timeout", def.Timeout, "bound on each wait (full view, new view, exits); with --groups N, on each member's joins too (10,000 groups take minutes: give several)")
	fs.IntVar(&cfg.Procs, "procs", 0, "GOMAXPROCS of each member process (0: max(1, CPUs/members))")
	fs.BoolVar(&cfg.Light, "light", false, "with --groups N: the groups are light groups over one carrier group (package light)")
	fs.IntVar(&cfg.Groups, "groups", 1, fmt.Sprintf("groups every member joins (1 to %d): with more, the members join them one after another, the victim is a process (--victim: its rank in group 0, the same in every group), and the figures cover every group at every survivor; kill only", bench.MaxGroups))
	fs.IntVar(&cfg.Sample, "sample", bench.DefaultCrashSample, "with --groups N: check the logs of this many groups, spread evenly, the first and the last among them")
	fs.StringVar(&cfg.Load, "load", bench.LoadAll, "with --groups N: the groups that carry --rate: all (each member's rate split evenly over the N groups: every group active) or sample (split over the --sample groups only, the others idle)")
	runs := fs.Int("runs", 1, "number of runs")
	dir := fs.String("dir", "", "keep the members' logs under this `directory` (one subdirectory per run)")
	asJSON := fs.Bool("json", false, "print one JSON object per run instead of a line")
	err := fs.Parse(args)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vsbench crash: unexpected arguments %q\n", fs.Args())
		return 1
	}
	if cfg.Victim, err = bench.ParseVictim(*victim); err != nil {
		fmt.Fprintln(os.Stderr, "vsbench crash:", err)
		return 1
	}
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "vsbench crash: runs must be at least 1")
		return 1
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "vsbench crash:", err)
		return 1
	}
	exe, ctx, stop, ok := start("vsbench crash")
	if !ok {
		return 1
	}
	defer stop()

	status := 0
	var worst, resumed []time.Duration // per kill run, the slowest survivor
	for i := 0; i < *runs; i++ {
		c := cfg
		if *dir != "" {
			c.Dir = filepath.Join(*dir, fmt.Sprintf("run%d", i+1))
			if err := os.MkdirAll(c.Dir, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "vsbench crash:", err)
				return 1
			}
		}
		res, err := bench.RunCrash(ctx, c, bench.ChildSpec{Path: exe}, os.Stderr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vsbench crash: run %d: %v\n", i+1, err)
			status = 1
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if !res.OK() {
			status = 1
		}
		if res.Mode == "kill" {
			worst = append(worst, res.MaxDetection())
			if d := res.MaxFirstDelivery(); d > 0 {
				resumed = append(resumed, d)
			}
		}
		if *asJSON {
			json.NewEncoder(os.Stdout).Encode(res)
		} else {
			fmt.Printf("run %d: %s\n", i+1, res.Summary())
			for _, v := range res.Violations {
				fmt.Printf("  violation: %v\n", v)
			}
			for _, v := range res.ViewsAfterPause {
				fmt.Printf("  view after pause: %s\n", v)
			}
		}
	}
	if len(worst) > 1 && !*asJSON {
		spread := func(ds []time.Duration) string {
			slices.Sort(ds)
			r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond / 10) }
			return fmt.Sprintf("min %v  median %v  max %v", r(ds[0]), r(ds[len(ds)/2]), r(ds[len(ds)-1]))
		}
		fmt.Printf("slowest survivor per run over %d runs, kill→view: %s\n", len(worst), spread(worst))
		if len(resumed) > 1 {
			fmt.Printf("slowest survivor per run over %d runs, kill→first delivery in the new view: %s\n", len(resumed), spread(resumed))
		}
	}
	return status
}
