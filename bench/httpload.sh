#!/usr/bin/env bash
# The load generator itself: `sockit bench http` against `wrk`, on the same server in the
# same run, and the coordinated-omission demo.
#
# Part 1, generators side by side: `sockit http serve -q --model epoll` (pinned to CPU 0)
# serves a 1 KiB file; for each round, `wrk -t1 -cC -dD` and `sockit bench http -cC
# --secs D` (pinned to CPU 1) run one after the other against it, closed loop, keep-alive.
# Per row: requests/s, p50/p99, and the generator's own CPU time (utime+stime from
# /usr/bin/time) per request and as a share of its core. When neither generator is at
# ~100% of its core, both measure the server and their req/s should agree within ~10%.
#
# Part 2, coordinated omission: a python server on one connection that stalls 200 ms once
# a second (the first request after each second). wrk's closed loop sends nothing while it
# waits, so only one request per second sees the stall and its p99 stays small; `sockit
# bench http --rate R` keeps the schedule and measures from each request's scheduled time,
# so the ~R/5 requests per second that arrive during the stall count their wait, as wrk2
# does. Both run -c1 for DEMO_SECS.
#
# Usage: bench/httpload.sh          (CONNS=50 DURATION=4 ROUNDS=3 RATE=1000 DEMO_SECS=5 PIN=1)
# Prints markdown tables. Trials on a shared machine: read CPU per request, not req/s.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

CONNS=${CONNS:-50}
DURATION=${DURATION:-4}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-1000}
DEMO_SECS=${DEMO_SECS:-5}
PIN=${PIN:-1}

cargo build --release --locked -q -p sockit-cli
S=${CARGO_TARGET_DIR:-$ROOT/target}/release/sockit
source bench/peers.sh
needs bench/httpload.sh wrk python3 taskset /usr/bin/time

mkdir -p "$work/www"
head -c 1024 /dev/urandom >"$work/www/1k.bin"
port=$(free_port)
"${server_cpu[@]}" "$S" http serve "$work/www" "127.0.0.1:$port" -q --model epoll 2>/dev/null &
pids+=("$!")
wait_listening "$port"
url="http://127.0.0.1:$port/1k.bin"

# timed OUTFILE CMD...: runs CMD on the client CPU; prints "cpu_seconds".
timed() {
  local out=$1
  shift
  "${client_cpu[@]}" /usr/bin/time -f "%U %S" -o "$work/time" "$@" >"$out" 2>/dev/null || true
  awk '{ printf "%.3f", $1 + $2 }' "$work/time"
}

# wrk_ms VALUE: wrk's "123.45us" / "1.2ms" / "2s" in milliseconds.
wrk_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

row() { # NAME REQS CPU RPS P50_MS P99_MS ERRORS
  awk -v name="$1" -v n="$2" -v cpu="$3" -v rps="$4" -v p50="$5" -v p99="$6" -v err="$7" -v secs="$DURATION" -v r="$round" 'BEGIN {
    printf "| %s | %s | %.0f | %.3f | %.3f | %.2f | %.0f%% | %s |\n", r, name, rps, p50, p99, (n > 0 ? cpu / n * 1e6 : 0), cpu / secs * 100, err }'
}

echo "#### httpload.sh part 1: wrk and sockit bench http against one sockit http serve (1 KiB, $CONNS conns, ${DURATION}s, closed loop)"
echo
echo "- $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg); PIN=$PIN"
echo "- $(wrk --version 2>&1 | head -1 | cut -c1-60)"
echo
echo "| round | generator | req/s | p50 ms | p99 ms | generator CPU/req µs | generator CPU | errors |"
echo "|---|---|--:|--:|--:|--:|--:|---|"
curl -sf -o /dev/null "$url"
for round in $(seq "$ROUNDS"); do
  cpu=$(timed "$work/wrk.out" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url")
  reqs=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
  rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.out")
  p50=$(wrk_ms "$(awk '$1 == "50%" { print $2 }' "$work/wrk.out")")
  p99=$(wrk_ms "$(awk '$1 == "99%" { print $2 }' "$work/wrk.out")")
  errs=$(awk '/Non-2xx|Socket errors/ { printf "%s ", $0 }' "$work/wrk.out")
  row wrk "$reqs" "$cpu" "$rps" "$p50" "$p99" "${errs:-0}"

  cpu=$(timed "$work/sockit.out" "$S" bench http "$url" -c "$CONNS" --secs "$DURATION" --json)
  j=$(cat "$work/sockit.out")
  num() { grep -o "\"$1\":[0-9.]*" <<<"$j" | head -1 | cut -d: -f2; }
  row "sockit bench http" "$(num requests)" "$cpu" "$(num requests_per_sec)" \
    "$(awk -v n="$(num p50)" 'BEGIN { printf "%.3f", n / 1e6 }')" \
    "$(awk -v n="$(num p99)" 'BEGIN { printf "%.3f", n / 1e6 }')" "$(num errors)"
done

# Part 2: the stalling server.
cat >"$work/stall.py" <<'PY'
import socket, sys, time
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1]))); l.listen(16)
body = b"x" * 64
resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
next_stall = time.monotonic() + 1.0
while True:
    c, _ = l.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    raise ConnectionError
                buf += d
            buf = buf.split(b"\r\n\r\n", 1)[1]
            if time.monotonic() >= next_stall:
                time.sleep(0.2)
                next_stall = time.monotonic() + 1.0
            c.sendall(resp)
    except (ConnectionError, OSError):
        c.close()
PY
sport=$(free_port)
"${server_cpu[@]}" python3 "$work/stall.py" "$sport" &
pids+=("$!")
wait_listening "$sport"
surl="http://127.0.0.1:$sport/"

"${client_cpu[@]}" wrk -t1 -c1 -d"${DEMO_SECS}s" --latency "$surl" >"$work/wrk.demo"
"${client_cpu[@]}" "$S" bench http "$surl" -c 1 --secs "$DEMO_SECS" --rate "$RATE" --json >"$work/sockit.demo"
"${client_cpu[@]}" "$S" bench http "$surl" -c 1 --secs "$DEMO_SECS" --json >"$work/sockit.closed"
echo
echo "#### httpload.sh part 2: coordinated omission (server stalls 200 ms once a second, 1 conn, ${DEMO_SECS}s)"
echo
echo "| generator | mode | requests | p50 ms | p90 ms | p99 ms | max ms |"
echo "|---|---|--:|--:|--:|--:|--:|"
w() { wrk_ms "$(awk -v q="$1" '$1 == q { print $2 }' "$work/wrk.demo")"; }
echo "| wrk -c1 | closed loop | $(awk '/requests in/ { print $1 }' "$work/wrk.demo") | $(w 50%) | $(w 90%) | $(w 99%) | $(wrk_ms "$(awk '/Latency/ && !/Distribution/ { print $4; exit }' "$work/wrk.demo")") |"
for f in sockit.closed sockit.demo; do
  j=$(cat "$work/$f")
  num() { grep -o "\"$1\":[0-9.]*" <<<"$j" | head -1 | cut -d: -f2; }
  ms() { awk -v n="$(num "$1")" 'BEGIN { printf "%.3f", n / 1e6 }'; }
  mode="closed loop"
  [ "$f" = sockit.demo ] && mode="open loop, --rate $RATE"
  echo "| sockit bench http -c 1 | $mode | $(num requests) | $(ms p50) | $(ms p90) | $(ms p99) | $(ms max) |"
done
