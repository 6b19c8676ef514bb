#!/usr/bin/env bash
# Regenerates the tables and charts of BENCHMARKS.md. For each section
# named it runs the measurements, turns their outputs into markdown with
# cmd/vsreport, and replaces that section's text between its markers
# (<!-- NAME:begin --> and <!-- NAME:end -->); the charts go to
# docs/charts/. Nothing is written unless every run of every section
# named succeeded: a failed run stops the script, naming the command.
#
# Usage: bench/report.sh [-n RUNS] [-d DURATION] [-o DIR] SECTION...
#        bench/report.sh all
#        bench/report.sh -h          the sections, what each runs and how long it takes
set -euo pipefail
cd "$(dirname "$0")/.."

REPORT=BENCHMARKS.md
ALL=(headline latency sizes keyed groups echo components membership state quorum lab sweep perturb)
# The scenarios of the lab section, under internal/netlab/scenarios/.
LAB_SCENARIOS=(partition-3-2 crash-coordinator loss-5 loss-5-flat-out join-during-partition mtu1500-small-datagrams)
# The numbers of groups of the groups section.
GROUP_COUNTS=(${GROUP_COUNTS:-1 10 100 1000 10000})
# The perturbation methods of the perturb section (stop, cpu and loss need
# root, cpu a writable cgroup).
PERTURB_METHODS=(${PERTURB_METHODS:-delay loss stop cpu})

usage() {
	cat <<'EOF'
Usage: bench/report.sh [-n RUNS] [-d DURATION] [-o DIR] SECTION...

Runs the measurements of each SECTION and rewrites its table in
BENCHMARKS.md (between <!-- SECTION:begin --> and <!-- SECTION:end -->),
and its charts in docs/charts/. "all" names every section. Nothing is
written unless every run succeeds.

  -n RUNS      runs of each measurement whose median is shown (default 3;
               also REPORT_RUNS): vsbench commands, slow-member target
               studies, fault-lab scenarios
  -d DURATION  measured time of each vsbench phase (default vsbench's 5s);
               the tables show it in the commands
  -o DIR       keep every raw output (JSON, logs) in DIR

Sections, and their time on 2 cores with 3 runs:
  headline    vsbench: fifo, causal, total, total+safe at 64 B; fifo at
              1 KiB; latency at 100,000 msgs/s; keyed fifo        ~6 min
  latency     vsbench: p50/p90/p99 of fifo, total, fifo+safe, total+safe
              at 100,000 and 300,000 msgs/s                      ~5 min
  sizes       vsbench 8 and 16 MiB; 16 MiB on real sockets; large
              messages under loss (go test)                      ~3 min
  keyed       vsbench --key-file at 64 B, 1 KiB, 100,000 msgs/s;
              the in-process keyed benchmark                     ~4 min
  groups      vsbench --groups N, N = 1, 10, 100, 1000, 10000 (GROUP_COUNTS
              picks others), 3 members, 64 B FIFO; a failed run is
              a result in the table                              ~9 min
  echo        sends from handlers (go test -bench Echo, 5 runs)  ~1 min
  components  go test -bench: engine, ring, udp, sequencer       ~3 min
  membership  vsbench crash (kill, pause, the sequencer); real-process
              join and rejoin tests                              ~12 min
  state       state transfer of 100 MiB, in process and between
              real processes                                     ~2 min
  quorum      vssim campaigns per quorum policy; fault-lab and engine
              tests (root)                                       ~5 min
  lab         vsbench lab: each scenario RUNS times (root)        ~6 min
  sweep       vsbench sweep --quick, its table and charts        ~3 min
  perturb     vsbench perturb: the targets (straight to 10%, RUNS
              runs per method) and a study over time per method, with
              charts (root for stop, cpu and loss; PERTURB_METHODS
              picks methods, default "delay loss stop cpu")      ~30 min
EOF
}

say() { printf '%s\n' "$*" >&2; }
die() {
	say "report.sh: $*"
	say "report.sh: nothing written to $REPORT or docs/charts"
	exit 1
}

RUNS=${REPORT_RUNS:-3}
DURATION=
KEEP=
while getopts "n:d:o:h" opt; do
	case $opt in
	n) RUNS=$OPTARG ;;
	d) DURATION=$OPTARG ;;
	o) KEEP=$OPTARG ;;
	h)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "-n $RUNS: want a positive number of runs"
