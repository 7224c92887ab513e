#!/usr/bin/env bash
# Capture benchmark: Patrol's sensor vs bpftrace, side by side, at fixed openat rates.
#
#   bench/capture/run.sh [seconds per rate] [rates...]      (root; release binaries in .build/release)
#
# Environment: PATROL_BIN (default .build/release), LOAD_THREADS (generator threads, default: the number of
# CPUs), SENSOR_ARGS (extra patrol-sensor options, e.g. "--queue-capacity 65536"), CAPTURERS (default
# "patrol bpftrace"; "patrol" alone compares sensor builds quickly).
#
# For each rate, openat-load issues openat(2) on missing paths for N seconds while one capturer runs. It
# stops at the deadline: on a machine that cannot keep up, "issued" is below rate x seconds and the achieved
# rate (issued / elapsed) says how far.
#   patrol:   patrol-sensor (--kinds open --dedup-window-ms 0: every event is sent on its own) delivering to a
#             patrol-collector over ipc://; captured = events the collector acked (sensor's shutdown log), less
#             the open events other processes made during an idle run of the same length.
#   bpftrace: bpftrace -e 'tracepoint:syscalls:sys_enter_openat { printf(...) }' writing one line per event
#             to a file; captured = lines naming the generator's paths.
# CPU is the capturer's own user+system time (from /proc/<pid>/stat) from just before the load until the
# capture has drained; kernel-side BPF time is charged to the generator, for both. Peak RSS is VmHWM.
# Prints a Markdown table (for docs/BENCHMARKS.md, "Capture").
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RATE=${1:-5}
shift || true
RATES=${*:-50000 100000 200000 400000}
BIN=${PATROL_BIN:-$PWD/.build/release}
LOAD_THREADS=${LOAD_THREADS:-$(nproc)}
SENSOR_ARGS=${SENSOR_ARGS:-}
CAPTURERS=${CAPTURERS:-patrol bpftrace}
# SCAN_TREE=<dir>: the sensor also runs a full malware scan of <dir> (fresh cache, shipped database) while the load
# runs, and a column says how many files it scanned during the load (issue 7: scanning must not starve capture).
# Without it, scanning is off, so the sensor measured is capture alone.
SCAN_TREE=${SCAN_TREE:-}
work=$(mktemp -d /tmp/patrol-capture-bench.XXXXXX)
pids=()
# Every child is stopped on any exit (error, ^C, timeout): TERM, then KILL for what is still there.
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# stop_pid <pid> <signal>: signal, wait up to 20 s, then KILL.
stop_pid() {
    kill "-$2" "$1" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
# load <rate>: runs the generator, time-limited; prints "issued N achieved_rate R".
load() {
    timeout -s KILL $((SECONDS_PER_RATE + 30)) "$work/openat-load" --threads "$LOAD_THREADS" "$1" "$SECONDS_PER_RATE"
}

[ "$(id -u)" = 0 ] || { echo "run as root (BPF)" >&2; exit 1; }
for b in patrol-sensor patrol-collector; do [ -x "$BIN/$b" ] || { echo "missing $BIN/$b (make release)" >&2; exit 1; }; done
case " $CAPTURERS " in *" bpftrace "*)
    command -v bpftrace >/dev/null || { echo "bpftrace not installed (apt-get install bpftrace)" >&2; exit 1; }
esac
cc -O2 -Wall -pthread -o "$work/openat-load" bench/capture/openat-load.c

hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
wait_for() { # file pattern timeout_s
    for _ in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

mkdir -p "$work/rules"
"$BIN/patrol-collector" --listen "ipc://$work/collector.sock" --store "$work/patrol.db" --rules "$work/rules" \
    --log-level warning > "$work/collector.log" 2>&1 &
collector=$!; pids+=("$collector")
sleep 1

# scanned_files <status address>: the sensor's count of files its scanner has read so far.
scanned_files() {
    curl -fsS "http://$1/metrics" | awk '/^patrol_sensor_scanner_files_scanned_total/ {n = $2} END {print n + 0}'
}

# run_patrol <rate>: prints "acked cpu_s rss_kib issued achieved files_scanned_during_load"
run_patrol() {
    local rate=$1 log="$work/sensor-$1.log" scan_args=(--scan-database off)
    if [ -n "$SCAN_TREE" ] && [ "$rate" -gt 0 ]; then
        # The first scheduled scan starts with the sensor; a fresh cache makes it a full scan.
        scan_args=(--scan-database rules/malware --scan-interval 86400 --scan-root "$SCAN_TREE"
            --scan-cache "$work/scan-cache-$rate" --metrics-listen 127.0.0.1:0)
    fi
    # shellcheck disable=SC2086 # SENSOR_ARGS is a list of options
    "$BIN/patrol-sensor" --collector "ipc://$work/collector.sock" --kinds open --dedup-window-ms 0 \
        --log-level info "${scan_args[@]}" $SENSOR_ARGS > "$log" 2>&1 &
    local sensor=$!; pids+=("$sensor")
    wait_for "$log" "live capture ready" 120
    local before issued=0 achieved=0 after rss status="" scanned_before=0 scanned_after=0
    if [ "${scan_args[0]}" != --scan-database ] || [ "${scan_args[1]}" != off ]; then
        wait_for "$log" "scan started" 60
        status=$(grep -o 'address=[0-9.:]*' "$log" | head -1 | cut -d= -f2)
        scanned_before=$(scanned_files "$status")
    fi
    before=$(cpu_ticks "$sensor")
    if [ "$rate" -gt 0 ]; then
        read -r _ issued _ achieved < <(load "$rate")
    else
        sleep "$SECONDS_PER_RATE"
    fi
    [ -n "$status" ] && scanned_after=$(scanned_files "$status")
    sleep 3 # drain
    after=$(cpu_ticks "$sensor"); rss=$(peak_rss_kib "$sensor")
    stop_pid "$sensor" TERM
    local acked
    acked=$(grep -o 'events_acked=[0-9]*' "$log" | tail -1 | cut -d= -f2)
    echo "${acked:-0} $(awk -v t=$((after - before)) -v hz="$hz" 'BEGIN{printf "%.2f", t/hz}') $rss $issued $achieved" \
        "$((scanned_after - scanned_before))"
}

# run_bpftrace <rate>: prints "captured cpu_s rss_kib issued lost"
run_bpftrace() {
    local rate=$1 out="$work/bpftrace-$1.out"
    bpftrace -e 'tracepoint:syscalls:sys_enter_openat { printf("%d %s %s\n", pid, comm, str(args->filename)); }' \
        > "$out" 2> "$work/bpftrace-$1.err" &
    local tracer=$!; pids+=("$tracer")
    wait_for "$out" "Attaching" 60
    local before issued achieved after rss
    before=$(cpu_ticks "$tracer")
    read -r _ issued _ achieved < <(load "$rate")
    sleep 3
    after=$(cpu_ticks "$tracer"); rss=$(peak_rss_kib "$tracer")
    stop_pid "$tracer" INT
    local captured lost
    captured=$(grep -c 'patrol-openat-load-missing' "$out" || true)
    lost=$( (grep -ho 'Lost [0-9]*' "$out" "$work/bpftrace-$1.err" || true) | awk '{s += $2} END {print s + 0}')
    echo "$captured $(awk -v t=$((after - before)) -v hz="$hz" 'BEGIN{printf "%.2f", t/hz}') $rss $issued $lost $achieved"
}

read -r noise _ _ _ _ < <(run_patrol 0)
echo "# capture benchmark: ${SECONDS_PER_RATE}s per rate, $LOAD_THREADS generator threads;" \
    "idle open events from other processes in ${SECONDS_PER_RATE}s: $noise; load: $(uptime)" >&2
scan_column=""; scan_rule=""
[ -n "$SCAN_TREE" ] && { scan_column=" files scanned during load |"; scan_rule="---|"; }
echo "| target rate/s | capturer | achieved rate/s | issued | captured | fraction | lost (reported) | CPU s per 100k | peak RSS MiB |$scan_column"
echo "|---|---|---|---|---|---|---|---|---|$scan_rule"
for rate in $RATES; do
    case " $CAPTURERS " in *" patrol "*)
    read -r acked cpu rss issued achieved scanned < <(run_patrol "$rate")
    captured=$((acked > noise ? acked - noise : 0)); [ "$captured" -gt "$issued" ] && captured=$issued
    drops=$(grep -o 'drops=\[[^]]*\]' "$work/sensor-$rate.log" | tail -1 | tr -d ' "' | sed 's/drops=//')
    extra=""; [ -n "$SCAN_TREE" ] && extra=" $scanned |"
    awk -v r="$rate" -v a="$achieved" -v i="$issued" -v c="$captured" -v cpu="$cpu" -v rss="$rss" -v d="$drops" \
        -v x="$extra" 'BEGIN{
        printf "| %d | patrol-sensor | %.0f | %d | %d | %.3f | %s | %.3f | %.1f |%s\n", r, a, i, c, c / i, d, cpu / (i / 100000), rss / 1024, x }'
    esac
    case " $CAPTURERS " in *" bpftrace "*)
    read -r captured cpu rss issued lost achieved < <(run_bpftrace "$rate")
    awk -v r="$rate" -v a="$achieved" -v i="$issued" -v c="$captured" -v cpu="$cpu" -v rss="$rss" -v lost="$lost" 'BEGIN{
        printf "| %d | bpftrace | %.0f | %d | %d | %.3f | %d | %.3f | %.1f |\n", r, a, i, c, c / i, lost, cpu / (i / 100000), rss / 1024 }'
    esac
done
