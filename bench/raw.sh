#!/usr/bin/env bash
# Port scans of 127.0.0.1 ports 1-65535, side by side in one run:
#   `sockit check` (connect scan)  vs  `nmap -sT`
#   `sockit check --syn` (raw SYN) vs  `nmap -sS`
# Each tool runs RUNS times, interleaved; the script prints every wall time, the medians,
# the ratios sockit/nmap, and checks that all four found the same open ports.
# Three listeners of this script's own (python3) are open during the run, besides whatever
# the machine listens on.
#
# Needs root (raw sockets) and nmap (apt-get install -y nmap).
# Usage: sudo bench/raw.sh            RUNS=5 OUT=bench/raw.txt bench/raw.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
OUT=${OUT:-}
HOST=127.0.0.1
PORTS=1-65535

[ -n "${SOCKIT:-}" ] || cargo build --release -q -p sockit-cli
SOCKIT=${SOCKIT:-target/release/sockit}
command -v nmap >/dev/null || { echo "nmap not found (apt-get install -y nmap)" >&2; exit 1; }

python3 -c '
import socket, time
ls = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128); ls.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ls), flush=True)
time.sleep(3600)
' >/tmp/sockit-raw-bench.$$ &
LISTENERS=$!
trap 'kill $LISTENERS 2>/dev/null; rm -f /tmp/sockit-raw-bench.$$ /tmp/sockit-raw-bench.$$.*' EXIT
for _ in $(seq 50); do [ -s /tmp/sockit-raw-bench.$$ ] && break; sleep 0.1; done

emit() {
    echo "$*"
    if [ -n "$OUT" ]; then echo "$*" >>"$OUT"; fi
}
[ -z "$OUT" ] || : >"$OUT"

# Runs a scan; prints "SECONDS OPEN_PORTS" (open ports comma-separated, ascending).
scan() {
    local kind=$1 start end open
    start=$(date +%s.%N)
    case $kind in
        sockit-connect) open=$("$SOCKIT" check $HOST $PORTS 2>/dev/null | awk -F/ '{print $1}') || true ;;
        sockit-syn) open=$("$SOCKIT" check $HOST $PORTS --syn 2>/dev/null | awk -F/ '{print $1}') || true ;;
        nmap-sT) open=$(nmap -n -Pn -sT -p $PORTS $HOST -oG - | grep -o '[0-9]*/open' | cut -d/ -f1) ;;
        nmap-sS) open=$(nmap -n -Pn -sS -p $PORTS $HOST -oG - | grep -o '[0-9]*/open' | cut -d/ -f1) ;;
    esac
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc -l) $(echo "$open" | sort -n | paste -sd, -)"
}

KINDS="sockit-connect nmap-sT sockit-syn nmap-sS"
declare -A times found
emit "# raw.sh: $PORTS on $HOST, RUNS=$RUNS, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
emit "# our listeners: $(cat /tmp/sockit-raw-bench.$$)"
for run in $(seq "$RUNS"); do
    for kind in $KINDS; do
        read -r secs open < <(scan "$kind")
        times[$kind]="${times[$kind]:-} $secs"
        if [ -n "${found[$kind]:-}" ] && [ "${found[$kind]}" != "$open" ]; then
            emit "# WARNING: $kind found different ports in run $run: $open"
        fi
        found[$kind]=$open
        emit "run $run  $(printf '%-15s' "$kind") $(printf '%.3f' "$secs") s  open: $open"
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med
for kind in $KINDS; do med[$kind]=$(echo "${times[$kind]}" | median); done
emit ""
emit "| scan of $PORTS on $HOST | median wall time | vs nmap |"
emit "|---|---|---|"
emit "| sockit check (connect) | $(printf '%.3f' "${med[sockit-connect]}") s | $(printf '%.2f' "$(echo "${med[sockit-connect]} / ${med[nmap-sT]}" | bc -l)")× |"
emit "| nmap -sT | $(printf '%.3f' "${med[nmap-sT]}") s | 1.00× |"
emit "| sockit check --syn | $(printf '%.3f' "${med[sockit-syn]}") s | $(printf '%.2f' "$(echo "${med[sockit-syn]} / ${med[nmap-sS]}" | bc -l)")× |"
emit "| nmap -sS | $(printf '%.3f' "${med[nmap-sS]}") s | 1.00× |"
same=yes
for kind in $KINDS; do [ "${found[$kind]}" = "${found[nmap-sT]}" ] || same=no; done
emit ""
emit "same open ports found by all four: $same (${found[nmap-sT]})"
