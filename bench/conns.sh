#!/usr/bin/env bash
# Idle connections: `sockit bench conns` with N (10,000) connections against every sockit
# model and the two references, and the server's memory per held connection.
#
# Memory is the private dirty memory (Private_Dirty of /proc/PID/smaps_rollup)
# of the server's whole process tree (the fork model's workers included), measured before
# the load and again while the connections are held; the difference is divided by the connections the
# server held at that moment (sockets open in its tree). Kernel socket buffers are not
# in it: they are the same for every model.
#
# Usage: bench/conns.sh            N=2000 HOLD=3s MODELS="epoll async" bench/conns.sh
# Variables: N (10000), HOLD (5s), MODELS, REFS, SERVER_CPU (0), LOAD_CPU (1), NICE (0), OUT.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${N:-10000}
HOLD=${HOLD:-5s}
MODELS=${MODELS:-blocking threads fork select poll epoll epoll-et async}
REFS=${REFS:-ref-tokio ref-epoll}
OUT=${OUT:-}

ulimit -n "$(ulimit -Hn)"
trap stop_server EXIT
build_all

# Distinct sockets open in the server's process tree (a dup'ed socket counts once).
tree_sockets() {
    local dirs=() pid
    for pid in $(tree_pids "$1"); do
        dirs+=("/proc/$pid/fd")
    done
    { find "${dirs[@]}" -lname 'socket:*' -printf '%l\n' 2>/dev/null || true; } | sort -u | wc -l
}

[ -z "$OUT" ] || : >"$OUT"
emit "### conns.sh: $N connections held $HOLD, server on core $SERVER_CPU, load on core $LOAD_CPU"
emit ""
machine | while read -r line; do emit "$line"; done
emit "- load: \`taskset -c $LOAD_CPU sockit bench conns ADDR --conns $N --hold $HOLD --connect-timeout 3s --ping-timeout 5s --json\`"
emit ""
emit "| server | opened | held | healthy | open time | server held | memory before | memory held | per connection | failures |"
emit "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"

skipped=()
for server in $MODELS $REFS; do
    if ! start_server "$server"; then
        skipped+=("$server")
        continue
    fi
    sleep 0.3
    base_kb=$(tree_private_kb "$SPID")
    base_socks=$(tree_sockets "$SPID")
    out=$(mktemp)
    nice -n "$NICE" taskset -c "$LOAD_CPU" "$SOCKIT" bench conns "$ADDR" --conns "$N" --hold "$HOLD" \
        --connect-timeout 3s --ping-timeout 5s --json >"$out" 2>/dev/null &
    bench=$!
    # Wait until the server holds N connections, or their number stops growing; then
    # measure, while the connections are still held (HOLD must outlast opening).
    last=-1
    stable=0
    for _ in $(seq 600); do
        kill -0 "$bench" 2>/dev/null || break
        socks=$(tree_sockets "$SPID")
        [ $((socks - base_socks)) -ge "$N" ] && break
        if [ "$socks" -eq "$last" ]; then stable=$((stable + 1)); else stable=0; fi
        [ "$stable" -ge 6 ] && [ "$socks" -gt "$base_socks" ] && break
        last=$socks
        sleep 0.25
    done
    held_kb=$(tree_private_kb "$SPID")
    held_socks=$(($(tree_sockets "$SPID") - base_socks))
    kill -0 "$bench" 2>/dev/null || held_socks=0
    wait "$bench" || true
    json=$(cat "$out")
    rm -f "$out"
    stop_server
    if [ -z "$json" ]; then
        emit "| $server | bench failed | | | | | | | | |"
        continue
    fi
    per_conn="n/a"
    if [ "$held_socks" -gt 0 ]; then
        per_conn=$(awk -v d=$((held_kb - base_kb)) -v n="$held_socks" 'BEGIN { printf "%.2f KiB", d / n }')
    fi
    failures=$(grep -o '"failures":{[^}]*}' <<<"$json" | sed 's/"failures"://; s/[{}"]//g; s/,/, /g')
    emit "$(printf '| %s | %s | %s | %s | %.2f s | %s | %.1f MiB | %.1f MiB | %s | %s |' \
        "$server" "$(json_num "$json" opened)" "$(json_num "$json" held)" \
        "$(json_num "$json" healthy)" "$(json_num "$json" open_secs)" "$held_socks" \
        "$(awk -v k="$base_kb" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$held_kb" 'BEGIN { print k / 1024 }')" "$per_conn" "${failures:-none}")"
done
emit ""
emit "opened/held/healthy: connections that opened, were still open after the hold, and"
emit "echoed their 8-byte ping. Server held: sockets the server's processes had open while"
emit "holding (the blocking model serves one; the others wait in the kernel's backlog)."
emit "Memory: private dirty memory of the server's process tree; per connection = (held -"
emit "before) / server held."
emit "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine competes for both cores)."
if [ ${#skipped[@]} -gt 0 ]; then
    emit ""
    emit "Skipped (server did not start): ${skipped[*]}"
fi
