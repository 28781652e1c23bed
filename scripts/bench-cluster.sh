#!/usr/bin/env bash
# What cluster mode costs, and how it behaves, measured in one run (BENCHMARKS.md, "Scale-out"):
#
#   bash scripts/bench-cluster.sh        # ROUNDS=3 SECS=4 CONNS=32 EVENTS=10000000 SAMPLES=300
#   PARTS=1 NATS_BIN=/usr/sbin/nats-server bash scripts/bench-cluster.sh   # part 1, another NATS
#
# 1. One server, POST mix pipelined 16 deep on CONNS connections, the server pinned to core 0
#    (--workers 1) and the load generator on core 1: --ephemeral (embedded) against cluster
#    mode on one nats-server (JetStream, R=1, also on core 0), --ack log, --ack log on a
#    nats-server with `sync_interval: always` (log-sync), and --ack local;
#    ROUNDS alternating rounds; medians and ratios to embedded.
# 2. Three nats-server processes (R=3) and three hourtally servers, all on the machine's two
#    cores; the load generator posts to all three at once: cluster-wide accepted events/s.
# 3. POST→GET convergence lag across servers: SAMPLES POSTs on server A, each of a new user;
#    after its 204, GETs on server B until B counts it: p50/p99 of the time from the 204.
# 4. Catch-up: EVENTS events in the stream after the newest snapshot; a new server starts:
#    time to "ready" (it restores the snapshot, then replays every event after it).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
CONNS=${CONNS:-32}
EVENTS=${EVENTS:-10000000}
SAMPLES=${SAMPLES:-300}

