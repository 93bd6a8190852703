# Shared by the benchmarks that run sockit side by side with other programs (exec.sh,
# http.sh): a scratch directory cleaned on exit with every server started, optional
# pinning, free ports and waiting for a listener.
# shellcheck shell=bash

# needs SCRIPT TOOL...: stops with a one-line message when a tool is missing.
needs() {
  local script=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$script needs $tool" >&2; exit 1; }
  done
}

# Servers started by the script (append their PIDs) are killed on exit, with $work.
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# With PIN=1 (and two CPUs or more), "${server_cpu[@]}" CMD runs on CPU 0 and
# "${client_cpu[@]}" CMD on CPU 1; otherwise both are empty.
server_cpu=() client_cpu=()
if [ "${PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_listening PORT: asks the kernel rather than connecting (a probe connection would
# start a transfer, and nc -l serves only one), for up to 5 s.
wait_listening() {
  for _ in $(seq 250); do
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
    sleep 0.02
  done
  echo "nothing listens on port $1" >&2
  exit 1
}
