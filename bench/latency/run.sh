#!/usr/bin/env bash
# Exec-to-alert latency: the all-in-one collector (in-process live sensor, shipped rules, stdout sink) while
# exec-load runs a copy of `true` from /dev/shm (rule R1000) at a fixed rate. For each alert line on the
# collector's stdout, latency = the wall clock when the line was read - the exec's kernel timestamp (time_ns).
# Also reports the collector's CPU (sensor + collector in one process) in cores, and its peak RSS.
#
#   bench/latency/run.sh [execs per second] [seconds]        (root; release binaries in .build/release)
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-1000}
SECONDS_TO_RUN=${2:-20}
BIN=${PATROL_BIN:-$PWD/.build/release}
work=$(mktemp -d /tmp/patrol-latency-bench.XXXXXX)
collector=""
cleanup() { [ -n "$collector" ] && kill "$collector" 2>/dev/null; rm -rf "$work" /dev/shm/patrol-latency-true; }
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "run as root (BPF)" >&2; exit 1; }
[ -x "$BIN/patrol-collector" ] || { echo "missing $BIN/patrol-collector (make release)" >&2; exit 1; }
cc -O2 -Wall -o "$work/exec-load" bench/latency/exec-load.c
cp /bin/true /dev/shm/patrol-latency-true

# The reader stamps each line as it arrives; it must read unbuffered, so it is its own process on a fifo.
mkfifo "$work/alerts"; : > "$work/collector.log"
python3 - "$work/alerts" "$work/latencies" <<'PY' &
import json, sys, time
with open(sys.argv[1], "rb", buffering=0) as stream, open(sys.argv[2], "w") as out:
    pending = b""
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        arrived = time.time_ns()
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            try:
                alert = json.loads(line)
            except ValueError:
                continue
            if alert.get("rule_id") == "R1000" and "patrol-latency-true" in line.decode(errors="replace"):
                out.write(f"{arrived - alert['time_ns']}\n")
PY
reader=$!
"$BIN/patrol-collector" --all-in-one --rules rules --store "$work/patrol.db" --listen "ipc://$work/collector.sock" \
    --log-level info > "$work/alerts" 2> "$work/collector.log" &
collector=$!
for _ in $(seq 1 300); do grep -q "live capture ready" "$work/collector.log" && break; sleep 0.1; done
grep -q "live capture ready" "$work/collector.log" || { echo "collector did not start:" >&2; cat "$work/collector.log" >&2; exit 1; }

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$collector/stat"; }
before=$(ticks)
load=$("$work/exec-load" /dev/shm/patrol-latency-true "$RATE" "$SECONDS_TO_RUN")
sleep 2
after=$(ticks)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$collector/status")
kill -TERM "$collector"; wait "$collector" || true; collector=""
wait "$reader" || true

issued=$(echo "$load" | awk '{print $2}')
elapsed=$(echo "$load" | awk '{print $4}')
python3 - "$work/latencies" "$issued" "$elapsed" "$before" "$after" "$hz" "$rss" "$RATE" <<'PY'
import sys
path, issued, elapsed, before, after, hz, rss, rate = sys.argv[1:]
values = sorted(int(v) for v in open(path) if v.strip())
issued, elapsed = int(issued), float(elapsed)
cpu = (int(after) - int(before)) / int(hz)
def pct(p):
    return values[min(len(values) - 1, int(p / 100 * len(values)))] / 1e6 if values else float("nan")
print("| exec rate | execs | alerts seen | p50 | p90 | p99 | max | collector+sensor CPU | peak RSS |")
print("|---|---|---|---|---|---|---|---|---|")
print(f"| {rate}/s | {issued} | {len(values)} | {pct(50):.1f} ms | {pct(90):.1f} ms | {pct(99):.1f} ms | "
      f"{(values[-1] / 1e6 if values else float('nan')):.1f} ms | {cpu / elapsed:.3f} cores ({cpu:.1f} CPU-s over {elapsed:.1f} s) | "
      f"{int(rss) // 1024} MiB |")
PY
