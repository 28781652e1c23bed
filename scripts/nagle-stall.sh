#!/usr/bin/env bash
# Why hourtally sets TCP_NODELAY: the stall Nagle's algorithm causes a pipelining client.
#
#   bash scripts/nagle-stall.sh              # builds the Nagle-on variant (a worktree, ~3 min)
#   NAGLE_BIN=/tmp/ht-nagle bash scripts/nagle-stall.sh
#
# A client pipelines a burst of 16 POSTs in two writes GAP µs apart (as a burst longer than
# one segment arrives: in two reads) and waits for all 16 answers; BURSTS bursts per row, one
# connection. hourtally answers each read with one write, so the burst's answers leave in two
# writes. With Nagle's algorithm on, the second waits until the first is acknowledged, and a
# client that has nothing more to send acknowledges it only when its delayed-ACK timer fires
# (40 ms on Linux). The rows compare the server as built (TCP_NODELAY) with the same code
# built with `set_nodelay(false)` in src/http/conn.rs (NAGLE_BIN; the bare may_minihttp
# server leaves Nagle on).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/server.sh

BURSTS=${BURSTS:-300}
GAPS=${GAPS:-"0 10 30 100"}
TARGET=${CARGO_TARGET_DIR:-target}

echo "+ cargo build --release --bin hourtally" >&2
cargo build --release --bin hourtally
if [[ -z ${NAGLE_BIN:-} ]]; then
    tree=$(mktemp -d)
    git worktree add -q --detach "$tree" HEAD
    sed -i 's/stream.set_nodelay(true)/stream.set_nodelay(false)/' "$tree/src/http/conn.rs"
    grep -q 'set_nodelay(false)' "$tree/src/http/conn.rs" || {
        echo "nagle-stall: src/http/conn.rs no longer calls set_nodelay(true)" >&2
        exit 1
    }
    echo "+ cargo build --release --bin hourtally (Nagle on, in $tree)" >&2
    (cd "$tree" && CARGO_TARGET_DIR="$PWD/../nagle-target" cargo build --release --bin hourtally)
    NAGLE_BIN=$(dirname "$tree")/nagle-target/release/hourtally
    git worktree remove --force "$tree"
fi

client=$TMP/burst.py
cat >"$client" <<'EOF'
import socket, sys, time
port, bursts, gap_us = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
N, SPLIT = 16, 10
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ts = int(time.time() * 1000)
lat = []
for b in range(bursts):
    reqs = [b"POST /analytics?timestamp=%d&user=u%d&click HTTP/1.1\r\nHost: x\r\n\r\n"
            % (ts, b * N + i) for i in range(N)]
    t0 = time.perf_counter()
    s.sendall(b"".join(reqs[:SPLIT]))
    while time.perf_counter() < t0 + gap_us / 1e6:
        pass
    s.sendall(b"".join(reqs[SPLIT:]))
    got = b""
    while got.count(b"HTTP/1.1 204") < N:
        got += s.recv(65536)
    lat.append((time.perf_counter() - t0) * 1e3)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print("%8.0f %8.3f %8.3f %8.3f %8.3f %6d" % (gap_us, q(.5), q(.9), q(.99), lat[-1],
      sum(1 for x in lat if x > 30)))
EOF

printf '%-10s %8s %8s %8s %8s %8s %6s   (ms; %s bursts of 16 POSTs in two writes)\n' \
    server gap_us p50 p90 p99 max ">30ms" "$BURSTS"
for name in nodelay nagle; do
    bin=$TARGET/release/hourtally
    [[ $name == nagle ]] && bin=$NAGLE_BIN
    "$bin" --listen 127.0.0.1:0 --workers 1 --ephemeral >"$TMP/$name.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$TMP/$name.log"
    for gap in $GAPS; do
        printf '%-10s ' "$name"
        python3 "$client" "${ADDR##*:}" "$BURSTS" "$gap"
    done
    stop_server
done
