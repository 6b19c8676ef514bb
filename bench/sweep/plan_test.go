package sweep

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, args ...string) Config {
	t.Helper()
	cfg, err := ParseArgs(args, io.Discard)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return cfg
}

func TestParseDefaults(t *testing.T) {
	cfg := parse(t)
	if cfg.Plan != PlanGrid || len(cfg.Sizes) != 7 || cfg.Sizes[0] != 16 || cfg.Sizes[6] != 65536 ||
		!slices.Equal(cfg.Members, []int{2, 3, 4, 5, 6, 7, 8}) || !slices.Equal(cfg.Senders, []int{1, AllSenders}) ||
		!slices.Equal(cfg.Rates, []float64{0}) || !slices.Equal(cfg.Orders, []string{"fifo", "causal", "total"}) ||
		cfg.Safe || cfg.Duration != 3*time.Second || cfg.Warmup != 300*time.Millisecond || cfg.Out != "sweep-out" {
		t.Fatalf("defaults: %+v", cfg)
	}
	points := cfg.Points()
	if len(points) != 7*7*2 {
		t.Fatalf("%d points, want %d", len(points), 7*7*2)
	}
	// "all" becomes the group's size.
	if p := points[len(points)-1]; p != (Point{Members: 8, Senders: 8, Size: 65536}) {
		t.Errorf("last point %+v", p)
	}
}

func TestParseQuick(t *testing.T) {
	cfg := parse(t, "--quick")
	if cfg.Plan != PlanAxes || cfg.Duration != 2*time.Second || !slices.Equal(cfg.Senders, []int{1}) {
		t.Fatalf("quick: %+v", cfg)
	}
	points := cfg.Points()
	if len(points) != 12 {
		t.Errorf("quick sweep has %d points, want 12: %v", len(points), points)
	}
	if points[0] != (Point{Members: 3, Senders: 1, Size: 64}) {
		t.Errorf("first point %+v, want the base", points[0])
	}
	// Flags given with --quick win over the preset.
	cfg = parse(t, "--quick", "--order", "fifo", "--duration", "1s", "--members", "2,3")
	if !slices.Equal(cfg.Orders, []string{"fifo"}) || cfg.Duration != time.Second ||
		!slices.Equal(cfg.Members, []int{2, 3}) || !slices.Equal(cfg.Sizes, []int{16, 64, 1024, 16384, 65536}) {
		t.Errorf("quick with flags: %+v", cfg)
	}
	// Any estimate of the quick sweep stays within a few minutes.
	var total time.Duration
	for _, p := range points {
		total += estimate(p, 1+len(cfg.Orders), parse(t, "--quick"))
	}
	if total > 3*time.Minute {
		t.Errorf("quick sweep estimated at %v", total)
	}
}

