#!/usr/bin/env bash
# Two server binaries compared on the same range over hours in the cold tier, asked in turn,
# so that the shared machine's changing load falls on both alike: the server CPU time per
# range (utime + stime from /proc/PID/stat) of each.
#
#   A=/path/to/old/hourtally B=target/release/hourtally bash scripts/bench-cold-ab.sh
#   A=... B=... HOURS=27 USERS=1000000 ROUNDS=20 bash scripts/bench-cold-ab.sh   # the defaults
#
# Writes a journal of HOURS past hours of USERS users each, half of them the same users in
# every hour (examples/journal_of_hours.rs, as scripts/bench-cold.sh does), gives each server a
# copy (--retention-hours 3, so HOURS - 3 hours go to the cold tier), waits until both have
# stored them and answer the range (which also warms them up), then asks it ROUNDS times of
# A, B, A, B, ..., every answer checked.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${A:?A=<a server binary>}" "${B:?B=<another server binary>}"
HOURS=${HOURS:-27}
USERS=${USERS:-1000000}
ROUNDS=${ROUNDS:-20}
COLD=$((HOURS - 3))

echo "+ cargo build --release --example journal_of_hours" >&2
cargo build --release --example journal_of_hours
target=${CARGO_TARGET_DIR:-target}/release
source scripts/lib.sh

pids=()
addrs=()
stop_both() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
trap 'stop_both; cleanup' EXIT

echo "writing a journal of $HOURS hours x $USERS users ..." >&2
read -r first _ < <("$target/examples/journal_of_hours" "$TMP/journal" "$HOURS" "$USERS" | paste -sd' ')
for side in A B; do
    cp -r "$TMP/journal" "$TMP/$side"
    start_server "$TMP/$side.log" "${!side}" --data-dir "$TMP/$side" --retention-hours 3 --listen 127.0.0.1:0
    pids+=("$SERVER_PID")
    addrs+=("$ADDR")
    SERVER_PID=""
done
last=$((first + (COLD - 1) * 3600000))
# Both have stored the hours and are ready (503 until then).
for ADDR in "${addrs[@]}"; do
    wait_for hourtally_cold_hours "$COLD"
    for _ in $(seq 600); do
        curl -fs -o /dev/null "http://$ADDR/analytics/range?from=$first&to=$last" && break
        sleep 0.1
    done
done
want=$((USERS / 2 + COLD * (USERS - USERS / 2)))

# range K: asks server K the range and checks its answer.
range() {
    local body got
    body=$(curl -fsS "http://${addrs[$1]}/analytics/range?from=$first&to=$last")
    got=$(sed -n 's/^unique_users,//p' <<<"$body")
    [[ $got == "$want" ]] || { echo "server $1 counts $got unique users, expected $want" >&2; exit 1; }
}
a0=$(cpu_ticks "${pids[0]}")
b0=$(cpu_ticks "${pids[1]}")
for _ in $(seq "$ROUNDS"); do
    range 0
    range 1
done
a1=$(cpu_ticks "${pids[0]}")
b1=$(cpu_ticks "${pids[1]}")
tick=$(getconf CLK_TCK)
echo "server CPU per range over $COLD cold hours ($ROUNDS each, in turn): A $(((a1 - a0) * 1000 / tick / ROUNDS)) ms, B $(((b1 - b0) * 1000 / tick / ROUNDS)) ms"
