#!/usr/bin/env bash
# Runs medic's benchmarks and writes BENCHMARKS.md: the commands, the
# machine, and the figures each printed. Loopback only; each is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
out=BENCHMARKS.md
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)

run() { # title, package, benchmark regexp, benchtime, extra env...
  local title=$1 pkg=$2 re=$3 bt=$4; shift 4
  local cmd="go test -run '^\$' -bench '$re' -benchtime $bt $pkg"
  [ $# -gt 0 ] && cmd="$* $cmd"
  echo "== $title: $cmd" >&2
  {
    echo "## $title"
    echo
    echo '```'
    echo "\$ $cmd"
    env "$@" go test -run '^$' -bench "$re" -benchtime "$bt" "$pkg" 2>&1 | grep -Ev '^(goos|goarch|pkg|cpu|PASS|ok )' || true
    echo '```'
    echo
  } >>"$tmp"
}

run "Probe saturation: medic's HTTP prober vs a plain net/http loop (fresh connection per probe)" ./probes/ 'BenchmarkSaturation$' 20000x
run "Probe schedule: 10,000 targets at a 5 s interval" ./probes/ 'BenchmarkSchedule$' 1x MEDIC_BENCH_SCHEDULE_SECONDS=${MEDIC_BENCH_SCHEDULE_SECONDS:-60}
run "Detection: fault-to-mark latency (interval 1s, unhealthy_after 3) on the emulator" ./controller/ 'BenchmarkDetection$' 1x
run "Discovery: AWS calls per refresh" ./discovery/ 'BenchmarkRefreshCalls' 5x
run "Judge and guard: fleet simulation (60 instances, 10,000 hours at a 30 s interval; one bad instance)" ./healer/ 'BenchmarkFleetSimulation' 1x
if ls limits/*_test.go >/dev/null 2>&1 && grep -q 'func BenchmarkRefresh' limits/*_test.go; then
  run "Limits: one full refresh, 50 groups and 20 load balancers on the emulator" ./limits/ 'BenchmarkRefresh' 3x
fi
if ls statuspage/*_test.go >/dev/null 2>&1 && grep -q 'func BenchmarkRender' statuspage/*_test.go; then
  run "Status page: render with 10,000 targets" ./statuspage/ 'BenchmarkRender' 20x
fi
if grep -qs 'func Benchmark' alerts/*_test.go; then
  run "Notifications" ./alerts/ '.' 1x
fi

{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%dT%H:%MZ)."
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo),"\
       "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(go version | cut -d' ' -f3-4),"\
       "load average at start $load0."
  echo "These are shared 2-core machines: wall-clock figures vary with what else runs; ratios measured"
  echo "in the same run (saturation) are the steadier ones."
  echo
  cat <<'TARGETS'
Targets these figures are held to:

| figure | target |
|---|---|
| saturation: medic CPU-s per 1,000 probes ÷ plain net/http's (`cpu-ratio`) | ≤ 1.5 |
| saturation: medic probes/s ÷ plain net/http's (`rate-ratio`) | ≥ 0.8 |
| schedule: probes started within 250 ms of their slot (`%on-time`) | ≥ 99% |
| schedule: resident memory above idle per target (`rss-B/target`) | ≤ 10 KiB |
| detection: fault to mark at interval 1s, unhealthy_after 3 | ≤ 4 s (3 × 1 s + 1 s) |
| discovery: AWS calls per refresh below one page | independent of fleet size |
| simulation: false marks per 1,000 fleet-hours at 1/5/10/30% medic-side loss | 0 |
| simulation: probes to mark an instance failing 100% / 67% (unhealthy_after 3, no loss) | ≤ 4 / ≤ 15 |

TARGETS
  cat "$tmp"
} >"$out"
echo "wrote $out" >&2