[ $# -gt 0 ] || {
	usage >&2
	exit 2
}

sections=()
for s in "$@"; do
	if [ "$s" = all ]; then
		sections+=("${ALL[@]}")
		continue
	fi
	found=
	for a in "${ALL[@]}"; do [ "$a" = "$s" ] && found=1; done
	[ -n "$found" ] || die "no section '$s' (bench/report.sh -h lists them)"
	sections+=("$s")
done
# Each section once, in the order given.
mapfile -t sections < <(printf '%s\n' "${sections[@]}" | awk '!seen[$0]++')

for s in "${sections[@]}"; do
	case $s in
	lab | quorum)
		[ "$(id -u)" = 0 ] || die "section $s needs root (network namespaces): run it as root, or leave it out"
		;;
	esac
done

command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
work=$(mktemp -d)
children=() # member processes this script started
cleanup() {
	local p
	for p in "${children[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
raw=$work/raw
if [ -n "$KEEP" ]; then
	mkdir -p "$KEEP"
	raw=$(cd "$KEEP" && pwd)
fi
out=$work/out     # each section's markdown
charts=$work/charts # the charts and their data, copied to docs/charts at the end
bin=$work/bin
mkdir -p "$raw" "$out" "$charts" "$bin"

say "report.sh: building vsbench, vssim and vsreport"
go build -o "$bin/vsbench" ./cmd/vsbench
go build -o "$bin/vssim" ./cmd/vssim
go build -o "$bin/vsreport" ./cmd/vsreport
vsreport() { "$bin/vsreport" "$@"; }

# Every section's markers must be there before anything runs.
vsreport replace -check -file "$REPORT" "${sections[@]}" || die "fix the markers of $REPORT first"

MACHINE=$(vsreport machine)
section= # the section running

# run OUT CMD...: runs CMD, its standard output into $raw/OUT and its
# standard error into $raw/OUT.err; stops the script if it fails.
run() {
	local o=$1
	shift
	say "  $*"
	local rc=0
	"$@" >"$raw/$o" 2>"$raw/$o.err" || rc=$?
	if [ "$rc" != 0 ]; then
		tail -n 20 "$raw/$o.err" >&2
		die "section $section: exit status $rc from: $*"
	fi
}

# emit appends its arguments, one line each, to the section's markdown.
emit() { printf '%s\n' "$@" >>"$out/$section.md"; }

# render CMD...: runs a vsreport command and appends its markdown.
render() {
	local md
	md=$(vsreport "$@") || die "section $section: vsreport $1 failed (above)"
	emit "$md"
}

caption() {
	emit "_Regenerated by \`bench/report.sh $section\`$1, on $MACHINE._" ""
}

dur_args=()
[ -n "$DURATION" ] && dur_args=(--duration "$DURATION")
declare -A shown # a vsbench measurement's command, as the tables show it

# vsb ID ARGS...: RUNS runs of vsbench ARGS --json, into $raw/ID.N.json.
# A key file given as KEY is the run's key, shown as cohort.key.
vsb() {
	local id=$1
	shift
	local args=() showargs=()
	for a in "$@"; do
		if [ "$a" = KEY ]; then
			args+=("$work/cohort.key")
			showargs+=(cohort.key)
		else
			args+=("$a")
			showargs+=("$a")
		fi
	done
	shown[$id]="go run ./cmd/vsbench ${showargs[*]}${DURATION:+ --duration $DURATION} --json"
	for ((i = 1; i <= RUNS; i++)); do
		run "$id.$i.json" "$bin/vsbench" "${args[@]}" "${dur_args[@]}" --json
	done
}

# row ID FIGURE METRIC [ORDER [safe]]: a vsbench table's row.
row() {
	local id=$1 figure=$2 metric=$3 order=${4:-} safe=${5:-}
	local flags=(-figure "$figure" -metric "$metric" -command "${shown[$id]}")
	[ -n "$order" ] && flags+=(-order "$order")
	[ "$safe" = safe ] && flags+=(-safe)
	render vsbench "${flags[@]}" "$raw/$id".*.json
}

newkey() { head -c 32 /dev/urandom | base64 >"$work/cohort.key"; }

# gotest ID SHOWN ENV... -- PKG ARGS...: go test -json -count=1 with the
# environment given; SHOWN is the command as the tables show it.
gotest() {
	local id=$1 show=$2
	shift 2
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	shown[$id]=$show
	run "$id.json" env "${envs[@]}" go test "$@" -count=1 -json
}

# runs_text is "1 run" or "3 runs".
runs_text() {
	if [ "$RUNS" = 1 ]; then echo "1 run"; else echo "$RUNS runs"; fi
}

vsb_caption() {
	if [ "$RUNS" = 1 ]; then
		caption ": one run of each command (ratios are to the raw-UDP baseline of the same run)"
	else
		caption ": the run with the median figure of $RUNS runs of each command (each run's figure under \"each run\"; ratios are to the raw-UDP baseline of the same run)"
	fi
}

sec_headline() {
	newkey
	vsb h-orders --order fifo,causal,total
	vsb h-safe --order total --safe
	vsb h-1k --size 1024
	vsb h-lat --order fifo,total --rate 100000
	vsb h-keyed --key-file KEY
	vsb_caption
	emit "$(vsreport header vsbench)"
	row h-orders "FIFO throughput" msgs fifo
	row h-orders "causal throughput" msgs causal
	row h-orders "total throughput" msgs total
	row h-safe "total+safe throughput" msgs total safe
	row h-1k "FIFO throughput, 1 KiB" mb
	row h-lat "FIFO latency at a paced rate" latency fifo
	row h-lat "total latency at a paced rate" latency total
	row h-keyed "keyed FIFO throughput (AES-256-GCM)" keyed
}

sec_latency() {
	vsb l-100k --order fifo,total --rate 100000
	vsb l-100k-safe --order fifo,total --safe --rate 100000
	vsb l-300k --order fifo,total --rate 300000
	vsb l-300k-safe --order fifo,total --safe --rate 300000
	vsb_caption
	emit "$(vsreport header vsbench)"
	for r in 100k 300k; do
		row "l-$r" "latency" latency fifo
		row "l-$r" "latency" latency total
		row "l-$r-safe" "latency" latency fifo safe
		row "l-$r-safe" "latency" latency total safe
	done
}

sec_sizes() {
	vsb s-8m --size 8388608
	vsb s-16m --size 16777216
	gotest s-real "COHORT_LARGE_RUNS=20 go test ./engine -run TestMaxSizeMessagesOnLoopback -count=1 -v" \
		COHORT_LARGE_RUNS=20 -- ./engine -run '^TestMaxSizeMessagesOnLoopback$'
	gotest s-loss "go test ./engine -run TestLargeMessagesUnderLoss -count=1 -v" \
		-- ./engine -run '^TestLargeMessagesUnderLoss$'
	vsb_caption
	emit "$(vsreport header vsbench)"
	row s-8m "throughput, 8 MiB messages" mb
	row s-16m "throughput, 16 MiB messages" mb
	emit "" "Real sockets, three 16 MiB messages among 3 engines in one process, every payload checked, 20 runs:" ""
	render testlog -cut -command "${shown[s-real]}" "$raw/s-real.json"
	emit "" "Loss (in-memory network; the sender's datagrams dropped, 5% reordered): payload bytes sent again against bytes lost, \`${shown[s-loss]}\`:" ""
	render losstable "$raw/s-loss.json"
}

sec_keyed() {
	newkey
	vsb k-64 --key-file KEY
	vsb k-1k --key-file KEY --size 1024
	vsb k-lat --key-file KEY --rate 100000
	run k-bench.txt go test ./engine -run '^$' -bench '^BenchmarkKeyed$' -benchtime 2000000x -benchmem
	vsb_caption
	emit "$(vsreport header vsbench)"
	row k-64 "keyed / keyless, 64 B" keyed
	row k-1k "keyed / keyless, 1 KiB" keyed
	row k-lat "keyed / keyless latency" keyed-latency
	emit "" "In one process (3 engines, FIFO, one sender), keyless and keyed:" ""
	render gobench -command "go test ./engine -run '^\$' -bench BenchmarkKeyed -benchtime 2000000x -benchmem" -units msgs/s,allocs/op "$raw/k-bench.txt"
}

# sec_groups runs vsbench --groups N for each N in rounds (every N once,
# then again), so that each N's runs spread over the same stretch of
# time as one group's. A run that fails is recorded, with the last line
# it printed, as a row of the table: many groups may be more than the
# engine or the machine can take, and that is a figure too.
sec_groups() {
	local n i o rc why files=()
	for ((i = 1; i <= RUNS; i++)); do
		for n in "${GROUP_COUNTS[@]}"; do
			o=g-$n.$i.json
			say "  vsbench --groups $n${DURATION:+ --duration $DURATION} --json"
			rc=0
			"$bin/vsbench" --groups "$n" "${dur_args[@]}" --json >"$raw/$o" 2>"$raw/$o.err" || rc=$?
			if [ "$rc" != 0 ]; then
				why=$(grep -Ev '^(idle|baseline|engine) ' "$raw/$o.err" | tail -n 1 | tr -d '\\"[:cntrl:]')
				say "  (failed, a result: $why)"
				printf '{"failed":"%s","groups":%d}\n' "${why:-exit status $rc}" "$n" >"$raw/$o"
			fi
			files+=("$raw/$o")
		done
	done
	caption ": $(runs_text) of each number of groups, in rounds; each row the run with the median total"
	emit "\`go run ./cmd/vsbench --groups N${DURATION:+ --duration $DURATION} --json\`: 3 member processes, each in every one of N groups, member 0 sending 64 B FIFO messages unpaced to the groups in turn; \"of 1 group's\" is the row's total over the 1-group row's, both from this run of the script:" ""
	render groups "${files[@]}"
}

sec_echo() {
	run e-bench.txt go test ./engine -run '^$' -bench '^BenchmarkEcho$' -benchtime 1x -count 5
	caption ": median of 5 runs"
	render gobench -command "go test ./engine -run '^\$' -bench BenchmarkEcho -benchtime 1x -count 5" -units ratio,plain-msgs/s,echo-msgs/s "$raw/e-bench.txt"
}

sec_components() {
	run c-group.txt go test ./engine -run '^$' -bench '^BenchmarkGroup$' -benchtime 300000x -benchmem
	run c-order.txt go test ./engine -run '^$' -bench '^BenchmarkOrdering$' -benchtime 2000000x -count 3 -benchmem
	run c-ring.txt go test ./ring -run '^$' -bench . -benchmem
	run c-udp.txt go test ./udp -run '^$' -bench . -benchmem -count 5
	run c-seq.txt go test ./sequencer -run '^$' -bench . -benchmem
	caption ": medians of the runs of each benchmark"
	render gobench -command "go test ./engine -run '^\$' -bench BenchmarkGroup -benchtime 300000x -benchmem" -units msgs/s,allocs/op "$raw/c-group.txt"
	emit ""
	render gobench -command "go test ./engine -run '^\$' -bench BenchmarkOrdering -benchtime 2000000x -count 3 -benchmem" -units msgs/s,allocs/op "$raw/c-order.txt"
	emit ""
	render gobench -command "go test ./ring -run '^\$' -bench . -benchmem" -units ns/op,allocs/op "$raw/c-ring.txt"
	emit ""
	render gobench -command "go test ./udp -run '^\$' -bench . -benchmem -count 5" -units msgs/s,lost-% "$raw/c-udp.txt"
	emit ""
	render gobench -command "go test ./sequencer -run '^\$' -bench . -benchmem" -units ns/op,allocs/op "$raw/c-seq.txt"
}

# crash ID WHAT ARGS...: one vsbench crash command and its row.
crash() {
	local id=$1 what=$2
	shift 2
	run "$id.json" "$bin/vsbench" crash --json "$@"
	render crash -what "$what" -command "go run ./cmd/vsbench crash $*" "$raw/$id.json"
}

# check ID WHAT [-log]: a go test's row.
check() {
	render check -what "$2" -command "${shown[$1]}" ${3:+"$3"} -gotest "$raw/$1.json"
}

sec_membership() {
	caption ""
	emit "$(vsreport header checks)"
	crash m-kill "kill -9 of 1 of 5 members, each sending 2,000 msgs/s: kill to new view" --runs 5
	crash m-kill-full "the same, every member sending as fast as flow control allows" --runs 5 --rate 0
	crash m-pause "SIGSTOP of one member for 200 ms under full load" --runs 3 --pause 200ms --rate 0
	crash m-seq3 "kill -9 of the sequencer (the coordinator) of 3 members, every member sending total-order messages flat out" \
		--order total --victim coordinator --rate 0 --members 3 --runs 20
	crash m-seq5 "the same with 5 members" --order total --victim coordinator --rate 0 --runs 20
	gotest m-join "COHORT_LAB_RUNS=20 go test ./bench -run TestLabKillAndJoin -count=1 -v" \
		COHORT_LAB_RUNS=20 -- ./bench -run '^TestLabKillAndJoin$'
	check m-join "4 member processes with 1 MiB of state, kill -9 of one, a new one joins with state transfer; logs checked (guarantees, equal states)"
	gotest m-stress "COHORT_LAB_STRESS=1 COHORT_LAB_RUNS=20 go test ./bench -run TestLabJoinUnderLoad -count=1 -v -timeout 20m" \
		COHORT_LAB_STRESS=1 COHORT_LAB_RUNS=20 -- ./bench -run '^TestLabJoinUnderLoad$' -timeout 20m
	check m-stress "join under load: 5 members, FIFO 2,000 msgs/s each, 8 MiB of state; kill -9 of one at 5 s, a sixth joins at 8 s; no survivor may be named failed; logs checked"
	gotest m-rejoin "go test ./engine -run TestRejoinBacksOff -count=1 -v" -- ./engine -run '^TestRejoinBacksOff$'
	check m-rejoin "a member too slow for the group, evicted and rejoining: each rejoin waits at least RejoinBackoff after its eviction, the wait doubling up to RejoinBackoffMax"
	gotest m-inproc "go test ./engine -run TestCrashDetected -count=1 -v" -- ./engine -run '^TestCrashDetected$'
	check m-inproc "in process: a member closed, the others' time to the new view" -log
}

# state_run ID RATE LOAD: 3 member processes holding 100 MiB of state
# under load, a 4th joining 5 s later; its row, from the logs.
state_run() {
	local id=$1 rate=$2 load=$3
	local dir=$raw/$id
	mkdir -p "$dir"
	local base=$((20000 + RANDOM % 12000)) # below the ephemeral ports
	local seeds=127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))
	local common=(--seeds "$seeds" --group big --rate "$rate" --state-size 104857600)
	local pids=()
	say "  3 x vsbench member ${common[*]} --duration 14s; 5 s later a 4th, --duration 9s"
	for m in 1 2 3; do
		"$bin/vsbench" member --listen "127.0.0.1:$((base + m))" "${common[@]}" --duration 14s --log "$dir/m$m.log" 2>"$dir/m$m.err" &
		pids+=($!)
		children+=($!)
	done
	sleep 5
	"$bin/vsbench" member --listen "127.0.0.1:$((base + 4))" "${common[@]}" --duration 9s --log "$dir/m4.log" 2>"$dir/m4.err" &
	pids+=($!)
	children+=($!)
	local m=1 rc
	for p in "${pids[@]}"; do
		rc=0
		wait "$p" || rc=$?
		if [ "$rc" != 0 ]; then
			tail -n 20 "$dir/m$m.err" >&2
			die "section $section: member $m exited with status $rc (docs/LOGS.md lists the statuses)"
		fi
		m=$((m + 1))
	done
	children=()
	render state -load "$load" -joiner "$dir/m4.log" -member "$dir/m2.log" \
		-command "3 x go run ./cmd/vsbench member --listen 127.0.0.1:PORT ${common[*]/$seeds/P1,P2,P3} --duration 14s --log mN.log; 5 s later a 4th with --duration 9s"
}

