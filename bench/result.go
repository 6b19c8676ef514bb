package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// MemberResult is one member's counters over one phase's measured window.
type MemberResult struct {
	Index       int    `json:"index"`
	Phase       string `json:"phase"`
	Delivered   uint64 `json:"delivered"`    // messages delivered (own included)
	Sent        uint64 `json:"sent"`         // messages this member sent
	ElapsedNs   int64  `json:"elapsed_ns"`   // real time between the window's snapshots
	CPUNs       int64  `json:"cpu_ns"`       // its process's CPU time, user and system (0: not known)
	Mallocs     uint64 `json:"mallocs"`      // heap allocations in the process
	Retransmits uint64 `json:"retransmits"`  // messages sent again after a NAK
	KernelDrops uint64 `json:"kernel_drops"` // datagrams the kernel dropped for a full queue
	WriteErrors uint64 `json:"write_errors"` // datagrams the socket failed to send
	// Datagrams this member packed (each sent to every other member);
	// for the engine, control datagrams included.
	Datagrams uint64 `json:"datagrams"`
	NAKs      uint64 `json:"naks"` // retransmission requests sent (engine)
	// Messages the engine's receive side discarded: beyond the receive
	// window, or with no room in its arena (each is later retransmitted).
	BeyondWindow uint64 `json:"beyond_window"`
	NoRoom       uint64 `json:"no_room"`
	// Histogram holds the one-way latencies (µs) of the sampled messages
	// (Setup.SampleEvery) delivered in the window, HdrHistogram's
	// compressed base64 form.
	Histogram string `json:"histogram"`

	// The keyed engine's refusals (PhaseKeyed; engine.EngineStats):
	// datagrams that failed authentication, replays, unsealed datagrams,
	// and datagrams it failed to seal. All 0 in a sound run.
	AuthFailed      uint64 `json:"auth_failed,omitempty"`
	Replayed        uint64 `json:"replayed,omitempty"`
	Unauthenticated uint64 `json:"unauthenticated,omitempty"`
	SealFailed      uint64 `json:"seal_failed,omitempty"`
}

// Rate is the member's delivered messages per second.
func (r *MemberResult) Rate() float64 {
	if r.ElapsedNs <= 0 {
		return 0
	}
	return float64(r.Delivered) / (float64(r.ElapsedNs) / 1e9)
}

// CPUPerMsg is the member's CPU time per message it delivered, in µs (0
// without deliveries).
func (r *MemberResult) CPUPerMsg() float64 {
	if r.Delivered == 0 {
		return 0
	}
	return float64(r.CPUNs) / 1e3 / float64(r.Delivered)
}

// Latency is a latency distribution's summary, in microseconds.
type Latency struct {
	P50   int64 `json:"p50"`
	P90   int64 `json:"p90"`
	P99   int64 `json:"p99"`
	P999  int64 `json:"p999"`
	Max   int64 `json:"max"`
	Count int64 `json:"count"` // messages recorded
}

// PhaseSummary is one phase's result over all members.
type PhaseSummary struct {
	// MsgsPerSec is the lowest delivered rate over the members.
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// Latency merges every member's histogram.
	Latency Latency `json:"latency_us"`
	// AllocsPerMsg is the members' allocations over their deliveries.
	AllocsPerMsg float64 `json:"allocs_per_msg"`
	Retransmits  uint64  `json:"retransmits"`
	KernelDrops  uint64  `json:"kernel_drops"`

	// CPUUsPerMsg is the members' CPU time (MemberResult.CPUNs) over
	// their deliveries, in µs: what one delivery costs the group, the
	// sender's work included. MemberCPUUsPerMsg is each member's own
	// (MemberResult.CPUPerMsg), by index.
	CPUUsPerMsg       float64   `json:"cpu_us_per_msg"`
	MemberCPUUsPerMsg []float64 `json:"member_cpu_us_per_msg"`

	// Diagnostics: write_errors (failed socket sends); datagrams
	// (packed, over all members: sent / datagrams is the bundling); naks,
	// beyond_window and no_room (engine only; see MemberResult).
	WriteErrors  uint64 `json:"write_errors"`
	Datagrams    uint64 `json:"datagrams"`
	NAKs         uint64 `json:"naks"`
	BeyondWindow uint64 `json:"beyond_window"`
	NoRoom       uint64 `json:"no_room"`

	Delivered        uint64    `json:"delivered"` // over all members
	Sent             uint64    `json:"sent"`      // over all senders
	MemberMsgsPerSec []float64 `json:"member_msgs_per_sec"`
	// MemberLatency is each member's own latency, by index (count 0: it
	// recorded none): a slow member, or a sender slow to deliver its own
	// messages, shows here and not in the merged figures.
	MemberLatency []Latency `json:"member_latency_us"`

	// The keyed engine's refusals, over all members (keyed phase only;
	// see MemberResult): all 0 in a sound run.
	AuthFailed      uint64 `json:"auth_failed,omitempty"`
	Replayed        uint64 `json:"replayed,omitempty"`
	Unauthenticated uint64 `json:"unauthenticated,omitempty"`
	SealFailed      uint64 `json:"seal_failed,omitempty"`
}

