#!/usr/bin/env bash
# `sockit forward` against socat and haproxy as TCP relays, side by side in one run, the
# relay pinned to core $SERVER_CPU, everything else (sender, sink, load generators, the
# target servers) to core $LOAD_CPU:
#   bulk   SIZE_MIB (2048) from a file in /dev/shm through the relay to a socat sink that
#          writes to /dev/null; wall time and the relay's CPU per GB
#   short  wrk -t1 -c50 -H 'Connection: close' through the relay to `sockit http serve`
#          (a 64 B file): a new relayed connection per request; relay CPU per connection
#   echo   `sockit bench echo` 50 conns x 64 B x 16 in flight through the relay to
#          `sockit echo`; relay CPU per message
# Relays: `sockit forward -w 1` (one runtime thread), `socat -b 262144 TCP-LISTEN,fork TCP`
# (socat's best buffer size; a process per connection), haproxy (mode tcp, one thread,
# option splice-auto). The relay's CPU is the process tree's (socat's children included).
#
# The load generator's (or sender's) own CPU is beside every row: a saturated one measures
# itself, not the relay.
#
# Usage: bench/forward.sh            (ROUNDS=1 SIZE_MIB=2048 DURATION=4s SECS=3)
# Prints a markdown report. Every run is bounded; only 127.0.0.1 is used.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-1}
SIZE_MIB=${SIZE_MIB:-2048}
DURATION=${DURATION:-4s}
SECS=${SECS:-3}
for tool in socat haproxy wrk taskset /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/forward.sh needs $tool" >&2; exit 1; }
done
work=$(mktemp -d)
RPID=
cleanup() {
    [ -n "${RPID:-}" ] && kill "$RPID" 2>/dev/null || true
    [ -n "${TPID:-}" ] && kill "$TPID" 2>/dev/null || true
    rm -rf "$work" /dev/shm/sockit-forward-bulk.$$
}
trap cleanup EXIT

echo "building release binary..." >&2
(cd "$ROOT" && cargo build --release --locked -q -p sockit-cli)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $1" >&2
    exit 1
}

# start_relay NAME TARGET_PORT: starts the relay pinned to $SERVER_CPU; sets RPID, RPORT.
start_relay() {
    local name=$1 tport=$2
    RPORT=$(free_port)
    case $name in
        sockit)
            nice -n "$NICE" taskset -c "$SERVER_CPU" "$SOCKIT" forward "127.0.0.1:$RPORT" \
                "127.0.0.1:$tport" -w 1 2>/dev/null &
            ;;
        socat)
            nice -n "$NICE" taskset -c "$SERVER_CPU" socat -b 262144 \
                "TCP-LISTEN:$RPORT,bind=127.0.0.1,fork,reuseaddr" "TCP:127.0.0.1:$tport" 2>/dev/null &
            ;;
        haproxy)
            cat >"$work/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend f
    bind 127.0.0.1:$RPORT
    default_backend b
backend b
    server s 127.0.0.1:$tport
EOF
            nice -n "$NICE" taskset -c "$SERVER_CPU" haproxy -db -f "$work/haproxy.cfg" 2>/dev/null &
            ;;
    esac
    RPID=$!
    wait_port "$RPORT"
}
stop_relay() {
    kill -TERM "$RPID" 2>/dev/null || true
    wait "$RPID" 2>/dev/null || true
    RPID=
}
relay_ns() { cpu_snapshot "$RPID"; }

emit "### forward.sh: relay on core $SERVER_CPU, everything else on core $LOAD_CPU"
emit ""
emit "- $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
emit "- $(socat -V 2>/dev/null | sed -n 's/^socat version \([^ ]*\).*/socat \1/p' | head -1), $(haproxy -v | head -1 | cut -d' ' -f1-3), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"

# --- bulk ---
src=/dev/shm/sockit-forward-bulk.$$
bytes=$((SIZE_MIB * 1024 * 1024))
head -c "$bytes" /dev/urandom >"$src"
emit ""
emit "#### bulk: $SIZE_MIB MiB through the relay (sender and sink: socat -u -b 262144, on core $LOAD_CPU)"
emit ""
emit "| round | relay | s | GB/s | relay CPU s | relay CPU per GB | sender CPU | bytes |"
emit "|---|---|--:|--:|--:|--:|--:|--:|"
for round in $(seq "$ROUNDS"); do
    for relay in sockit socat haproxy; do
        sport=$(free_port)
        # The relay first (its readiness probe must not reach the sink), then the sink,
        # which takes one connection.
        start_relay "$relay" "$sport"
        taskset -c "$LOAD_CPU" socat -u -b 262144 "TCP-LISTEN:$sport,bind=127.0.0.1,reuseaddr" - |
            wc -c >"$work/got" &
        sink=$!
        sleep 0.3
        before=$(relay_ns)
        t0=$(date +%s%N)
        /usr/bin/time -o "$work/gen" -f '%U %S' taskset -c "$LOAD_CPU" socat -u -b 262144 "OPEN:$src" "TCP:127.0.0.1:$RPORT"
        wait "$sink" || true
        t1=$(date +%s%N)
        sleep 0.1
        after=$(relay_ns)
        read -r ns _ <<<"$(cpu_between "$before" "$after")"
        stop_relay
        got=$(cat "$work/got")
        read -r gu gs <"$work/gen"
        emit "$(awk -v r="$round" -v p="$relay" -v b="$bytes" -v g="$got" -v w=$((t1 - t0)) -v c="$ns" -v gc="$gu $gs" 'BEGIN {
            split(gc, x, " "); gb = b / 1e9
            printf "| %s | %s | %.2f | %.2f | %.2f | %.2f s | %.2f s (%.0f%%) | %s%s |", r, p, w / 1e9,
            gb / (w / 1e9), c / 1e9, c / 1e9 / gb, x[1] + x[2], 100 * (x[1] + x[2]) / (w / 1e9), g, (g == b ? "" : " SHORT") }')"
    done
