// Command vsbench measures a cohort group on loopback against a raw-UDP
// baseline. Every member runs in its own process (vsbench starts copies of
// itself); each run measures the baseline, then the engine, on the same
// processes.
//
//	vsbench                          3 members, member 0 sends 64-byte FIFO messages, 5s per phase
//	vsbench --senders all --size 1024
//	vsbench --rate 100000 --json     paced sender, one JSON object on stdout
//	vsbench --order fifo,total       each ordering in its own engine phase on the same processes
//	vsbench --order total --safe     safe (uniform) delivery, or-ed with the ordering
//	vsbench --key-file cohort.key    the keyed engine too, beside the keyless one and the baseline
//	vsbench --groups 100             100 groups among the same 3 processes: per-group throughput, idle costs
//	vsbench --groups 1000 --light    1,000 light groups over one carrier group
//
// --order takes unordered, fifo, causal or total, or a comma-separated
// list of them: the baseline is measured once, then the engine once per
// ordering, in the order listed, on the same processes and group, so
// their rates compare directly. With --json, one ordering prints one
// report object; a list prints a JSON array of such objects, one per
// ordering in the order listed, each with the same (shared) baseline and
// its own setup.order and ratio. --safe or-s engine.Safe into every
// ordering (setup.safe is then true). The baseline has no ordering: it
// packs messages as FIFO ones whatever the ordering (unordered ones when
// only unordered is measured).
//
// --groups N (1 to bench.MaxGroups) makes every member process join N
// groups, vsbench-0 to vsbench-(N-1), all with the same members: each
// sending member sends its messages to the groups in turn (message k to
// group k mod N), so every group carries an equal share and --rate is a
// sender's rate over all its groups. engine.msgs_per_sec stays a
// member's deliveries per second, summed over every group; each phase's
// "groups" has the rate of each group (its slowest member): mean, min,
// max, and how many groups delivered at every member. Before the
// baseline, an idle phase (1.5 s to settle, then --idle, default 2s)
// counts, with no traffic, the datagrams each process's engine writes,
// and reads its heap and RSS; the report's "groups" gives them per
// process and per group (heap and RSS per group: what joining the groups
// added to a process, over N). The table gains a line of each. With
// --groups 1, the default, the output is as before.
//
// Throughput counts every message. Latency is that of a sample, so that
// the clock is not what is measured: every Kth message of each sender,
// K the same for the engine and the baseline (setup.sample_every): 64
// unpaced; paced, rate/10,000 (at most 64), so every message below
// 20,000 msgs/s; every message of 4 KiB or more.
// Each phase also reports the members' CPU time (user and system) per
// delivered message, overall and per member: "CPU µs/msg" in the table,
// cpu_us_per_msg and member_cpu_us_per_msg in --json.
//
// --key-file FILE (a 32-byte key in base64: `head -c 32 /dev/urandom |
// base64 > FILE`) adds the keyed engine (engine.Config.Keys): every
// member process also runs a keyed engine in a group of its own, and each
// ordering's engine phase is followed by a "keyed" phase on it, so that
// the keyless engine, the keyed one and the baseline are measured by the
// same processes in one run. The table gains a keyed row per ordering
// and the keyed/keyless ratio; --json reports gain "keyed" (a phase like
// "engine") and "keyed_ratio" (its msgs_per_sec over the keyless
// engine's), and setup.keyed is true. Without --key-file the output is
// as before.
//
// `vsbench sweep` runs many such measurements, over message sizes, group
// sizes, sender counts and offered loads, and writes them to CSV, JSON
// and PNG charts:
//
//	vsbench sweep --quick                                        a small sweep (about 2-3 minutes on 2 cores) into ./sweep-out
//	vsbench sweep --members 3 --size 64,1024 --rate 10k,100k,1M  every combination of the lists
//
// `vsbench perturb` is the slow-member study: one member of a loaded
// group slowed in steps (a delay per delivery, SIGSTOP/SIGCONT, a cgroup
// CPU quota), under the engine's block and evict policies in turn; it
// reports the healthy members' throughput and latency over time, checks
// the targets, and writes CSV, JSON and PNG charts:
//
//	vsbench perturb                                   4 members, member 3 slowed by a delay per delivery, block then evict
//	vsbench perturb --method stop --policy evict --steps 100,10
//
// Two subcommands run members for correctness tests rather than
// measurements:
//
//	vsbench member --listen ADDR --seeds ADDR,... --log FILE   one member process that logs every event (docs/LOGS.md)
//	vsbench member ... --key-file FILE                          the same, keyed (--insecure: a non-loopback --listen without a key)
//	vsbench member ... --groups 3 --log m.log                   3 groups on one engine, logged to m.0.log, m.1.log, m.2.log
//	vsbench crash [--pause 200ms] [--runs N]                    kill (or pause) one member of a loaded group; time from the kill to the new view
//	vsbench crash --order total --victim coordinator --rate 0   kill -9 of the coordinator (total order's sequencer) under full load
//	vsbench crash --members 3 --groups 10000 --timeout 5m       kill -9 of one of 3 processes sharing 10,000 groups; time to the new view in every group
//
// `vsbench lab` (root only) runs one member per network namespace and
// replays a fault scenario (partitions, heals, loss, crashes, joins):
//
//	vsbench lab internal/netlab/scenarios/partition-3-2.lab   5 members, a 3|2 partition, a heal; view times, throughput, the checker's verdict
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/bench/perturb"
	"github.com/cohort-vs/cohort/bench/sweep"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == bench.ChildCommand {
		os.Exit(bench.ChildMain())
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case bench.MemberCommand:
			os.Exit(memberMain(os.Args[2:]))
		case bench.CrashCommand:
			os.Exit(crashMain(os.Args[2:]))
		case sweep.Command:
			os.Exit(sweepMain(os.Args[2:]))
		case labCommand:
			os.Exit(labMain(os.Args[2:]))
		case perturb.Command:
			os.Exit(perturbMain(os.Args[2:]))
		}
	}

	def := bench.DefaultConfig()
	cfg := def
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), `Usage: vsbench [flags]         a 3-member group of processes on loopback beside raw UDP
       vsbench member [flags]  one real member process with an event log (docs/LOGS.md)
       vsbench crash [flags]   kill (or pause) one member of a loaded group; time to the new view
       vsbench sweep [flags]   many runs over sizes, group sizes, senders and loads; CSV, JSON, charts
       vsbench perturb [flags] the slow-member study under the block and evict policies
       vsbench lab FILE        replay a fault scenario over network namespaces (root; docs/LAB.md)
Each subcommand takes --help. Flags of the group run:
`)
		flag.PrintDefaults()
	}
	flag.IntVar(&cfg.Members, "members", def.Members, "group size: one process per member")
	senders := flag.String("senders", "1", `sending members: "1" (member 0) or "all"`)
	flag.IntVar(&cfg.Size, "size", def.Size, "message size in bytes (at least 8: the send timestamp)")
	flag.StringVar(&cfg.Order, "order", def.Order, "ordering: unordered, fifo, causal or total, or a comma-separated list of them, each measured in turn on the same processes")
	flag.BoolVar(&cfg.Safe, "safe", false, "safe (uniform) delivery, or-ed with the ordering")
	flag.DurationVar(&cfg.Duration, "duration", def.Duration, "measured time of each phase")
	flag.DurationVar(&cfg.Warmup, "warmup", def.Warmup, "unmeasured warm-up at the start of each phase")
	flag.Float64Var(&cfg.Rate, "rate", 0, "messages/s offered per sender (0: as fast as possible)")
	flag.IntVar(&cfg.Procs, "procs", 0, "GOMAXPROCS of each member process (0: max(1, CPUs/members))")
	asJSON := flag.Bool("json", false, "print one JSON object instead of a table")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write each member's CPU profile of each phase to `prefix`.<phase>.m<index>")
	flag.StringVar(&cfg.KeyFile, "key-file", "", "also measure the keyed engine (AES-256-GCM, the key in this `file`, 32 bytes in base64): each engine phase is followed by a keyed one on the same processes")
	flag.IntVar(&cfg.Groups, "groups", def.Groups, fmt.Sprintf("groups every member process joins (1 to %d); a sender sends its messages to them in turn, and an idle phase measures their cost without traffic", bench.MaxGroups))
	flag.BoolVar(&cfg.Light, "light", false, "with --groups N: the groups are light groups over one carrier engine group (package light): one stream, window and failure detector for all of them")
	flag.DurationVar(&cfg.Idle, "idle", def.Idle, "measured window of the idle phase with --groups above 1 (0: no idle phase)")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	var err error
	if cfg.Senders, err = bench.ParseSenders(*senders, cfg.Members); err != nil {
		fail(err)
	}
	if cfg.Groups < 1 {
		fail(fmt.Errorf("groups is %d; use 1 to %d", cfg.Groups, bench.MaxGroups))
	}
	if err := cfg.Validate(); err != nil {
		fail(err)
	}
	exe, ctx, stop, ok := start("vsbench")
	if !ok {
		os.Exit(1)
	}
	defer stop()
	reps, err := bench.RunOrders(ctx, cfg, bench.Options{
		Child:    bench.ChildSpec{Path: exe, Args: []string{bench.ChildCommand}},
		Progress: os.Stderr,
	})
	if err != nil {
		fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if len(reps) == 1 {
			err = enc.Encode(reps[0]) // the single-ordering shape
		} else {
			err = enc.Encode(reps)
		}
	} else {
		err = bench.WriteTables(os.Stdout, reps)
	}
	if err != nil {
		fail(err)
	}
}

// start finds this executable (the members are child processes of it) and
// a context that ends on Ctrl-C or SIGTERM. When the executable cannot be
// found it says so, prefixed with cmd, and ok is false.
func start(cmd string) (exe string, ctx context.Context, stop context.CancelFunc, ok bool) {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: finding own executable: %v\n", cmd, err)
		return "", nil, nil, false
	}
	ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return exe, ctx, stop, true
}

// argsStatus handles a subcommand's flag-parsing outcome: it reports
// whether to go on, and otherwise the exit status (0 after --help; 1 for
// a flag error, which the flag package already printed, or a bad value,
// printed here).
func argsStatus(cmd string, err, errUsage error) (status int, goOn bool) {
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	case errors.Is(err, errUsage):
		return 1, false
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n(%s --help lists the flags)\n", cmd, err, cmd)
	return 1, false
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "vsbench:", err)
	os.Exit(1)
}
