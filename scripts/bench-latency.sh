#!/usr/bin/env bash
# Latency at a fixed rate (issue 12, "Latency at half the peak"): finds hourtally's
# unpipelined peak, then offers half of it on an open-loop schedule and reports the latency
# percentiles (from each request's intended send time: corrected for coordinated omission)
# and the POST→GET visibility lag (a POST's 204 to the first GET answer that counts it).
# Goals: p99 <= 1 ms at 50 % of the unpipelined peak; visibility lag p99 <= 2 ms.
#
#   bash scripts/bench-latency.sh                # ROUNDS=3 SECS=5 WARMUP=1 CONNS=32 SHARES=0.5
#   SHARES="0.25 0.5" bash scripts/bench-latency.sh   # a quarter of the peak, then half
#   RATES=60000 bash scripts/bench-latency.sh    # skip the peak search, offer 60 000 req/s
#   NICE=-10 bash scripts/bench-latency.sh      # on a busy machine (see NICE below)
#
# 1. Peak: ROUNDS closed-loop runs at depth 1 (no pipelining), each against a fresh server;
#    the median is the peak.
# 2. Open loop: for each of SHARES, ROUNDS runs at that share of the peak, each against a fresh server, with
#    one POST in LAG_EVERY a visibility probe (`hourtally-load --lag-every`) and --verify.
#
# Both use the Tapad mix: half POSTs, half GETs, 95 % for the current hour and 5 % for one
# of the previous 24 (POST_SHARE and CURRENT_SHARE change it). The server runs pinned to core
# SERVER_CPU (0) with --workers 1 --ephemeral, so its HTTP worker and its writer share that
# core; the load generator runs pinned to LOAD_CPU (1) and drives every connection from one
# thread with epoll. The server listens on port 0; its address is read from its start-up line.
#
# Needs 2 cores and taskset. Other load on the machine shows up as latency: the "send lag"
# column says how late the client itself sent (a late client means the client, not the
# server, was short of CPU).

set -euo pipefail

cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
# Shares of the peak to offer, one open-loop series each ("0.25 0.5": a quarter, then half).
SHARES=${SHARES:-0.5}
# Rates to offer instead (requests/s, space-separated): skips the peak search.
RATES=${RATES:-}
# Client: poll instead of sleeping when the next send is this close (hourtally-load --spin-us).
SPIN_US=${SPIN_US:-0}
LAG_EVERY=${LAG_EVERY:-100}
POST_SHARE=${POST_SHARE:-0.5}
CURRENT_SHARE=${CURRENT_SHARE:-0.95}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
# NICE=-10 runs the server and the load generator at that niceness (negative needs root): on
# a machine shared with other work, their wake-ups then preempt it instead of waiting behind
# it. It moves the other work out of the way; it does not make the server faster.
NICE=${NICE:-}
PRIO=()
[[ -n $NICE ]] && PRIO=(nice -n "$NICE")

command -v taskset >/dev/null || {
    echo "bench-latency: taskset is missing (util-linux)" >&2
    exit 1
}

echo "+ cargo build --release --bin hourtally --bin hourtally-load"
cargo build --release --bin hourtally --bin hourtally-load

BIN=${CARGO_TARGET_DIR:-target}/release
HOURTALLY=$BIN/hourtally
LOAD=$BIN/hourtally-load

# TMP, SERVER_PID, stop_server and the cleanup on exit.
source scripts/lib.sh
SERVER_ADDR=""

STARTS=0

# start_server: a fresh hourtally, pinned; sets SERVER_PID and SERVER_ADDR once it is ready.
start_server() {
    STARTS=$((STARTS + 1))
    # A log of its own: the previous server's lines must not be read as this one's.
    local log=$TMP/server-$STARTS.log
    local cmd=("${PRIO[@]}" taskset -c "$SERVER_CPU" "$HOURTALLY" --listen 127.0.0.1:0 --workers 1 --ephemeral)
    echo "+ ${cmd[*]}" >&2
    : >"$log"
    "${cmd[@]}" >>"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_ADDR=""
    for _ in $(seq 200); do
        if [[ -z $SERVER_ADDR ]]; then
            SERVER_ADDR=$(awk '/ listening / { for (i = 1; i <= NF; i++) if ($i ~ /^addr=/) { print substr($i, 6); exit } }' "$log")
        fi
        [[ -n $SERVER_ADDR ]] && grep -q ' ready' "$log" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench-latency: hourtally did not start:" >&2
    cat "$log" >&2
    exit 1
}

# ticks PID: CPU time (user + system) the process used so far, in clock ticks.
ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# load ARGS...: one hourtally-load run against SERVER_ADDR; prints its RESULT line with
# server_cpu_pct= (the server's CPU over the measured seconds, % of one core) appended, and
# keeps its whole report in $TMP/load.out.
load() {
    local cmd=("${PRIO[@]}" taskset -c "$LOAD_CPU" "$LOAD" --addr "$SERVER_ADDR" --connections "$CONNS"
        --duration "$SECS" --warmup "$WARMUP" --post-share "$POST_SHARE"
        --current-share "$CURRENT_SHARE" --no-progress "$@")
    echo "+ ${cmd[*]}" >&2
    local lp s0 s1 t0 t1
    "${cmd[@]}" >"$TMP/load.out" &
    lp=$!
    sleep "$WARMUP"
    s0=$(ticks "$SERVER_PID") t0=$(date +%s.%N)
    if ! wait "$lp"; then
        echo "bench-latency: the load generator failed:" >&2
        cat "$TMP/load.out" >&2
        exit 1
    fi
    s1=$(ticks "$SERVER_PID") t1=$(date +%s.%N)
    printf '%s server_cpu_pct=%s\n' "$(grep '^RESULT ' "$TMP/load.out" | tail -1)" \
        "$(awk -v a="$s0" -v b="$s1" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { printf "%.0f", 100 * (b - a) / hz / (t1 - t0) }')"
}

