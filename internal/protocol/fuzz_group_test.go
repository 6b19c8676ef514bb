package protocol_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cohort-vs/cohort/internal/protocol"
	"github.com/cohort-vs/cohort/internal/wire"
)

// FuzzGroupReceive drives a whole member of a live group of three with
// arbitrary datagrams from arbitrary addresses, the members' own
// included: nothing may panic, and what the network can make a member
// keep (processes heard, addresses answered, relays, joiners) stays
// within its bound. The input is a run of datagrams, each a source byte
// (a member, a process of the group's seeds not in the view, or an
// outsider), a 2-byte length and the bytes.
func FuzzGroupReceive(f *testing.F) {
	for _, seed := range groupTraffic(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		w := newScenarioWorld(t)
		w.do("start a b c")
		w.do("stabilize")
		sources := []netip.AddrPort{
			w.procs["a"].addr, w.procs["b"].addr, w.procs["c"].addr,
			netip.MustParseAddrPort("10.9.0.4:7000"),  // the next process's address
			netip.MustParseAddrPort("192.0.2.1:9999"), // an outsider
		}
		target := w.procs["b"]
		for len(in) >= 3 && target.g != nil {
			src := sources[int(in[0])%len(sources)]
			n := min(int(binary.LittleEndian.Uint16(in[1:3])), len(in)-3)
			d := append([]byte(nil), in[3:3+n]...)
			in = in[3+n:]
			target.g.Receive(src, d)
			w.drain(target)
			w.tick()
		}
		for i := 0; i < 100; i++ {
			w.tick()
		}
		for _, p := range w.procs {
			if p.g != nil && p.g.NetworkState() > protocol.MaxNetworkState {
				t.Fatalf("%s keeps %d entries made by the network, bound %d", p.name, p.g.NetworkState(), protocol.MaxNetworkState)
			}
		}
	})
}

// groupTraffic records the datagrams member b receives while a group
// forms, carries messages, takes a joiner and loses a member, each as a
// one-datagram fuzz input from its real sender.
func groupTraffic(f *testing.F) [][]byte {
	w := newScenarioWorld(&testing.T{})
	index := map[string]byte{"a": 0, "b": 1, "c": 2, "d": 3}
	var seeds [][]byte
	seen := map[string]bool{}
	w.tap = func(from, to *scenarioProc, data []byte) {
		if to.name != "b" || len(seeds) >= 200 {
			return
		}
		// A variety, not every heartbeat: one per sender, datagram type,
		// control kind and size class.
		key := []byte{index[from.name], 0, 0, byte(len(data) / 256)}
		if len(data) > 3 {
			key[1] = data[3]
		}
		if len(data) > wire.HeaderSize && data[3] == wire.TypeControl {
			key[2] = data[wire.HeaderSize]
		}
		if seen[string(key)] {
			return
		}
		seen[string(key)] = true
		in := []byte{index[from.name], 0, 0}
		binary.LittleEndian.PutUint16(in[1:], uint16(len(data)))
		seeds = append(seeds, append(in, data...))
	}
	for _, cmd := range []string{"start a b c", "stabilize", "send a fifo hello", "send c safe world", "burst a 20", "join d", "stabilize", "crash c", "stabilize"} {
		w.do(cmd)
	}
	if len(seeds) == 0 {
		f.Fatal("no traffic recorded")
	}
	return seeds
}