sec_state() {
	gotest st-inproc "go test ./engine -run TestStateTransferLarge -count=1 -v" -- ./engine -run '^TestStateTransferLarge$'
	caption ""
	emit "In process (3 engines, 100 MiB of incompressible state compressed by the donor and streamed to a joiner while another member sends flat out):" ""
	render testlog -command "${shown[st-inproc]}" "$raw/st-inproc.json"
	emit "" "Between real processes (\`vsbench member\`, each logging every event; the figures come from the logs; a member's rate is measured over the 2 s before the joiner starts, from its start to its first view, and over the 2 s after):" ""
	emit "$(vsreport header state)"
	state_run st-paced 20000 "3 x 20,000 msgs/s offered"
	state_run st-full 0 "as fast as flow control allows"
}

# sim ID WHAT ARGS...: a vssim campaign and its row (its summary line).
sim() {
	local id=$1 what=$2
	shift 2
	run "$id.txt" "$bin/vssim" "$@"
	render check -what "$what" -command "go run ./cmd/vssim $*" -summary "$raw/$id.txt"
}

sec_quorum() {
	caption ""
	emit "$(vsreport header checks)"
	sim q-tb "simulator, every fault (crashes, restarts, joins, leaves, partitions, loss), tiebreaker" -quorum tiebreaker -seeds 1000
	sim q-tb-net "the same, network faults only" -quorum tiebreaker -faults network -seeds 1000
	sim q-ls "simulator, every fault, laststanding" -quorum laststanding -seeds 1000
	gotest q-split "sudo go test ./internal/netlab -run TestLabTieBreakerSplit -count=1 -v" -- ./internal/netlab -run '^TestLabTieBreakerSplit$'
	check q-split "fault lab: 4 members under tiebreaker split 2|2, then healed (partition-2-2-tiebreaker.lab): the half with the oldest member goes on, the other blocks, all 4 in one view after the heal"
	gotest q-pair "sudo go test ./internal/netlab -run TestLabTieBreakerPair -count=1 -v" -- ./internal/netlab -run '^TestLabTieBreakerPair$'
	check q-pair "fault lab: a pair under tiebreaker, the younger killed (pair-tiebreaker.lab): the oldest goes on alone"
	gotest q-last "sudo go test ./internal/netlab -run TestLabLastManStanding -count=1 -v" -- ./internal/netlab -run '^TestLabLastManStanding$'
	check q-last "fault lab: 5 members under laststanding, the youngest killed every 3 s (shrink-laststanding.lab): views of 4, 3, 2, then 1"
	gotest q-engine "go test ./engine -run TestTieBreakerPairSurvives -count=1 -v" -- ./engine -run '^TestTieBreakerPairSurvives$'
	check q-engine "in process: a pair, the younger closed: under tiebreaker the survivor goes on alone, under majority it blocks"
	gotest q-split-all "go test ./flush -run TestHasQuorum -count=1 -v" -- ./flush -run '^TestHasQuorum$'
	check q-split-all "every split of up to 6 members leaves at most one side with a quorum, under each policy"
}

