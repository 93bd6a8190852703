#!/usr/bin/env bash
# TLS on every socket, measured side by side with references in one run, one certificate
# (made here with openssl) given to every server:
#   bulk   2 GiB through `sockit connect tls://` -> `sockit listen tls://`, against the same
#          through `socat OPENSSL` and `ncat --ssl`; wall time and CPU per GB of each side
#   https  `sockit http serve tls://` against nginx (one process, ssl, best-known config),
#          1 KiB and 1 MiB files, `wrk -t1 -c50` keep-alive; server CPU per request
#   echo   `sockit echo tls://` against bench/ref-tokio-tls (tokio + tokio-rustls), load
#          `sockit bench echo tls://` 50 conns x 64 B, 1 and 16 in flight; server CPU/msg
#   hs     handshakes: wrk with `Connection: close` (a new connection and a full
#          handshake per request; wrk resumes no sessions) against sockit http serve and
#          nginx; and `sockit bench conns tls://` (N handshakes, then a ping each) against
#          sockit echo and ref-tokio-tls; server CPU per handshake
# Servers pinned to core $SERVER_CPU, load generators and senders to core $LOAD_CPU; the
# load generator's CPU is beside every row. Prints a ready-to-paste markdown report.
#
# Usage: bench/tls.sh                                   (~4 min)
#        PARTS="echo hs" KEY=rsa ROUNDS=3 bench/tls.sh
# Variables: PARTS ("bulk https echo hs"), KEY (ec: ECDSA P-256, or rsa: RSA-2048),
# SECS (3, per echo row), DURATION (4s, per wrk row), SIZE_MIB (2048, bulk), HS_CONNS
# (2000, per bench conns row), MODEL (epoll), ROUNDS (1), NICE (0), SERVER_CPU (0),
# LOAD_CPU (1), BENCH_DIR (/dev/shm: the bulk source file), OUT (also write the report
# there). Every run is bounded; only 127.0.0.1 is used.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$ROOT/bench/peers.sh"
needs bench/tls.sh openssl socat ncat nginx wrk curl taskset python3 /usr/bin/time

PARTS=${PARTS:-bulk https echo hs}
KEY=${KEY:-ec}
SECS=${SECS:-3}
DURATION=${DURATION:-4s}
SIZE_MIB=${SIZE_MIB:-2048}
HS_CONNS=${HS_CONNS:-2000}
MODEL=${MODEL:-epoll}
ROUNDS=${ROUNDS:-1}
BENCH_DIR=${BENCH_DIR:-/dev/shm}
OUT=${OUT:-}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REF_TLS=$TARGET/ref-tokio-tls/release/ref-tokio-tls

ulimit -n "$(ulimit -Hn)"
echo "building release binaries..." >&2
(cd "$ROOT" && cargo build --release --locked -q -p sockit-cli)
cargo build --release --locked -q --manifest-path "$ROOT/bench/ref-tokio-tls/Cargo.toml" \
    --target-dir "$TARGET/ref-tokio-tls"

# One certificate and key for every server; the clients trust it as a CA file.
CERT=$work/cert.pem KEYF=$work/key.pem
case $KEY in
    ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) key_name="ECDSA P-256" ;;
    rsa) newkey=(-newkey rsa:2048) key_name="RSA-2048" ;;
    *) echo "KEY must be ec or rsa" >&2; exit 2 ;;
esac
openssl req -x509 "${newkey[@]}" -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE \
    -keyout "$KEYF" -out "$CERT" 2>/dev/null
S=(nice -n "$NICE" taskset -c "$SERVER_CPU")   # a server
L=(nice -n "$NICE" taskset -c "$LOAD_CPU")     # a load generator or sender

[ -z "$OUT" ] || : >"$OUT"
emit "### tls.sh: server on core $SERVER_CPU, load on core $LOAD_CPU, key $key_name"
emit ""
machine | while read -r line; do emit "$line"; done
emit "- $(openssl version), nginx $(nginx -v 2>&1 | sed 's|.*/||'), $(socat -V | sed -n 's/^socat version \([^ ]*\).*/socat \1/p'), $(ncat --version 2>&1 | sed -n 's/^Ncat: Version \([^ ]*\).*/ncat \1/p'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
emit "- certificate: \`openssl req -x509 ${newkey[*]} ...\` ($key_name), the same file for every server"

