#!/usr/bin/env bash
# Benchmarks `sockit exec` against ssh-less baselines, side by side in one run, on loopback:
#
#   1. round trips per second of a trivial command (`true`), with 1 and 10 concurrent
#      clients, each round trip a new connection and program, against socat forking `true`
#      per connection (`socat TCP-LISTEN:...,fork EXEC:true`): once with a client process
#      per round trip (sockit exec / socat), once from in-process Python loops.
#   2. throughput of a large output: `cat` of a 1 GiB file through `sockit exec`, against
#      the same file served by `socat ... EXEC:cat` (default and 64 KiB buffers),
#      `ncat --exec cat` and `cat | nc -l`; every client writes to /dev/null.
#
# Usage: bench/exec.sh                 (SIZE=1G RT_SECONDS=5 RUNS=3 PIN=0 by default)
#        SIZE=256M RT_SECONDS=2 RUNS=1 bench/exec.sh      (quicker)
# With PIN=1 each server (and the program it runs) is pinned to CPU 0, each client to CPU 1:
# steadier on an idle machine, much slower on a shared one (a pinned process waits for its
# CPU even when the other is free).
# Every loop is bounded in time (RT_SECONDS) or count (RUNS); only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${SIZE:-1G}
RT_SECONDS=${RT_SECONDS:-5}
RUNS=${RUNS:-3}
PIN=${PIN:-0}

cargo build --release -q -p sockit-cli
S=$PWD/target/release/sockit
source bench/peers.sh
needs bench/exec.sh socat ncat nc taskset python3

now() { date +%s.%N; }

echo "# sockit exec benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, PIN=$PIN"
echo "# $(uname -srm); socat $(socat -V | sed -n 's/^socat version \([^ ]*\).*/\1/p'), $(ncat --version 2>&1 | head -1)"

# --- the exec server ---------------------------------------------------------------
"${server_cpu[@]}" "$S" exec serve 127.0.0.1:0 --permit true --permit cat \
  --max-output 64G --timeout 10m --max-conns 64 2>"$work/exec.err" &
pids+=($!)
for _ in $(seq 200); do [ "$(wc -l <"$work/exec.err")" -ge 2 ] && break; sleep 0.02; done
exec_addr=$(sed -n '1s/^listening on tcp:\/\///p' "$work/exec.err")
token=$(sed -n 's/^token file: //p' "$work/exec.err")
[ -n "$exec_addr" ] && [ -n "$token" ] || { cat "$work/exec.err" >&2; exit 1; }

# --- 1. round trips ----------------------------------------------------------------
rt_port=$(free_port)
"${server_cpu[@]}" socat TCP-LISTEN:"$rt_port",bind=127.0.0.1,reuseaddr,fork EXEC:true &
pids+=($!)
wait_listening "$rt_port"

# Runs `$@` back to back for RT_SECONDS in each of N loops; prints round trips per second.
usec() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
round_trips() {
  local n=$1; shift
  local end=$(( $(usec) + RT_SECONDS * 1000000 )) loops=()
  for i in $(seq "$n"); do
    (
      count=0
      while [ "$(usec)" -lt "$end" ]; do
        "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
        count=$((count + 1))
      done
      echo "$count" >"$work/rt.$i"
    ) &
    loops+=($!)
  done
  wait "${loops[@]}"
  local total=0
  for i in $(seq "$n"); do total=$((total + $(cat "$work/rt.$i"))); done
  python3 -c "print(f'{$total / $RT_SECONDS:.0f}')"
}

echo
echo "## round trips of \`true\` (client process + connection + program each), ${RT_SECONDS}s per cell"
echo
echo "| clients | sockit exec (rt/s) | socat fork EXEC:true (rt/s) | ratio |"
echo "|---|---|---|---|"
for n in 1 10; do
  rm -f "$work"/rt.*
  e=$(round_trips "$n" "${client_cpu[@]}" "$S" exec "$exec_addr" --token-file "$token" -- true)
  rm -f "$work"/rt.*
  s=$(round_trips "$n" "${client_cpu[@]}" socat -u TCP:127.0.0.1:"$rt_port" STDOUT)
  echo "| $n | $e | $s | $(python3 -c "print(f'{$e / $s:.2f}')") |"
done

# The same without a client process per round trip: N Python loops, each opening one
# connection per command (docs/exec.md for exec; connect and read to EOF for socat).
cat >"$work/rt.py" <<'PY'
import hashlib, hmac, json, socket, struct, sys, time
mode, host, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
key = open(sys.argv[5], "rb").read() if mode == "exec" else b""
def exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError
        b += c
    return b
def msg(s):
    (n,) = struct.unpack(">I", exact(s, 4)); p = exact(s, n); return p[:1], p[1:]