sec_lab() {
	local files=() i
	local scen=()
	for s in "${LAB_SCENARIOS[@]}"; do scen+=("internal/netlab/scenarios/$s.lab"); done
	for ((i = 1; i <= RUNS; i++)); do
		run "lab.$i.json" "$bin/vsbench" lab --json -q "${scen[@]}"
		files+=("$raw/lab.$i.json")
	done
	caption ": $(runs_text) of every scenario, each cell listing the runs in order"
	emit "Command, as root: \`go build ./cmd/vsbench && ./vsbench lab --json ${scen[*]}\`" ""
	render lab "${files[@]}"
}

sec_sweep() {
	run sweep.txt "$bin/vsbench" sweep --quick --out "$work/sweep"
	caption ": one run per point"
	emit "\`go run ./cmd/vsbench sweep --quick --out docs/charts\`, one 2-second measurement per point, every ordering of a point on the same processes beside one raw-UDP baseline (ratios in brackets):" ""
	render sweep "$work/sweep/sweep.json"
	cp "$work/sweep"/* "$charts/"
}

# perturb OUT ARGS...: a slow-member study; exit status 1 when a target
# fails is a result, not a failure, unless vsbench perturb said why.
perturb() {
	local o=$1
	shift
	say "  vsbench perturb $*"
	local rc=0
	"$bin/vsbench" perturb "$@" >"$raw/$o" 2>"$raw/$o.err" || rc=$?
	if [ "$rc" != 0 ] && { [ "$rc" != 1 ] || grep -q '^vsbench perturb:' "$raw/$o.err"; }; then
		tail -n 20 "$raw/$o.err" >&2
		die "section $section: exit status $rc from: vsbench perturb $*"
	fi
}

sec_perturb() {
	local m i files
	caption ": the targets from $(runs_text) per method, the studies over time from one run each"
	emit "$(vsreport header perturb-targets)"
	for m in "${PERTURB_METHODS[@]}"; do
		files=()
		for ((i = 1; i <= RUNS; i++)); do
			perturb "p-target-$m.$i.txt" --method "$m" --steps 100,10 --hold 6s --out "$raw/p-target-$m.$i"
			files+=("$raw/p-target-$m.$i/perturb_$m.json")
		done
		render perturb-targets -command "go run ./cmd/vsbench perturb --method $m --steps 100,10 --hold 6s" "${files[@]}"
	done
	emit "" "$(vsreport header perturb-levels)"
	for m in "${PERTURB_METHODS[@]}"; do
		perturb "p-levels-$m.txt" --method "$m" --out "$charts"
		render perturb-levels -command "go run ./cmd/vsbench perturb --method $m --out docs/charts" "$charts/perturb_$m.json"
	done
	perturb p-rejoin.txt --policy evict --rejoin=true --out "$charts/rejoin"
	[ -f "$charts/rejoin/perturb-throughput_delay.png" ] || die "section $section: the rejoin study drew no chart"
}

start=$SECONDS
for section in "${sections[@]}"; do
	say "report.sh: section $section"
	: >"$out/$section.md"
	"sec_$section"
done

args=()
for s in "${sections[@]}"; do args+=("$s=$out/$s.md"); done
vsreport replace -file "$REPORT" "${args[@]}" || die "could not rewrite $REPORT"
if [ -n "$(ls -A "$charts")" ]; then
	cp -r "$charts"/. docs/charts/
	say "report.sh: charts and their data written to docs/charts/: $(cd "$charts" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')"
fi
say "report.sh: regenerated in $REPORT: ${sections[*]} ($(((SECONDS - start) / 60)) min)"
[ -z "$KEEP" ] || say "report.sh: raw outputs kept in $raw"
