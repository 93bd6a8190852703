#!/usr/bin/env bash
# Runs every test. The tests talk to real peers (nc, ncat, curl, openssl, redis-server,
# ss, ...); where one is missing this installs it (Debian packages, as root), or names
# what is missing and stops. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"

# command -> Debian package that provides it
peers=(
  "python3 python3"
  "ncat ncat"
  "nc netcat-openbsd"
  "curl curl"
  "openssl openssl"
  "ss iproute2"
  "ip iproute2"
  "redis-server redis-server"
  "redis-cli redis-tools"
  "sysctl procps"
  "kill procps"
  "setpriv util-linux"
  "script bsdutils"
  "sha256sum coreutils"
  "mount mount"
  "groff groff"
  "man man-db"
  "zsh zsh"
  "fish fish"
  "microsocks microsocks"
  "tinyproxy tinyproxy"
  "nginx nginx"
  "brotli brotli"
  "zstd zstd"
)
need=()
for p in "${peers[@]}"; do
  read -r cmd pkg <<<"$p"
  command -v "$cmd" >/dev/null || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "test.sh: the tests need these Debian packages, and this shell cannot install them" \
      "(not root, or no apt-get): ${need[*]}" >&2
    exit 1
  fi
  echo "test.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Python peers: password hashes made by libraries nobody here wrote (http serve --auth-file).
py_need=()
python3 -c 'import argon2' 2>/dev/null || py_need+=(argon2-cffi)
python3 -c 'import bcrypt' 2>/dev/null || py_need+=(bcrypt)
if [ ${#py_need[@]} -gt 0 ]; then
  echo "test.sh: installing python packages ${py_need[*]}" >&2
  # A python3 from Debian's packages comes without pip: add it first.
  if ! python3 -m pip --version >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
      echo "test.sh: python3 has no pip, and this shell cannot install it (not root, or no apt-get)" >&2
      exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install -q "${py_need[@]}" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "${py_need[@]}"
fi

# 1,100 simultaneous clients in one test process need more than the default 1,024 fds.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec cargo test --workspace --locked "$@"
