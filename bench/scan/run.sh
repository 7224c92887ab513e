#!/usr/bin/env bash
# Scan benchmark: Patrol's tree scan vs clamscan -r vs clamd + clamdscan --multiscan, same tree, same database,
# one run.
#
#   bench/scan/run.sh [rounds]        (root; patrol-bench in .build/release; clamscan, clamd, clamdscan installed
#                                      by scripts/bootstrap)
#
# Environment: BENCH_SCAN_TREE (default /var/tmp/patrol-scan-tree, built once: >= 1 GB of binaries from /usr/bin
# and /usr/lib/x86_64-linux-gnu, text from /usr/share/doc, gzip archives from /usr/share/man and a tar.gz),
# BENCH_SCAN_DB (default rules/malware), BENCH_SCAN_THREADS (Patrol's pool and clamd's MaxThreads; default nproc),
# PATROL_BIN (default .build/release).
#
# The tree is read once before timing so every scanner finds it in the page cache: the figures compare scanning
# work, not the disk. Each round runs the three scanners back to back. Reported per scanner: wall seconds, files/s
# and MB/s (files and bytes as Patrol counts them: regular files below the size limit), CPU seconds of the scanner
# process (clamd's own, read from /proc), and peak RSS (VmHWM). All three use libclamav's default limits and
# every file parser; heuristic alerts are off in all three (Patrol's default; clamscan and clamd turn them on).
# Prints a Markdown table for docs/BENCHMARKS.md ("Scanning").
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-1}
TREE=${BENCH_SCAN_TREE:-/var/tmp/patrol-scan-tree}
DB=$(realpath "${BENCH_SCAN_DB:-rules/malware}")
THREADS=${BENCH_SCAN_THREADS:-$(nproc)}
BIN=${PATROL_BIN:-$PWD/.build/release}
work=$(mktemp -d /tmp/patrol-scan-bench.XXXXXX)
clamd_pid=
cleanup() {
    [ -n "$clamd_pid" ] && kill "$clamd_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if [ ! -f "$TREE/.complete" ]; then
    echo "== building the scan tree in $TREE" >&2
    rm -rf "$TREE"
    mkdir -p "$TREE"
    cp -a /usr/bin "$TREE/bin"
    cp -a /usr/lib/x86_64-linux-gnu "$TREE/lib"
    cp -a /usr/share/doc "$TREE/doc"
    cp -a /usr/share/man "$TREE/man"
    tar -czf "$TREE/python3.tar.gz" -C /usr/lib python3
    touch "$TREE/.complete"
fi
echo "== warming the page cache" >&2
find "$TREE" -type f -print0 | xargs -0 cat > /dev/null 2>&1 || true
tree_bytes=$(du -sb "$TREE" | cut -f1)
tree_files=$(find "$TREE" -type f | wc -l)

# clamd, configured like the other two: the same database, libclamav's default limits, one thread per core.
cat > "$work/clamd.conf" <<CONF
LocalSocket $work/clamd.sock
DatabaseDirectory $DB
Foreground yes
MaxThreads $THREADS
User root
HeuristicAlerts no
LogFile $work/clamd.log
CONF
clamd -c "$work/clamd.conf" &
clamd_pid=$!
for _ in $(seq 1 600); do [ -S "$work/clamd.sock" ] && break; sleep 0.1; done
[ -S "$work/clamd.sock" ] || { echo "clamd did not start: $(cat "$work/clamd.log")" >&2; exit 1; }

proc_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
proc_hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$1/status"; }

rows=()
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round: patrol-bench scan" >&2
    /usr/bin/time -f "%e %U %S %M" -o "$work/patrol.time" \
        "$BIN/patrol-bench" scan --tree "$TREE" --database "$DB" --threads "$THREADS" --niceness 0 \
        > "$work/patrol.out"
    cat "$work/patrol.out" >&2
    read -r p_wall p_user p_sys p_rss < "$work/patrol.time"
    p_files=$(sed -n 's/.* \([0-9]*\) scanned.*/\1/p' "$work/patrol.out" | head -1)
    p_mb=$(sed -n 's/.* \([0-9.]*\) MB\/s.*/\1/p' "$work/patrol.out" | head -1)

    echo "== round $round: clamscan -r" >&2
    /usr/bin/time -f "%e %U %S %M" -o "$work/clamscan.time" \
        clamscan -r -i --no-summary --heuristic-alerts=no -d "$DB" "$TREE" > "$work/clamscan.out" 2>&1 || true
    read -r c_wall c_user c_sys c_rss < "$work/clamscan.time"

    echo "== round $round: clamdscan --multiscan" >&2
    d_cpu0=$(proc_cpu "$clamd_pid")
    start=$(date +%s.%N)
    clamdscan -c "$work/clamd.conf" --multiscan -i --no-summary "$TREE" > "$work/clamdscan.out" 2>&1 || true
    d_wall=$(echo "$(date +%s.%N) - $start" | bc)
    d_cpu=$(echo "$(proc_cpu "$clamd_pid") - $d_cpu0" | bc)
    d_rss=$(proc_hwm "$clamd_pid")

    awk -v pw="$p_wall" -v pu="$p_user" -v ps="$p_sys" -v pr="$p_rss" -v pf="$p_files" \
        -v cw="$c_wall" -v cu="$c_user" -v cs="$c_sys" -v cr="$c_rss" \
        -v dw="$d_wall" -v dc="$d_cpu" -v dr="$d_rss" -v bytes="$tree_bytes" -v round="$round" 'BEGIN {
        mb = bytes / 1e6
        printf "| %d | Patrol TreeScan | %.1f | %.0f | %.1f | %.1f | %d |\n", round, pw, pf / pw, mb / pw, pu + ps, pr / 1024
        printf "| %d | clamscan -r | %.1f | %.0f | %.1f | %.1f | %d |\n", round, cw, pf / cw, mb / cw, cu + cs, cr / 1024
        printf "| %d | clamdscan --multiscan | %.1f | %.0f | %.1f | %.1f | %d |\n", round, dw, pf / dw, mb / dw, dc, dr
        printf "| %d | ratio Patrol/clamscan (wall) | %.2f× | | | | |\n", round, cw / pw
        printf "| %d | ratio Patrol/clamdscan (wall) | %.2f× | | | | |\n", round, dw / pw
    }' > "$work/rows"
    while IFS= read -r line; do rows+=("$line"); done < "$work/rows"
    echo "findings: patrol $(grep -o '[0-9]* found' "$work/patrol.out" | head -1), clamscan $(grep -c FOUND "$work/clamscan.out" || true), clamdscan $(grep -c FOUND "$work/clamdscan.out" || true)" >&2
done

echo
echo "Scan tree: $TREE, $tree_files files, $((tree_bytes / 1000000)) MB; database $DB; $THREADS threads;"
echo "$(uname -sr), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u +%FT%TZ)"
echo
echo "| round | scanner | wall s | files/s | MB/s | CPU s | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
