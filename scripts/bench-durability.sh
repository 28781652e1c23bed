#!/usr/bin/env bash
# What durability costs and how fast it recovers, measured in one run (BENCHMARKS.md,
# "Durability"):
#
#   bash scripts/bench-durability.sh            # ROUNDS=3 SECS=4 EVENTS=10000000 CONNS=32
#
# 1. POST mix, 32 connections pipelined 16 deep, the server pinned to core 0 (--workers 1, so
#    its HTTP worker and its writer share the core), the load generator on core 1; ROUNDS
#    alternating rounds of --ephemeral and --fsync always, interval and never, each on a fresh
#    data directory; the median requests/s of each and its ratio to --ephemeral.
# 2. Recovery: EVENTS POSTs into a fresh data directory; kill -9 and restart (the whole
#    journal is replayed), then a graceful stop (which takes a snapshot) and restart (the
#    snapshot is restored); each restart's "recovered" line, and the bytes on disk.
#
# The data directories live under $TMPDIR (default /tmp): on this VM, the same disk as the
# checkout. Needs taskset and 2 cores.

set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
EVENTS=${EVENTS:-10000000}
CONNS=${CONNS:-32}

echo "+ cargo build --release --bin hourtally --bin hourtally-load"
cargo build --release --bin hourtally --bin hourtally-load
BIN=${CARGO_TARGET_DIR:-target}/release
TMP=$(mktemp -d)
# wait_ready, median
source scripts/server.sh
SERVER_PID=""
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap 'stop_server; rm -rf "$TMP"' EXIT

# start LOG ARGS...: starts the server pinned to core 0, waits for `ready`; sets ADDR.
start() {
    local log=$1
    shift
    taskset -c 0 "$BIN/hourtally" --listen 127.0.0.1:0 --workers 1 "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$log" 2000
}

load() {
    taskset -c 1 "$BIN/hourtally-load" --addr "$ADDR" --connections "$CONNS" --pipeline 16 \
        --post-share 1.0 --no-progress "$@" | grep '^RESULT'
}

declare -A RPS
for round in $(seq "$ROUNDS"); do
    for mode in ephemeral always interval never; do
        case $mode in
            ephemeral) args=(--ephemeral) ;;
            *) args=(--data-dir "$TMP/$mode-$round" --fsync "$mode") ;;
        esac
        start "$TMP/$mode-$round.log" "${args[@]}"
        result=$(load --duration "$SECS" --warmup 1)
        stop_server
        rps=$(sed -n 's/^RESULT rps=\([0-9]*\).*/\1/p' <<<"$result")
        echo "round $round $mode: $result"
        RPS[$mode]="${RPS[$mode]:-} $rps"
    done
done
base=$(tr ' ' '\n' <<<"${RPS[ephemeral]}" | grep . | median)
echo
echo "POST mix, depth 16, median of $ROUNDS rounds of ${SECS}s:"
for mode in ephemeral always interval never; do
    m=$(tr ' ' '\n' <<<"${RPS[$mode]}" | grep . | median)
    awk -v n="$mode" -v m="$m" -v b="$base" -v all="${RPS[$mode]}" \
        'BEGIN { printf "  %-9s %9d req/s  %.2fx ephemeral   (rounds:%s)\n", n, m, m / b, all }'
done

echo
echo "Recovery of $EVENTS events (POST mix, 1 M users):"
start "$TMP/fill.log" --data-dir "$TMP/recovery"
load --requests "$EVENTS" --users 1000000 >/dev/null
sleep 1
# kill -9: no snapshot at stop, so the restart replays the whole journal.
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
bytes=$(du -sb "$TMP/recovery/journal" | cut -f1)
start "$TMP/replay.log" --data-dir "$TMP/recovery"
echo "  from the journal:  $(grep -o ' recovered .*' "$TMP/replay.log")"
awk -v b="$bytes" -v e="$EVENTS" 'BEGIN { printf "  journal: %d bytes for %d events, %.2f bytes per event\n", b, e, b / e }'
# A graceful stop takes a snapshot: the next restart restores it and replays nothing.
stop_server
start "$TMP/restore.log" --data-dir "$TMP/recovery"
echo "  from the snapshot: $(grep -o ' recovered .*' "$TMP/restore.log")"
echo "  snapshot: $(du -sb "$TMP/recovery/snapshots" | cut -f1) bytes"
stop_server
