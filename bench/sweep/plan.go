// Package sweep runs `vsbench sweep`: many benchmark runs over message
// sizes, group sizes, sender counts and offered loads. Each run (a point)
// is one bench.RunOrders: the raw-UDP baseline, then the engine once per
// ordering, on the same member processes. The sweep writes every point to
// a CSV and a JSON file and draws PNG charts: throughput against message
// size and against group size, and latency against offered load.
//
// A sweep's points follow one of two plans. PlanGrid runs every
// combination of the lists; PlanAxes varies one list at a time from a
// base point (the others held at the base's values), which draws the same
// three charts from far fewer runs.
package sweep

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cohort-vs/cohort/bench"
)

// Command is the vsbench subcommand that runs a sweep.
const Command = "sweep"

// Plans.
const (
	PlanGrid = "grid" // every combination of the lists
	PlanAxes = "axes" // one list at a time, from the base point
)

// AllSenders as a sender count means every member sends.
const AllSenders = 0

// Config describes a sweep.
type Config struct {
	Plan    string
	Sizes   []int     // message sizes, bytes
	Members []int     // group sizes: one process per member
	Senders []int     // sending members, or AllSenders
	Rates   []float64 // messages/s offered per sender; 0: unlimited
	Orders  []string  // orderings, each measured in every run
	Safe    bool      // safe delivery, or-ed into every ordering
	// Base is PlanAxes' point: every axis passes through it.
	Base     Point
	Duration time.Duration // measured time of each phase
	Warmup   time.Duration // unmeasured lead-in of each phase
	Procs    int           // GOMAXPROCS of each member process; 0: its share
	Out      string        // directory for the files
}

// Point is one run's setup. Senders may be AllSenders in a Config's Base;
// in the points a plan makes, it is a count.
type Point struct {
	Members int     `json:"members"`
	Senders int     `json:"senders"`
	Size    int     `json:"size"`
	Rate    float64 `json:"rate"`
}

// String describes p for progress lines and errors.
func (p Point) String() string {
	return fmt.Sprintf("%d members, senders %s, %s, %s", p.Members, sendersLabel(p.Senders, p.Members),
		sizeLabel(p.Size), rateLabel(p.Rate))
}

// The flags' defaults: a complete sweep. The quick preset (--quick) is
// quickFlags.
var defaultFlags = map[string]string{
	"plan":     PlanGrid,
	"size":     "16,64,256,1024,4096,16384,65536",
	"members":  "2,3,4,5,6,7,8",
	"senders":  "1,all",
	"rate":     "0",
	"order":    "fifo,causal,total",
	"base":     "members=3,size=64,senders=1,rate=0",
	"duration": "3s",
	"warmup":   "300ms",
	"out":      "sweep-out",
}

// quickFlags replace the defaults of the flags not given with --quick: 12
// runs of 4 phases of 2.3 s, about 2-3 minutes on 2 cores, that still
// draw each chart.
var quickFlags = map[string]string{
	"plan":     PlanAxes,
	"size":     "16,64,1024,16384,65536",
	"members":  "2,3,4,6",
	"senders":  "1",
	"rate":     "0,10000,100000,300000,1000000",
	"duration": "2s",
}

// ErrUsage marks a ParseArgs error that the flag package has already
// written to output, with the usage.
var ErrUsage = errors.New("bad flags")