# --- what each pair negotiates --------------------------------------------------------

# One OpenSSL client handshake with the server on PORT: "protocol, suite, group, sig".
probe() {
    openssl s_client -connect "127.0.0.1:$1" -brief </dev/null 2>&1 |
        awk -F': ' '/^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 }
            /^Signature type/ { s = $2 } /^(Server Temp Key|Negotiated TLS1.3 group)/ { g = $2 }
            END { printf "%s, %s, %s, %s", p, c, g, s }'
}

# Starts "$@" as a server in the background and waits for PORT; sets SPID.
serve() {
    local port=$1
    shift
    "${S[@]}" "$@" &
    SPID=$!
    pids+=("$SPID")
    wait_listening "$port"
}

# sockit_server PORT ARGS...: `sockit ARGS...` whose `listening on` line gives the port:
# sets SPID and PORT.
sockit_server() {
    local log=$work/server.log
    : >"$log"
    "${S[@]}" "$SOCKIT" "$@" 2>"$log" &
    SPID=$!
    pids+=("$SPID")
    PORT=
    for _ in $(seq 200); do
        PORT=$(sed -n 's|^listening on tls://127.0.0.1:||p' "$log" | head -1)
        [ -n "$PORT" ] && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    echo "sockit $* did not start: $(head -c 300 "$log")" >&2
    exit 1
}

stop() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# server_cpu_ns PID: CPU time of a living server (all threads), nanoseconds.
server_cpu_ns() { cpu_ns_live "$1"; }

# What the sockit client negotiates: `openssl s_server -www` answers with a page that
# names the suite and the groups the client offered (the first one is the one used).
client_suite() {
    local port page
    port=$(free_port)
    openssl s_server -www -accept "127.0.0.1:$port" -cert "$CERT" -key "$KEYF" -naccept 1 >/dev/null 2>&1 &
    local pid=$!
    wait_listening "$port"
    page=$(printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 "$SOCKIT" connect "tls://127.0.0.1:$port" --cacert "$CERT" 2>/dev/null || true)
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local suite group
    suite=$(sed -n 's/^New, \(.*\), Cipher is \(.*\)/\1, \2/p' <<<"$page" | head -1)
    group=$(sed -n 's/^Shared groups: \([^:]*\).*/\1/p' <<<"$page" | head -1)
    echo "${suite:-?}, ${group:-?}"
}

emit ""
emit "Negotiated (an \`openssl s_client\` handshake with each server: protocol, suite, key exchange, signature):"
emit ""
sockit_server echo tls://127.0.0.1:0 --cert "$CERT" --key "$KEYF"
emit "- sockit echo tls:// (rustls 0.23, ring): $(probe "$PORT")"
stop "$SPID"
emit "- \`sockit connect tls://\` as the client of \`openssl s_server\`: $(client_suite)"

# --- bulk -----------------------------------------------------------------------------