done
rm -f "$src"

# --- short connections and echo: the targets ---
mkdir -p "$work/www"
head -c 64 /dev/zero | tr '\0' 'x' >"$work/www/64.txt"
tport=$(free_port)
taskset -c "$LOAD_CPU" "$SOCKIT" http serve "$work/www" "127.0.0.1:$tport" -q 2>/dev/null &
TPID=$!
wait_port "$tport"
emit ""
emit "#### short: wrk -t1 -c50 -d$DURATION -H 'Connection: close' through the relay to sockit http serve (64 B file), both on core $LOAD_CPU"
emit ""
emit "| round | relay | connections/s | relay CPU per connection | wrk CPU | wrk errors |"
emit "|---|---|--:|--:|--:|---|"
for round in $(seq "$ROUNDS"); do
    for relay in sockit socat haproxy; do
        start_relay "$relay" "$tport"
        before=$(relay_ns)
        out=$(/usr/bin/time -o "$work/gen" -f '%U %S %e' taskset -c "$LOAD_CPU" wrk -t1 -c50 -d"$DURATION" \
            -H 'Connection: close' "http://127.0.0.1:$RPORT/64.txt" 2>&1)
        after=$(relay_ns)
        read -r ns _ <<<"$(cpu_between "$before" "$after")"
        stop_relay
        reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
        rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
        errs=$(sed -n 's/^ *Socket errors: \(.*\)/\1/p' <<<"$out")
        read -r gu gs ge <"$work/gen"
        emit "$(awk -v r="$round" -v p="$relay" -v q="${reqs:-0}" -v s="${rps:-0}" -v c="$ns" -v e="${errs:-0}" -v gc="$gu $gs $ge" 'BEGIN {
            split(gc, x, " ")
            printf "| %s | %s | %.0f | %.1f µs | %.0f%% | %s |", r, p, s, (q > 0 ? c / q / 1e3 : 0), 100 * (x[1] + x[2]) / x[3], e }')"
    done
done
kill "$TPID" 2>/dev/null || true
wait "$TPID" 2>/dev/null || true

tport=$(free_port)
taskset -c "$LOAD_CPU" "$SOCKIT" echo "127.0.0.1:$tport" 2>/dev/null &
TPID=$!
wait_port "$tport"
emit ""
emit "#### echo: sockit bench echo --conns 50 --size 64 --pipeline 16 --secs $SECS through the relay to sockit echo, both on core $LOAD_CPU"
emit ""
emit "| round | relay | msgs/s | relay CPU per message | bench echo CPU | errors |"
emit "|---|---|--:|--:|--:|--:|"
for round in $(seq "$ROUNDS"); do
    for relay in sockit socat haproxy; do
        start_relay "$relay" "$tport"
        before=$(relay_ns)
        json=$(/usr/bin/time -o "$work/gen" -f '%U %S %e' taskset -c "$LOAD_CPU" "$SOCKIT" bench echo "127.0.0.1:$RPORT" --conns 50 --size 64 \
            --pipeline 16 --secs "$SECS" --json 2>/dev/null || true)
        after=$(relay_ns)
        read -r ns _ <<<"$(cpu_between "$before" "$after")"
        stop_relay
        msgs=$(grep -o '"msgs":[0-9]*' <<<"$json" | cut -d: -f2)
        errs=$(grep -o '"errors":[0-9]*' <<<"$json" | cut -d: -f2)
        read -r gu gs ge <"$work/gen"
        emit "$(awk -v r="$round" -v p="$relay" -v m="${msgs:-0}" -v c="$ns" -v s="$SECS" -v e="${errs:-?}" -v gc="$gu $gs $ge" 'BEGIN {
            split(gc, x, " ")
            printf "| %s | %s | %.0f | %.0f ns | %.0f%% | %s |", r, p, m / s, (m > 0 ? c / m : 0), 100 * (x[1] + x[2]) / x[3], e }')"
    done
done
emit ""
emit "Relay CPU: the process tree's CPU time (schedstat of living threads, or the tick"
emit "counters when children were reaped: socat's fork) over the run. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
