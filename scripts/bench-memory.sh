#!/usr/bin/env bash
# Memory per unique user-hour of the real server, by resident memory: starts the release
# binary (--ephemeral), posts N distinct users to one hour over HTTP, and reads VmRSS and
# RssAnon from /proc/PID/status before and after. `cargo bench --bench memory` counts the
# heap bytes of the user set alone; this counts what the process holds, allocator slack and
# table growth included.
#
#   bash scripts/bench-memory.sh                 # USERS="2000000 7000000"
#   USERS=1000000 bash scripts/bench-memory.sh
#   IDS=1 USERS=1000000 bash scripts/bench-memory.sh   # each POST with an event id of its own
#   FROZEN=1 USERS=1000000 bash scripts/bench-memory.sh  # and once the hour is frozen
#
# For each N: a fresh server; two connections post 1 000 warm-up users ("w…") to the hour,
# so that connections, buffers and the hour's first tables exist before the first reading;
# then users u0 … u{N-1}, each once, pipelined; then a GET of the hour must answer
# unique_users = N + 1000 (every event applied) before the second reading. The table gives
# the growth divided by N.
#
# The client is a small Python program (one process per connection, 512 requests per
# write); it needs python3. It fails on any answer but 204. The server gets a queue of 8 Mi
# events (QUEUE): allocated and filled in at start, so it is in the first reading and not in
# the growth, and a writer that falls behind a fast client (on a busy machine) makes the
# client wait instead of refusing events with 503. PIN=1 pins the server to core 0 and the
# client to core 1. SERVER_ARGS adds flags to the server; HOURTALLY picks another binary
# (e.g. one built with another allocator) instead of building. IDS=1 gives every POST an
# event id of its own (`&event_id=e` and the user's name): the growth is then a user's and an
# id's, and the difference from a run without is what remembering an id costs.
#
# FROZEN=1 posts the users to the hour two hours before the clock's, then one event to the
# clock's hour, which makes the first hour one that is over (ARCHITECTURE, "Frozen hours");
# once /metrics counts the freeze and a second has passed (what the freeze replaced is freed
# on its own thread), a third reading gives what the hour holds frozen (the "frozen B/user"
# column, from the first reading).

set -euo pipefail

cd "$(dirname "$0")/.."

USERS=${USERS:-"2000000 7000000"}
CONNS=${CONNS:-2}
SERVER_ARGS=${SERVER_ARGS:-}
QUEUE=${QUEUE:-8388608}
IDS=${IDS:-0}
FROZEN=${FROZEN:-0}

command -v python3 >/dev/null || {
    echo "bench-memory: python3 is missing" >&2
    exit 1
}
PIN_SERVER=()
PIN_CLIENT=()
if [[ ${PIN:-0} == 1 ]]; then
    PIN_SERVER=(taskset -c 0)
    PIN_CLIENT=(taskset -c 1)
fi

if [[ -z ${HOURTALLY:-} ]]; then
    echo "+ cargo build --release --bin hourtally" >&2
    cargo build --release --bin hourtally
    HOURTALLY=${CARGO_TARGET_DIR:-target}/release/hourtally
fi

# TMP, SERVER_PID, stop_server and the cleanup on exit.
source scripts/lib.sh

# The client: posts users PREFIX0 … PREFIX{N-1} to the hour of TS over CONNS connections,
# then GETs the hour until it counts EXPECT unique users (or 60 s pass).
cat >"$TMP/post.py" <<'EOF'
import socket, sys, time
from multiprocessing import Process

sys.path.insert(0, sys.argv[8])
from pipeline import send

addr = sys.argv[1]
host, port = addr.rsplit(":", 1)
port = int(port)
ts, prefix, n, conns, expect = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
ids = sys.argv[7] == "1"

def post(lo, hi):
    send(addr, (
        b"POST /analytics?timestamp=%d&user=%s%d%s&impression HTTP/1.1\r\nHost: bench\r\n\r\n"
        % (ts, prefix.encode(), u, b"&event_id=e%s%d" % (prefix.encode(), u) if ids else b"")
        for u in range(lo, hi)))

