package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/cohort-vs/cohort/bench"
)

// memberMain runs `vsbench member`: one member process that joins a
// group, sends, logs every event to --log, and leaves at the end of
// --duration or on SIGTERM/SIGINT. It returns the exit status (see
// bench.ExitOK and the other Exit constants).
func memberMain(args []string) int {
	def := bench.DefaultMemberConfig()
	cfg := def
	fs := flag.NewFlagSet("vsbench member", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: vsbench member --listen ADDR --seeds ADDR,... --log FILE [flags]")
		fmt.Fprintln(fs.Output(), "One group member in its own process; the log format is described in docs/LOGS.md.")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Listen, "listen", def.Listen, "UDP address to bind, ip:port")
	seeds := fs.String("seeds", "", "comma-separated addresses of processes that may be members (this one's may be among them); none: form a group alone")
	fs.StringVar(&cfg.Group, "group", def.Group, "group name")
	fs.StringVar(&cfg.Order, "order", def.Order, "ordering of the messages sent: unordered, fifo, causal or total")
	fs.BoolVar(&cfg.Safe, "safe", def.Safe, "send safe messages (uniform delivery, or-ed with the ordering)")
	fs.Float64Var(&cfg.Rate, "rate", def.Rate, "messages/s sent (0: as fast as flow control allows)")
	fs.IntVar(&cfg.Size, "size", def.Size, "message size in bytes (grown to fit the send time and the message id)")
	fs.DurationVar(&cfg.Duration, "duration", def.Duration, "how long to run before leaving (0: until SIGTERM or SIGINT)")
	fs.IntVar(&cfg.StateSize, "state-size", def.StateSize, "bytes of padding in the application state, moved to every joiner by state transfer")
	fs.StringVar(&cfg.Log, "log", def.Log, "event log `file`, appended to (one JSON object a line)")
	fs.BoolVar(&cfg.Rejoin, "rejoin", def.Rejoin, "when removed from the group, join again as a new incarnation instead of exiting with status 3; a join that fails because the group stayed blocked is tried again instead of exiting with status 1")
	fs.DurationVar(&cfg.LeaveTimeout, "leave-timeout", def.LeaveTimeout, "how long the graceful leave at the end may take")
	fs.IntVar(&cfg.MaxDatagram, "max-datagram", def.MaxDatagram, "largest datagram in bytes (0: the engine's 8192; 1472 on a 1500-byte-MTU link with loss)")
	fs.StringVar(&cfg.SlowMember, "slow-member", def.SlowMember, "slow-member policy: block (wait for the slowest member) or evict (remove a member that lags too long)")
	fs.StringVar(&cfg.KeyFile, "key-file", "", "keyed mode: seal every datagram with the key in this `file` (32 bytes in base64, e.g. from `head -c 32 /dev/urandom | base64`); every member needs the same key")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow a --listen address that is not loopback without --key-file (a trusted, isolated network only)")
	fs.StringVar(&cfg.Quorum, "quorum", "majority", "quorum policy: majority, tiebreaker (a group of 2 outlives its younger member; of an exact half split, the oldest member's half goes on) or laststanding (tiebreaker once a view has been stable for --quorum-window)")
	fs.DurationVar(&cfg.QuorumWindow, "quorum-window", 0, "how long a view must be stable before laststanding breaks a tie (0: the engine's 10s)")
	fs.StringVar(&cfg.Metrics, "metrics", "", "serve the counters at this TCP `address` (ip:port): Prometheus at /metrics, expvar at /debug/vars")
	fs.IntVar(&cfg.Groups, "groups", 1, fmt.Sprintf("groups to join (1 to %d): with more than one, GROUP-0 to GROUP-N-1 on one engine, --rate split evenly between them, each logged to its own file (--log m.log: m.0.log, m.1.log, ...)", bench.MaxGroups))
	fs.StringVar(&cfg.ViewsLog, "views-log", "", "also append every group's view lines, as in the group's log, to this one `file` (one file to follow with --groups N)")
	fs.BoolVar(&cfg.Light, "light", false, "the groups are light groups over one carrier group named GROUP (package light), which the process opens first")
	sendGroups := fs.String("send-groups", "", "with --groups N: comma-separated indexes (0 to N-1) of the only groups that send, --rate split evenly over them; the others send nothing")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return bench.ExitOK
		}
		return bench.ExitFailed
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vsbench member: unexpected arguments %q\n", fs.Args())
		return bench.ExitFailed
	}
	cfg.Seeds = splitList(*seeds)
	for _, s := range splitList(*sendGroups) {
		g, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vsbench member: send group %q: want a group's index\n", s)
			return bench.ExitFailed
		}
		cfg.SendGroups = append(cfg.SendGroups, g)
	}
	if cfg.Groups < 1 {
		fmt.Fprintf(os.Stderr, "vsbench member: groups is %d; use 1 to %d\n", cfg.Groups, bench.MaxGroups)
		return bench.ExitFailed
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal ends the process at once.
		<-ctx.Done()
		stop()
	}()
	return bench.RunMember(ctx, cfg, os.Stderr)
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
