#!/usr/bin/env bash
# Instructions a server executes per request, counted by valgrind's callgrind: the same
# binary and load give the same count whatever else the machine is doing, where CPU time on
# this shared 2-core machine moves by ±10 % between runs. It counts user-space instructions
# only (the kernel's share of a request, most of it at depth 1, is not in it) and says
# nothing about cache misses or the cost of one instruction over another.
#
#   bash scripts/instructions.sh                      # hourtally, POST mix, depth 16
#   SHARE=0.0 DEPTH=1 bash scripts/instructions.sh    # GET mix, depth 1
#   SERVERS="hourtally bare" bash scripts/instructions.sh
#   SERVERS="hourtally no-metrics" bash scripts/instructions.sh   # what /metrics adds
#   BASE_BIN=/tmp/hourtally-old SERVERS="base hourtally" bash scripts/instructions.sh
#       # "base": another build's binary, started as hourtally is (before / after a change)
#   COLLECT='*conn::serve*' SERVERS="hourtally no-metrics" bash scripts/instructions.sh
#       # only inside the connection loop (callgrind --toggle-collect): the writer's idle spin
#       # depends on timing, and at depth 1 it makes the whole-process count wander by ±10 %
#
# Each server runs under callgrind twice, answering REQUESTS and then 2 × REQUESTS requests
# of the mix; the difference of the two totals over REQUESTS is the cost of a request, with
# start-up and shutdown cancelled out. "bare" is examples/bare.rs (may_minihttp, every
# request answered 200 "Hello, world!"), "no-metrics" hourtally built without the
# `request-metrics` feature.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-100000}
DEPTH=${DEPTH:-16}
SHARE=${SHARE:-1.0}
CONNS=${CONNS:-8}
SERVERS=${SERVERS:-hourtally}
COLLECT=${COLLECT:-}

command -v valgrind >/dev/null || {
    echo "instructions: valgrind is missing (apt-get install -y valgrind)" >&2
    exit 1
}
source scripts/lib.sh
TARGET=${CARGO_TARGET_DIR:-target}
if [[ " $SERVERS " == *" no-metrics "* ]]; then
    echo "+ cargo build --release --bin hourtally --no-default-features --features server" >&2
    cargo build --release --bin hourtally --no-default-features --features server
    cp "$TARGET/release/hourtally" "$TMP/hourtally-no-metrics"
fi
echo "+ cargo build --release --bin hourtally --bin hourtally-load --example bare" >&2
cargo build --release --bin hourtally --bin hourtally-load --example bare
LOAD=$TARGET/release/hourtally-load

# total NAME N: callgrind's instruction total for server NAME answering N requests.
total() {
    # Runs in a command substitution (a subshell): the parent's EXIT trap does not reach the
    # server started here, so this one stops it on every way out.
    trap stop_server EXIT
    local name=$1 n=$2 out=$TMP/cg.$1.$2 log=$TMP/log.$1.$2 cmd addr=""
    case $name in
    hourtally) cmd=("$TARGET/release/hourtally" --listen 127.0.0.1:0 --workers 1 --ephemeral) ;;
    no-metrics) cmd=("$TMP/hourtally-no-metrics" --listen 127.0.0.1:0 --workers 1 --ephemeral) ;;
    base) cmd=("${BASE_BIN:?base needs BASE_BIN}" --listen 127.0.0.1:0 --workers 1 --ephemeral) ;;
    bare) cmd=("$TARGET/release/examples/bare" 127.0.0.1:0) ;;
    *)
        echo "instructions: SERVERS takes hourtally, no-metrics, base and bare, not $name" >&2
        exit 2
        ;;
    esac
    local collect=()
    [[ -n $COLLECT ]] && collect=("--toggle-collect=$COLLECT")
    valgrind --tool=callgrind ${collect[@]+"${collect[@]}"} --callgrind-out-file="$out" "${cmd[@]}" >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 600); do
        addr=$(awk '$2 == "listening" { print $4; exit }
            / listening / { for (i = 1; i <= NF; i++) if ($i ~ /^addr=/) { print substr($i, 6); exit } }' "$log")
        [[ -n $addr ]] && break
        sleep 0.1
    done
    [[ -n $addr ]] || {
        echo "instructions: $name did not start:" >&2
        cat "$log" >&2
        exit 1
    }
    "$LOAD" --addr "$addr" --connections "$CONNS" --pipeline "$DEPTH" --requests "$n" \
        --warmup 0 --post-share "$SHARE" --current-share 0.95 --no-progress --timeout 60 \
        >"$TMP/load.out" 2>&1 || {
        cat "$TMP/load.out" >&2
        exit 1
    }
    grep -q ' errors=0 ' "$TMP/load.out" || {
        echo "instructions: the load against $name had errors:" >&2
        cat "$TMP/load.out" >&2
        exit 1
    }
    # bare ignores SIGTERM's meaning but dies of it; either way callgrind writes its file.
    stop_server
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

echo "instructions per request: REQUESTS=$REQUESTS DEPTH=$DEPTH SHARE=$SHARE (POST share) CONNS=$CONNS${COLLECT:+ COLLECT=$COLLECT}"
printf '%-12s %16s %16s %12s\n' server "Ir ($REQUESTS)" "Ir ($((2 * REQUESTS)))" "Ir/request"
for s in $SERVERS; do
    a=$(total "$s" "$REQUESTS")
    b=$(total "$s" $((2 * REQUESTS)))
    printf '%-12s %16s %16s %12s\n' "$s" "$a" "$b" \
        "$(awk -v a="$a" -v b="$b" -v n="$REQUESTS" 'BEGIN { printf "%.0f", (b - a) / n }')"
done
