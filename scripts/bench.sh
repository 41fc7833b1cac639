#!/usr/bin/env bash
# Runs medic's benchmarks and writes BENCHMARKS.md: the commands, the
# machine, and the figures each printed. Loopback only; each is bounded.
# scripts/bench.sh        every benchmark (make bench)
# scripts/bench.sh soak   the one-hour soak only (make soak; MEDIC_SOAK_DURATION=10m to shorten)
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

# The headline: the built binary, measured from outside beside the plain
# loop (cmd/medic-bench, cmd/medic-plainloop). bin/ is built first.
whole() { # title, medic-bench arguments...
  local title=$1; shift
  local cmd="bin/medic-bench $*"
  echo "== $title: $cmd" >&2
  {
    echo "## $title"
    echo
    echo '```'
    echo "\$ $cmd"
    bin/medic-bench "$@" 2>&1 || echo "(failed: exit $?)"
    echo '```'
    echo
  } >>"$tmp"
}

go build -o bin/medic ./cmd/medic
go build -o bin/medic-plainloop ./cmd/medic-plainloop
go build -o bin/medic-bench ./cmd/medic-bench

if [ "${1:-}" = soak ]; then
  # make soak: one hour by default; MEDIC_SOAK_DURATION=10m for a short one.
  whole "Soak: 5,000 targets, targets coming and going" soak -targets 5000 -duration "${MEDIC_SOAK_DURATION:-1h}" -churn 1m
  cat "$tmp"
  exit 0
fi

whole "Saturation, fresh connection per probe: medic vs a plain net/http loop, 10,240 targets" saturation -targets 10240
whole "Saturation, keep-alive: medic vs a keep-alive plain loop, 10,240 targets at 250 ms (at 1 s medic's schedule, not the CPU, would cap it)" saturation -targets 10240 -keep-alive -interval 250ms
whole "Schedule: 50,000 targets at a 10 s interval for 120 s" schedule -targets 50000 -listeners 50000 -interval 10s -duration "${MEDIC_BENCH_SCHEDULE_DURATION:-120s}"
whole "Scale: 1,000 / 10,000 / 50,000 targets at the same probe rate, each size twice (in order, then in reverse)" scale -sizes 1000,10000,50000 -rate 1000 -measure 30s

echo "# Diagnostics: in-process benchmarks of single packages (not the headline)" >>"$tmp"
echo >>"$tmp"
run "Probe saturation in-process: medic's HTTP prober vs a plain net/http loop" ./probes/ 'BenchmarkSaturation$' 20000x
run "Probe schedule in-process: 10,000 targets at a 5 s interval" ./probes/ 'BenchmarkSchedule$' 1x MEDIC_BENCH_SCHEDULE_SECONDS=${MEDIC_BENCH_SCHEDULE_SECONDS:-60}
run "Scrape in-process: /metrics of 50,000 probed targets" ./probes/ 'BenchmarkScrape$' 3x
run "Detection: fault-to-mark latency (interval 1s, unhealthy_after 3) on the emulator" ./controller/ 'BenchmarkDetection$' 1x
run "Discovery: AWS calls per refresh" ./discovery/ 'BenchmarkRefreshCalls' 5x
run "Judge and guard: fleet simulation (60 instances, 10,000 hours at a 30 s interval; one bad instance)" ./healer/ 'BenchmarkFleetSimulation' 1x
run "Latency outliers: detection delay and false marks (pure detector, no network)" ./healer/ 'BenchmarkLatencyOutlier' 1x
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
  echo "in the same run (saturation) are the steadier ones. The headline figures are of the built binary"
  echo "(bin/medic), measured from outside by cmd/medic-bench: CPU from /proc/PID/stat, memory from"
  echo "/proc/PID/status, probes from medic's /metrics and the plain loop's /count. Loopback only."
  echo
  cat <<'TARGETS'
Targets these figures are held to:

| figure | target |
|---|---|
| saturation (binary, 10,240 targets, fresh and keep-alive): medic probes/s ÷ the plain loop's | ≥ 0.90 |
| saturation: medic CPU ms per probe ÷ the plain loop's | ≤ 1.20 |
| schedule (binary, 50,000 targets, 10 s, 120 s): probes started within 250 ms of their slot | ≥ 99% |
| schedule: resident memory above idle per target | ≤ 4 KiB |
| schedule: one `/metrics` scrape / the status page | ≤ 500 ms / ≤ 200 ms |
| scale (1k/10k/50k targets, same probe rate): CPU per probe and memory per target, max ÷ min | ≤ 1.20 |
| soak (make soak, 5,000 targets, 1 h): RSS and goroutine slopes, series after churn | flat |
| detection: fault to mark at interval 1s, unhealthy_after 3 | ≤ 4 s (3 × 1 s + 1 s) |
| discovery: AWS calls per refresh below one page | independent of fleet size |
| simulation: false marks per 1,000 fleet-hours at 1/5/10/30% medic-side loss | 0 |
| simulation: probes to mark an instance failing 100% / 67% (unhealthy_after 3, no loss) | ≤ 4 / ≤ 15 |

TARGETS
  # What the profiles showed, and the summary of the latest figures: kept
  # by hand in docs/performance.md, so that a run does not lose them.
  sed 's/^#/##/' docs/performance.md
  echo
  echo "# Figures of this run"
  echo
  cat "$tmp"
} >"$out"
echo "wrote $out" >&2