# field NAME LINE: the value of NAME= in a RESULT line.
field() {
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo "bench-latency: ROUNDS=$ROUNDS SECS=$SECS WARMUP=$WARMUP CONNS=$CONNS SHARES=$SHARES SPIN_US=$SPIN_US" \
    "LAG_EVERY=$LAG_EVERY NICE=${NICE:-0} POST_SHARE=$POST_SHARE CURRENT_SHARE=$CURRENT_SHARE;" \
    "server on core $SERVER_CPU, load on core $LOAD_CPU ($(nproc) cores);" \
    "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ -z $RATES ]]; then
    peaks=() peak_cpu=() peak_srv=()
    for round in $(seq "$ROUNDS"); do
        echo "== peak: closed loop, depth 1, round $round/$ROUNDS" >&2
        start_server
        r=$(load --pipeline 1)
        echo "  $r" >&2
        peaks+=("$(field rps "$r")") peak_cpu+=("$(field client_cpu_pct "$r")")
        peak_srv+=("$(field server_cpu_pct "$r")")
        stop_server
    done
    PEAK=$(median "${peaks[@]}")
    for share in $SHARES; do
        RATES+="$(awk -v p="$PEAK" -v s="$share" 'BEGIN { printf "%.0f", p * s }') "
    done
    echo "peak (closed loop, depth 1, $CONNS connections): median $PEAK req/s" \
        "(rounds: ${peaks[*]}; cpu % server: ${peak_srv[*]}, client: ${peak_cpu[*]});" \
        "offering $SHARES x = $RATES req/s"
    echo "(a server under ~95 % of its core was not the limit: other work took the core, or the"
    echo "client was the limit; then the peak, and the rates offered, are understated)"
fi

ROWS=() MEDIANS=()
for rate in $RATES; do
    p50s=() p90s=() p99s=() p999s=() lag50s=() lag99s=()
    for round in $(seq "$ROUNDS"); do
        echo "== open loop at $rate req/s, round $round/$ROUNDS" >&2
        start_server
        r=$(load --rate "$rate" --spin-us "$SPIN_US" --lag-every "$LAG_EVERY" --verify)
        echo "  $r" >&2
        send_lag=$(sed -n 's/^send lag .*p99 \([0-9]*\) .*/\1/p' "$TMP/load.out")
        stopped=$(grep -c 'probing stopped early' "$TMP/load.out" || true)
        for f in rps p50_us p90_us p99_us p999_us max_us lag_probes lag_p50_us lag_p99_us \
            errors unsent verify_diffs client_cpu_pct server_cpu_pct; do
            printf -v "$f" '%s' "$(field "$f" "$r")"
        done
        p50s+=("$p50_us") p90s+=("$p90_us") p99s+=("$p99_us") p999s+=("$p999_us")
        lag50s+=("$lag_p50_us") lag99s+=("$lag_p99_us")
        ROWS+=("$(printf '%7s %5s %8s %7s %7s %7s %8s %8s %7s %7s %7s %8s %6s %6s %6s %6s %5s' \
            "$rate" "$round" "$rps" "$p50_us" "$p90_us" "$p99_us" "$p999_us" "$max_us" \
            "$lag_probes" "$lag_p50_us" "$lag_p99_us" "${send_lag:-?}" "$server_cpu_pct" \
            "$client_cpu_pct" "$errors" "$unsent" "$verify_diffs")")
        if ((stopped > 0)); then
            echo "  WARNING: $(grep 'probing stopped early' "$TMP/load.out")" >&2
        fi
        stop_server
    done
    MEDIANS+=("$(printf '%7s req/s: p50 %s µs, p90 %s µs, p99 %s µs, p99.9 %s µs; visibility lag p50 %s µs, p99 %s µs' \
        "$rate" "$(median "${p50s[@]}")" "$(median "${p90s[@]}")" "$(median "${p99s[@]}")" \
        "$(median "${p999s[@]}")" "$(median "${lag50s[@]}")" "$(median "${lag99s[@]}")")")
done

echo
echo "open loop, $CONNS connections, ${SECS}s measured after ${WARMUP}s warm-up, spin ${SPIN_US} µs;"
echo "latency in µs from each request's intended send time; lag = a POST's 204 to the first GET"
echo "answer that counts it (one POST in $LAG_EVERY probed); send p99 = how late the client sent;"
echo "srv %/cli % = CPU of one core (server over the measured seconds, client over the run)"
printf '%7s %5s %8s %7s %7s %7s %8s %8s %7s %7s %7s %8s %6s %6s %6s %6s %5s\n' "rate" "round" \
    "req/s" "p50" "p90" "p99" "p99.9" "max" "probes" "lag p50" "lag p99" "send p99" "srv %" \
    "cli %" "errors" "unsent" "diffs"
printf '%s\n' "${ROWS[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows up as latency)"
echo "medians over $ROUNDS rounds:"
printf '%s\n' "${MEDIANS[@]}"
