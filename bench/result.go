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
	// Groups holds the messages delivered in each group, by group, with
	// several groups (Config.Groups; engine phase); Delivered is their
	// sum.
	Groups []uint64 `json:"groups,omitempty"`

	// The idle phase (PhaseIdle; Datagrams are then every datagram the
	// engine's socket wrote): the process's live heap (after a
	// collection) and resident set at the window's end, and both before
	// it joined any group.
	HeapBytes     uint64 `json:"heap_bytes,omitempty"`
	RSSBytes      uint64 `json:"rss_bytes,omitempty"`
	BaseHeapBytes uint64 `json:"base_heap_bytes,omitempty"`
	BaseRSSBytes  uint64 `json:"base_rss_bytes,omitempty"`

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

	// Groups is the throughput of each group, with several groups
	// (Config.Groups; engine phase); nil, and absent from the JSON, with
	// one. MsgsPerSec above is then every group's deliveries together.
	Groups *GroupRates `json:"groups,omitempty"`

	// The keyed engine's refusals, over all members (keyed phase only;
	// see MemberResult): all 0 in a sound run.
	AuthFailed      uint64 `json:"auth_failed,omitempty"`
	Replayed        uint64 `json:"replayed,omitempty"`
	Unauthenticated uint64 `json:"unauthenticated,omitempty"`
	SealFailed      uint64 `json:"seal_failed,omitempty"`
}

// GroupRates is one phase's throughput per group. A group's rate is
// the lowest, over the members, of the messages it delivered in that
// group per second.
type GroupRates struct {
	Count int `json:"count"`
	// Mean, Min and Max are over the groups: the mean, the slowest
	// group's and the fastest one's.
	MeanMsgsPerSec float64 `json:"mean_msgs_per_sec"`
	MinMsgsPerSec  float64 `json:"min_msgs_per_sec"`
	MaxMsgsPerSec  float64 `json:"max_msgs_per_sec"`
	// Delivering is the number of groups in which every member delivered
	// at least one message in the window: Count when every group
	// carried traffic.
	Delivering int `json:"delivering"`
}

// groupRates summarizes the members' per-group deliveries, or returns
// nil when the results have none (one group).
func groupRates(results []MemberResult) (*GroupRates, error) {
	n := len(results[0].Groups)
	if n == 0 {
		return nil, nil
	}
	rates := make([]float64, n)
	for g := range rates {
		rates[g] = math.Inf(1)
	}
	for i := range results {
		r := &results[i]
		if len(r.Groups) != n {
			return nil, fmt.Errorf("member %d: %d groups, member %d: %d", r.Index, len(r.Groups), results[0].Index, n)
		}
		secs := float64(r.ElapsedNs) / 1e9
		for g, d := range r.Groups {
			rate := 0.0
			if secs > 0 {
				rate = float64(d) / secs
			}
			rates[g] = min(rates[g], rate)
		}
	}
	gr := &GroupRates{Count: n, MinMsgsPerSec: math.Inf(1)}
	sum := 0.0
	for _, x := range rates {
		sum += x
		gr.MinMsgsPerSec, gr.MaxMsgsPerSec = min(gr.MinMsgsPerSec, x), max(gr.MaxMsgsPerSec, x)
		if x > 0 {
			gr.Delivering++
		}
	}
	gr.MeanMsgsPerSec = sum / float64(n)
	return gr, nil
}

// GroupsSummary is what several groups (Config.Groups) cost the member
// processes without traffic, from the idle phase: the datagrams they
// send, their CPU time, heap and RSS.
type GroupsSummary struct {
	Count int     `json:"count"`
	IdleS float64 `json:"idle_s"` // the idle phase's measured window
	// IdleDatagramsPerSec is the datagrams a member process's engine
	// wrote per second without traffic (liveness, membership, every
	// group's), the mean over the members; PerGroup divides it by
	// Count.
	IdleDatagramsPerSec         float64 `json:"idle_datagrams_per_sec"`
	IdleDatagramsPerSecPerGroup float64 `json:"idle_datagrams_per_sec_per_group"`
	// IdleCPUUsPerSecPerGroup is a member process's CPU time per second
	// without traffic, per group (the mean over the members).
	IdleCPUUsPerSecPerGroup float64 `json:"idle_cpu_us_per_sec_per_group"`
	// HeapBytes and RSSBytes are the largest member process's live heap
	// (after a collection) and resident set at the idle window's end;
	// PerGroup is, for the member whose growth is largest, what its
	// groups added to it since before it joined any, over Count.
	HeapBytes         uint64  `json:"heap_bytes"`
	RSSBytes          uint64  `json:"rss_bytes"`
	HeapBytesPerGroup float64 `json:"heap_bytes_per_group"`
	RSSBytesPerGroup  float64 `json:"rss_bytes_per_group"`
	// MemberIdleDatagramsPerSec is each member process's, by index.
	MemberIdleDatagramsPerSec []float64 `json:"member_idle_datagrams_per_sec"`
}

