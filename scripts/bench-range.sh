#!/usr/bin/env bash
# Unique users over a range, measured on the real server: the server CPU time (utime + stime
# from /proc/PID/stat) and the wall time of one GET /analytics/range over HOURS hours of
# USERS users each, half of them the same users in every hour (the shape of issue 23's goal:
# 24 hours of 1 M users, 12.5 M distinct).
#
#   bash scripts/bench-range.sh                        # HOURS=24 USERS=1000000 ROUNDS=5
#   HOURS=6 USERS=200000 bash scripts/bench-range.sh
#
# Starts the release binary (--ephemeral), posts every hour's users (hours ending two hours
# before the clock's, so that all of them are over and frozen), posts one event to the
# clock's hour, waits until /metrics counts HOURS freezes, then asks for the range ROUNDS
# times, one request at a time, and checks each answer against the expected count. The
# POSTs go over CONNS connections from python3, 512 requests per write.
set -euo pipefail
cd "$(dirname "$0")/.."

HOURS=${HOURS:-24}
USERS=${USERS:-1000000}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-2}

if [[ -z ${HOURTALLY:-} ]]; then
    echo "+ cargo build --release --bin hourtally" >&2
    cargo build --release --bin hourtally
    HOURTALLY=${CARGO_TARGET_DIR:-target}/release/hourtally
fi
source scripts/lib.sh

cat >"$TMP/post.py" <<'EOF'
import sys
from multiprocessing import Process

sys.path.insert(0, sys.argv[6])
from pipeline import send

addr = sys.argv[1]
first_ts, hours, users, conns = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def names(hour):
    # The first half the same in every hour, the second half this hour's own.
    for i in range(users):
        yield b"s%d" % i if i < users // 2 else b"h%d-%d" % (hour, i)

def requests(conn):
    for hour in range(hours):
        ts = first_ts + hour * 3600000
        for k, name in enumerate(names(hour)):
            if k % conns == conn:
                yield b"POST /analytics?timestamp=%d&user=%s&click HTTP/1.1\r\nHost: b\r\n\r\n" % (ts, name)

ps = [Process(target=send, args=(addr, requests(c))) for c in range(conns)]
for p in ps:
    p.start()
for p in ps:
    p.join()
    if p.exitcode != 0:
        sys.exit(1)
EOF

start_server "$TMP/server.log" "$HOURTALLY" --ephemeral --listen 127.0.0.1:0 --queue-capacity 8388608
addr=$ADDR
log=$TMP/server.log
now=$(($(date +%s) * 1000))
hour=$((now / 3600000))
first=$(((hour - 1 - HOURS) * 3600000))
last=$(((hour - 2) * 3600000))
echo "posting $HOURS hours x $USERS users ($((HOURS * USERS)) events) ..." >&2
t0=$(date +%s)
python3 "$TMP/post.py" "$addr" "$first" "$HOURS" "$USERS" "$CONNS" "$PWD/scripts"
curl -fsS -X POST "http://$addr/analytics?timestamp=$now&user=now&click" >/dev/null
echo "posted in $(($(date +%s) - t0)) s; waiting for $HOURS freezes ..." >&2
for _ in $(seq 1200); do
    frozen=$(curl -fsS "http://$addr/metrics" | awk '$1 == "hourtally_hours_frozen_total" { print $2 }')
    [[ ${frozen:-0} -ge $HOURS ]] && break
    sleep 0.1
done
[[ ${frozen:-0} -ge $HOURS ]] || { echo "only ${frozen:-0} hours frozen" >&2; exit 1; }
sleep 1
rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVER_PID/status")
want=$((USERS / 2 + HOURS * (USERS - USERS / 2)))
tick=$(getconf CLK_TCK)
printf '%-6s %-9s %-12s %-10s %-9s\n' hours users distinct "wall ms" "RSS MiB"
c0=$(cpu_ticks "$SERVER_PID")
for _ in $(seq "$ROUNDS"); do
    w0=$(date +%s%N)
    body=$(curl -fsS "http://$addr/analytics/range?from=$first&to=$last")
    w1=$(date +%s%N)
    got=$(sed -n 's/^unique_users,//p' <<<"$body")
    [[ $got == "$want" ]] || { echo "the range counts $got unique users, expected $want" >&2; exit 1; }
    printf '%-6d %-9d %-12d %-10d %-9d\n' "$HOURS" "$USERS" "$got" $(((w1 - w0) / 1000000)) $((rss / 1024))
done
c1=$(cpu_ticks "$SERVER_PID")
echo "server CPU per range: $(((c1 - c0) * 1000 / tick / ROUNDS)) ms (utime + stime over $ROUNDS ranges)"