func TestParseUnits(t *testing.T) {
	cfg := parse(t, "--size", "100,1KiB,64KiB,10B", "--rate", "100k,1.5M,unlimited,2500", "--senders", "all,2", "--members", "3")
	if !slices.Equal(cfg.Sizes, []int{100, 1024, 65536, 10}) {
		t.Errorf("sizes %v", cfg.Sizes)
	}
	if !slices.Equal(cfg.Rates, []float64{1e5, 1.5e6, 0, 2500}) {
		t.Errorf("rates %v", cfg.Rates)
	}
	if !slices.Equal(cfg.Senders, []int{AllSenders, 2}) {
		t.Errorf("senders %v", cfg.Senders)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--size", "4"}, "use 8 bytes"},
		{[]string{"--size", "2MiB"}, "to 1 MiB"},
		{[]string{"--size", "64,64"}, "twice"},
		{[]string{"--size", "big"}, "not a size"},
		{[]string{"--size", ""}, "empty"},
		{[]string{"--size", "64,,128"}, "empty item"},
		{[]string{"--members", "1"}, "use 2 to 64"},
		{[]string{"--members", "3,x"}, "not a group size"},
		{[]string{"--senders", "0"}, "at least 1"},
		{[]string{"--senders", "3", "--members", "2,3"}, "use at most 2, or all"},
		{[]string{"--rate", "-5"}, "not a rate"},
		{[]string{"--rate", "fast"}, "not a rate"},
		{[]string{"--order", "fifo,bogus"}, `order "bogus"`},
		{[]string{"--order", "fifo,fifo"}, "twice"},
		{[]string{"--plan", "diagonal"}, "--plan"},
		{[]string{"--base", "members=4"}, "leave --base out"},
		{[]string{"--plan", "axes", "--base", "members=3,color=red"}, "unknown key"},
		{[]string{"--plan", "axes", "--base", "members"}, "key=value"},
		{[]string{"--plan", "axes", "--base", "members=1"}, "use 2 to 64"},
		{[]string{"--plan", "axes", "--base", "members=2", "--senders", "3"}, "use at most 2"},
		{[]string{"--plan", "axes", "--base", "senders=3", "--members", "2,3"}, "--base senders"},
		{[]string{"--duration", "10ms"}, "at least 100ms"},
		{[]string{"--duration", "soon"}, "want a duration"},
		{[]string{"--warmup", "-1s"}, "negative"},
		{[]string{"--procs", "-1"}, "--procs"},
		{[]string{"--out", ""}, "--out"},
		{[]string{"stray"}, "unexpected arguments"},
		{[]string{"--size", "64", "1024"}, "without spaces"},
		{[]string{"--bogus"}, "not defined"},
	} {
		_, err := ParseArgs(c.args, io.Discard)
		if err == nil {
			t.Errorf("%q: no error", c.args)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %q, want it to say %q", c.args, err, c.want)
		}
	}
	var out strings.Builder
	if _, err := ParseArgs([]string{"--bogus"}, &out); !errors.Is(err, ErrUsage) || !strings.Contains(out.String(), "usage: vsbench sweep") {
		t.Errorf("--bogus: %v, output %q", err, out.String())
	}
	if _, err := ParseArgs([]string{"--size", "4"}, io.Discard); errors.Is(err, ErrUsage) {
		t.Errorf("--size 4: %v marked as already shown", err)
	}
	if _, err := ParseArgs([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestPointsAxes(t *testing.T) {
	cfg := parse(t, "--plan", "axes", "--base", "members=3,size=64",
		"--size", "16,64", "--members", "2,3", "--senders", "1,all", "--rate", "0,1000")
	want := []Point{
		{Members: 3, Senders: 1, Size: 64},             // the base
		{Members: 3, Senders: 1, Size: 16},             // --size
		{Members: 2, Senders: 1, Size: 64},             // --members
		{Members: 3, Senders: 3, Size: 64},             // --senders all
		{Members: 3, Senders: 1, Size: 64, Rate: 1000}, // --rate
	}
	if got := cfg.Points(); !slices.Equal(got, want) {
		t.Errorf("points\n got %v\nwant %v", got, want)
	}
	// The base need not be in the lists; "all" at the base follows the
	// group size along the members axis.
	cfg = parse(t, "--plan", "axes", "--base", "senders=all,size=1KiB,rate=5k", "--size", "64", "--members", "2", "--senders", "1", "--rate", "0")
	want = []Point{
		{Members: 3, Senders: 3, Size: 1024, Rate: 5000},
		{Members: 3, Senders: 3, Size: 64, Rate: 5000},
		{Members: 2, Senders: 2, Size: 1024, Rate: 5000},
		{Members: 3, Senders: 1, Size: 1024, Rate: 5000},
		{Members: 3, Senders: 3, Size: 1024},
	}
	if got := cfg.Points(); !slices.Equal(got, want) {
		t.Errorf("points\n got %v\nwant %v", got, want)
	}
}

func TestPointsGrid(t *testing.T) {
	// "2" and "all" are the same point in a group of 2: it runs once.
	cfg := parse(t, "--members", "2,3", "--senders", "2,all", "--size", "64", "--rate", "0,1000")
	want := []Point{
		{Members: 2, Senders: 2, Size: 64}, {Members: 2, Senders: 2, Size: 64, Rate: 1000},
		{Members: 3, Senders: 2, Size: 64}, {Members: 3, Senders: 2, Size: 64, Rate: 1000},
		{Members: 3, Senders: 3, Size: 64}, {Members: 3, Senders: 3, Size: 64, Rate: 1000},
	}
	if got := cfg.Points(); !slices.Equal(got, want) {
		t.Errorf("points\n got %v\nwant %v", got, want)
	}
	bc := cfg.benchConfig(want[1])
	if bc.Order != "fifo,causal,total" || bc.Rate != 1000 || bc.Members != 2 || bc.Duration != 3*time.Second {
		t.Errorf("bench config %+v", bc)
	}
}

func TestLabels(t *testing.T) {
	for n, want := range map[int]string{16: "16 B", 1024: "1 KiB", 1536: "1536 B", 65536: "64 KiB", 1 << 20: "1 MiB"} {
		if got := sizeLabel(n); got != want {
			t.Errorf("sizeLabel(%d) = %q, want %q", n, got, want)
		}
	}
	for v, want := range map[float64]string{0: "unlimited load", 10000: "10k msgs/s per sender", 1.5e6: "1.5M msgs/s per sender"} {
		if got := rateLabel(v); got != want {
			t.Errorf("rateLabel(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 999: "999", 1234: "1.23k", 999_700: "1M", 3_331_918: "3.33M", 250_000: "250k"} {
		if got := shortCount(v); got != want {
			t.Errorf("shortCount(%v) = %q, want %q", v, got, want)
		}
	}
	if got := (Point{Members: 4, Senders: 4, Size: 1024, Rate: 0}).String(); got != "4 members, senders all, 1 KiB, unlimited load" {
		t.Errorf("point %q", got)
	}
}
