package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cell escapes text for a markdown table cell: a pipe would end the
// cell (inside a code span too), a newline the row.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.ReplaceAll(s, "\n", " ")
}

// code is s as a code span.
func code(s string) string {
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// row is one markdown table row of the cells, escaped.
func row(cells ...string) string {
	var b strings.Builder
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" ")
		b.WriteString(cell(c))
		b.WriteString(" |")
	}
	return b.String()
}

// header is a table's header row and its separator.
func header(cells ...string) string {
	seps := make([]string, len(cells))
	for i := range seps {
		seps[i] = "---"
	}
	return row(cells...) + "\n" + row(seps...)
}

// grouped formats v as a whole number with thousands separators.
func grouped(v float64) string {
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// grouped1 formats v with one decimal and thousands separators: 1,327.4.
func grouped1(v float64) string {
	tenths := math.Round(math.Abs(v) * 10)
	sign := ""
	if v < 0 && tenths > 0 {
		sign = "-"
	}
	return fmt.Sprintf("%s%s.%d", sign, grouped(math.Trunc(tenths/10)), int64(math.Mod(tenths, 10)))
}

// short formats a rate or count in 3 significant digits: 2.98M, 452k,
// 10.0k, 34.
func short(v float64) string {
	units := []string{"", "k", "M", "G"}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	u := 0
	for u+1 < len(units) && roundSig(v) >= 1000 {
		v /= 1000
		u++
	}
	v = roundSig(v)
	if v >= 1000 && u+1 < len(units) { // 999.6 rounded up: the next unit
		v /= 1000
		u++
	}
	digits := 0
	switch {
	case u == 0 && v == math.Trunc(v):
	case v < 10:
		digits = 2
	case v < 100:
		digits = 1
	}
	return sign + strconv.FormatFloat(v, 'f', digits, 64) + units[u]
}

// roundSig rounds v (at least 0) to 3 significant digits.
func roundSig(v float64) float64 {
	if v == 0 {
		return 0
	}
	scale := math.Pow(10, 2-math.Floor(math.Log10(v)))
	return math.Round(v*scale) / scale
}

// millis formats a duration in milliseconds: 466 ms, 1,034 ms, 0.4 ms.
func millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return grouped(ms) + " ms"
}

// size formats a message size in bytes: 64 B, 1 KiB, 16 MiB, 1500 B.
func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// ratio formats a ratio in 2 decimals.
func ratio(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// percent formats a share as a whole percentage.
func percent(v float64) string { return strconv.FormatFloat(100*v, 'f', 0, 64) + "%" }

// medianIndex is the index of the median of n sorted values: the middle
// one, the lower of the two middle ones for an even n.
func medianIndex(n int) int { return (n - 1) / 2 }

// median of xs (the lower middle value for an even count); 0 if empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[medianIndex(len(s))]
}

// join formats each value and joins them with ", ".
func join[T any](xs []T, f func(T) string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = f(x)
	}
	return strings.Join(parts, ", ")
}