# The nats-server hourtally is tested against (Debian's is older than it accepts), or NATS_BIN.
NATS=${NATS_BIN:-$(bash scripts/current-nats.sh)}
echo "+ cargo build --release --bin hourtally --bin hourtally-load"
cargo build --release --bin hourtally --bin hourtally-load
BIN=${CARGO_TARGET_DIR:-target}/release
TMP=$(mktemp -d)
# wait_ready, median
source scripts/server.sh
PIDS=()
stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$TMP"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nats CPUS NAME PORT [ROUTE_PORT ROUTES]: starts one nats-server; waits for its port. With
# SYNC=always its JetStream syncs every write before acknowledging it (README, "Scale-out":
# what survives a power loss of the NATS nodes); by default it syncs every 2 minutes.
nats() {
    local cpus=$1 name=$2 port=$3
    shift 3
    local extra=()
    if [[ $# -ge 2 ]]; then
        extra=(--cluster_name bench --cluster "nats://127.0.0.1:$1" --routes "$2")
    fi
    if [[ ${SYNC:-} == always ]]; then
        printf 'jetstream {\n  sync_interval: always\n}\n' >"$TMP/$name.conf"
        extra+=(-c "$TMP/$name.conf")
    fi
    taskset -c "$cpus" "$NATS" -a 127.0.0.1 -p "$port" -n "$name" -js -sd "$TMP/$name" \
        "${extra[@]}" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do
        (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nats-server $name did not start" >&2
    exit 1
}

# server CPUS LOG ARGS...: starts hourtally, waits for `ready`; sets ADDR.
server() {
    local cpus=$1 log=$2
    shift 2
    taskset -c "$cpus" "$BIN/hourtally" --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
    PIDS+=($!)
    wait_ready "$log"
}

load() {
    local addr=$1
    shift
    taskset -c 1 "$BIN/hourtally-load" --addr "$addr" --connections "$CONNS" --pipeline 16 \
        --post-share 1.0 --no-progress "$@" | grep '^RESULT'
}

echo
echo "== 1. one server: embedded against cluster mode on one nats-server (R=1)"
declare -A RPS
for round in $(seq "$ROUNDS"); do
    for mode in embedded log log-sync local; do
        if [[ $mode == embedded ]]; then
            server 0 "$TMP/s-$mode-$round.log" --workers 1 --ephemeral
        else
            port=$(free_port)
            # log-sync: --ack log on a nats-server that syncs every write.
            SYNC=$([[ $mode == log-sync ]] && echo always || true) nats 0 "n-$mode-$round" "$port"
            server 0 "$TMP/s-$mode-$round.log" --workers 1 --ephemeral \
                --nats "nats://127.0.0.1:$port" --stream-replicas 1 --ack "${mode%-sync}"
        fi
        result=$(load "$ADDR" --duration "$SECS" --warmup 1)
        stop_all
        rps=$(sed -n 's/^RESULT rps=\([0-9]*\).*/\1/p' <<<"$result")
        echo "round $round $mode: $result"
        RPS[$mode]="${RPS[$mode]:-} $rps"
    done
done
base=$(tr ' ' '\n' <<<"${RPS[embedded]}" | grep . | median)
for mode in embedded log log-sync local; do
    m=$(tr ' ' '\n' <<<"${RPS[$mode]}" | grep . | median)
    awk -v n="$mode" -v m="$m" -v b="$base" -v all="${RPS[$mode]}" \
        'BEGIN { printf "  %-9s %9d req/s  %.2fx embedded   (rounds:%s)\n", n, m, m / b, all }'
done

[[ ${PARTS:-all} == 1 ]] && exit 0
echo
echo "== 2-4. three nats-server (R=3) and three hourtally servers, everything on cores 0-1"
ports=("$(free_port)" "$(free_port)" "$(free_port)")
routes=("$(free_port)" "$(free_port)" "$(free_port)")
all_routes=$(printf 'nats://127.0.0.1:%s,' "${routes[@]}")
for i in 0 1 2; do
    nats 0-1 "c$i" "${ports[$i]}" "${routes[$i]}" "${all_routes%,}"
done
urls=$(printf 'nats://127.0.0.1:%s,' "${ports[@]}")
urls=${urls%,}
addrs=()
for i in 0 1 2; do
    server 0-1 "$TMP/c-s$i.log" --workers 1 --ephemeral --nats "$urls" --snapshot-interval-s 3600
    addrs+=("$ADDR")
done
echo "cluster-wide POST mix, ${SECS}s, $CONNS connections to each of 3 servers:"
total=0
outs=()
for i in 0 1 2; do
    taskset -c 0-1 "$BIN/hourtally-load" --addr "${addrs[$i]}" --connections "$CONNS" --pipeline 16 \
        --post-share 1.0 --no-progress --duration "$SECS" --warmup 1 >"$TMP/cw$i.out" &
    outs+=($!)
done
for p in "${outs[@]}"; do wait "$p"; done
for i in 0 1 2; do
    r=$(grep '^RESULT' "$TMP/cw$i.out")
    echo "  server $i: $r"
    total=$((total + $(sed -n 's/^RESULT rps=\([0-9]*\).*/\1/p' <<<"$r")))
done
echo "  accepted events/s, all three: $total"

echo
echo "POST→GET convergence lag, $SAMPLES samples, POST on server 0, GET on server 1:"
python3 - "${addrs[0]}" "${addrs[1]}" "$SAMPLES" <<'PY'
import socket, sys, time
a, b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def conn(addr):
    h, p = addr.rsplit(":", 1)
    s = socket.create_connection((h, int(p)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
def request(s, line):
    s.sendall(line.encode() + b" HTTP/1.1\r\nHost: b\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for h in head.split(b"\r\n"):
        if h.lower().startswith(b"content-length:"):
            length = int(h.split(b":")[1])
    while len(body) < length:
        body += s.recv(65536)
    return int(head.split(b" ")[1]), body
pa, pb = conn(a), conn(b)
ts = (int(time.time()) // 3600 - 2) * 3_600_000 + 1234   # an hour no other load touches
lags = []
for i in range(n):
    status, _ = request(pa, f"POST /analytics?timestamp={ts}&user=lag{time.time_ns()}&click")
    assert status == 204, status
    t0 = time.perf_counter()
    while True:
        status, body = request(pb, f"GET /analytics?timestamp={ts}")
        if int(body.split(b"\n")[0].split(b",")[1]) >= i + 1:
            break
    lags.append((time.perf_counter() - t0) * 1e3)
lags.sort()
q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]
print(f"  p50 {q(0.5):.2f} ms  p90 {q(0.9):.2f} ms  p99 {q(0.99):.2f} ms  max {lags[-1]:.2f} ms")
PY

echo
echo "Catch-up: $EVENTS events after the newest snapshot, then a new server:"
# A snapshot now (a graceful stop of server 2 takes one), then EVENTS more events on server 0.
kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
unset 'PIDS[-1]'
grep -o 'snapshot stored.*' "$TMP/c-s2.log" | tail -1 | sed 's/^/  /'
taskset -c 0-1 "$BIN/hourtally-load" --addr "${addrs[0]}" --connections "$CONNS" --pipeline 16 \
    --post-share 1.0 --users 1000000 --no-progress --requests "$EVENTS" | grep '^RESULT' | sed 's/^/  fill: /'
start=$(date +%s.%N)
server 0-1 "$TMP/c-new.log" --workers 1 --ephemeral --nats "$urls" --snapshot-interval-s 3600
end=$(date +%s.%N)
grep -o 'loaded the newest snapshot.*\|catching up.*\|caught up.*' "$TMP/c-new.log" | sed 's/^/  /'
awk -v s="$start" -v e="$end" -v n="$EVENTS" 'BEGIN { printf "  start to ready: %.2f s (%.1f M events/s replayed)\n", e - s, n / (e - s) / 1e6 }'
