#!/usr/bin/env bash
# Every sockit model next to two reference servers (bench/ref-tokio, bench/ref-epoll.c):
# throughput, latency, and above all the server's CPU time per message, at 1/50/500
# connections × 64 B/16 KiB × 1/16 messages in flight. Prints a markdown table.
#
# The server runs pinned to core $SERVER_CPU, `sockit bench echo` to core $LOAD_CPU, a
# fresh server for every row (so peak RSS is that row's). On two cores the load
# generator saturates its own core before a fast server does, so msgs/s understates a
# fast server: CPU time per message is the figure to compare.
#
# Usage: bench/models.sh                      (everything, ~SECS+1 s per row)
#        SECS=5 MODELS="epoll async" CONNS=50 bench/models.sh
# Variables: SECS (3), MODELS, REFS, CONNS ("1 50 500"), SIZES ("64 16384"),
# PIPELINES ("1 16"), ROUNDS (1), SERVER_CPU (0), LOAD_CPU (1), NICE (0), OUT (also write
# the table there).
# A model whose server does not start (not on this branch yet) is skipped.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SECS=${SECS:-3}
MODELS=${MODELS:-blocking threads fork select poll epoll epoll-et async}
REFS=${REFS:-ref-tokio ref-epoll}
CONNS=${CONNS:-1 50 500}
SIZES=${SIZES:-64 16384}
PIPELINES=${PIPELINES:-1 16}
ROUNDS=${ROUNDS:-1}
OUT=${OUT:-}

# Many connections need many descriptors, in the server and in the load generator.
ulimit -n "$(ulimit -Hn)"
trap stop_server EXIT
build_all

[ -z "$OUT" ] || : >"$OUT"
emit "### models.sh: ${SECS}s per row, server on core $SERVER_CPU, load on core $LOAD_CPU"
emit ""
machine | while read -r line; do emit "$line"; done
emit "- load per row: \`taskset -c $LOAD_CPU sockit bench echo ADDR --conns C --size B --pipeline K --secs $SECS --json\`"
emit ""
emit "| server | conns | size | in flight | msgs/s | MB/s | p50 | p99 | server CPU/msg | server CPU | load CPU | peak RSS | errors | unfinished |"
emit "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"

us() { awk -v ns="$1" 'BEGIN { printf (ns < 100000 ? "%.1f µs" : "%.0f µs"), ns / 1000 }'; }

started=$(date +%s)
skipped=" "

# row SERVER CONNS SIZE PIPELINE: one fresh server, one load run, one table row.
row() {
    local server=$1 conns=$2 size=$3 pipeline=$4
    if ! start_server "$server"; then
        skipped+="$server "
        return
    fi
    tasks=$(ls /proc/"$SPID"/task | wc -l)
    before=$(cpu_snapshot "$SPID")
    load_times=$(mktemp)
    t0=$(date +%s%N)
    json=$( { TIMEFORMAT='%U %S'; time pinned "$LOAD_CPU" "$SOCKIT" bench echo "$ADDR" \
        --conns "$conns" --size "$size" --pipeline "$pipeline" --secs "$SECS" \
        --json 2>/dev/null; } 2>"$load_times" || true)
    t1=$(date +%s%N)
    if ! kill -0 "$SPID" 2>/dev/null; then
        emit "| $server | $conns | $size | $pipeline | server exited | | | | | | | | | |"
        stop_server
        return
    fi
    settle "$SPID" "$tasks"
    after=$(cpu_snapshot "$SPID")
    hwm_kb=$(status_kb "$SPID" VmHWM)
    stop_server
    if [ -z "$json" ]; then
        emit "| $server | $conns | $size | $pipeline | bench failed | | | | | | | | | |"
        return
    fi
    read -r cpu_ns method <<<"$(cpu_between "$before" "$after")"
    read -r load_user load_sys <"$load_times"
    rm -f "$load_times"
    msgs=$(json_num "$json" msgs)
    drained=$(json_num "$json" drained)
    served=$((msgs + drained))
    per_msg="n/a"
    if [ "$served" -gt 0 ]; then
        per_msg=$(awk -v c="$cpu_ns" -v m="$served" 'BEGIN { printf "%.0f ns", c / m }')
        [ "$method" = ns ] || per_msg="~$per_msg"
    fi
    wall_ns=$((t1 - t0))
    server_pct=$(awk -v c="$cpu_ns" -v w="$wall_ns" 'BEGIN { printf "%.0f%%", 100 * c / w }')
    load_pct=$(awk -v u="$load_user" -v s="$load_sys" -v w="$wall_ns" 'BEGIN { printf "%.0f%%", 100 * (u + s) * 1e9 / w }')
    rate=$(json_num "$json" msgs_per_sec)
    mbps=$(json_num "$json" mb_per_sec)
    p50=$(json_num "$json" p50)
    p99=$(json_num "$json" p99)
    errors=$(json_num "$json" errors)
    unfinished=$(json_num "$json" unfinished)
    emit "$(printf '| %s | %s | %s | %s | %.0f | %.1f | %s | %s | %s | %s | %s | %.1f MiB | %s | %s |' \
        "$server" "$conns" "$size" "$pipeline" "$rate" "$mbps" "$(us "$p50")" "$(us "$p99")" \
        "$per_msg" "$server_pct" "$load_pct" "$(awk -v k="$hwm_kb" 'BEGIN { print k / 1024 }')" \
        "$errors" "$unfinished")"
}

# Rows of one configuration are taken one right after the other (every server, then the
# next configuration), so they share the machine's state; with ROUNDS > 1 the whole
# sweep is repeated, which shows how much of a difference is drift.
for round in $(seq "$ROUNDS"); do
    for conns in $CONNS; do
        for size in $SIZES; do
            for pipeline in $PIPELINES; do
                for server in $MODELS $REFS; do
                    case $skipped in *" $server "*) continue ;; esac
                    row "$server" "$conns" "$size" "$pipeline"
                done
            done
        done
    done
done
emit ""
emit "CPU/msg: server CPU time (all threads and reaped children) over the run, divided by the"
emit "messages echoed (in the window plus drained). Exact (schedstat, ns) unless marked ~ (clock"
emit "ticks of 1/${CLK_TCK} s, used when threads or processes exited during the run)."
emit "Server/load CPU: share of one core over the wall time of the run. Peak RSS: VmHWM of the"
emit "server's main process (fork: the parent only)."
emit "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine competes for both cores)."
if [ "$skipped" != " " ]; then
    emit ""
    emit "Skipped (server did not start):$skipped"
fi
echo "done in $(($(date +%s) - started)) s" >&2
