#!/usr/bin/env bash
# The cold tier, measured on the real server: bytes on disk per user-hour, the RSS it holds
# per sealed user-hour, and the server CPU time (utime + stime from /proc/PID/stat) and wall
# time of one GET /analytics/range over hours read from their files.
#
#   bash scripts/bench-cold.sh                 # HOURS=27 USERS=1000000 ROUNDS=5
#   HOURS=10 USERS=200000 bash scripts/bench-cold.sh
#
# Writes a data directory whose journal holds HOURS past hours of USERS users each, half of
# them the same users in every hour (examples/journal_of_hours.rs), for a ring of 3 slots.
# Starts the release binary on it (--retention-hours 3): the replay makes HOURS - 3 hours
# leave the ring, and the server stores each in cold/. Once /metrics counts them: the files'
# bytes, the server's RSS, then the range over those HOURS - 3 hours ROUNDS times, each
# answer checked. Then the same journal on a server that keeps no cold tier
# (--cold-retention-hours 0): the RSS the cold tier holds is the difference, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."

HOURS=${HOURS:-27}
USERS=${USERS:-1000000}
ROUNDS=${ROUNDS:-5}
COLD=$((HOURS - 3))

echo "+ cargo build --release --bin hourtally --example journal_of_hours" >&2
cargo build --release --bin hourtally --example journal_of_hours
target=${CARGO_TARGET_DIR:-target}/release
HOURTALLY=${HOURTALLY:-$target/hourtally}
source scripts/lib.sh

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }

# start DIR ARGS...: the server on DIR (ADDR, SERVER_PID).
start() {
    local dir=$1
    shift
    start_server "$TMP/server.log" "$HOURTALLY" --data-dir "$dir" --retention-hours 3 --listen 127.0.0.1:0 "$@"
}

echo "writing a journal of $HOURS hours x $USERS users ..." >&2
read -r first distinct < <("$target/examples/journal_of_hours" "$TMP/cold" "$HOURS" "$USERS" | paste -sd' ')
cp -r "$TMP/cold" "$TMP/none"

start "$TMP/cold"
t0=$(date +%s)
wait_for hourtally_cold_hours "$COLD"
wait_ready
echo "replayed and stored $COLD hours in $(($(date +%s) - t0)) s" >&2
sleep 2
bytes=$(metric hourtally_cold_bytes)
rss_cold=$(rss_kib "$SERVER_PID")
last=$((first + (COLD - 1) * 3600000))
want=$((USERS / 2 + COLD * (USERS - USERS / 2)))
tick=$(getconf CLK_TCK)
printf '%-6s %-9s %-12s %-10s\n' hours users distinct "wall ms"
c0=$(cpu_ticks "$SERVER_PID")
for _ in $(seq "$ROUNDS"); do
    w0=$(date +%s%N)
    body=$(curl -fsS "http://$ADDR/analytics/range?from=$first&to=$last")
    w1=$(date +%s%N)
    got=$(sed -n 's/^unique_users,//p' <<<"$body")
    [[ $got == "$want" ]] || { echo "the range counts $got unique users, expected $want" >&2; exit 1; }
    printf '%-6d %-9d %-12d %-10d\n' "$COLD" "$USERS" "$got" $(((w1 - w0) / 1000000))
done
c1=$(cpu_ticks "$SERVER_PID")
rss_after=$(rss_kib "$SERVER_PID")
stop_server

start "$TMP/none" --cold-retention-hours 0
wait_for hourtally_archived_hours "$COLD"
wait_ready
sleep 2
rss_none=$(rss_kib "$SERVER_PID")
stop_server

uh=$((COLD * USERS))
echo "server CPU per range over $COLD cold hours: $(((c1 - c0) * 1000 / tick / ROUNDS)) ms (utime + stime over $ROUNDS ranges)"
awk -v b="$bytes" -v uh="$uh" 'BEGIN { printf "on disk: %d bytes in cold/, %.3f bytes per user-hour\n", b, b / uh }'
awk -v a="$rss_cold" -v n="$rss_none" -v r="$rss_after" -v uh="$uh" 'BEGIN {
    printf "RSS: %.1f MiB with the cold tier (%.1f after the ranges), %.1f MiB without\n", a / 1024, r / 1024, n / 1024
    printf "RSS held for sealed hours: %.3f bytes per sealed user-hour (%.3f after the ranges)\n", (a - n) * 1024 / uh, (r - n) * 1024 / uh
}'