bulk() {
    BULK_SRC=$BENCH_DIR/sockit-tls-bulk.$$
    local src=$BULK_SRC bytes=$((SIZE_MIB * 1024 * 1024))
    trap 'rm -f "$BULK_SRC"; cleanup' EXIT
    echo "creating $SIZE_MIB MiB in $src ..." >&2
    head -c "$bytes" /dev/urandom >"$src"
    emit ""
    emit "#### bulk: $SIZE_MIB MiB, receiver on core $SERVER_CPU (to /dev/null), sender on core $LOAD_CPU (from a file in $BENCH_DIR)"
    emit ""
    emit "| round | pair | s | GB/s | receiver CPU s | sender CPU s | CPU per GB (both) | bytes |"
    emit "|---|---|--:|--:|--:|--:|--:|--:|"
    local rtime="$work/rcpu" stime="$work/scpu"
    for round in $(seq "$ROUNDS"); do
        for pair in sockit socat ncat; do
            local port t0 t1 got rpid
            port=$(free_port)
            case $pair in
                sockit)
                    /usr/bin/time -o "$rtime" -f '%U %S' "${S[@]}" "$SOCKIT" listen "tls://127.0.0.1:$port" \
                        --cert "$CERT" --key "$KEYF" --recv-only 2>/dev/null | wc -c >"$work/got" &
                    ;;
                socat)
                    /usr/bin/time -o "$rtime" -f '%U %S' "${S[@]}" socat -b 131072 -u \
                        "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,cert=$CERT,key=$KEYF,verify=0" STDOUT |
                        wc -c >"$work/got" &
                    ;;
                ncat)
                    /usr/bin/time -o "$rtime" -f '%U %S' "${S[@]}" ncat --ssl --ssl-cert "$CERT" --ssl-key "$KEYF" \
                        --recv-only -l 127.0.0.1 "$port" | wc -c >"$work/got" &
                    ;;
            esac
            rpid=$!
            wait_listening "$port"
            # A side that fails (ncat reports a peer that closed without close_notify as an
            # SSL_read error) is noted in its row, not the end of the run; the bytes column
            # says whether everything arrived.
            local note=""
            t0=$(date +%s%N)
            case $pair in
                sockit) /usr/bin/time -o "$stime" -f '%U %S' "${L[@]}" "$SOCKIT" connect "tls://127.0.0.1:$port" \
                    --cacert "$CERT" --send-only <"$src" >/dev/null || note=" (sender exit $?)" ;;
                socat) /usr/bin/time -o "$stime" -f '%U %S' "${L[@]}" socat -b 131072 -u "OPEN:$src" \
                    "OPENSSL:127.0.0.1:$port,cafile=$CERT,commonname=localhost" || note=" (sender exit $?)" ;;
                ncat) /usr/bin/time -o "$stime" -f '%U %S' "${L[@]}" ncat --ssl --ssl-verify --ssl-trustfile "$CERT" \
                    --send-only localhost "$port" <"$src" || note=" (sender exit $?)" ;;
            esac
            wait "$rpid" || note="$note (receiver exit $?)"
            t1=$(date +%s%N)
            got=$(cat "$work/got")
            read -r ru rs <"$rtime"
            read -r su ss <"$stime"
            emit "$(awk -v r="$round" -v p="$pair" -v b="$bytes" -v g="$got" -v w=$((t1 - t0)) -v n="$note" \
                -v ru="$ru" -v rs="$rs" -v su="$su" -v ss="$ss" 'BEGIN {
                    gb = b / 1e9; rc = ru + rs; sc = su + ss
                    printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f s | %s%s%s |", r, p, w / 1e9,
                        gb / (w / 1e9), rc, sc, (rc + sc) / gb, g, (g == b ? "" : " SHORT"), n }')"
        done
    done
    rm -f "$src"
    emit ""
    emit "Commands (PORT free, CERT/KEY the certificate above):"
    emit ""
    emit '```sh'
    emit "taskset -c $SERVER_CPU sockit listen tls://127.0.0.1:PORT --cert CERT --key KEY --recv-only | wc -c"
    emit "taskset -c $LOAD_CPU sockit connect tls://127.0.0.1:PORT --cacert CERT --send-only < FILE"
    emit "taskset -c $SERVER_CPU socat -b 131072 -u OPENSSL-LISTEN:PORT,bind=127.0.0.1,reuseaddr,cert=CERT,key=KEY,verify=0 STDOUT | wc -c"
    emit "taskset -c $LOAD_CPU socat -b 131072 -u OPEN:FILE OPENSSL:127.0.0.1:PORT,cafile=CERT,commonname=localhost"
    emit "taskset -c $SERVER_CPU ncat --ssl --ssl-cert CERT --ssl-key KEY --recv-only -l 127.0.0.1 PORT | wc -c"
    emit "taskset -c $LOAD_CPU ncat --ssl --ssl-verify --ssl-trustfile CERT --send-only localhost PORT < FILE"
    emit '```'
    emit ""
    emit "CPU: user+system of each side's process (/usr/bin/time), \`wc\` not included."
}

# --- https and handshakes with wrk ----------------------------------------------------

# nginx_start: one process, ssl with the certificate, the best-known settings for static
# files over TLS; sets NGINX_PID and NGINX_PORT.
nginx_start() {
    NGINX_PORT=$(free_port)
    mkdir -p "$work/nginx"
    cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  open_file_cache max=1000;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  ssl_buffer_size 16k;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $CERT;
    ssl_certificate_key $KEYF;
    root $work/www;
  }
}
CONF
    serve "$NGINX_PORT" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
    NGINX_PID=$SPID
}

