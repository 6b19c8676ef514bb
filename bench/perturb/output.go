package perturb

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/cohort-vs/cohort/bench/sweep"
)

// The files a study writes into its directory, each name followed by
// the method (perturb_delay.csv, perturb-throughput_delay.png), so that
// studies of different methods can share a directory.
const (
	FilePrefix      = "perturb"
	ChartThroughput = "perturb-throughput"
	ChartLatency    = "perturb-latency"
)

// Files are the paths of the CSV and JSON files of a study by method in
// dir.
func Files(dir, method string) (csvPath, jsonPath string) {
	base := filepath.Join(dir, FilePrefix+"_"+method)
	return base + ".csv", base + ".json"
}

// CSVHeader is the CSV's first line: one row per policy and interval.
func CSVHeader() []string {
	return []string{"policy", "method", "seq", "t_s", "step", "level", "setting", "alone_msgs_per_sec",
		"healthy_msgs_per_sec", "sent_msgs_per_sec", "slow_msgs_per_sec", "p50_us", "p99_us",
		"view_size", "slow_removed", "slow_incarnations"}
}

// WriteCSV writes every interval of every run.
func WriteCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader()); err != nil {
		return err
	}
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	for _, run := range r.Runs {
		for _, p := range run.Points {
			var setting, alone string
			if r.Calibration != nil {
				if lc, ok := r.Calibration.level(p.Level); ok {
					setting, alone = strconv.FormatFloat(lc.Setting, 'g', 6, 64), f(lc.Alone, 0)
				}
			}
			rec := []string{run.Policy, r.Setup.Method, strconv.Itoa(p.Seq), f(p.T, 3), strconv.Itoa(p.Step),
				f(p.Level, -1), setting, alone, f(p.Healthy, 0), f(p.Sent, 0), f(p.Slow, 0),
				strconv.FormatInt(p.P50, 10), strconv.FormatInt(p.P99, 10), strconv.Itoa(p.ViewSize),
				strconv.FormatBool(p.SlowRemoved), strconv.Itoa(p.SlowIncarnations)}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the result as one indented JSON object.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteFiles writes the CSV and JSON files (Files) into dir.
func WriteFiles(dir string, r *Result) error {
	csvPath, jsonPath := Files(dir, r.Setup.Method)
	if err := sweep.WriteFile(csvPath, func(w io.Writer) error { return WriteCSV(w, r) }); err != nil {
		return err
	}
	return sweep.WriteFile(jsonPath, func(w io.Writer) error { return WriteJSON(w, r) })
}

// policyColor gives each policy one color in every chart.
func policyColor(policy string) color.Color {
	if policy == PolicyEvict {
		return plotutil.Color(1)
	}
	return plotutil.Color(0)
}

var dashed = []vg.Length{vg.Points(6), vg.Points(3)}

// WriteCharts draws the throughput and latency charts into dir and
// returns their paths. Both have time on the x axis and the steps shaded
// and labelled with their level:
//
//   - throughput: each policy's healthy members (the lowest delivered
//     rate among them) and its slowed member (dashed), what the slowed
//     member alone takes at each level (calibration, dotted), and a mark
//     where the slowed member was removed;
//   - latency: each policy's p50 and p99 over the healthy receivers.
func WriteCharts(dir string, r *Result) ([]string, error) {
	var bands []sweep.Band
	for _, st := range r.Steps {
		bands = append(bands, sweep.Band{From: st.Start.Seconds(), To: st.End.Seconds(), Label: levelLabel(st.Level)})
	}
	sub := subtitle(r)
	tput := sweep.Chart{
		Title:  []string{fmt.Sprintf("Slow member (%s): throughput, %d members, member %d slowed", r.Setup.Method, r.Setup.Members, r.Setup.Slow), sub},
		XLabel: "time (s); shaded: the slowed member's level (share of its capacity)",
		YLabel: "delivered msgs/s",
		Bands:  bands,
	}
	lat := sweep.Chart{
		Title:   []string{fmt.Sprintf("Slow member (%s): healthy receivers' latency", r.Setup.Method), sub},
		XLabel:  tput.XLabel,
		YLabel:  "one-way latency",
		LogY:    true,
		YFormat: sweep.Microseconds,
		Bands:   bands,
	}
	for _, run := range r.Runs {
		col := policyColor(run.Policy)
		healthy := sweep.Line{Label: run.Policy + ": healthy", Color: col}
		slow := sweep.Line{Label: run.Policy + ": slowed", Color: col, Dashes: dashed}
		p50 := sweep.Line{Label: run.Policy + ": p50", Color: col, Dashes: dashed}
		p99 := sweep.Line{Label: run.Policy + ": p99", Color: col}
		for _, p := range run.Points {
			x := p.T - r.Setup.IntervalS/2 // the interval's middle
			healthy.Points = append(healthy.Points, plotter.XY{X: x, Y: p.Healthy})
			slow.Points = append(slow.Points, plotter.XY{X: x, Y: p.Slow})
			p50.Points = append(p50.Points, plotter.XY{X: x, Y: float64(p.P50)})
			p99.Points = append(p99.Points, plotter.XY{X: x, Y: float64(p.P99)})
		}
		tput.Lines = append(tput.Lines, healthy, slow)
		lat.Lines = append(lat.Lines, p50, p99)
		if run.RemovedS >= 0 {
			y := 0.0
			for _, p := range run.Points {
				if p.T-r.Setup.IntervalS/2 >= run.RemovedS {
					y = p.Healthy
					break
				}
			}
			tput.Lines = append(tput.Lines, sweep.Line{Label: run.Policy + ": removed", Color: col,
				Shape: draw.CrossGlyph{}, NoLine: true, Points: plotter.XYs{{X: run.RemovedS, Y: y}}})
		}
	}
	if r.Calibration != nil {
		alone := sweep.Line{Label: "slowed, alone", Color: color.Black, Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
		for _, st := range r.Steps {
			// Unperturbed, alone is far above any group's rate: left out.
			if lc, ok := r.Calibration.level(st.Level); ok && st.Level < 1 {
				alone.Points = append(alone.Points, plotter.XY{X: st.Start.Seconds(), Y: lc.Alone},
					plotter.XY{X: st.End.Seconds(), Y: lc.Alone})
			}
		}
		tput.Lines = append(tput.Lines, alone)
	}
	var files []string
	for _, c := range []struct {
		chart *sweep.Chart
		name  string
	}{{&tput, ChartThroughput}, {&lat, ChartLatency}} {
		path := filepath.Join(dir, c.name+"_"+r.Setup.Method+".png")
		if err := c.chart.Save(path); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

// subtitle is the charts' second title line: the setup.
func subtitle(r *Result) string {
	s := r.Setup
	how := ""
	switch s.Method {
	case MethodDelay:
		how = "delay " + s.DelayMode
	case MethodStop, MethodCPU:
		how = fmt.Sprintf("period %gms", float64(s.PeriodNs)/1e6)
	}
	rejoin := ""
	if s.Rejoin {
		rejoin = ", evicted member rejoins"
	}
	return fmt.Sprintf("%s; %d B %s, %d sender(s), rate %s%s; %d CPUs, GOMAXPROCS %d, loopback",
		how, s.Size, s.Order, s.Senders, rateText(s.Rate), rejoin, s.CPUs, s.GOMAXPROCS)
}

// microseconds labels a latency; 0 (nothing measured) as "-".
func microseconds(us int64) string {
	if us <= 0 {
		return "-"
	}
	return sweep.Microseconds(float64(us))
}
