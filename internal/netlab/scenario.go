package netlab

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cohort-vs/cohort/bench"
	"github.com/cohort-vs/cohort/engine"
)

// A Scenario is a fault lab run read from a text file: settings, then
// steps at times counted from the moment every initial member is in
// one view. The format (docs/LAB.md has the reference):
//
//	# 5 members, a 3|2 partition, then a heal
//	members 5
//	rate 200
//	at 2s partition 0,1,2 | 3,4
//	at 6s heal
//	end at 12s
//
// Members are numbered from 0 in the order they start: the initial
// ones, then one per join step. A member may be written 3 or m3.
type Scenario struct {
	Name      string // the file's base name, without .lab
	Members   int    // initial members
	Order     string // ordering the members send with
	Safe      bool
	Rate      float64 // messages/s each member sends; 0: as fast as flow control allows
	Size      int     // message size in bytes
	StateSize int     // application state padding, moved by state transfer
	// LeaveTimeout bounds each member's graceful leave at the end.
	LeaveTimeout time.Duration
	MTU          int // of every link
	MaxDatagram  int // the members' engine MaxDatagram; 0: the engine's default
	// Quorum is the members' quorum policy (engine.ParseQuorum's names);
	// QuorumWindow its window for laststanding, 0: the engine's default.
	Quorum       string
	QuorumWindow time.Duration
	Steps        []Step // in time order
	End          time.Duration
}

// Step kinds.
const (
	StepPartition = "partition"
	StepHeal      = "heal"
	StepLoss      = "loss"
	StepCrash     = "crash"
	StepJoin      = "join"
)

// Coordinator as Step.Member: the coordinator (rank 0) of the newest
// view at the time of the step.
const Coordinator = -1

// AllLinks as Step.Member of a loss step: every link.
const AllLinks = -1

// A Step is one line "at TIME KIND ARGS".
type Step struct {
	At      time.Duration
	Kind    string
	Sides   [][]int // partition
	Member  int     // loss: the link (or AllLinks); crash: the victim (or Coordinator); join: the new member
	Percent float64 // loss
	Line    int     // in the file
}

// String is the step as written in a file.
func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "at %v %s", s.At, s.Kind)
	switch s.Kind {
	case StepPartition:
		for i, side := range s.Sides {
			if i > 0 {
				b.WriteString(" |")
			}
			b.WriteString(" ")
			for j, m := range side {
				if j > 0 {
					b.WriteString(",")
				}
				b.WriteString(strconv.Itoa(m))
			}
		}
	case StepLoss:
		if s.Member != AllLinks {
			fmt.Fprintf(&b, " m%d", s.Member)
		}
		fmt.Fprintf(&b, " %v%%", s.Percent)
	case StepCrash:
		if s.Member == Coordinator {
			b.WriteString(" coordinator")
		} else {
			fmt.Fprintf(&b, " m%d", s.Member)
		}
	case StepJoin:
		fmt.Fprintf(&b, " (m%d)", s.Member)
	}
	return b.String()
}

// Nodes is how many members the scenario runs in all: the initial ones
// and the joiners.
func (s *Scenario) Nodes() int {
	n := s.Members
	for _, st := range s.Steps {
		if st.Kind == StepJoin {
			n++
		}
	}
	return n
}

// ParseScenarioFile reads a scenario file.
func ParseScenarioFile(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	name := path[strings.LastIndex(path, "/")+1:]
	return ParseScenario(strings.TrimSuffix(name, ".lab"), f)
}