# wrk_row ROUND NAME PID PORT FILE PER [EXTRA...]: one wrk run, one table row; PER names
# what the server's CPU is divided by (request or handshake).
wrk_row() {
    local round=$1 name=$2 pid=$3 port=$4 file=$5 per=$6
    shift 6
    curl -sfk -o /dev/null "https://127.0.0.1:$port/$file"
    local before after out times t0 t1
    times=$(mktemp)
    before=$(server_cpu_ns "$pid")
    t0=$(date +%s%N)
    out=$( { TIMEFORMAT='%U %S'; time "${L[@]}" wrk -t1 -c50 -d"$DURATION" "$@" "https://127.0.0.1:$port/$file"; } 2>"$times")
    t1=$(date +%s%N)
    after=$(server_cpu_ns "$pid")
    read -r lu ls <"$times"
    rm -f "$times"
    local reqs rps errs
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/ { sub(/^ +/, ""); printf "%s; ", $0 }' <<<"$out")
    emit "$(awk -v r="$round" -v n="$name" -v f="$file" -v rps="$rps" -v q="$reqs" \
        -v c=$((after - before)) -v w=$((t1 - t0)) -v lu="$lu" -v ls="$ls" -v e="${errs:-0}" 'BEGIN {
            printf "| %s | %s | %s | %.0f | %s | %.1f µs | %.0f%% | %.0f%% | %s |", r, n, f, rps, q,
                (q > 0 ? c / q / 1000 : 0), 100 * c / w, 100 * (lu + ls) * 1e9 / w, e }')"
}

# stime_row ROUND NAME PID PORT: `openssl s_time -new`: one connection at a time, each a
# full handshake (no resumption) and one GET of 1k.bin, for $SECS seconds.
stime_row() {
    local round=$1 name=$2 pid=$3 port=$4 before after out times t0 t1 n
    times=$(mktemp)
    before=$(server_cpu_ns "$pid")
    t0=$(date +%s%N)
    out=$( { TIMEFORMAT='%U %S'; time "${L[@]}" openssl s_time -connect "127.0.0.1:$port" -new \
        -time "$SECS" -www /1k.bin 2>&1; } 2>"$times")
    t1=$(date +%s%N)
    after=$(server_cpu_ns "$pid")
    read -r lu ls <"$times"
    rm -f "$times"
    n=$(awk '/connections in .* real seconds/ { print $1; exit }' <<<"$out")
    emit "$(awk -v r="$round" -v s="$name" -v n="${n:-0}" -v c=$((after - before)) -v w=$((t1 - t0)) \
        -v lu="$lu" -v ls="$ls" 'BEGIN {
            printf "| %s | %s | 1k.bin | %.0f | %d | %.1f µs | %.0f%% | %.0f%% | 0 |", r, s, n / (w / 1e9), n,
                (n > 0 ? c / n / 1000 : 0), 100 * c / w, 100 * (lu + ls) * 1e9 / w }')"
}