// SummarizeIdle merges the members' idle-phase results for count groups.
func SummarizeIdle(results []MemberResult, count int) (*GroupsSummary, error) {
	if len(results) == 0 {
		return nil, errors.New("no member results")
	}
	if count < 1 {
		return nil, fmt.Errorf("%d groups", count)
	}
	g := &GroupsSummary{Count: count}
	var dgRate, cpuRate, secs float64
	for i := range results {
		r := &results[i]
		if r.ElapsedNs <= 0 {
			return nil, fmt.Errorf("member %d: idle window of %d ns", r.Index, r.ElapsedNs)
		}
		s := float64(r.ElapsedNs) / 1e9
		secs += s
		rate := float64(r.Datagrams) / s
		g.MemberIdleDatagramsPerSec = append(g.MemberIdleDatagramsPerSec, rate)
		dgRate += rate
		cpuRate += float64(r.CPUNs) / 1e3 / s
		g.HeapBytes, g.RSSBytes = max(g.HeapBytes, r.HeapBytes), max(g.RSSBytes, r.RSSBytes)
		grown := func(now, before uint64) float64 {
			if now < before {
				return 0
			}
			return float64(now-before) / float64(count)
		}
		g.HeapBytesPerGroup = max(g.HeapBytesPerGroup, grown(r.HeapBytes, r.BaseHeapBytes))
		g.RSSBytesPerGroup = max(g.RSSBytesPerGroup, grown(r.RSSBytes, r.BaseRSSBytes))
	}
	n := float64(len(results))
	g.IdleS = secs / n
	g.IdleDatagramsPerSec = dgRate / n
	g.IdleDatagramsPerSecPerGroup = g.IdleDatagramsPerSec / float64(count)
	g.IdleCPUUsPerSecPerGroup = cpuRate / n / float64(count)
	return g, nil
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
	SampleEvery int `json:"sample_every"`
	// Groups is the number of groups each member joined, with more than
	// one (Config.Groups); absent with one.
	Groups int `json:"groups,omitempty"`
	// Light: the groups were light groups over one carrier (Config.Light).
	Light      bool   `json:"light,omitempty"`
	Go         string `json:"go"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPU        string `json:"cpu"`
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

	// Groups is what the groups cost without traffic (the idle phase),
	// with several groups (Config.Groups) and an idle phase; nil, and
	// absent from the JSON, otherwise. Engine.Groups has each phase's
	// throughput per group.
	Groups *GroupsSummary `json:"groups,omitempty"`
}

// groupsField is Setup.Groups for n groups: 0 (absent) for one.
func groupsField(n int) int {
	if n <= 1 {
		return 0
	}
	return n
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
		Groups:      groupsField(cfg.GroupCount()),
		Light:       cfg.Light && cfg.GroupCount() > 1,
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
	var err error
	if s.Groups, err = groupRates(results); err != nil {
		return PhaseSummary{}, err
	}
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
	groups := ""
	if s.Groups > 1 {
		groups = fmt.Sprintf(", %d groups (each sender's messages to them in turn)", s.Groups)
	}
	fmt.Fprintf(w, "vsbench: %d members%s, senders %s, %d B messages, %s, %gs per phase, rate %s, %s%s\n",
		s.Members, groups, senders, s.Size, strings.Join(labels, ", "), s.DurationS, rate, sample, keyed)
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
		if err := cpuLine(); err != nil {
			return err
		}
		return writeGroups(w, reps, labels)
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
	if err := cpuLine(); err != nil {
		return err
	}
	return writeGroups(w, reps, labels)
}

// writeGroups prints, with several groups, each engine phase's
// throughput per group and the idle phase's costs; nothing with one.
func writeGroups(w io.Writer, reps []*Report, labels []string) error {
	for i, r := range reps {
		g := r.Engine.Groups
		if g == nil {
			continue
		}
		name := "engine"
		if len(reps) > 1 {
			name += " " + labels[i]
		}
		if _, err := fmt.Fprintf(w, "%s per group (%d groups, the slowest member of each): mean %s, min %s, max %s msgs/s; %d of %d groups delivered at every member\n",
			name, g.Count, groupDigits(g.MeanMsgsPerSec), groupDigits(g.MinMsgsPerSec), groupDigits(g.MaxMsgsPerSec), g.Delivering, g.Count); err != nil {
			return err
		}
	}
	g := reps[0].Groups
	if g == nil {
		return nil
	}
	_, err := fmt.Fprintf(w, "idle, no traffic (%d groups, %.1fs): %s datagrams/s per process, %s per group; CPU %s µs/s per group; heap %s per process, %s per group; RSS %s per process, %s per group\n",
		g.Count, g.IdleS, groupDigits(g.IdleDatagramsPerSec), cpuFigure(g.IdleDatagramsPerSecPerGroup), cpuFigure(g.IdleCPUUsPerSecPerGroup),
		byteFigure(float64(g.HeapBytes)), byteFigure(g.HeapBytesPerGroup), byteFigure(float64(g.RSSBytes)), byteFigure(g.RSSBytesPerGroup))
	return err
}

// byteFigure formats a size in B, KiB, MiB or GiB, as cpuFigure
// formats its number.
func byteFigure(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return cpuFigure(b) + " " + units[i]
}

// cpuFigure formats CPU µs per message (or another figure) with three
// significant digits below 100 (0.312, 2.45, 12.3) and as a whole number
// above.
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