step = (n + conns - 1) // conns
ps = [Process(target=post, args=(i * step, min(n, (i + 1) * step))) for i in range(conns)]
for p in ps:
    p.start()
for p in ps:
    p.join()
    if p.exitcode != 0:
        sys.exit(1)

deadline = time.time() + 60
while True:
    s = socket.create_connection((host, port))
    s.sendall(b"GET /analytics?timestamp=%d HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % ts)
    body = b""
    while True:
        c = s.recv(1 << 16)
        if not c:
            break
        body += c
    s.close()
    got = [l for l in body.split(b"\n") if l.startswith(b"unique_users,")]
    if got and int(got[0].split(b",")[1]) == expect:
        break
    if time.time() > deadline:
        sys.exit("the hour counts %r, expected %d unique users" % (got, expect))
    time.sleep(0.05)
EOF

# kib PID FIELD: a field of /proc/PID/status, in KiB.
kib() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

printf '%-10s %12s %12s %12s %12s %10s %10s %8s %13s\n' \
    users "RSS before" "RSS after" "anon before" "anon after" "RSS B/user" "anon B/user" "post s" \
    "frozen B/user"
for n in $USERS; do
    log=$TMP/server.log
    # shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
    "${PIN_SERVER[@]}" "$HOURTALLY" --ephemeral --listen 127.0.0.1:0 \
        --queue-capacity "$QUEUE" $SERVER_ARGS >"$log" 2>&1 &
    SERVER_PID=$!
    addr=""
    for _ in $(seq 200); do
        addr=$(awk '/ listening / { for (i = 1; i <= NF; i++) if ($i ~ /^addr=/) { print substr($i, 6); exit } }' "$log")
        [[ -n $addr ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z $addr ]]; then
        echo "bench-memory: the server did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    # One timestamp for the whole run (the current hour when it starts), so every user
    # lands in the same hour even if the clock's hour turns meanwhile.
    ts=$(($(date +%s) * 1000))
    now=$ts
    if [[ $FROZEN == 1 ]]; then
        ts=$((ts - 7200000))
    fi
    client() {
        "${PIN_CLIENT[@]}" python3 "$TMP/post.py" "$addr" "$ts" "$@" "$PWD/scripts" || {
            echo "bench-memory: the client failed; the server's log ends:" >&2
            tail -5 "$log" >&2
            exit 1
        }
    }
    client w 1000 "$CONNS" 1000 "$IDS"
    rss0=$(kib "$SERVER_PID" VmRSS)
    anon0=$(kib "$SERVER_PID" RssAnon)
    t0=$(date +%s.%N)
    client u "$n" "$CONNS" $((n + 1000)) "$IDS"
    t1=$(date +%s.%N)
    rss1=$(kib "$SERVER_PID" VmRSS)
    anon1=$(kib "$SERVER_PID" RssAnon)
    rss2=
    if [[ $FROZEN == 1 ]]; then
        "${PIN_CLIENT[@]}" python3 "$TMP/post.py" "$addr" "$now" z 1 1 1 0 "$PWD/scripts"
        for _ in $(seq 600); do
            frozen=$(curl -fsS "http://$addr/metrics" | awk '$1 == "hourtally_hours_frozen_total" { print $2 }')
            [[ ${frozen:-0} -ge 1 ]] && break
            sleep 0.1
        done
        [[ ${frozen:-0} -ge 1 ]] || { echo "bench-memory: the hour was not frozen in 60 s" >&2; exit 1; }
        # The replaced set and log are freed on the freezing thread just after the install.
        sleep 1
        rss2=$(kib "$SERVER_PID" VmRSS)
    fi
    stop_server
    awk -v n="$n" -v r0="$rss0" -v r1="$rss1" -v a0="$anon0" -v a1="$anon1" -v t0="$t0" -v t1="$t1" \
        -v r2="$rss2" \
        'BEGIN { printf "%-10d %9d KiB %9d KiB %9d KiB %9d KiB %10.2f %10.2f %8.1f %13s\n",
                 n, r0, r1, a0, a1, (r1 - r0) * 1024 / n, (a1 - a0) * 1024 / n, t1 - t0,
                 r2 == "" ? "-" : sprintf("%.2f", (r2 - r0) * 1024 / n) }'
done
