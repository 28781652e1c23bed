#!/usr/bin/env bash
# Soak: the real binary under the Tapad mix at about 80 % of its measured peak for a long
# while, sampling its memory and /metrics, ending with a verdict (BENCHMARKS.md, "Soak").
# Not part of CI.
#
#   bash scripts/soak.sh                 # SECS=600 SHARE=0.8 CONNS=32 SAMPLE=10
#
# 1. The peak: closed loop, CONNS connections, not pipelined, 5 s, on a fresh server.
# 2. The soak: open loop (--rate = SHARE × peak, latency from each request's intended send
#    time) for SECS seconds with --verify (every hour touched is read back and compared with
#    the 204s), the server pinned to core 0 and the client to core 1; every SAMPLE seconds the
#    server's VmRSS / RssAnon and a few /metrics series.
# 3. Verdict: errors and refusals, the RSS trend (first sample after a minute against the
#    last), and --verify's differences; CLIENT-BOUND when the client could not send on
#    schedule (its `unsent`, over 1 in 10 000). Exit 1 unless ok.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-600}
SHARE=${SHARE:-0.8}
CONNS=${CONNS:-32}
SAMPLE=${SAMPLE:-10}

echo "+ cargo build --release --bin hourtally --bin hourtally-load"
cargo build --release --bin hourtally --bin hourtally-load
BIN=${CARGO_TARGET_DIR:-target}/release
TMP=$(mktemp -d)
# wait_ready
source scripts/server.sh
PID=""
stop() { [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
trap 'stop; rm -rf "$TMP"' EXIT

start() {
    taskset -c 0 "$BIN/hourtally" --listen 127.0.0.1:0 --workers 1 --data-dir "$TMP/data-$1" >"$TMP/server-$1.log" 2>&1 &
    PID=$!
    wait_ready "$TMP/server-$1.log" 600
}

start peak
peak=$(taskset -c 1 "$BIN/hourtally-load" --addr "$ADDR" --connections "$CONNS" --duration 5 --warmup 1 --no-progress | grep '^RESULT' | sed -n 's/^RESULT rps=\([0-9]*\).*/\1/p')
stop
rate=$(awk -v p="$peak" -v s="$SHARE" 'BEGIN { printf "%d", p * s }')
echo "peak (closed loop, $CONNS connections, depth 1): $peak req/s; soak rate: $rate req/s for $SECS s"

start soak
rss() { awk '/^VmRSS:|^RssAnon:/ { printf "%s %s ", $1, $2 }' "/proc/$PID/status"; }
metric() { curl -s "http://$ADDR/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
taskset -c 1 "$BIN/hourtally-load" --addr "$ADDR" --connections "$CONNS" --rate "$rate" \
    --duration "$SECS" --verify --no-progress >"$TMP/load.out" 2>&1 &
LOAD=$!
echo "t_s VmRSS_kB RssAnon_kB applied queue_depth rejections"
samples=()
t=0
while kill -0 "$LOAD" 2>/dev/null; do
    sleep "$SAMPLE"
    t=$((t + SAMPLE))
    kill -0 "$LOAD" 2>/dev/null || break
    r=$(rss)
    rej=$(curl -s "http://$ADDR/metrics" | awk '/^hourtally_http_rejections_total/ { s += $2 } END { print s + 0 }')
    line="$t $(awk '{ print $2, $4 }' <<<"$r") $(metric hourtally_events_applied_total) $(metric hourtally_queue_depth) $rej"
    echo "$line"
    samples+=("$line")
done
wait "$LOAD" || true
result=$(grep '^RESULT' "$TMP/load.out" || true)
echo "$result"
first=""
for s in "${samples[@]}"; do
    if [[ $(cut -d' ' -f1 <<<"$s") -ge 60 ]]; then first=$s; break; fi
done
last=${samples[-1]:-}
verdict=ok
errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$result")
diffs=$(sed -n 's/.* verify_diffs=\([0-9]*\).*/\1/p' <<<"$result")
non2xx=$(sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' <<<"$result")
unsent=$(sed -n 's/.* unsent=\([0-9]*\).*/\1/p' <<<"$result")
[[ ${errors:-1} == 0 && ${diffs:-1} == 0 && ${non2xx:-1} == 0 ]] || verdict=FAIL
requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")
# A client that could not send on schedule (more than 1 in 10 000 unsent) did not soak the
# server at the rate asked for.
if [[ $verdict == ok ]] && (( ${unsent:-1} * 10000 > ${requests:-0} )); then verdict=CLIENT-BOUND; fi
if [[ -n $first && -n $last ]]; then
    awk -v a="$first" -v b="$last" 'BEGIN { split(a, x, " "); split(b, y, " ");
        printf "RSS: %d kB at %d s, %d kB at %d s (%+.1f %%)\n", x[2], x[1], y[2], y[1], (y[2] - x[2]) * 100 / x[2] }'
fi
echo "VERDICT $verdict errors=${errors:-?} non2xx=${non2xx:-?} verify_diffs=${diffs:-?} unsent=${unsent:-?}"
[[ $verdict == ok ]]