// ParseScenario reads a scenario; name is what reports call it. An
// error names the line and what is wrong with it.
func ParseScenario(name string, r io.Reader) (*Scenario, error) {
	s := &Scenario{Name: name, Members: 5, Order: "fifo", Rate: 200, Size: 64, LeaveTimeout: bench.DefaultMemberConfig().LeaveTimeout, MTU: DefaultMTU}
	sc := bufio.NewScanner(r)
	line := 0
	endLine := 0
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...))
	}
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		arg := func() (string, error) {
			if len(f) != 2 {
				return "", fail("%s takes one value, got %d", f[0], len(f)-1)
			}
			return f[1], nil
		}
		switch f[0] {
		case "members", "size", "state-size", "mtu", "max-datagram":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fail("%s %q: want a whole number", f[0], v)
			}
			switch f[0] {
			case "members":
				if n < 1 || n > 32 {
					return nil, fail("members %d: want 1 to 32", n)
				}
				s.Members = n
			case "size":
				s.Size = n
			case "state-size":
				s.StateSize = n
			case "max-datagram":
				if n < 512 || n > 65507 {
					return nil, fail("max-datagram %d: want 512 to 65507 bytes", n)
				}
				s.MaxDatagram = n
			case "mtu":
				if n < 576 || n > 65535 {
					return nil, fail("mtu %d: want 576 to 65535", n)
				}
				s.MTU = n
			}
		case "rate":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			r, err := strconv.ParseFloat(v, 64)
			if err != nil || r < 0 {
				return nil, fail("rate %q: want messages/s, 0 or more (0: as fast as flow control allows)", v)
			}
			s.Rate = r
		case "order":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			s.Order, s.Safe = v, false
			if o, ok := strings.CutSuffix(v, "+safe"); ok {
				s.Order, s.Safe = o, true
			}
			if _, err := bench.ParseOrder(s.Order, s.Safe); err != nil {
				return nil, fail("%v", err)
			}
		case "quorum":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			if _, err := engine.ParseQuorum(v); err != nil {
				return nil, fail("%v", err)
			}
			s.Quorum = v
		case "quorum-window":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fail("quorum-window %q: want a positive duration such as 1s", v)
			}
			s.QuorumWindow = d
		case "leave-timeout":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fail("leave-timeout %q: want a positive duration such as 5s", v)
			}
			s.LeaveTimeout = d
		case "end":
			if len(f) != 3 || f[1] != "at" {
				return nil, fail("want \"end at TIME\"")
			}
			d, err := parseTime(f[2])
			if err != nil {
				return nil, fail("%v", err)
			}
			s.End, endLine = d, line
		case "at":
			if len(f) < 3 {
				return nil, fail("want \"at TIME STEP ...\"")
			}
			d, err := parseTime(f[1])
			if err != nil {
				return nil, fail("%v", err)
			}
			st := Step{At: d, Kind: f[2], Line: line}
			args := f[3:]
			switch st.Kind {
			case StepHeal, StepJoin:
				if len(args) > 0 {
					return nil, fail("%s takes no arguments, got %q", st.Kind, strings.Join(args, " "))
				}
			case StepPartition:
				for _, side := range strings.Split(strings.Join(args, ""), "|") {
					var ms []int
					for _, m := range strings.Split(side, ",") {
						i, err := parseMember(m)
						if err != nil {
							return nil, fail("partition: %v", err)
						}
						ms = append(ms, i)
					}
					st.Sides = append(st.Sides, ms)
				}
				if len(st.Sides) < 2 {
					return nil, fail("partition needs two sides or more, separated by |")
				}
			case StepLoss:
				st.Member = AllLinks
				if len(args) == 2 {
					i, err := parseMember(args[0])
					if err != nil {
						return nil, fail("loss: %v", err)
					}
					st.Member, args = i, args[1:]
				}
				if len(args) != 1 {
					return nil, fail("want \"loss N%%\" (every link) or \"loss mK N%%\"")
				}
				p, err := strconv.ParseFloat(strings.TrimSuffix(args[0], "%"), 64)
				if err != nil || !strings.HasSuffix(args[0], "%") || validPercent(p) != nil {
					return nil, fail("loss %q: want a percentage from 0%% to 100%%", args[0])
				}
				st.Percent = p
			case StepCrash:
				if len(args) != 1 {
					return nil, fail("want \"crash coordinator\" or \"crash mK\"")
				}
				if args[0] == "coordinator" {
					st.Member = Coordinator
				} else {
					i, err := parseMember(args[0])
					if err != nil {
						return nil, fail("crash: %v", err)
					}
					st.Member = i
				}
			default:
				return nil, fail("unknown step %q: want partition, heal, loss, crash or join", st.Kind)
			}
			s.Steps = append(s.Steps, st)
		default:
			return nil, fail("unknown line %q: want members, order, rate, size, state-size, leave-timeout, mtu, at or end", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(s.Steps, func(i, j int) bool { return s.Steps[i].At < s.Steps[j].At })
	next := s.Members
	for i := range s.Steps {
		if s.Steps[i].Kind == StepJoin {
			s.Steps[i].Member = next
			next++
		}
	}
	// Members named must exist; a partition must place each exactly once.
	nodes := s.Nodes()
	for _, st := range s.Steps {
		line = st.Line
		switch st.Kind {
		case StepLoss, StepCrash:
			if st.Member >= nodes {
				return nil, fail("m%d: the scenario has members 0 to %d", st.Member, nodes-1)
			}
		case StepPartition:
			seen := make([]bool, nodes)
			for _, side := range st.Sides {
				for _, m := range side {
					if m >= nodes {
						return nil, fail("m%d: the scenario has members 0 to %d (joiners included)", m, nodes-1)
					}
					if seen[m] {
						return nil, fail("m%d is on two sides", m)
					}
					seen[m] = true
				}
			}
			for m, ok := range seen {
				if !ok {
					return nil, fail("m%d is on no side: a partition places every member (0 to %d, joiners included)", m, nodes-1)
				}
			}
		}
	}
	last := time.Duration(0)
	if len(s.Steps) > 0 {
		last = s.Steps[len(s.Steps)-1].At
	}
	switch {
	case endLine == 0:
		line = 0
		return nil, fmt.Errorf("%s: no \"end at TIME\" line", name)
	case s.End <= last:
		line = endLine
		return nil, fail("end at %v is not after the last step (at %v)", s.End, last)
	}
	return s, nil
}

// parseTime reads a step's time: a Go duration (2s, 1500ms), 0 or more.
func parseTime(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("time %q: want a duration such as 2s or 1500ms", s)
	}
	return d, nil
}

// parseMember reads a member number: 3 or m3.
func parseMember(s string) (int, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.Atoi(strings.TrimPrefix(s, "m"))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("member %q: want a number such as 3 or m3", s)
	}
	return n, nil
}
