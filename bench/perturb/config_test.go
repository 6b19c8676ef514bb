package perturb

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
	c, err := ParseArgs(args, io.Discard)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return c
}

func TestParseArgsDefaults(t *testing.T) {
	c := parse(t)
	if c.Members != 4 || c.Senders != 1 || c.Slow != 3 || c.Method != MethodDelay || c.DelayMode != "sleep" {
		t.Errorf("defaults: %+v", c)
	}
	if !slices.Equal(c.Policies, []string{PolicyBlock, PolicyEvict}) {
		t.Errorf("policies %v", c.Policies)
	}
	if !slices.Equal(c.Levels, []float64{1, 0.5, 0.25, 0.1}) || c.Target != 0.1 {
		t.Errorf("levels %v target %v", c.Levels, c.Target)
	}
	if c.Hold != 5*time.Second || c.Interval != 250*time.Millisecond {
		t.Errorf("hold %v interval %v", c.Hold, c.Interval)
	}
	c = parse(t, "--members", "5", "--policy", "evict", "--steps", "100,20%,5", "--target", "5", "--slow", "2", "--method", "stop")
	if c.Slow != 2 || c.Members != 5 || !slices.Equal(c.Policies, []string{PolicyEvict}) || !slices.Equal(c.Levels, []float64{1, 0.2, 0.05}) || c.Target != 0.05 {
		t.Errorf("parsed: %+v", c)
	}
	if c := parse(t, "--members", "6"); c.Slow != 5 {
		t.Errorf("--slow last with 6 members: %d", c.Slow)
	}
}

// Bad flags fail before anything runs, with a message naming what to
// fix.
func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--members", "2"}, "at least 3"},
		{[]string{"--members", "x"}, "--members"},
		{[]string{"--senders", "4"}, "must not send"},
		{[]string{"--slow", "0"}, "does not send"},
		{[]string{"--slow", "4"}, "does not send"},
		{[]string{"--slow", "first"}, `"last"`},
		{[]string{"--method", "netem"}, "delay, stop, cpu, loss"},
		{[]string{"--policy", "drop"}, "block, evict or both"},
		{[]string{"--steps", "100,0"}, "above 0"},
		{[]string{"--steps", "100,150"}, "at most 100"},
		{[]string{"--steps", "100,,10"}, "--steps"},
		{[]string{"--target", "20"}, "not one of the steps"},
		{[]string{"--hold", "1100ms"}, "whole number of intervals"},
		{[]string{"--hold", "5"}, "--hold"},
		{[]string{"--interval", "10ms"}, "at least 50ms"},
		{[]string{"--period", "5s"}, "10ms to 1s"},
		{[]string{"--method", "stop", "--period", "500ms"}, "shorter --period"},
		{[]string{"--delay-mode", "nap"}, "sleep or busy"},
		{[]string{"--evict-lag", "2"}, "at most 1"},
		{[]string{"--calibrate", "500ms"}, "at least 4 intervals"},
		{[]string{"--rounds", "0"}, "1 to 10"},
		{[]string{"--slow-nice", "-21"}, "-20 to 19"},
		{[]string{"--slow-nice", "high"}, "--slow-nice"},
		{[]string{"--rejoin", "maybe"}, "true or false"},
		{[]string{"--order", "random"}, "random"},
		{[]string{"--size", "4"}, "size"},
		{[]string{"--out", ""}, "out is empty"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		_, err := ParseArgs(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := ParseArgs([]string{"--no-such-flag"}, io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown flag: %v, want ErrUsage", err)
	}
	if _, err := ParseArgs([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestSchedule(t *testing.T) {
	steps := Schedule([]float64{1, 0.5, 0.1}, 2*time.Second)
	want := []Step{{1, 0, 2 * time.Second}, {0.5, 2 * time.Second, 4 * time.Second}, {0.1, 4 * time.Second, 6 * time.Second}}
	if !slices.Equal(steps, want) {
		t.Fatalf("schedule %v, want %v", steps, want)
	}
	for _, tc := range []struct {
		at   time.Duration
		step int
	}{{0, 0}, {1999 * time.Millisecond, 0}, {2 * time.Second, 1}, {5 * time.Second, 2}, {6 * time.Second, -1}, {-1, -1}} {
		if got := StepAt(steps, tc.at); got != tc.step {
			t.Errorf("StepAt(%v) = %d, want %d", tc.at, got, tc.step)
		}
	}
}
