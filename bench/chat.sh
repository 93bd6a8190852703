#!/usr/bin/env bash
# Chat fan-out benchmark: `sockit chat serve` against a minimal tokio broadcast chat
# (bench/ref-chat, built here, not shipped), measured in the same run; then the same load
# over two `sockit chat serve` nodes sharing a redis-server.
#
#   bench/chat.sh                        # 1,000 clients, 10 senders x 100 lines/s, 10 s
#   CLIENTS=200 SECS=3 bench/chat.sh     # a quick look
#   ROUNDS=3 bench/chat.sh               # sockit and the reference alternate 3 times
#   SOCKIT_ARGS="--batch 5ms" bench/chat.sh
#   WRAP="chrt -f 10" bench/chat.sh      # real-time priority on a busy machine
#
# The server(s) run on CPU $SERVER_CPU (default 0) and the load generator on $LOAD_CPU
# (default 1), each pinned with taskset. Server CPU time is the sum over the server's
# threads of /proc/PID/task/TID/schedstat (ns on CPU), read once every client has joined
# and again once every line has arrived: CPU per delivery = that difference / deliveries.
# Loopback only; every run is bounded by SECS plus the load generator's own time limits.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-1000}
SENDERS=${SENDERS:-10}
RATE=${RATE:-100}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
REDIS=${REDIS:-1}
# Extra options for `sockit chat serve` (e.g. SOCKIT_ARGS="--batch 5ms").
read -r -a SOCKIT_ARGS <<<"${SOCKIT_ARGS:-}"
# A prefix for every process of the run, e.g. WRAP="chrt -f 10" (real-time priority, so
# that on a machine busy with other work the processes measured get a CPU when they wake).
read -r -a WRAP <<<"${WRAP:-}"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p sockit-cli
cargo build --release -q --manifest-path bench/ref-chat/Cargo.toml
SOCKIT=$PWD/target/release/sockit
REF=$PWD/bench/ref-chat/target/release/ref-chat

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# start NAME CMD...: starts a server pinned to SERVER_CPU; sets PID and ADDR.
start() {
  local name=$1; shift
  "${WRAP[@]}" taskset -c "$SERVER_CPU" "$@" 2>"$tmp/$name.err" >/dev/null &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 200); do
    if grep -q '^listening on ' "$tmp/$name.err" 2>/dev/null; then
      ADDR=$(sed -n 's/^listening on //p' "$tmp/$name.err" | head -1)
      return
    fi
    sleep 0.05
  done
  echo "$name did not start: $(cat "$tmp/$name.err")" >&2
  exit 1
}

stop() {
  kill -TERM "$@" 2>/dev/null || true
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# cpu_ns PID...: nanoseconds on CPU so far, all threads of all PIDs (builtins only).
cpu_ns() {
  local total=0 f ns _
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do
      read -r ns _ <"$f"
      total=$((total + ns))
    done
  done
  echo "$total"
}

# bench LABEL "PIDS" "OTHER_PIDS" ADDR...: runs the load generator, samples the CPU time of
# the servers (and, apart, of OTHER_PIDS: redis) between "sending" and "done", prints one
# JSON line with all of it. The generator's stderr comes through a FIFO that this shell
# reads blocking: watching it costs nothing while the load runs (polling it with grep and
# sleep every 10 ms, as this script once did, ran 200 processes a second on the very
# CPUs being measured).
bench() {
  local label=$1 servers=$2 others=$3; shift 3
  local err="$tmp/$label.bench.err" fifo="$tmp/$label.fifo" line
  : >"$err"
  rm -f "$fifo"
  mkfifo "$fifo"
  "${WRAP[@]}" taskset -c "$LOAD_CPU" "$SOCKIT" bench chat "$@" --clients "$CLIENTS" --senders "$SENDERS" \
    --rate "$RATE" --secs "$SECS" --json >"$tmp/$label.json" 2>"$fifo" &
  local bp=$! c0="" c1="" o0=0 o1=0
  # shellcheck disable=SC2086
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$err"
    case $line in
      *sending*) c0=$(cpu_ns $servers); [ -z "$others" ] || o0=$(cpu_ns $others) ;;
      *done*) c1=$(cpu_ns $servers); [ -z "$others" ] || o1=$(cpu_ns $others) ;;
    esac
  done <"$fifo"
  wait "$bp" || { echo "$label: load generator failed: $(cat "$err")" >&2; exit 1; }
  [ -n "$c0" ] && [ -n "$c1" ] || { echo "$label: no CPU samples" >&2; exit 1; }
  python3 - "$label" "$c0" "$c1" "$o0" "$o1" "$tmp/$label.json" <<'EOF'
import json, sys
label, c0, c1, o0, o1, path = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
r = json.load(open(path))
r["label"] = label
r["server_cpu_ms"] = (c1 - c0) / 1e6
r["cpu_ns_per_delivery"] = (c1 - c0) / max(r["delivered"], 1)
r["redis_cpu_ms"] = (o1 - o0) / 1e6
print(json.dumps(r))
EOF
}

results="$tmp/results.jsonl"
echo "chat fan-out: $CLIENTS clients, $SENDERS senders x $RATE lines/s, ${SECS}s; server on CPU $SERVER_CPU, load on CPU $LOAD_CPU" >&2
for round in $(seq "$ROUNDS"); do
  start sockit "$SOCKIT" chat serve 127.0.0.1:0 --history 0 "${SOCKIT_ARGS[@]}"
  bench "sockit" "$PID" "" "$ADDR" | tee -a "$results" >&2
  stop "$PID"
  start ref "$REF" 127.0.0.1:0
  bench "tokio-ref" "$PID" "" "$ADDR" | tee -a "$results" >&2
  stop "$PID"
done

if [ "$REDIS" = 1 ] && command -v redis-server >/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${WRAP[@]}" taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  rpid=$!
  pids+=("$rpid")
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
  start node1 "$SOCKIT" chat serve 127.0.0.1:0 --history 0 --redis "redis://127.0.0.1:$port" "${SOCKIT_ARGS[@]}"
  p1=$PID a1=$ADDR
  start node2 "$SOCKIT" chat serve 127.0.0.1:0 --history 0 --redis "redis://127.0.0.1:$port" "${SOCKIT_ARGS[@]}"
  p2=$PID a2=$ADDR
  sleep 1 # both nodes subscribed
  bench "sockit-2-nodes-redis" "$p1 $p2" "$rpid" "$a1" "$a2" | tee -a "$results" >&2
  stop "$p1" "$p2" "$rpid"
fi

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| server | delivered/s | p50 ms | p99 ms | max ms | lost | lost (kept up) | slow disconnected | server CPU ms | CPU ns / delivery | redis CPU ms |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    l = r["latency_ms"]
    print(f"| {r['label']} | {r['delivered_per_sec']:,.0f} | {l['p50']:.2f} | {l['p99']:.2f} | {l['max']:.1f} "
          f"| {r['lost']} | {r['lost_kept_up']} | {r['slow_disconnected']} | {r['server_cpu_ms']:.0f} | {r['cpu_ns_per_delivery']:.0f} "
          f"| {r['redis_cpu_ms']:.0f} |")
s = [r["cpu_ns_per_delivery"] for r in rows if r["label"] == "sockit"]
t = [r["cpu_ns_per_delivery"] for r in rows if r["label"] == "tokio-ref"]
if s and t:
    print(f"\nefficiency (tokio-ref CPU per delivery / sockit's), per round: "
          + ", ".join(f"{b / a:.2f}x" for a, b in zip(s, t)))
EOF