https() {
    mkdir -p "$work/www"
    head -c 1024 /dev/urandom >"$work/www/1k.bin"
    head -c 1048576 /dev/urandom >"$work/www/1m.bin"
    sockit_server http serve "$work/www" tls://127.0.0.1:0 --cert "$CERT" --key "$KEYF" -q --model "$MODEL"
    local sk_pid=$SPID sk_port=$PORT
    nginx_start
    emit ""
    emit "#### https: \`wrk -t1 -c50 -d$DURATION\` on core $LOAD_CPU, keep-alive; handshakes: the same with \`-H 'Connection: close'\`"
    emit ""
    emit "- sockit: $(probe "$sk_port")"
    emit "- nginx: $(probe "$NGINX_PORT")"
    emit ""
    emit "| round | server | file | requests/s | requests | server CPU per request | server CPU | wrk CPU | errors |"
    emit "|---|---|---|--:|--:|--:|--:|--:|---|"
    for round in $(seq "$ROUNDS"); do
        for file in 1k.bin 1m.bin; do
            wrk_row "$round" "sockit http serve ($MODEL)" "$sk_pid" "$sk_port" "$file" request
            wrk_row "$round" "nginx" "$NGINX_PID" "$NGINX_PORT" "$file" request
        done
        case " $PARTS " in *" hs "*)
            wrk_row "$round" "sockit http serve ($MODEL), Connection: close" "$sk_pid" "$sk_port" 1k.bin handshake -H 'Connection: close'
            wrk_row "$round" "nginx, Connection: close" "$NGINX_PID" "$NGINX_PORT" 1k.bin handshake -H 'Connection: close'
            stime_row "$round" "sockit http serve ($MODEL), s_time -new" "$sk_pid" "$sk_port"
            stime_row "$round" "nginx, s_time -new" "$NGINX_PID" "$NGINX_PORT"
            ;;
        esac
    done
    stop "$sk_pid"
    stop "$NGINX_PID"
    emit ""
    emit "Commands:"
    emit ""
    emit '```sh'
    emit "taskset -c $SERVER_CPU sockit http serve DIR tls://127.0.0.1:0 --cert CERT --key KEY -q --model $MODEL"
    emit "taskset -c $SERVER_CPU nginx -p DIR -c nginx.conf   # worker_processes 1; master_process off; access_log off;"
    emit "    # keepalive_requests 1000000; open_file_cache max=1000; ssl_session_cache shared:SSL:10m;"
    emit "    # ssl_session_tickets on; ssl_buffer_size 16k; listen ... ssl; ssl_certificate CERT; ..."
    emit "taskset -c $LOAD_CPU wrk -t1 -c50 -d$DURATION https://127.0.0.1:PORT/1k.bin      # and 1m.bin"
    emit "taskset -c $LOAD_CPU wrk -t1 -c50 -d$DURATION -H 'Connection: close' https://127.0.0.1:PORT/1k.bin"
    emit "taskset -c $LOAD_CPU openssl s_time -connect 127.0.0.1:PORT -new -time $SECS -www /1k.bin"
    emit '```'
    emit ""
    emit "Server CPU: schedstat run time of all the server's threads over the run, divided by"
    emit "the requests completed. With Connection: close each request is a new connection, but"
    emit "wrk keeps its TLS session across reconnects (SSL_clear), so those handshakes are"
    emit "resumptions (PSK with a fresh X25519 exchange, no certificate signature), which both"
    emit "servers accept (rustls's session cache, nginx's tickets); \`s_time -new\` makes a full"
    emit "handshake per connection (certificate signature included), one at a time."
}

# --- echo and handshakes with sockit bench --------------------------------------------

# echo_server NAME: sockit echo tls:// (model NAME) or ref-tokio-tls; sets SPID and PORT.
echo_server() {
    case $1 in
        ref-tokio-tls)
            PORT=$(free_port)
            serve "$PORT" "$REF_TLS" "$PORT" "$CERT" "$KEYF" 2>/dev/null
            ;;
        *) sockit_server echo tls://127.0.0.1:0 --cert "$CERT" --key "$KEYF" --model "$1" ;;
    esac
}

