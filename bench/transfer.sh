#!/usr/bin/env bash
# Verified transfer against raw copies, side by side in one run, on loopback.
#
# One file (2 GiB of random bytes; 1 GiB if the disk is short) goes through
#   sockit send/recv --checksum blake3, and --checksum sha256  (verified, fsynced, renamed)
#   socat and nc (OpenBSD)                                     (raw, into a file, no check)
#   socat followed by `sync FILE`                              (raw, made durable like ours)
#   iperf3, one stream                                         (memory to memory, no file)
# with the receiver pinned to CPU 0 and the sender to CPU 1 (taskset). Each row is the
# best of $REPS rounds (the methods take turns in each round), timed from the sender's
# start until both sides have exited; the source file is in the page cache beforehand. Prints a markdown table: GB/s (10^9 bytes
# per second), the ratio to socat, and the CPU time each side used.
#
# Usage: bench/transfer.sh            # files under /tmp (BENCH_DIR to change)
#        BENCH_DIR=/dev/shm bench/transfer.sh   # tmpfs: takes the disk out of the picture
# Env:   SIZE_MIB (default 2048), REPS (default 3), SOCKIT (default target/release/sockit),
#        NICE (default 0; e.g. -10 to keep other work on a shared machine out of the way)
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp}
REPS=${REPS:-3}
# Scheduling priority of both sides (`nice` value; negative needs root): on a machine
# shared with other work, e.g. NICE=-10 keeps their noise out of the figures.
NICE=${NICE:-0}
R0="nice -n $NICE taskset -c 0"
S1="nice -n $NICE taskset -c 1"
SOCKIT=${SOCKIT:-target/release/sockit}
WORK="$BENCH_DIR/sockit-bench-transfer.$$"

if [[ -z "${SOCKIT_NO_BUILD:-}" ]]; then
    cargo build --release --locked -p sockit-cli --quiet
fi
for tool in socat nc taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
HAVE_IPERF=1
command -v iperf3 >/dev/null || HAVE_IPERF=0

# Room for the source and one received copy, plus 1 GiB to spare.
avail_mib=$(( $(df -Pk "$BENCH_DIR" | awk 'NR==2 {print $4}') / 1024 ))
SIZE_MIB=${SIZE_MIB:-2048}
if (( avail_mib < 2 * SIZE_MIB + 1024 )); then
    SIZE_MIB=1024
    echo "note: only ${avail_mib} MiB free in $BENCH_DIR: using a 1 GiB file" >&2
fi
if (( avail_mib < 2 * SIZE_MIB + 1024 )); then
    echo "not enough space in $BENCH_DIR (${avail_mib} MiB free)" >&2
    exit 1
fi
BYTES=$(( SIZE_MIB * 1024 * 1024 ))

mkdir -p "$WORK"
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

SRC="$WORK/source.bin"
echo "creating $SIZE_MIB MiB of random data in $WORK ..." >&2
head -c "$BYTES" /dev/urandom > "$SRC"
cat "$SRC" > /dev/null # into the page cache

now() { date +%s.%N; }

# Waits for `listening on tcp://ADDR` in FILE and prints ADDR.
listening_addr() {
    local file=$1
    for _ in $(seq 500); do
        if grep -q '^listening on ' "$file" 2>/dev/null; then
            sed -n 's|^listening on tcp://||p' "$file" | head -1
            return
        fi
        sleep 0.01
    done
    echo "receiver did not start" >&2
    exit 1
}

wait_port() {
    local port=$1
    for _ in $(seq 500); do
        if ss -ltn "sport = :$port" | grep -q LISTEN; then return; fi
        sleep 0.01
    done
    echo "nothing listens on $port" >&2
    exit 1
}

check_copy() {
    local got
    got=$(stat -c %s "$1")
    if (( got != BYTES )); then
        echo "short copy: $1 has $got of $BYTES bytes" >&2
        exit 1
    fi
}

# CPU time (user + system) of each side, from /usr/bin/time: on a shared machine the
# wall time suffers from other people's load, the CPU a transfer costs much less.
RTIME="/usr/bin/time -o $WORK/rcpu -f %U+%S"
STIME="/usr/bin/time -o $WORK/scpu -f %U+%S"
report() {
    echo "$(echo "$2 - $1" | bc -l) $(bc -l < "$WORK/rcpu") $(bc -l < "$WORK/scpu")"
}

# One run of each kind; prints wall seconds, receiver CPU seconds, sender CPU seconds.
run_sockit() {
    local algo=$1 out="$WORK/recv" log="$WORK/recv.log"
    rm -rf "$out"
    $RTIME $R0 "$SOCKIT" recv 127.0.0.1:0 --dir "$out" >/dev/null 2>"$log" &
    local rpid=$!
    local addr
    addr=$(listening_addr "$log")
    local t0
    t0=$(now)
    $STIME $S1 "$SOCKIT" send "$addr" "$SRC" --checksum "$algo" >/dev/null 2>"$WORK/send.log"
    wait "$rpid"
    local t1
    t1=$(now)
    check_copy "$out/source.bin"
    report "$t0" "$t1"
}

