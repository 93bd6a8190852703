#!/usr/bin/env bash
# Benchmarks `sockit http serve` against `python3 -m http.server` and nginx (one process:
# `master_process off; daemon off;`, access log off, sendfile on), side by side in one run
# on loopback: `wrk -t1 -c50 -d4s` (keep-alive) for a 1 KiB and a 1 MiB file. Reports
# requests/s and the server's CPU time per request (utime+stime of the server process and
# its threads, from /proc, over the wrk run, divided by the requests wrk completed).
#
# Usage: bench/http.sh                         (DURATION=4s MODEL=epoll WORKERS=1 PIN=1 ROUNDS=1)
#        MODEL=async ROUNDS=3 bench/http.sh
# All three servers are started first and stay up; each round runs wrk against each of
# them in turn for each file, so the rows of one file in one round are taken back to back.
# With PIN=1 each server is pinned to CPU 0 and wrk to CPU 1. sockit runs with -q (no
# request log), as nginx runs without an access log; python logs (it cannot be told not to).
# Every run is bounded by DURATION; only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-4s}
MODEL=${MODEL:-epoll}
WORKERS=${WORKERS:-1}
PIN=${PIN:-1}
ROUNDS=${ROUNDS:-1}

cargo build --release -q -p sockit-cli
S=$PWD/target/release/sockit
source bench/peers.sh
needs bench/http.sh wrk nginx python3 taskset

mkdir -p "$work/www"
head -c 1024 /dev/urandom >"$work/www/1k.bin"
head -c 1048576 /dev/urandom >"$work/www/1m.bin"

# utime+stime+cutime+cstime of a process, in clock ticks.
ticks() {
  awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"
}

hz=$(getconf CLK_TCK)

# run NAME PID PORT FILE: one wrk run; prints a table row.
run() {
  local name=$1 pid=$2 port=$3 file=$4 before after out reqs rps cpu errs
  # Warm up (and check it serves) before measuring.
  curl -sf -o /dev/null "http://127.0.0.1:$port/$file"
  before=$(ticks "$pid")
  out=$("${client_cpu[@]}" wrk -t1 -c50 -d"$DURATION" "http://127.0.0.1:$port/$file")
  after=$(ticks "$pid")
  reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ { printf "%s ", $0 }' <<<"$out")
  cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$reqs" \
    'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
  printf '| %s | %s | %s | %s | %s | %s |%s\n' "$round" "$name" "$file" "$rps" "$reqs" "$cpu" "${errs:+ $errs}"
}


port=$(free_port)
"${server_cpu[@]}" "$S" http serve "$work/www" "127.0.0.1:$port" -q --model "$MODEL" --workers "$WORKERS" 2>/dev/null &
pid=$!
pids+=("$pid")
wait_listening "$port"
names=("sockit http serve ($MODEL, $WORKERS worker)") spids=("$pid") ports=("$port")

port=$(free_port)
"${server_cpu[@]}" python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
pid=$!
pids+=("$pid")
wait_listening "$port"
names+=("python3 -m http.server") spids+=("$pid") ports+=("$port")

port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$port;
    root $work/www;
  }
}
CONF
"${server_cpu[@]}" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pid=$!
pids+=("$pid")
wait_listening "$port"
names+=("nginx (1 process)") spids+=("$pid") ports+=("$port")

echo "| round | server | file | requests/s | requests | server CPU µs/request |"
echo "|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
  for file in 1k.bin 1m.bin; do
    for i in "${!names[@]}"; do
      run "${names[$i]}" "${spids[$i]}" "${ports[$i]}" "$file"
    done
  done
done
