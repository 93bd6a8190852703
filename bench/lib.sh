# Shared by bench/models.sh and bench/conns.sh: building, starting a server pinned to
# a core, and reading what the kernel knows about its CPU time and memory.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Where cargo puts the release binary: $CARGO_TARGET_DIR when that is set.
SOCKIT=${CARGO_TARGET_DIR:-$ROOT/target}/release/sockit
REF_TOKIO=$ROOT/bench/ref-tokio/target/release/ref-tokio
REF_EPOLL=$ROOT/target/bench/ref-epoll
CLK_TCK=$(getconf CLK_TCK)
SERVER_CPU=${SERVER_CPU:-0}   # core the server under test is pinned to
LOAD_CPU=${LOAD_CPU:-1}       # core the load generator is pinned to
# Scheduling priority of server and load generator (`nice` value; negative needs root).
# On a machine shared with other work, a negative value keeps their noise out of the
# figures; 0 (the default) changes nothing.
NICE=${NICE:-0}

# emit LINE: prints a line of the report, and appends it to $OUT when that is set.
emit() {
    echo "$*"
    if [ -n "${OUT:-}" ]; then echo "$*" >>"$OUT"; fi
}

# pinned CORE CMD...: runs CMD on one core at the chosen priority.
pinned() {
    local core=$1
    shift
    nice -n "$NICE" taskset -c "$core" "$@"
}

# Release builds of sockit and both references (incremental: quick when nothing changed).
build_all() {
    echo "building release binaries..." >&2
    (cd "$ROOT" && cargo build --release --locked -q -p sockit-cli)
    (cd "$ROOT/bench/ref-tokio" && cargo build --release --locked -q)
    mkdir -p "$(dirname "$REF_EPOLL")"
    gcc -O2 -Wall -o "$REF_EPOLL" "$ROOT/bench/ref-epoll.c"
}

# start_server NAME: starts the server pinned to $SERVER_CPU and sets SPID and ADDR.
# NAME is a sockit model or ref-tokio / ref-epoll. Returns 1 (and cleans up) when the
# server does not print its `listening on` line within 5 s: the model does not exist
# on this branch yet, or failed.
start_server() {
    local name=$1 log
    log=$(mktemp)
    local cmd
    case $name in
        ref-tokio) cmd=("$REF_TOKIO" 0) ;;
        ref-epoll) cmd=("$REF_EPOLL" 0) ;;
        *) cmd=("$SOCKIT" echo 127.0.0.1:0 --model "$name") ;;
    esac
    # Not through `pinned`: $! must be the server itself, not a subshell.
    nice -n "$NICE" taskset -c "$SERVER_CPU" "${cmd[@]}" 2>"$log" &
    SPID=$!
    ADDR=
    for _ in $(seq 100); do
        if grep -q '^listening on ' "$log"; then
            ADDR=$(sed -n 's/^listening on //p' "$log" | head -1)
            break
        fi
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    # A server may print its line and then find it cannot serve (a model not built yet).
    [ -z "$ADDR" ] || sleep 0.2
    if [ -z "$ADDR" ] || ! kill -0 "$SPID" 2>/dev/null; then
        echo "skipping $name: server did not start ($(head -c 200 "$log" | tr '\n' ' '))" >&2
        stop_server
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# SIGTERM, up to 5 s to exit, then SIGKILL.
stop_server() {
    [ -n "${SPID:-}" ] || return 0
    kill -TERM "$SPID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
}

# The process and its descendants (the fork model's workers), one pid per line. Reads
# /proc with builtins only: the fork model has hundreds of children.
tree_pids() {
    local queue=("$1") pid f kids
    while [ ${#queue[@]} -gt 0 ]; do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        echo "$pid"
        for f in /proc/"$pid"/task/*/children; do
            kids=()
            { read -r -a kids <"$f"; } 2>/dev/null || true
            queue+=("${kids[@]}")
        done
    done
}

# utime+stime of the process (all its threads, living or dead) plus cutime+cstime of
# its reaped children, in clock ticks.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' /proc/"$1"/stat
}

# CPU time of the living threads of the process tree in nanoseconds (schedstat).
cpu_ns_live() {
    local total=0 pid t
    for pid in $(tree_pids "$1"); do
        for t in /proc/"$pid"/task/*/schedstat; do
            read -r run _ <"$t" 2>/dev/null || continue
            total=$((total + run))
        done
    done
    echo "$total"
}

# CPU snapshot: "TICKS NS". cpu_between BEFORE AFTER prints "NS METHOD": the schedstat
# sum of the living threads (nanoseconds) when it accounts for all the time the tick
# counters saw; else the tick counters, which also keep the time of threads that exited
# and children that were reaped (the threads and fork models) at 1/CLK_TCK resolution.
cpu_snapshot() {
    echo "$(cpu_ticks "$1") $(cpu_ns_live "$1")"
}
cpu_between() {
    local b_ticks b_ns a_ticks a_ns ticks_ns ns
    read -r b_ticks b_ns <<<"$1"
    read -r a_ticks a_ns <<<"$2"
    ticks_ns=$(((a_ticks - b_ticks) * 1000000000 / CLK_TCK))
    ns=$((a_ns - b_ns))
    # Tick counts are truncated, so they may trail the exact sum by up to two ticks.
    if [ $((ticks_ns - ns)) -le $((2 * 1000000000 / CLK_TCK)) ]; then
        echo "$ns ns"
    else
        echo "$ticks_ns ticks"
    fi
}

# settle PID TASKS: waits (up to 3 s) until the fork model's workers are reaped and the
# process is back to at most TASKS threads, so exited work is in the counters.
settle() {
    local pid=$1 want=$2
    for _ in $(seq 30); do
        if [ "$(tree_pids "$pid" | wc -l)" -le 1 ] && [ "$(ls /proc/"$pid"/task | wc -l)" -le "$want" ]; then
            break
        fi
        sleep 0.1
    done
}

# kB field of /proc/PID/status (VmHWM, VmRSS).
status_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' /proc/"$1"/status
}

# Private dirty memory of the whole process tree in kB (heap, stacks, copied pages):
# what the server itself wrote. Clean and shared pages are left out on purpose: they
# change as soon as `sockit bench`, the same executable, maps the same file pages.
tree_private_kb() {
    local files=() pid
    for pid in $(tree_pids "$1"); do
        files+=("/proc/$pid/smaps_rollup")
    done
    # A worker may exit between listing and reading: cat skips it, awk would stop.
    { cat "${files[@]}" 2>/dev/null || true; } |
        awk '$1 == "Private_Dirty:" { kb += $2 } END { print kb + 0 }'
}

# json_num JSON KEY: the first number after "KEY": in a flat JSON report.
json_num() {
    grep -o "\"$2\":[0-9.]*" <<<"$1" | head -1 | cut -d: -f2
}

machine() {
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores (shared with other work on this machine)"
    echo "- kernel $(uname -r), CLK_TCK $CLK_TCK, load average at start: $(cut -d' ' -f1-3 /proc/loadavg), nice $NICE"
    echo "- $(rustc --version), $(gcc --version | head -1)"
}