PORT=47391
run_socat() {
    local sync=$1 dst="$WORK/socat.bin"
    rm -f "$dst"
    $RTIME $R0 socat -u "TCP-LISTEN:$PORT,bind=127.0.0.1,reuseaddr" "OPEN:$dst,creat,trunc" &
    local rpid=$!
    wait_port "$PORT"
    local t0
    t0=$(now)
    $STIME $S1 socat -u "OPEN:$SRC" "TCP:127.0.0.1:$PORT"
    wait "$rpid"
    if [[ $sync == sync ]]; then sync "$dst"; fi
    local t1
    t1=$(now)
    check_copy "$dst"
    report "$t0" "$t1"
}

run_nc() {
    local dst="$WORK/nc.bin"
    rm -f "$dst"
    $RTIME $R0 nc -l 127.0.0.1 "$PORT" > "$dst" &
    local rpid=$!
    wait_port "$PORT"
    local t0
    t0=$(now)
    $STIME $S1 nc -N 127.0.0.1 "$PORT" < "$SRC"
    wait "$rpid"
    local t1
    t1=$(now)
    check_copy "$dst"
    report "$t0" "$t1"
}

# iperf3 reports its own rate; converted to seconds for the same table.
run_iperf() {
    $R0 iperf3 -s -1 -B 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
    local rpid=$!
    wait_port "$PORT"
    local bps
    bps=$($S1 iperf3 -c 127.0.0.1 -p "$PORT" -n "$BYTES" -J |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])')
    wait "$rpid" || true
    echo "$(echo "$BYTES * 8 / $bps" | bc -l) - -"
}

# Methods take turns within each round, so a burst of load on the (shared) machine hits
# all of them alike; each keeps its best time.
METHODS=(blake3 sha256 socat socat_sync nc)
if (( HAVE_IPERF )); then METHODS+=(iperf); fi
run_method() {
    case $1 in
        blake3) run_sockit blake3 ;;
        sha256) run_sockit sha256 ;;
        socat) run_socat nosync ;;
        socat_sync) run_socat sync ;;
        nc) run_nc ;;
        iperf) run_iperf ;;
    esac
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A SECS RCPU SCPU
min() { if [[ -z $1 || $2 == - ]] || (( $(echo "$2 < $1" | bc -l) )); then echo "$2"; else echo "$1"; fi; }
for round in $(seq "$REPS"); do
    for m in "${METHODS[@]}"; do
        read -r t r c < <(run_method "$m")
        echo "round $round: $m wall ${t}s, receiver CPU ${r}s, sender CPU ${c}s" >&2
        SECS[$m]=$(min "${SECS[$m]:-}" "$t")
        RCPU[$m]=$(min "${RCPU[$m]:-}" "$r")
        SCPU[$m]=$(min "${SCPU[$m]:-}" "$c")
        rm -f "$WORK/socat.bin" "$WORK/nc.bin"
        rm -rf "$WORK/recv"
    done
done

gbps() { printf "%.3f" "$(echo "$BYTES / $1 / 1000000000" | bc -l)"; }
ratio() { printf "%.2f" "$(echo "${SECS[socat]} / $1" | bc -l)"; }

fs=$(df -PT "$BENCH_DIR" | awk 'NR==2 {print $2}')
echo
echo "$SIZE_MIB MiB file, loopback, receiver on CPU 0, sender on CPU 1, nice $NICE, best of $REPS rounds; files in $BENCH_DIR ($fs); load average before: $LOAD_BEFORE"
echo
echo "| transfer | verified | seconds | GB/s | vs socat | receiver CPU s | sender CPU s |"
echo "|---|---|---|---|---|---|---|"
cpu() { if [[ $1 == - ]]; then echo -; else printf '%.2f' "$1"; fi; }
row() {
    printf '| %s | %s | %.3f | %s | %s× | %s | %s |\n' "$1" "$2" "${SECS[$3]}" \
        "$(gbps "${SECS[$3]}")" "$(ratio "${SECS[$3]}")" "$(cpu "${RCPU[$3]}")" "$(cpu "${SCPU[$3]}")"
}
row "sockit send/recv, blake3" "yes, fsynced" blake3
row "sockit send/recv, sha256" "yes, fsynced" sha256
row "socat" "no" socat
row "socat, then sync FILE" "no, fsynced" socat_sync
row "nc (OpenBSD)" "no" nc
if (( HAVE_IPERF )); then row "iperf3, 1 stream (no file)" "no" iperf; fi
echo
echo "seconds: best wall time, sender start to both sides exited; CPU: least user+system"
echo "time of that side over the rounds (the receiver's includes hashing and fsync)."
