// Command vssim runs seeded simulations of cohort groups over a faulty
// simulated network and checks every run's guarantees.
//
//	vssim -seeds 500          run seeds 1..500, report violations
//	vssim -seed 42 -v         replay one seed with its event trace
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/cohort-vs/cohort/flush"
	"github.com/cohort-vs/cohort/internal/sim"
)

func main() {
	seeds := flag.Int("seeds", 100, "number of seeds to run, starting at -first")
	first := flag.Uint64("first", 1, "first seed")
	seed := flag.Uint64("seed", 0, "run only this seed (0: run -seeds seeds)")
	verbose := flag.Bool("v", false, "print the event trace (with -seed)")
	faults := flag.String("faults", "all", `fault mix: "all" (network faults, crashes and restarts, joins, leaves, partitions) or "network" (loss, duplication, reordering and delay only)`)
	adversary := flag.Bool("adversary", false, "add an outsider that replays, damages and makes up datagrams (internal/sim/adversary.go)")
	quorum := flag.String("quorum", "majority", `quorum policy of every process: majority, tiebreaker or laststanding (its tie broken once a view is stable for 200 ticks)`)
	groups := flag.Int("groups", 1, "groups every process is a member of (more than 1: processes watch each other once for all of them, as the engine does)")
	shared := flag.Bool("shared", true, "processes watch each other once for all their groups, as the engine does (false: each group watches its members itself, with heartbeats; not with -groups above 1)")
	idle := flag.Int64("idle", 0, "tick idle groups once every this many ticks, n ticks in one step, as the engine does (0: as the seed draws it, 1, 16 or 100)")
	keyed := flag.String("keyed", "", `seal every datagram (package seal): "outsider" (the adversary has no key) or "insider" (it seals what it makes up)`)
	flag.Parse()
	draw := sim.RandomOptions
	switch *faults {
	case "all":
	case "network":
		draw = sim.StaticOptions
	default:
		fmt.Fprintf(os.Stderr, "vssim: -faults %q: use all or network\n", *faults)
		os.Exit(2)
	}
	var q flush.Quorum
	switch *quorum {
	case "majority":
	case "tiebreaker":
		q = flush.QuorumTieBreaker
	case "laststanding":
		q = flush.QuorumLastManStanding
	default:
		fmt.Fprintf(os.Stderr, "vssim: -quorum %q: use majority, tiebreaker or laststanding\n", *quorum)
		os.Exit(2)
	}
	options := func(seed uint64) sim.Options {
		o := draw(seed)
		o.Adversary = *adversary
		o.Keyed, o.AdversaryHasKey = *keyed != "", *keyed == "insider"
		o.Protocol.Quorum, o.Protocol.QuorumStableTicks = q, 200
		o.Groups, o.SharedLiveness = *groups, *shared || *groups > 1
		if *idle > 0 {
			o.IdleTicks = *idle
		}
		return o
	}
	switch *keyed {
	case "", "outsider", "insider":
	default:
		fmt.Fprintf(os.Stderr, "vssim: -keyed %q: use outsider or insider\n", *keyed)
		os.Exit(2)
	}
	replayFlags := fmt.Sprintf("-faults %s", *faults)
	if *adversary {
		replayFlags += " -adversary"
	}
	if *keyed != "" {
		replayFlags += " -keyed " + *keyed
	}
	if *quorum != "majority" {
		replayFlags += " -quorum " + *quorum
	}
	if *groups > 1 {
		replayFlags += fmt.Sprint(" -groups ", *groups)
	}
	if !*shared {
		replayFlags += " -shared=false"
	}
	if *idle > 0 {
		replayFlags += fmt.Sprint(" -idle ", *idle)
	}

	if *seed != 0 {
		opt := options(*seed)
		if *verbose {
			opt.Trace = os.Stdout
		}
		res := sim.Run(opt)
		fmt.Printf("seed %d: %d members, %d messages each, loss %.0f%%, dup %.0f%%, reorder %.0f%%: %d events, %.3fs virtual, %d deliveries\n",
			*seed, opt.Members, opt.Messages, opt.Loss*100, opt.Duplicate*100, opt.Reorder*100, res.Events, float64(res.EndMicros)/1e6, res.Delivered)
		if res.Evictions > 0 {
			fmt.Printf("  slow members evicted: %d\n", res.Evictions)
		}
		for _, v := range res.Violations {
			fmt.Println("  violation:", v)
		}
		if len(res.Violations) > 0 {
			os.Exit(1)
		}
		return
	}

	start := time.Now()
	violations, failedRuns, evictions, moves, refused := 0, 0, 0, 0, 0
	var firstFailing uint64
	for s := *first; s < *first+uint64(*seeds); s++ {
		res := sim.Run(options(s))
		evictions += res.Evictions
		moves += res.AdversaryMoves
		refused += res.Refused
		if len(res.Violations) > 0 {
			if failedRuns == 0 {
				firstFailing = s
				for _, v := range res.Violations {
					fmt.Printf("seed %d: %v\n", s, v)
				}
			} else {
				fmt.Printf("seed %d: %v\n", s, res.Violations[0])
			}
			failedRuns++
			violations += len(res.Violations)
		}
	}
	extra := ""
	if *adversary {
		extra = fmt.Sprintf("  adversary datagrams: %d", moves)
	}
	if *keyed != "" {
		extra += fmt.Sprintf("  refused by the seal: %d", refused)
	}
	fmt.Printf("runs: %d  violations: %d  failed runs: %d  slow members evicted: %d%s  (%.1fs)\n", *seeds, violations, failedRuns, evictions, extra, time.Since(start).Seconds())
	if failedRuns > 0 {
		fmt.Printf("first failing seed: %d (replay: go run ./cmd/vssim %s -seed %d -v)\n", firstFailing, replayFlags, firstFailing)
		os.Exit(1)
	}
}