// ParseArgs reads vsbench sweep's flags (without the subcommand's name)
// into a validated Config. Usage and the flag package's errors (those
// wrapping ErrUsage) go to output; the other errors say what to fix and
// are the caller's to show. It returns flag.ErrHelp for -h or --help.
func ParseArgs(args []string, output io.Writer) (Config, error) {
	fs := flag.NewFlagSet("vsbench sweep", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: vsbench sweep [flags]

Runs vsbench over message sizes, group sizes, sender counts and offered
loads, each run measuring the raw-UDP baseline and the engine once per
ordering on the same processes, and writes sweep.csv, sweep.json and PNG
charts into --out. Lists are comma-separated. A point that fails is
recorded with its error and the sweep goes on; the exit status is then 1.
With no flags it runs the complete grid: 98 runs of 4 phases, about 25
minutes on 2 cores; --quick runs a small sweep that still draws every
kind of chart.

`)
		fs.PrintDefaults()
	}
	quick := fs.Bool("quick", false, "a small sweep, about 2-3 minutes on 2 cores: --plan "+quickFlags["plan"]+
		" --size "+quickFlags["size"]+" --members "+quickFlags["members"]+" --senders "+quickFlags["senders"]+
		" --rate "+quickFlags["rate"]+" --duration "+quickFlags["duration"]+"; flags given as well override these")
	plan := fs.String("plan", defaultFlags["plan"], `"grid": every combination of the lists; "axes": one list at a time, the others at --base`)
	sizes := fs.String("size", defaultFlags["size"], "message sizes in bytes (at least 8), or with a KiB or MiB suffix")
	members := fs.String("members", defaultFlags["members"], "group sizes (2 to 64): one process per member")
	senders := fs.String("senders", defaultFlags["senders"], `sending members: counts, or "all"`)
	rates := fs.String("rate", defaultFlags["rate"], `messages/s offered per sender, k or M suffix allowed; 0 or "unlimited": as fast as flow control allows; several draw latency against offered load`)
	orders := fs.String("order", defaultFlags["order"], "orderings measured in each run on the same processes: unordered, fifo, causal, total")
	safe := fs.Bool("safe", false, "safe (uniform) delivery, or-ed with every ordering")
	base := fs.String("base", defaultFlags["base"], "--plan axes: the point every list is varied from (members, size, senders, rate; keys left out keep these values)")
	duration := fs.String("duration", defaultFlags["duration"], "measured time of each phase (the baseline and each ordering)")
	warmup := fs.String("warmup", defaultFlags["warmup"], "unmeasured warm-up at the start of each phase")
	procs := fs.Int("procs", 0, "GOMAXPROCS of each member process (0: max(1, CPUs/members))")
	out := fs.String("out", defaultFlags["out"], "`directory` for sweep.csv, sweep.json and the charts (made if missing)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q (flags take comma-separated lists, without spaces)", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *quick {
		for name, v := range quickFlags {
			if !given[name] {
				if err := fs.Set(name, v); err != nil {
					return Config{}, err
				}
			}
		}
	}
	if given["base"] && *plan != PlanAxes {
		return Config{}, fmt.Errorf("--base is the point --plan %s varies the lists from; with --plan %s every combination runs, so leave --base out", PlanAxes, *plan)
	}

	cfg := Config{Plan: *plan, Safe: *safe, Procs: *procs, Out: *out}
	var err error
	if cfg.Sizes, err = ParseSizes(*sizes); err != nil {
		return Config{}, err
	}
	if cfg.Members, err = ParseMembers(*members); err != nil {
		return Config{}, err
	}
	if cfg.Senders, err = ParseSenders(*senders); err != nil {
		return Config{}, err
	}
	if cfg.Rates, err = ParseRates(*rates); err != nil {
		return Config{}, err
	}
	if cfg.Orders, err = bench.ParseOrders(*orders); err != nil {
		return Config{}, err
	}
	if cfg.Base, err = ParseBase(*base); err != nil {
		return Config{}, err
	}
	if cfg.Duration, err = parseDuration("duration", *duration); err != nil {
		return Config{}, err
	}
	if cfg.Warmup, err = parseDuration("warmup", *warmup); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func parseDuration(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: want a duration such as 2s or 300ms", name, s)
	}
	return d, nil
}

// splitList splits a comma-separated flag value; empty items are errors.
func splitList(flagName, s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("--%s is empty; give at least one value", flagName)
	}
	items := strings.Split(s, ",")
	for i, x := range items {
		if items[i] = strings.TrimSpace(x); items[i] == "" {
			return nil, fmt.Errorf("--%s %q has an empty item", flagName, s)
		}
	}
	return items, nil
}

// ParseSizes reads --size: bytes, or with a KiB or MiB suffix ("64KiB").
func ParseSizes(s string) ([]int, error) {
	items, err := splitList("size", s)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, x := range items {
		n, err := parseSize(x)
		if err != nil {
			return nil, fmt.Errorf("--size %q: %w", s, err)
		}
		if n < bench.MinSize || n > 1<<20 {
			return nil, fmt.Errorf("--size: %d bytes; use %d bytes (the send timestamp) to 1 MiB", n, bench.MinSize)
		}
		out = append(out, n)
	}
	return out, noRepeats("size", out)
}

func parseSize(x string) (int, error) {
	mult := 1
	num := x
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"B", 1}} {
		if strings.HasSuffix(x, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(x, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size: use bytes (1024) or KiB/MiB (1KiB)", x)
	}
	return n * mult, nil
}

// ParseMembers reads --members: group sizes from 2 to 64.
func ParseMembers(s string) ([]int, error) {
	items, err := splitList("members", s)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, x := range items {
		n, err := strconv.Atoi(x)
		if err != nil || n < 2 || n > 64 {
			return nil, fmt.Errorf("--members %q: %q is not a group size; use 2 to 64", s, x)
		}
		out = append(out, n)
	}
	return out, noRepeats("members", out)
}

// ParseSenders reads --senders: counts of sending members, or "all"
// (AllSenders).
func ParseSenders(s string) ([]int, error) {
	items, err := splitList("senders", s)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, x := range items {
		n, err := parseSenders(x)
		if err != nil {
			return nil, fmt.Errorf("--senders %q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, noRepeats("senders", out)
}

func parseSenders(x string) (int, error) {
	if strings.EqualFold(x, "all") {
		return AllSenders, nil
	}
	n, err := strconv.Atoi(x)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q: want a number of sending members (at least 1) or \"all\"", x)
	}
	return n, nil
}

// ParseRates reads --rate: messages/s per sender, with an optional k
// (thousand) or M (million) suffix; 0 or "unlimited" is no limit.
func ParseRates(s string) ([]float64, error) {
	items, err := splitList("rate", s)
	if err != nil {
		return nil, err
	}
	var out []float64
	for _, x := range items {
		r, err := parseRate(x)
		if err != nil {
			return nil, fmt.Errorf("--rate %q: %w", s, err)
		}
		out = append(out, r)
	}
	return out, noRepeats("rate", out)
}

func parseRate(x string) (float64, error) {
	if strings.EqualFold(x, "unlimited") {
		return 0, nil
	}
	mult := 1.0
	num := x
	switch {
	case strings.HasSuffix(x, "k"):
		num, mult = strings.TrimSuffix(x, "k"), 1e3
	case strings.HasSuffix(x, "M"):
		num, mult = strings.TrimSuffix(x, "M"), 1e6
	}
	r, err := strconv.ParseFloat(num, 64)
	if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return 0, fmt.Errorf("%q is not a rate: use messages/s per sender (100000 or 100k), or 0 for unlimited", x)
	}
	return r * mult, nil
}

// ParseBase reads --base: "members=3,size=64,senders=1,rate=0"; keys left
// out keep those values.
func ParseBase(s string) (Point, error) {
	p := Point{Members: 3, Size: 64, Senders: 1, Rate: 0}
	items, err := splitList("base", s)
	if err != nil {
		return Point{}, err
	}
	seen := map[string]bool{}
	for _, x := range items {
		k, v, ok := strings.Cut(x, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return Point{}, fmt.Errorf("--base %q: %q is not key=value (keys: members, size, senders, rate)", s, x)
		}
		if seen[k] {
			return Point{}, fmt.Errorf("--base %q: %s twice", s, k)
		}
		seen[k] = true
		switch k {
		case "members":
			n, err := strconv.Atoi(v)
			if err != nil || n < 2 || n > 64 {
				return Point{}, fmt.Errorf("--base %q: members %q; use 2 to 64", s, v)
			}
			p.Members = n
		case "size":
			n, err := parseSize(v)
			if err != nil {
				return Point{}, fmt.Errorf("--base %q: %w", s, err)
			}
			p.Size = n
		case "senders":
			n, err := parseSenders(v)
			if err != nil {
				return Point{}, fmt.Errorf("--base %q: %w", s, err)
			}
			p.Senders = n
		case "rate":
			r, err := parseRate(v)
			if err != nil {
				return Point{}, fmt.Errorf("--base %q: %w", s, err)
			}
			p.Rate = r
		default:
			return Point{}, fmt.Errorf("--base %q: unknown key %q (keys: members, size, senders, rate)", s, k)
		}
	}
	return p, nil
}

func noRepeats[T comparable](flagName string, xs []T) error {
	for i, x := range xs {
		for _, y := range xs[:i] {
			if x == y {
				return fmt.Errorf("--%s lists %v twice", flagName, x)
			}
		}
	}
	return nil
}

// Validate reports a sweep that cannot run, saying what to fix. Every
// point is checked before the first one runs.
func (c *Config) Validate() error {
	switch {
	case c.Plan != PlanGrid && c.Plan != PlanAxes:
		return fmt.Errorf("--plan %q; use %s (every combination) or %s (one list at a time from --base)", c.Plan, PlanGrid, PlanAxes)
	case len(c.Sizes) == 0 || len(c.Members) == 0 || len(c.Senders) == 0 || len(c.Rates) == 0 || len(c.Orders) == 0:
		return errors.New("--size, --members, --senders, --rate and --order each need at least one value")
	case c.Duration < 100*time.Millisecond:
		return fmt.Errorf("--duration %v; use at least 100ms", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("--warmup %v is negative", c.Warmup)
	case c.Procs < 0:
		return fmt.Errorf("--procs %d; use 0 (each member's share of the CPUs) or a positive number", c.Procs)
	case c.Out == "":
		return errors.New("--out is empty; name a directory for the results")
	}
	if c.Plan == PlanAxes {
		for _, s := range c.Senders {
			if err := checkSenders(s, []int{c.Base.Members}, "--senders with --plan axes"); err != nil {
				return err
			}
		}
		if err := checkSenders(c.Base.Senders, c.Members, "--base senders"); err != nil {
			return err
		}
	} else {
		for _, s := range c.Senders {
			if err := checkSenders(s, c.Members, "--senders"); err != nil {
				return err
			}
		}
	}
	for _, p := range c.Points() {
		bc := c.benchConfig(p)
		if err := bc.Validate(); err != nil {
			return fmt.Errorf("point %s: %w", p, err)
		}
	}
	return nil
}

// checkSenders reports a sender count that some group size cannot have.
func checkSenders(senders int, members []int, where string) error {
	least := slices.Min(members)
	if senders > least {
		return fmt.Errorf("%s: %d senders in a group of %d members; use at most %d, or all", where, senders, least, least)
	}
	return nil
}

// Points lists the sweep's runs in the order they run, each once.
func (c *Config) Points() []Point {
	var out []Point
	add := func(p Point) {
		if p.Senders == AllSenders {
			p.Senders = p.Members
		}
		for _, q := range out {
			if q == p {
				return
			}
		}
		out = append(out, p)
	}
	switch c.Plan {
	case PlanAxes:
		add(c.Base)
		for _, s := range c.Sizes {
			p := c.Base
			p.Size = s
			add(p)
		}
		for _, m := range c.Members {
			p := c.Base
			p.Members = m
			add(p)
		}
		for _, s := range c.Senders {
			p := c.Base
			p.Senders = s
			add(p)
		}
		for _, r := range c.Rates {
			p := c.Base
			p.Rate = r
			add(p)
		}
	default:
		for _, m := range c.Members {
			for _, s := range c.Senders {
				for _, size := range c.Sizes {
					for _, r := range c.Rates {
						add(Point{Members: m, Senders: s, Size: size, Rate: r})
					}
				}
			}
		}
	}
	return out
}

// benchConfig is the vsbench run of point p.
func (c *Config) benchConfig(p Point) bench.Config {
	return bench.Config{
		Members:  p.Members,
		Senders:  p.Senders,
		Size:     p.Size,
		Order:    strings.Join(c.Orders, ","),
		Safe:     c.Safe,
		Duration: c.Duration,
		Warmup:   c.Warmup,
		Rate:     p.Rate,
		Procs:    c.Procs,
	}
}

// sendersLabel names a sender count as the flags do: "all" when every
// member sends.
func sendersLabel(senders, members int) string {
	if senders == members || senders == AllSenders {
		return "all"
	}
	return strconv.Itoa(senders)
}

// sizeLabel names a message size: "64 B", "1 KiB", "1536 B".
func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// rateLabel names an offered load per sender.
func rateLabel(r float64) string {
	if r <= 0 {
		return "unlimited load"
	}
	return shortCount(r) + " msgs/s per sender"
}

// shortCount writes a count to 3 significant digits with a k or M
// suffix: 100k, 1.5M.
func shortCount(v float64) string {
	// Round first, so that 999,700 is 1M, not 1e+03k.
	v, _ = strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