// refusals is the keyed engine's refused and unsealed datagrams.
func (p *PhaseSummary) refusals() uint64 {
	return p.AuthFailed + p.Replayed + p.Unauthenticated + p.SealFailed
}

// Setup describes the run and the machine.
type Setup struct {
	Members int    `json:"members"`
	Senders int    `json:"senders"`
	Size    int    `json:"size"`
	Order   string `json:"order"` // one of OrderNames
	Safe    bool   `json:"safe,omitempty"`
	// Keyed: the keyed engine was measured too (Report.Keyed).
	Keyed     bool    `json:"keyed,omitempty"`
	DurationS float64 `json:"duration_s"`
	Rate      float64 `json:"rate"`
	// SampleEvery is K: latency is measured on every Kth message of each
	// sender, in the engine and the baseline alike (1: every message).
	SampleEvery int    `json:"sample_every"`
	Go          string `json:"go"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	CPU         string `json:"cpu"`
}

// Report is a run's result: vsbench --json prints it.
type Report struct {
	Setup    Setup        `json:"setup"`
	Engine   PhaseSummary `json:"engine"`
	Baseline PhaseSummary `json:"baseline"`
	// Ratio is the engine's msgs_per_sec over the baseline's.
	Ratio float64 `json:"ratio"`

	// With a key file (Config.KeyFile), Keyed is the keyed engine's phase
	// (same processes, same ordering, measured right after Engine), and
	// KeyedRatio its msgs_per_sec over the keyless engine's (0 included).
	// Both are nil, and absent from the JSON, without one.
	Keyed      *PhaseSummary `json:"keyed,omitempty"`
	KeyedRatio *float64      `json:"keyed_ratio,omitempty"`
}

// NewSetup describes cfg on this machine.
func NewSetup(cfg Config) Setup {
	return Setup{
		Members:     cfg.Members,
		Senders:     cfg.Senders,
		Size:        cfg.Size,
		Order:       cfg.Order,
		Safe:        cfg.Safe,
		Keyed:       cfg.KeyFile != "",
		DurationS:   cfg.Duration.Seconds(),
		Rate:        cfg.Rate,
		SampleEvery: sampleEvery(cfg.Rate, cfg.Size),
		Go:          runtime.Version(),
		GOMAXPROCS:  cfg.MemberProcs(),
		CPU:         cpuModel(),
	}
}

// Summarize merges the members' results of one phase.
func Summarize(results []MemberResult, size int) (PhaseSummary, error) {
	if len(results) == 0 {
		return PhaseSummary{}, errors.New("no member results")
	}
	var s PhaseSummary
	merged := newHistogram()
	var mallocs uint64
	var cpuNs int64
	s.MsgsPerSec = math.Inf(1)
	for i := range results {
		r := &results[i]
		rate := r.Rate()
		s.MemberMsgsPerSec = append(s.MemberMsgsPerSec, rate)
		s.MsgsPerSec = min(s.MsgsPerSec, rate)
		s.Delivered += r.Delivered
		s.Sent += r.Sent
		mallocs += r.Mallocs
		cpuNs += r.CPUNs
		s.MemberCPUUsPerMsg = append(s.MemberCPUUsPerMsg, r.CPUPerMsg())
		s.Retransmits += r.Retransmits
		s.KernelDrops += r.KernelDrops
		s.WriteErrors += r.WriteErrors
		s.Datagrams += r.Datagrams
		s.NAKs += r.NAKs
		s.BeyondWindow += r.BeyondWindow
		s.NoRoom += r.NoRoom
		s.AuthFailed += r.AuthFailed
		s.Replayed += r.Replayed
		s.Unauthenticated += r.Unauthenticated
		s.SealFailed += r.SealFailed
		if r.Histogram == "" {
			s.MemberLatency = append(s.MemberLatency, Latency{})
			continue
		}
		h, err := hdrhistogram.Decode([]byte(r.Histogram))
		if err != nil {
			return PhaseSummary{}, fmt.Errorf("member %d: histogram: %w", r.Index, err)
		}
		s.MemberLatency = append(s.MemberLatency, summarizeLatency(h))
		merged.Merge(h)
	}
	s.MBPerSec = s.MsgsPerSec * float64(size) / 1e6
	if s.Delivered > 0 {
		s.AllocsPerMsg = float64(mallocs) / float64(s.Delivered)
		s.CPUUsPerMsg = float64(cpuNs) / 1e3 / float64(s.Delivered)
	}
	s.Latency = summarizeLatency(merged)
	return s, nil
}

func summarizeLatency(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50:   h.ValueAtPercentile(50),
		P90:   h.ValueAtPercentile(90),
		P99:   h.ValueAtPercentile(99),
		P999:  h.ValueAtPercentile(99.9),
		Max:   h.Max(),
		Count: h.TotalCount(),
	}
}

// NewReport builds the report from each phase's member results.
func NewReport(cfg Config, baseline, eng []MemberResult) (*Report, error) {
	r := &Report{Setup: NewSetup(cfg)}
	var err error
	if r.Baseline, err = Summarize(baseline, cfg.Size); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if r.Engine, err = Summarize(eng, cfg.Size); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if r.Baseline.MsgsPerSec > 0 {
		r.Ratio = r.Engine.MsgsPerSec / r.Baseline.MsgsPerSec
	}
	return r, nil
}

// AddKeyed adds the keyed engine's phase to the report (Keyed and
// KeyedRatio).
func (r *Report) AddKeyed(keyed []MemberResult) error {
	k, err := Summarize(keyed, r.Setup.Size)
	if err != nil {
		return fmt.Errorf("keyed: %w", err)
	}
	ratio := 0.0
	if r.Engine.MsgsPerSec > 0 {
		ratio = k.MsgsPerSec / r.Engine.MsgsPerSec
	}
	r.Keyed, r.KeyedRatio = &k, &ratio
	r.Setup.Keyed = true
	return nil
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	return WriteTables(w, []*Report{r})
}

// WriteTables prints the reports of one RunOrders for people: one table
// with a row per ordering's engine phase (and keyed phase, with a key
// file) and one for their shared baseline, each ordering's ratio to the
// baseline, the keyed engine's to the keyless one and, with several
// orderings, each one's rate relative to the first.
func WriteTables(w io.Writer, reps []*Report) error {
	if len(reps) == 0 {
		return errors.New("no report")
	}
	s := reps[0].Setup
	rate := "unlimited"
	if s.Rate > 0 {
		rate = groupDigits(s.Rate) + " msgs/s per sender"
	}
	senders := fmt.Sprint(s.Senders)
	if s.Senders == s.Members {
		senders = "all"
	}
	labels := make([]string, len(reps))
	for i, r := range reps {
		labels[i] = orderLabel(r.Setup.Order, r.Setup.Safe)
	}
	keyed := ""
	if reps[0].Keyed != nil {
		keyed = ", keyed engine (AES-256-GCM) beside the keyless one"
	}
	sample := "latency of every message"
	if s.SampleEvery > 1 {
		sample = fmt.Sprintf("latency of 1 message in %d per sender", s.SampleEvery)
	}
	fmt.Fprintf(w, "vsbench: %d members, senders %s, %d B messages, %s, %gs per phase, rate %s, %s%s\n",
		s.Members, senders, s.Size, strings.Join(labels, ", "), s.DurationS, rate, sample, keyed)
	fmt.Fprintf(w, "%s, GOMAXPROCS %d, %s\n\n", s.Go, s.GOMAXPROCS, s.CPU)
	type namedPhase struct {
		name string
		p    *PhaseSummary
	}
	var phases []namedPhase
	for i, r := range reps {
		name, kname := "engine", "keyed"
		if len(reps) > 1 {
			name += " " + labels[i]
			kname += " " + labels[i]
		}
		phases = append(phases, namedPhase{name, &r.Engine})
		if r.Keyed != nil {
			phases = append(phases, namedPhase{kname, r.Keyed})
		}
	}
	phases = append(phases, namedPhase{"baseline", &reps[0].Baseline})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tmsgs/s\tMB/s\tp50 µs\tp90 µs\tp99 µs\tp99.9 µs\tmax µs\tallocs/msg\tCPU µs/msg\tretransmits\tkernel drops\t")
	for _, ph := range phases {
		p := ph.p
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%d\t%d\t%d\t%d\t%d\t%.2g\t%s\t%d\t%d\t\n", ph.name,
			groupDigits(p.MsgsPerSec), p.MBPerSec, p.Latency.P50, p.Latency.P90, p.Latency.P99,
			p.Latency.P999, p.Latency.Max, p.AllocsPerMsg, cpuFigure(p.CPUUsPerMsg), p.Retransmits, p.KernelDrops)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// CPU µs/msg is every member's CPU time over every delivery; each
	// member's own figure shows the sender apart from the receivers.
	cpuLine := func() error {
		parts := make([]string, len(phases))
		for i, ph := range phases {
			figs := make([]string, len(ph.p.MemberCPUUsPerMsg))
			for j, v := range ph.p.MemberCPUUsPerMsg {
				figs[j] = cpuFigure(v)
			}
			parts[i] = ph.name + " " + strings.Join(figs, " / ")
		}
		_, err := fmt.Fprintf(w, "CPU µs per delivered message, per member: %s\n", strings.Join(parts, "; "))
		return err
	}
	if len(reps) == 1 {
		r := reps[0]
		if _, err := fmt.Fprintf(w, "\nengine/baseline: %.1f%% (msgs/s, slowest member; per member engine %s, baseline %s)\n",
			100*r.Ratio, rates(r.Engine.MemberMsgsPerSec), rates(r.Baseline.MemberMsgsPerSec)); err != nil {
			return err
		}
		if err := writeKeyed(w, "keyed", "engine", r); err != nil {
			return err
		}
		return cpuLine()
	}
	fmt.Fprintln(w)
	first := reps[0].Engine.MsgsPerSec
	for i, r := range reps {
		rel := ""
		if i > 0 && first > 0 {
			rel = fmt.Sprintf(", %.1f%% of %s", 100*r.Engine.MsgsPerSec/first, labels[0])
		}
		fmt.Fprintf(w, "engine %s/baseline: %.1f%%%s (msgs/s, slowest member; per member %s)\n",
			labels[i], 100*r.Ratio, rel, rates(r.Engine.MemberMsgsPerSec))
	}
	for i, r := range reps {
		if err := writeKeyed(w, "keyed "+labels[i], "engine "+labels[i], r); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(w, "baseline per member: %s\n", rates(reps[0].Baseline.MemberMsgsPerSec)); err != nil {
		return err
	}
	return cpuLine()
}

// cpuFigure formats CPU µs per message with three significant digits
// below 100 (0.312, 2.45, 12.3) and as a whole number above.
func cpuFigure(us float64) string {
	switch {
	case us >= 100:
		return strconv.FormatFloat(us, 'f', 0, 64)
	case us >= 10:
		return strconv.FormatFloat(us, 'f', 1, 64)
	case us >= 1:
		return strconv.FormatFloat(us, 'f', 2, 64)
	}
	return strconv.FormatFloat(us, 'f', 3, 64)
}

// writeKeyed prints the keyed engine's figures relative to the keyless
// one's, and its refusals if it had any; nothing without a keyed phase.
func writeKeyed(w io.Writer, kname, ename string, r *Report) error {
	k := r.Keyed
	if k == nil {
		return nil
	}
	kb := 0.0
	if r.Baseline.MsgsPerSec > 0 {
		kb = k.MsgsPerSec / r.Baseline.MsgsPerSec
	}
	if _, err := fmt.Fprintf(w, "%s/%s: %.1f%% (msgs/s, slowest member; %s/baseline %.1f%%; p50 %+d µs, p99 %+d µs; per member %s)\n",
		kname, ename, 100**r.KeyedRatio, kname, 100*kb,
		k.Latency.P50-r.Engine.Latency.P50, k.Latency.P99-r.Engine.Latency.P99, rates(k.MemberMsgsPerSec)); err != nil {
		return err
	}
	if n := k.refusals(); n > 0 {
		_, err := fmt.Fprintf(w, "%s: %d datagrams refused or unsealed (auth failed %d, replayed %d, unauthenticated %d, seal failed %d)\n",
			kname, n, k.AuthFailed, k.Replayed, k.Unauthenticated, k.SealFailed)
		return err
	}
	return nil
}

func rates(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = groupDigits(r)
	}
	return strings.Join(parts, " / ")
}

// groupDigits formats a rate as a whole number with thousands separators.
func groupDigits(v float64) string {
	s := fmt.Sprintf("%.0f", v)
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

// cpuModel is the processor's model name where the system says, else the
// architecture.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
		}
	}
	return runtime.GOARCH
}
