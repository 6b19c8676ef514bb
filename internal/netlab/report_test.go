package netlab

import "testing"

func TestCountIn(t *testing.T) {
	ts := []int64{1, 3, 3, 5, 8}
	for _, tc := range []struct {
		a, b int64
		want int
	}{
		{0, 10, 5}, {3, 4, 2}, {4, 5, 0}, {5, 9, 2}, {9, 20, 0}, {0, 1, 0},
	} {
		if got := countIn(ts, tc.a, tc.b); got != tc.want {
			t.Errorf("countIn [%d,%d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestLineTime(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int64
		ok   bool
	}{
		{`{"t":1764000000000000001,"ev":"deliver","group":"g"}`, 1764000000000000001, true},
		{`{"ev":"deliver","t":5}`, 0, false},
		{`{"t":12`, 0, false},
		{`{"t":x1,"ev":"send"}`, 0, false},
	} {
		got, ok := lineTime([]byte(tc.line))
		if got != tc.want || ok != tc.ok {
			t.Errorf("lineTime(%s) = %d, %v; want %d, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}
