package sweep

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cohort-vs/cohort/bench"
)

// The files a sweep writes into its directory, besides the charts.
const (
	CSVFile  = "sweep.csv"
	JSONFile = "sweep.json"
)

// phaseColumns are the columns of one phase's figures in the CSV, each
// prefixed with "engine_" or "baseline_".
var phaseColumns = []string{
	"msgs_per_sec", "mb_per_sec", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
	"allocs_per_msg", "retransmits", "kernel_drops", "sent", "delivered",
}

// CSVHeader is the CSV's first line: the setup, the engine's figures, the
// baseline's, the ratio and the error. rate 0 is unlimited; senders is a
// count (equal to members when all send).
func CSVHeader() []string {
	h := []string{"run", "members", "senders", "size", "order", "safe", "rate", "duration_s", "warmup_s",
		"gomaxprocs", "cpus", "cpu", "go"}
	for _, phase := range []string{"engine", "baseline"} {
		for _, c := range phaseColumns {
			h = append(h, phase+"_"+c)
		}
	}
	return append(h, "ratio", "error")
}

// WriteCSV writes one line per row: every point and ordering.
func WriteCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader()); err != nil {
		return err
	}
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	for _, row := range r.Points {
		s := row.Setup
		rec := []string{
			strconv.Itoa(row.Run), strconv.Itoa(s.Members), strconv.Itoa(s.Senders), strconv.Itoa(s.Size),
			s.Order, strconv.FormatBool(s.Safe), f(s.Rate, -1), f(s.DurationS, -1), f(r.Sweep.WarmupS, -1),
			strconv.Itoa(s.GOMAXPROCS), strconv.Itoa(r.Sweep.CPUs), s.CPU, s.Go,
		}
		for _, p := range []*bench.PhaseSummary{row.Engine, row.Baseline} {
			if p == nil {
				for range phaseColumns {
					rec = append(rec, "")
				}
				continue
			}
			l := p.Latency
			rec = append(rec, f(p.MsgsPerSec, 0), f(p.MBPerSec, 2),
				strconv.FormatInt(l.P50, 10), strconv.FormatInt(l.P90, 10), strconv.FormatInt(l.P99, 10),
				strconv.FormatInt(l.P999, 10), strconv.FormatInt(l.Max, 10),
				strconv.FormatFloat(p.AllocsPerMsg, 'g', 3, 64),
				strconv.FormatUint(p.Retransmits, 10), strconv.FormatUint(p.KernelDrops, 10),
				strconv.FormatUint(p.Sent, 10), strconv.FormatUint(p.Delivered, 10))
		}
		ratio := ""
		if row.OK() {
			ratio = f(row.Ratio, 4)
		}
		rec = append(rec, ratio, row.Error)
		if err := cw.Write(rec); err != nil {
			return err
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

// WriteFiles writes CSVFile and JSONFile into dir, each replaced whole (a
// sweep rewrites them after every point, so an interrupted sweep keeps
// what it measured).
func WriteFiles(dir string, r *Result) error {
	if err := writeFile(filepath.Join(dir, CSVFile), func(w io.Writer) error { return WriteCSV(w, r) }); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, JSONFile), func(w io.Writer) error { return WriteJSON(w, r) })
}

// writeFile writes path through a temporary file renamed over it.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o644)
	if err == nil {
		err = write(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