def frame(kind, body): return struct.pack(">I", len(body) + 1) + kind + body
run = frame(b"R", json.dumps({"argv": ["true"]}).encode()) + frame(b"I", b"")
count, end = 0, time.time() + seconds
while time.time() < end:
    s = socket.create_connection((host, port))
    if mode == "exec":
        kind, challenge = msg(s)
        s.sendall(frame(b"A", hmac.new(key, challenge, hashlib.sha256).digest()) + run)
        while True:
            kind, body = msg(s)
            if kind == b"X": assert json.loads(body) == {"code": 0}; break
            assert kind in (b"O", b"E"), (kind, body)
    else:
        while s.recv(65536): pass
    s.close()
    count += 1
print(count)
PY
py_round_trips() {
  local n=$1 mode=$2 port=$3 loops=()
  for i in $(seq "$n"); do
    "${client_cpu[@]}" python3 "$work/rt.py" "$mode" 127.0.0.1 "$port" "$RT_SECONDS" "$token" >"$work/py.$i" &
    loops+=($!)
  done
  wait "${loops[@]}"
  local total=0
  for i in $(seq "$n"); do total=$((total + $(cat "$work/py.$i"))); done
  python3 -c "print(f'{$total / $RT_SECONDS:.0f}')"
}
echo
echo "## round trips of \`true\` from in-process clients (Python loops, a connection per command)"
echo
echo "| clients | sockit exec (rt/s) | socat fork EXEC:true (rt/s) | ratio |"
echo "|---|---|---|---|"
for n in 1 10; do
  e=$(py_round_trips "$n" exec "${exec_addr##*:}")
  s=$(py_round_trips "$n" socat "$rt_port")
  echo "| $n | $e | $s | $(python3 -c "print(f'{$e / $s:.2f}')") |"
done

# --- 2. throughput -----------------------------------------------------------------
big=$work/big
head -c "$SIZE" /dev/urandom >"$big"
bytes=$(stat -c %s "$big")

socat_port=$(free_port)
"${server_cpu[@]}" socat -U TCP-LISTEN:"$socat_port",bind=127.0.0.1,reuseaddr,fork EXEC:"cat $big" &
pids+=($!)
socat64_port=$(free_port)
"${server_cpu[@]}" socat -b 65536 -U TCP-LISTEN:"$socat64_port",bind=127.0.0.1,reuseaddr,fork EXEC:"cat $big" &
pids+=($!)
ncat_port=$(free_port)
"${server_cpu[@]}" ncat -l 127.0.0.1 "$ncat_port" --keep-open --send-only --exec "/bin/cat $big" &
pids+=($!)
wait_listening "$socat_port"; wait_listening "$socat64_port"; wait_listening "$ncat_port"

# Times one transfer; prints MiB/s, and checks every byte arrived.
transfer() {
  local start end got
  start=$(now)
  got=$("$@" | wc -c)
  end=$(now)
  [ "$got" = "$bytes" ] || { echo "short transfer: $got of $bytes bytes from: $*" >&2; exit 1; }
  python3 -c "print(f'{$bytes / ($end - $start) / 2**20:.0f}')"
}

nc_once() {
  local port
  port=$(free_port)
  "${server_cpu[@]}" sh -c "cat '$big' | exec nc -N -l 127.0.0.1 $port" &
  local server=$!
  wait_listening "$port"
  "${client_cpu[@]}" nc -d 127.0.0.1 "$port"
  wait "$server" 2>/dev/null || true
}

echo
echo "## \`cat\` of a $SIZE file to /dev/null, MiB/s (median of $RUNS, interleaved)"
echo
declare -A results
names=(exec socat socat64 ncat nc)
for run in $(seq "$RUNS"); do
  results[exec]+=" $(transfer "${client_cpu[@]}" "$S" exec "$exec_addr" --token-file "$token" -- cat "$big")"
  results[socat]+=" $(transfer "${client_cpu[@]}" socat -u TCP:127.0.0.1:"$socat_port" STDOUT)"
  results[socat64]+=" $(transfer "${client_cpu[@]}" socat -b 65536 -u TCP:127.0.0.1:"$socat64_port" STDOUT)"
  results[ncat]+=" $(transfer "${client_cpu[@]}" ncat --recv-only 127.0.0.1 "$ncat_port")"
  results[nc]+=" $(transfer nc_once)"
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
socat_median=$(median "${results[socat]}")
echo "| path | MiB/s (median) | runs | vs socat |"
echo "|---|---|---|---|"
label() {
  case $1 in
    exec) echo "sockit exec -- cat (pipe → server → framed TCP → client)" ;;
    socat) echo "socat EXEC:cat → socat (default 8 KiB buffers)" ;;
    socat64) echo "socat -b 65536 EXEC:cat → socat -b 65536" ;;
    ncat) echo "ncat --exec cat → ncat --recv-only" ;;
    nc) echo "cat \\| nc -l → nc -d" ;;
  esac
}
for name in "${names[@]}"; do
  m=$(median "${results[$name]}")
  echo "| $(label "$name") | $m | ${results[$name]# } | $(python3 -c "print(f'{$m / $socat_median:.2f}')")× |"
done
