package sweep

import (
	"cmp"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/cohort-vs/cohort/bench"
)

// The charts' file names start with these, one file per slice of the
// sweep (the values held fixed follow in the name).
const (
	ChartThroughputSize    = "throughput-size"    // msgs/s against message size
	ChartThroughputMembers = "throughput-members" // msgs/s against group size
	ChartLatencyLoad       = "latency-load"       // p50/p99/p99.9 against offered load
)

var chartPrefixes = []string{ChartThroughputSize, ChartThroughputMembers, ChartLatencyLoad}

// Chart size, and the width of the legend's column on the right.
const (
	chartWidth  = 9 * vg.Inch
	chartHeight = 5.5 * vg.Inch
	legendWidth = 1.75 * vg.Inch
)

// RemoveCharts deletes the charts of an earlier sweep from dir (the PNG
// files whose names start with a chart prefix), so that a directory
// reused for a new sweep holds only its charts.
func RemoveCharts(dir string) error {
	for _, prefix := range chartPrefixes {
		old, err := filepath.Glob(filepath.Join(dir, prefix+"_*.png"))
		if err != nil {
			return err
		}
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteCharts draws r's charts into dir as PNG files and returns their
// paths:
//
//   - throughput against message size, one chart per group size, sender
//     count and offered load that the sweep ran at two sizes or more: a
//     line per ordering and one for the raw-UDP baseline;
//   - throughput against group size, likewise per message size, sender
//     count and offered load;
//   - latency (p50, p99, p99.9) against offered load, per group size,
//     sender count, message size and ordering measured at two fixed
//     loads or more: the engine's and the baseline's.
//
// Failed points are left out of the lines.
func WriteCharts(dir string, r *Result) ([]string, error) {
	var files []string
	for _, kind := range []func(string, *Result) ([]string, error){
		throughputBySize, throughputByMembers, latencyByLoad,
	} {
		fs, err := kind(dir, r)
		files = append(files, fs...)
		if err != nil {
			return files, err
		}
	}
	return files, nil
}

// series is one line of a chart.
type series struct {
	label  string
	xys    plotter.XYs
	color  color.Color
	dashes []vg.Length
	shape  draw.GlyphDrawer
	noLine bool // points only
}

// add appends (x, y) unless y is not a positive number (a log axis can
// not show it) or x is already there.
func (s *series) add(x, y float64) {
	if !(y > 0) || math.IsInf(y, 0) {
		return
	}
	for _, p := range s.xys {
		if p.X == x {
			return
		}
	}
	s.xys = append(s.xys, plotter.XY{X: x, Y: y})
}

// chart is one file's plot.
type chart struct {
	title          []string
	xLabel, yLabel string
	logX, logY     bool
	xTicks         []plot.Tick
	yFormat        func(float64) string
	series         []*series
	bands          []Band // shaded behind the lines (linear x only)
}

// rowKey holds the values that one chart's rows share (those its kind
// keeps fixed; the others are zero).
type rowKey struct {
	members, size int
	senders       string
	rate          float64
	order         string
}

// sliceRows groups the rows that have figures by key, in the order their
// keys first appear.
func sliceRows(r *Result, key func(*Row) (rowKey, bool)) ([]rowKey, map[rowKey][]*Row) {
	var keys []rowKey
	groups := map[rowKey][]*Row{}
	for i := range r.Points {
		row := &r.Points[i]
		if !row.OK() {
			continue
		}
		k, ok := key(row)
		if !ok {
			continue
		}
		if _, seen := groups[k]; !seen {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], row)
	}
	return keys, groups
}

func distinct(rows []*Row, x func(*Row) float64) []float64 {
	var xs []float64
	for _, row := range rows {
		if v := x(row); !slices.Contains(xs, v) {
			xs = append(xs, v)
		}
	}
	slices.Sort(xs)
	return xs
}

// throughputSeries is a line per ordering (in the sweep's order) and the
// baseline's, of msgs/s against x.
func throughputSeries(r *Result, rows []*Row, x func(*Row) float64) []*series {
	var out []*series
	for i, o := range r.Sweep.Orders {
		s := &series{label: "engine " + orderLabel(o, r.Sweep.Safe), color: plotutil.Color(i), shape: plotutil.Shape(i)}
		for _, row := range rows {
			if row.Setup.Order == o {
				s.add(x(row), row.Engine.MsgsPerSec)
			}
		}
		out = append(out, s)
	}
	base := &series{label: "raw-UDP baseline", color: color.Black, dashes: []vg.Length{vg.Points(6), vg.Points(3)},
		shape: draw.CrossGlyph{}}
	for _, row := range rows {
		base.add(x(row), row.Baseline.MsgsPerSec)
	}
	return append(out, base)
}

func throughputBySize(dir string, r *Result) ([]string, error) {
	keys, groups := sliceRows(r, func(row *Row) (rowKey, bool) {
		s := row.Setup
		return rowKey{members: s.Members, senders: sendersLabel(s.Senders, s.Members), rate: s.Rate}, true
	})
	var files []string
	for _, k := range keys {
		rows := groups[k]
		x := func(row *Row) float64 { return float64(row.Setup.Size) }
		sizes := distinct(rows, x)
		if len(sizes) < 2 {
			continue
		}
		c := chart{
			title: []string{
				fmt.Sprintf("Throughput vs message size: %d members, %s, %s", k.members, sendersText(k.senders), rateLabel(k.rate)),
				setupLine(r, rows, true),
			},
			xLabel: "message size", yLabel: "delivered msgs/s (slowest member)",
			logX: true, logY: true, yFormat: shortCount,
			series: throughputSeries(r, rows, x),
		}
		for _, s := range sizes {
			c.xTicks = append(c.xTicks, plot.Tick{Value: s, Label: sizeLabel(int(s))})
		}
		name := fmt.Sprintf("%s_m%d_s%s_%s.png", ChartThroughputSize, k.members, k.senders, rateName(k.rate))
		path := filepath.Join(dir, name)
		if err := c.save(path); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

func throughputByMembers(dir string, r *Result) ([]string, error) {
	keys, groups := sliceRows(r, func(row *Row) (rowKey, bool) {
		s := row.Setup
		return rowKey{size: s.Size, senders: sendersLabel(s.Senders, s.Members), rate: s.Rate}, true
	})
	var files []string
	for _, k := range keys {
		rows := groups[k]
		x := func(row *Row) float64 { return float64(row.Setup.Members) }
		members := distinct(rows, x)
		if len(members) < 2 {
			continue
		}
		c := chart{
			title: []string{
				fmt.Sprintf("Throughput vs group size: %s messages, %s, %s", sizeLabel(k.size), sendersText(k.senders), rateLabel(k.rate)),
				setupLine(r, rows, true),
			},
			xLabel: "members (one process each)", yLabel: "delivered msgs/s (slowest member)",
			yFormat: shortCount,
			series:  throughputSeries(r, rows, x),
		}
		for _, m := range members {
			c.xTicks = append(c.xTicks, plot.Tick{Value: m, Label: strconv.Itoa(int(m))})
		}
		name := fmt.Sprintf("%s_%s_s%s_%s.png", ChartThroughputMembers, sizeName(k.size), k.senders, rateName(k.rate))
		path := filepath.Join(dir, name)
		if err := c.save(path); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

func latencyByLoad(dir string, r *Result) ([]string, error) {
	keys, groups := sliceRows(r, func(row *Row) (rowKey, bool) {
		s := row.Setup
		return rowKey{members: s.Members, size: s.Size, senders: sendersLabel(s.Senders, s.Members), order: s.Order},
			s.Rate > 0 // an unlimited load has no place on this axis
	})
	var files []string
	for _, k := range keys {
		rows := groups[k]
		x := func(row *Row) float64 { return row.Setup.Rate }
		rates := distinct(rows, x)
		if len(rates) < 2 {
			continue
		}
		order := orderLabel(k.order, r.Sweep.Safe)
		c := chart{
			title: []string{
				fmt.Sprintf("Latency vs offered load: %s, %d members, %s, %s messages", order, k.members, sendersText(k.senders), sizeLabel(k.size)),
				setupLine(r, rows, false),
			},
			xLabel: "offered msgs/s per sender", yLabel: "one-way latency",
			logX: true, logY: true, yFormat: microseconds,
		}
		for _, v := range rates {
			c.xTicks = append(c.xTicks, plot.Tick{Value: v, Label: shortCount(v)})
		}
		percentiles := []struct {
			name string
			of   func(bench.Latency) int64
		}{
			{"p50", func(l bench.Latency) int64 { return l.P50 }},
			{"p99", func(l bench.Latency) int64 { return l.P99 }},
			{"p99.9", func(l bench.Latency) int64 { return l.P999 }},
		}
		for i, p := range percentiles {
			eng := &series{label: "engine " + p.name, color: plotutil.Color(i), shape: plotutil.Shape(i)}
			base := &series{label: "baseline " + p.name, color: plotutil.Color(i), shape: draw.CrossGlyph{},
				dashes: []vg.Length{vg.Points(6), vg.Points(3)}}
			for _, row := range rows {
				eng.add(row.Setup.Rate, float64(p.of(row.Engine.Latency)))
				base.add(row.Setup.Rate, float64(p.of(row.Baseline.Latency)))
			}
			c.series = append(c.series, eng, base)
		}
		name := fmt.Sprintf("%s_m%d_s%s_%s_%s.png", ChartLatencyLoad, k.members, k.senders, sizeName(k.size),
			strings.ReplaceAll(order, "+", "-"))
		path := filepath.Join(dir, name)
		if err := c.save(path); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

// save draws the chart into a PNG file at path: the plot, and its legend
// in a column on the right, clear of the lines. A log axis is drawn as a
// linear one of the values' logarithms, labelled with the values (plot's
// own log scale centres the axis label on the linear midpoint, which
// pushes the plot down).
func (c *chart) save(path string) error {
	p := plot.New()
	p.Title.Text = strings.Join(c.title, "\n")
	p.Title.TextStyle.Font.Size = vg.Points(12)
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text, p.Y.Label.Text = c.xLabel, c.yLabel
	p.Add(plotter.NewGrid())
	legend := plot.NewLegend()
	legend.TextStyle.Font.Size = vg.Points(11)
	legend.Top, legend.Left = true, true
	tx, ty := scale(c.logX), scale(c.logY)

	ymin, ymax := math.Inf(1), math.Inf(-1)
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, b := range c.bands {
		xmin, xmax = min(xmin, b.From), max(xmax, b.To)
	}
	var lines []plot.Plotter // drawn after the bands, which need the y range
	drawn := 0
	for _, s := range c.series {
		if len(s.xys) == 0 {
			continue
		}
		slices.SortFunc(s.xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		xys := make(plotter.XYs, len(s.xys))
		for i, xy := range s.xys {
			xys[i] = plotter.XY{X: tx(xy.X), Y: ty(xy.Y)}
			xmin, xmax = min(xmin, xy.X), max(xmax, xy.X)
			ymin, ymax = min(ymin, xy.Y), max(ymax, xy.Y)
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("chart %s: %s: %w", filepath.Base(path), s.label, err)
		}
		line.Color, line.Width, line.Dashes = s.color, vg.Points(1.5), s.dashes
		points.Color, points.Shape, points.Radius = s.color, s.shape, vg.Points(3)
		if s.shape == nil {
			points.Radius = 0
		}
		switch {
		case s.noLine:
			points.Radius = vg.Points(5)
			lines = append(lines, points)
			legend.Add(s.label, points)
		default:
			lines = append(lines, line, points)
			legend.Add(s.label, line, points)
		}
		drawn++
	}
	if drawn == 0 {
		// Every point of this slice measured nothing: say so on an empty
		// chart rather than leave a gap in the files.
		p.Title.Text += "\n(no figures: every point measured nothing)"
		xmin, xmax, ymin, ymax = 1, 10, 1, 10
	}

	if c.logX {
		p.X.Min, p.X.Max = tx(xmin/1.3), tx(xmax*1.3)
	} else {
		pad := max((xmax-xmin)*0.05, 0.5)
		p.X.Min, p.X.Max = xmin-pad, xmax+pad
	}
	var xTicks []plot.Tick
	for _, t := range c.xTicks {
		xTicks = append(xTicks, plot.Tick{Value: tx(t.Value), Label: t.Label})
	}
	if xTicks != nil {
		p.X.Tick.Marker = plot.ConstantTicks(xTicks)
	}
	if c.logY {
		p.Y.Min, p.Y.Max = ty(ymin/1.5), ty(ymax*1.5)
		p.Y.Tick.Marker = logTicks{format: c.yFormat}
	} else {
		p.Y.Min, p.Y.Max = 0, ymax*1.1
		p.Y.Tick.Marker = labelTicks{format: c.yFormat}
	}
	if err := addBands(p, c.bands); err != nil {
		return fmt.Errorf("chart %s: %w", filepath.Base(path), err)
	}
	p.Add(lines...)

	img := vgimg.New(chartWidth, chartHeight)
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
	title := p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
	legend.Draw(draw.Crop(dc, chartWidth-legendWidth+vg.Points(10), 0, 0, -title))
	return writeFile(path, func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
		return err
	})
}

// scale is the transform of an axis's values: log10 for a log axis.
func scale(log bool) func(float64) float64 {
	if log {
		return math.Log10
	}
	return func(v float64) float64 { return v }
}

// logTicks marks an axis of log10 values at each power of ten (labelled
// with the value) and the steps between (labelled at 2 and 5 when the
// axis spans less than three decades).
type logTicks struct{ format func(float64) string }

func (t logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil
	}
	few := hi-lo < 3
	var ticks []plot.Tick
	for e := math.Floor(lo); e <= math.Ceil(hi); e++ {
		for i := 1; i < 10; i++ {
			v := math.Log10(float64(i)) + e
			if v < lo || v > hi {
				continue
			}
			tick := plot.Tick{Value: v}
			if i == 1 || (few && (i == 2 || i == 5)) {
				tick.Label = t.format(float64(i) * math.Pow(10, e))
			}
			ticks = append(ticks, tick)
		}
	}
	return ticks
}

// labelTicks marks a linear axis every 1, 2 or 5 times a power of ten,
// 4 to 10 marks in all, each labelled in format.
type labelTicks struct{ format func(float64) string }

func (t labelTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return nil
	}
	step := math.Pow(10, math.Floor(math.Log10((hi-lo)/4)))
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*m) <= 10 {
			step *= m
			break
		}
	}
	var ticks []plot.Tick
	for k := math.Ceil(lo / step); k*step <= hi; k++ {
		ticks = append(ticks, plot.Tick{Value: k * step, Label: t.format(k * step)})
	}
	return ticks
}

// microseconds labels a latency: 50 µs, 1 ms, 2.5 s.
func microseconds(us float64) string {
	switch {
	case us >= 1e6:
		return strconv.FormatFloat(us/1e6, 'g', 3, 64) + " s"
	case us >= 1e3:
		return strconv.FormatFloat(us/1e3, 'g', 3, 64) + " ms"
	}
	return strconv.FormatFloat(us, 'g', 3, 64) + " µs"
}

// setupLine is a chart's second title line: what every point of it
// shared.
func setupLine(r *Result, rows []*Row, withOrders bool) string {
	s := r.Sweep
	orders := ""
	if withOrders {
		var labels []string
		for _, o := range s.Orders {
			labels = append(labels, orderLabel(o, s.Safe))
		}
		orders = strings.Join(labels, ", ") + "; "
	}
	procs := ""
	if len(rows) > 0 {
		g := rows[0].Setup.GOMAXPROCS
		procs = fmt.Sprintf(", GOMAXPROCS %d per member", g)
		for _, row := range rows {
			if row.Setup.GOMAXPROCS != g {
				procs = ", GOMAXPROCS CPUs/members per member"
				break
			}
		}
	}
	return fmt.Sprintf("%s%gs per phase; %d CPUs (%s)%s; %s, loopback",
		orders, s.DurationS, s.CPUs, s.CPU, procs, s.Go)
}

func sendersText(label string) string {
	switch label {
	case "all":
		return "all sending"
	case "1":
		return "1 sender"
	}
	return label + " senders"
}

// rateName and sizeName are rateLabel and sizeLabel for file names.
func rateName(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return "r" + strconv.FormatFloat(r, 'f', -1, 64)
}

func sizeName(n int) string { return strconv.Itoa(n) + "B" }

// Band shades a stretch [From, To) of a chart's linear x axis, with its
// Label at the top: the steps of a perturbation over time.
type Band struct {
	From, To float64
	Label    string
}

// addBands shades p's bands, every other one darker, the full height of
// the y range set on p.
func addBands(p *plot.Plot, bands []Band) error {
	if len(bands) == 0 {
		return nil
	}
	var labels plotter.XYLabels
	for i, b := range bands {
		shade := color.Gray{Y: 242}
		if i%2 == 1 {
			shade = color.Gray{Y: 222}
		}
		poly, err := plotter.NewPolygon(plotter.XYs{
			{X: b.From, Y: p.Y.Min}, {X: b.To, Y: p.Y.Min}, {X: b.To, Y: p.Y.Max}, {X: b.From, Y: p.Y.Max},
		})
		if err != nil {
			return err
		}
		poly.Color, poly.LineStyle.Width = shade, 0
		p.Add(poly)
		top := p.Y.Max - (p.Y.Max-p.Y.Min)*0.02
		labels.XYs = append(labels.XYs, plotter.XY{X: b.From + (b.To-b.From)*0.03, Y: top})
		labels.Labels = append(labels.Labels, b.Label)
	}
	l, err := plotter.NewLabels(labels)
	if err != nil {
		return err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].YAlign = draw.YTop
		l.TextStyle[i].Font.Size = vg.Points(10)
	}
	p.Add(l, plotter.NewGrid())
	return nil
}

// Line is one line of a Chart: its points in order of x.
type Line struct {
	Label  string
	Points plotter.XYs
	Color  color.Color
	Dashes []vg.Length      // nil: solid
	Shape  draw.GlyphDrawer // a mark at each point; nil: none
	NoLine bool             // marks only, no line
}

// Chart is a chart over a linear x axis (time, say), drawn as the
// sweep's are: a title of one or more lines, a legend in a column on the
// right, and bands shaded behind the lines. A log y axis leaves out
// points that are not positive.
type Chart struct {
	Title          []string
	XLabel, YLabel string
	LogY           bool
	YFormat        func(float64) string // y tick labels; nil: ShortCount
	Lines          []Line
	Bands          []Band
}

// Save draws the chart into a PNG file at path.
func (c *Chart) Save(path string) error {
	ch := chart{title: c.Title, xLabel: c.XLabel, yLabel: c.YLabel, logY: c.LogY, yFormat: c.YFormat, bands: c.Bands}
	if ch.yFormat == nil {
		ch.yFormat = shortCount
	}
	for _, l := range c.Lines {
		s := &series{label: l.Label, color: l.Color, dashes: l.Dashes, shape: l.Shape, noLine: l.NoLine}
		for _, xy := range l.Points {
			if c.LogY && !(xy.Y > 0) || math.IsInf(xy.Y, 0) || math.IsNaN(xy.Y) {
				continue
			}
			s.xys = append(s.xys, xy)
		}
		ch.series = append(ch.series, s)
	}
	return ch.save(path)
}

// ShortCount writes a count to 3 significant digits with a k or M
// suffix: 100k, 1.5M.
func ShortCount(v float64) string { return shortCount(v) }

// Microseconds labels a latency given in µs: 50 µs, 1 ms, 2.5 s.
func Microseconds(us float64) string { return microseconds(us) }

// WriteFile writes path through a temporary file renamed over it, so a
// reader never sees half a file.
func WriteFile(path string, write func(io.Writer) error) error { return writeFile(path, write) }
