#!/usr/bin/env bash
# Connect scan of 127.0.0.1 ports 1-65535: `sockit check` against `nmap -sT -T4`, RUNS
# (5) runs of each, interleaved (sockit, nmap, sockit, nmap, ...), so that both see the
# same moments of the machine. Prints every run, then min / median / max wall time and
# CPU time (user+system) of each, and the ratio of the medians, as a markdown table.
# Three listeners of this script's own (python3) are open during the run; every run must
# find the same open ports, or the script fails.
#
# Needs nmap (apt-get install -y nmap); no root.
# Usage: bench/scan.sh            RUNS=9 OUT=/tmp/scan.md bench/scan.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

RUNS=${RUNS:-5}
OUT=${OUT:-}
command -v nmap >/dev/null || { echo "nmap not found (apt-get install -y nmap)" >&2; exit 1; }
if [ -z "${SOCKIT:-}" ]; then
    cargo build --release --locked -q -p sockit-cli
    SOCKIT=${CARGO_TARGET_DIR:-$ROOT/target}/release/sockit
fi

TMP=$(mktemp -d)
python3 -c '
import socket, time
ls = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128); ls.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ls), flush=True)
time.sleep(3600)
' >"$TMP/ports" &
LISTENERS=$!
trap 'kill $LISTENERS 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do [ -s "$TMP/ports" ] && break; sleep 0.1; done
read -r -a OURS <"$TMP/ports"

emit() {
    echo "$*"
    if [ -n "$OUT" ]; then echo "$*" >>"$OUT"; fi
}
[ -z "$OUT" ] || : >"$OUT"

# measure NAME CMD...: runs CMD once; appends "wall cpu" (seconds) to $TMP/NAME and
# leaves the open ports it found, one per line, in $TMP/NAME.open.
measure() {
    local name=$1 start end
    shift
    start=$(date +%s%N)
    /usr/bin/time -f "%U %S" -o "$TMP/time" "$@" >"$TMP/out" 2>/dev/null || true
    end=$(date +%s%N)
    awk -v w=$(((end - start) / 1000)) '{ printf "%.3f %.3f\n", w / 1e6, $1 + $2 }' "$TMP/time" >>"$TMP/$name"
    grep -oE '^[0-9]+/tcp +open' "$TMP/out" | cut -d/ -f1 | sort -n >"$TMP/$name.open"
    for p in "${OURS[@]}"; do
        grep -qx "$p" "$TMP/$name.open" || { echo "$name missed open port $p" >&2; exit 1; }
    done
}

for i in $(seq "$RUNS"); do
    measure sockit "$SOCKIT" check 127.0.0.1 1-65535
    measure nmap nmap -sT -T4 -p1-65535 -n 127.0.0.1
    echo "run $i: sockit $(tail -1 "$TMP/sockit") / nmap $(tail -1 "$TMP/nmap") (wall s, cpu s)" >&2
    cmp -s "$TMP/sockit.open" "$TMP/nmap.open" ||
        echo "note: open ports differ in run $i (a listener came or went between the two)" >&2
done

# stats FILE COLUMN: "min median max" of one column.
stats() {
    cut -d' ' -f"$2" "$1" | sort -n | awk '{ v[NR] = $1 } END { printf "%s %s %s", v[1], v[int((NR + 1) / 2)], v[NR] }'
}
read -r smin smed smax <<<"$(stats "$TMP/sockit" 1)"
read -r nmin nmed nmax <<<"$(stats "$TMP/nmap" 1)"
read -r scmin scmed scmax <<<"$(stats "$TMP/sockit" 2)"
read -r ncmin ncmed ncmax <<<"$(stats "$TMP/nmap" 2)"

emit "#### scan.sh: connect scan of 127.0.0.1:1-65535, $RUNS interleaved runs each"
emit ""
emit "- $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; kernel $(uname -r); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
emit "- $(nmap --version | head -1)"
emit ""
emit "| tool | command | wall min | wall median | wall max | CPU min | CPU median | CPU max |"
emit "|---|---|--:|--:|--:|--:|--:|--:|"
emit "| sockit | \`sockit check 127.0.0.1 1-65535\` | $smin s | $smed s | $smax s | $scmin s | $scmed s | $scmax s |"
emit "| nmap | \`nmap -sT -T4 -p1-65535 -n 127.0.0.1\` | $nmin s | $nmed s | $nmax s | $ncmin s | $ncmed s | $ncmax s |"
emit ""
emit "sockit / nmap: wall median $(awk -v a="$smed" -v b="$nmed" 'BEGIN { printf "%.2f", a / b }')×, worst sockit run vs best nmap run $(awk -v a="$smax" -v b="$nmin" 'BEGIN { printf "%.2f", a / b }')×, CPU median $(awk -v a="$scmed" -v b="$ncmed" 'BEGIN { printf "%.2f", a / b }')×"