# bench_row ROUND SERVER KIND ARGS...: a fresh server, `sockit bench KIND` against it.
bench_row() {
    local round=$1 server=$2 kind=$3
    shift 3
    echo_server "$server"
    local before after json times t0 t1
    times=$(mktemp)
    before=$(server_cpu_ns "$SPID")
    t0=$(date +%s%N)
    json=$( { TIMEFORMAT='%U %S'; time "${L[@]}" "$SOCKIT" bench "$kind" "tls://127.0.0.1:$PORT" \
        --cacert "$CERT" "$@" --json 2>/dev/null; } 2>"$times" || true)
    t1=$(date +%s%N)
    after=$(server_cpu_ns "$SPID")
    stop "$SPID"
    read -r lu ls <"$times"
    rm -f "$times"
    if [ -z "$json" ]; then
        emit "| $round | $server | $* | bench failed | | | | | |"
        return
    fi
    local c=$((after - before)) w=$((t1 - t0))
    local pct lpct
    pct=$(awk -v c="$c" -v w="$w" 'BEGIN { printf "%.0f%%", 100 * c / w }')
    lpct=$(awk -v u="$lu" -v s="$ls" -v w="$w" 'BEGIN { printf "%.0f%%", 100 * (u + s) * 1e9 / w }')
    case $kind in
        echo)
            local served=$(($(json_num "$json" msgs) + $(json_num "$json" drained)))
            emit "$(awk -v r="$round" -v s="$server" -v k="$*" -v rate="$(json_num "$json" msgs_per_sec)" \
                -v p50="$(json_num "$json" p50)" -v c="$c" -v m="$served" -v pct="$pct" -v l="$lpct" \
                -v e="$(json_num "$json" errors)" 'BEGIN {
                    printf "| %s | %s | %s | %.0f msgs/s | p50 %.0f µs | %.0f ns/msg | %s | %s | %s |", r, s, k, rate,
                        p50 / 1000, (m > 0 ? c / m : 0), pct, l, e }')"
            ;;
        conns)
            local opened open_s
            opened=$(json_num "$json" opened)
            open_s=$(json_num "$json" open_secs)
            emit "$(awk -v r="$round" -v s="$server" -v k="$*" -v n="$opened" -v t="${open_s:-0}" -v c="$c" \
                -v pct="$pct" -v l="$lpct" -v e="$(json_num "$json" errors)" 'BEGIN {
                    printf "| %s | %s | %s | %d opened | %.0f handshakes/s | %.1f µs/handshake | %s | %s | %s |", r, s, k, n,
                        (t > 0 ? n / t : 0), (n > 0 ? c / n / 1000 : 0), pct, l, e }')"
            ;;
    esac
}

echo_part() {
    emit ""
    emit "#### echo: fresh server on core $SERVER_CPU per row, \`sockit bench echo tls://\` on core $LOAD_CPU"
    emit ""
    emit "| round | server | load | rate | latency | server CPU | server busy | load CPU | errors |"
    emit "|---|---|---|--:|--:|--:|--:|--:|--:|"
    for round in $(seq "$ROUNDS"); do
        for pipeline in 1 16; do
            for server in "$MODEL" ref-tokio-tls; do
                bench_row "$round" "$server" echo --conns 50 --size 64 --pipeline "$pipeline" --secs "$SECS"
            done
        done
    done
    emit ""
    emit '```sh'
    emit "taskset -c $SERVER_CPU sockit echo tls://127.0.0.1:0 --cert CERT --key KEY --model $MODEL"
    emit "taskset -c $SERVER_CPU ref-tokio-tls 0 CERT KEY          # bench/ref-tokio-tls"
    emit "taskset -c $LOAD_CPU sockit bench echo tls://127.0.0.1:PORT --cacert CERT --conns 50 --size 64 --pipeline K --secs $SECS --json"
    emit '```'
    emit ""
    emit "Server CPU per message: schedstat run time of the server over the run (handshakes"
    emit "included: 50, made before the clock starts) divided by the messages echoed."
}

hs_part() {
    emit ""
    emit "#### handshakes: \`sockit bench conns tls://\` ($HS_CONNS connections, 64 handshakes at once, held 0.1 s, pinged) on core $LOAD_CPU"
    emit ""
    emit "| round | server | load | opened | rate | server CPU | server busy | load CPU | errors |"
    emit "|---|---|---|--:|--:|--:|--:|--:|--:|"
    for round in $(seq "$ROUNDS"); do
        for server in "$MODEL" ref-tokio-tls; do
            bench_row "$round" "$server" conns --conns "$HS_CONNS" --concurrency 64 --hold 100ms
        done
    done
    emit ""
    emit '```sh'
    emit "taskset -c $LOAD_CPU sockit bench conns tls://127.0.0.1:PORT --cacert CERT --conns $HS_CONNS --concurrency 64 --hold 100ms --json"
    emit '```'
    emit ""
    emit "Server CPU per handshake: the server's CPU over the whole run (handshakes, a ping each,"
    emit "closes) divided by the connections opened; the rate is connections opened per second"
    emit "of the opening phase (the generator verifies every certificate: it is often the limit)."
}

started=$(date +%s)
for part in $PARTS; do
    case $part in
        bulk) bulk ;;
        https) https ;;
        echo) echo_part ;;
        hs) hs_part ;;
        *) echo "unknown part $part (bulk https echo hs)" >&2; exit 2 ;;
    esac
done
emit ""
emit "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo "done in $(($(date +%s) - started)) s" >&2
