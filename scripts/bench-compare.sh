#!/usr/bin/env bash
# Compares hourtally with the bare may_minihttp server (examples/bare.rs: every request gets
# 200 "Hello, world!") under the same load: the ratio is how much of the HTTP ceiling
# hourtally keeps while it validates, counts and answers (ARCHITECTURE.md, "Speed goals": POST >= 0.8x and
# GET >= 0.9x the bare rate with pipelined requests on one core).
#
#   bash scripts/bench-compare.sh              # ROUNDS=3 SECS=5 WARMUP=1 CONNS=32
#   ROUNDS=5 SECS=10 bash scripts/bench-compare.sh
#   MIXES=GET DEPTHS=16 bash scripts/bench-compare.sh   # one row (MIXES: POST GET, DEPTHS: 1 16)
#   NICE=-15 bash scripts/bench-compare.sh              # servers and client at nice -15 (root)
#   HOURTALLY_BIN=/tmp/hourtally-old bash scripts/bench-compare.sh   # another build's binary
#   BASE_BIN=/tmp/hourtally-x bash scripts/bench-compare.sh   # that binary, started as hourtally
#                                    # is, in the "bare" column (scripts/bench-metrics.sh)
#   BASE_BIN=target/release/hourtally LOAD_ARGS=--event-ids MIXES=POST bash scripts/bench-compare.sh
#                                    # LOAD_ARGS / BASE_LOAD_ARGS: flags added to the load generator
#                                    # in the hourtally / "bare" columns (here: the cost of event ids)
#
# For each mix (POST mix: --post-share 1.0; GET mix: --post-share 0.0; both with 95% of the
# requests for the current hour and 5% spread over the previous 24) and each pipeline depth
# (1 and 16), it runs ROUNDS alternating rounds of: a fresh bare server, load, stop; a fresh
# hourtally, load, stop. Servers are pinned to core 0 (hourtally with --workers 1, so its
# HTTP worker and its writer thread share that core; bare gets one may worker), the load
# generator to core 1. The first table shows the median requests/s of each; the second the
# server's CPU time per request (utime + stime of all its threads over the requests the load
# generator counted, issue 12's headline figure) and its ratio to bare; the third splits that
# time user / kernel and by thread (HTTP workers, writer, others).
#
# Servers listen on port 0 and the script reads the port from their start-up line. The bare
# server binds through may, whose listener sets SO_REUSEPORT: on a fixed port it could share
# the port, silently, with a server somebody left running there (the kernel would split the
# connections). hourtally binds without SO_REUSEPORT and refuses a port in use.
#
# Needs 2 cores and taskset. Other load on the machine skews both columns; the alternating
# rounds and the median limit the damage, they do not remove it.
#
# Redis, for the same kind of comparison (one SADD of a user per request, no HTTP):
#   taskset -c 0 redis-server --port 6380 --save '' --appendonly no &
#   taskset -c 1 redis-benchmark -p 6380 -c 32 -n 1000000 -t sadd -r 100000
#   taskset -c 1 redis-benchmark -p 6380 -c 32 -n 1000000 -t sadd -r 100000 -P 16
# (redis-benchmark's SADD test adds to one set; -r 100000 randomises the member, -P 16
# pipelines 16 commands per connection like --pipeline 16 here.) Compare its requests per
# second with the hourtally column of the POST mix.

set -euo pipefail

cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
MIXES=${MIXES:-POST GET}
DEPTHS=${DEPTHS:-1 16}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
# On a shared machine other work takes turns on the two cores; a lower niceness for both
# servers and the client (the same for all) lets less of it in. 0 leaves it alone.
NICE=${NICE:-0}
LOAD_ARGS=${LOAD_ARGS:-}
BASE_LOAD_ARGS=${BASE_LOAD_ARGS:-}

command -v taskset >/dev/null || {
    echo "bench-compare: taskset is missing (util-linux)" >&2
    exit 1
}

echo "+ cargo build --release --bin hourtally --bin hourtally-load --example bare"
cargo build --release --bin hourtally --bin hourtally-load --example bare

BIN=${CARGO_TARGET_DIR:-target}/release
HOURTALLY=${HOURTALLY_BIN:-$BIN/hourtally}
LOAD=$BIN/hourtally-load
BARE=$BIN/examples/bare

HZ=$(getconf CLK_TCK)
# TMP, SERVER_PID, stop_server and the cleanup on exit.
source scripts/lib.sh
SERVER_ADDR=""

# start_server NAME CMD...: starts CMD in the background, waits for its start-up line
# ("bare listening on ADDR ...", or hourtally's "... listening addr=ADDR ..." log line), sets
# SERVER_PID and SERVER_ADDR.
start_server() {
    local name=$1
    shift
    local log=$TMP/$name.log
    echo "+ $*" >&2
    # Emptied here, not only by the redirection below: that one runs in the child, and the
    # loop could read the previous server's start-up line before it does.
    : >"$log"
    "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_ADDR=""
    for _ in $(seq 200); do
        SERVER_ADDR=$(awk -v n="$name" '
            $1 == n && $2 == "listening" { print $4; exit }
            / listening / { for (i = 1; i <= NF; i++) if ($i ~ /^addr=/) { print substr($i, 6); exit } }
        ' "$log")
        [[ -n $SERVER_ADDR ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench-compare: $name did not start:" >&2
    cat "$log" >&2
    exit 1
}

# threads PID: one line per thread of PID: "TID GROUP UTIME STIME" (clock ticks so far). GROUP is
# the thread's name (hourtally names its threads: hourtally-http for may's workers, which run
# the connections, hourtally-write, hourtally-log), and "main" for the main thread; may's timer
# thread and bare's workers keep the process name. The comm is cut out first: it sits in
# parentheses and could hold spaces.
threads() {
    local pid=$1 f line
    for f in /proc/"$pid"/task/*/stat; do
        line=$(cat "$f" 2>/dev/null) || continue
        local tid=${line%% *} comm=${line#*(}
        comm=${comm%)*}
        local rest=${line##*) }
        # rest starts at field 3 (state): utime and stime are fields 14 and 15.
        read -r -a fields <<<"$rest"
        [[ $tid == "$pid" ]] && comm=main
        echo "$tid $comm ${fields[11]} ${fields[12]}"
    done
}

# run_load POST_SHARE DEPTH EXTRA: one load run against SERVER_ADDR (EXTRA: more flags for the
# load generator); prints
# "REQUESTS_PER_S SERVER_CPU_PCT CLIENT_CPU_PCT SERVER_CPU_US_PER_REQUEST SPLIT". The server's
# CPU time (utime + stime of each of its threads, from /proc) is sampled when the load
# generator's warm-up ends and when it exits, so it covers the requests its RESULT line counts.
# SPLIT is "user/sys" µs per request for the whole process, then ";GROUP=user/sys" for each
# thread group (threads above) that used any CPU.
run_load() {
    local cmd=(nice -n "$NICE" taskset -c "$LOAD_CPU" "$LOAD" --addr "$SERVER_ADDR" --connections "$CONNS"
        --pipeline "$2" --duration "$SECS" --warmup "$WARMUP" --post-share "$1"
        --current-share 0.95 --no-progress)
    # shellcheck disable=SC2206 # EXTRA is a list of flags
    [[ -n ${3:-} ]] && cmd+=($3)
    echo "+ ${cmd[*]}" >&2
    local out t0 t1 lp
    "${cmd[@]}" >"$TMP/load.out" &
    lp=$!
    sleep "$WARMUP"
    threads "$SERVER_PID" >"$TMP/threads.0"
    t0=$(date +%s.%N)
    if ! wait "$lp"; then
        echo "bench-compare: the load generator failed:" >&2
        cat "$TMP/load.out" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    threads "$SERVER_PID" >"$TMP/threads.1"
    out=$(cat "$TMP/load.out")
    local result rps requests errors non2xx client server cpu_us split
    result=$(grep '^RESULT ' <<<"$out" | tail -1)
    rps=$(sed -n 's/^RESULT rps=\([0-9]*\).*/\1/p' <<<"$result")
    requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$result")
    non2xx=$(sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' <<<"$result")
    client=$(sed -n 's/.* client_cpu_pct=\([0-9]*\).*/\1/p' <<<"$result")
    # Per thread: the ticks between the two samples (a thread born in between counts from 0;
    # one that ended in between is lost, and the server ends none under load).
    read -r server cpu_us split < <(awk -v n="$requests" -v hz="$HZ" \
        -v secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
        NR == FNR { u0[$1] = $3; s0[$1] = $4; next }
        {
            u = $3 - u0[$1]; s = $4 - s0[$1]
            if (!($2 in gu)) order[++k] = $2
            gu[$2] += u; gs[$2] += s; tu += u; ts += s
        }
        END {
            us = (n > 0) ? 1e6 / hz / n : 0
            split_ = sprintf("%.3f/%.3f", tu * us, ts * us)
            for (i = 1; i <= k; i++) {
                g = order[i]
                if (gu[g] + gs[g] > 0) split_ = split_ sprintf(";%s=%.3f/%.3f", g, gu[g] * us, gs[g] * us)
            }
            printf "%.0f %.3f %s\n", 100 * (tu + ts) / hz / secs, (tu + ts) * us, split_
        }' "$TMP/threads.0" "$TMP/threads.1")
    echo "  $result server_cpu_pct=$server server_cpu_us_per_request=$cpu_us user/sys=$split" >&2
    if [[ $errors != 0 || $non2xx != 0 ]]; then
        echo "  WARNING: $errors transport errors, $non2xx answers other than 2xx" >&2
    fi
    echo "$rps $server ${client:-0} $cpu_us $split"
}

# note NAME SERVER_CPU CLIENT_CPU: what limited a column, when it was not the server.
note() {
    if (($3 >= 90)); then
        printf '%s: client-bound; ' "$1"
    elif (($2 < 85)); then
        printf '%s: server got %s%% cpu; ' "$1" "$2"
    fi
}

median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# median_split "CPU_US SPLIT"...: the split of the round with the median CPU time per request,
# spelled out ("user U sys S | GROUP U/S ..."), so that its parts add up to that round's total.
median_split() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $2 } END { print v[int((NR + 1) / 2)] }' |
        awk -F';' '{
            split($1, t, "/"); printf "user %s sys %s |", t[1], t[2]
            for (i = 2; i <= NF; i++) { sub("=", " ", $i); printf " %s", $i }
            printf "\n"
        }'
}

[[ -n ${BASE_BIN:-} ]] && echo "bench-compare: the \"bare\" columns are $BASE_BIN"
echo "bench-compare: ROUNDS=$ROUNDS SECS=$SECS WARMUP=$WARMUP CONNS=$CONNS NICE=$NICE servers on core $SERVER_CPU, load on core $LOAD_CPU ($(nproc) cores); hourtally: $HOURTALLY"

ROWS=()
CPU_ROWS=()
SPLIT_ROWS=()
for mix_name in $MIXES; do
    case $mix_name in
    POST) share=1.0 ;;
    GET) share=0.0 ;;
    *)
        echo "bench-compare: MIXES takes POST and GET, not $mix_name" >&2
        exit 2
        ;;
    esac
    for depth in $DEPTHS; do
        bare_rps=() ht_rps=() bare_cpu=() ht_cpu=() client_b=() client_h=() bare_us=() ht_us=()
        bare_split=() ht_split=()
        for round in $(seq "$ROUNDS"); do
            echo "== $mix_name mix, pipeline $depth, round $round/$ROUNDS" >&2
            if [[ -n ${BASE_BIN:-} ]]; then
                start_server base nice -n "$NICE" taskset -c "$SERVER_CPU" "$BASE_BIN" --listen 127.0.0.1:0 --workers 1 --ephemeral
            else
                start_server bare nice -n "$NICE" taskset -c "$SERVER_CPU" "$BARE" 127.0.0.1:0
            fi
            r=$(run_load "$share" "$depth" "$BASE_LOAD_ARGS") || exit 1
            read -r rps server client us split <<<"$r"
            bare_rps+=("$rps") bare_cpu+=("$server") client_b+=("$client") bare_us+=("$us")
            bare_split+=("$us $split")
            stop_server
            start_server hourtally nice -n "$NICE" taskset -c "$SERVER_CPU" "$HOURTALLY" --listen 127.0.0.1:0 --workers 1 --ephemeral
            r=$(run_load "$share" "$depth" "$LOAD_ARGS") || exit 1
            read -r rps server client us split <<<"$r"
            ht_rps+=("$rps") ht_cpu+=("$server") client_h+=("$client") ht_us+=("$us")
            ht_split+=("$us $split")
            stop_server
        done
        b=$(median "${bare_rps[@]}")
        h=$(median "${ht_rps[@]}")
        ratio=$(awk -v b="$b" -v h="$h" 'BEGIN { if (b > 0) printf "%.2f", h / b; else print "n/a" }')
        bs=$(median "${bare_cpu[@]}") bc=$(median "${client_b[@]}")
        hs=$(median "${ht_cpu[@]}") hc=$(median "${client_h[@]}")
        bu=$(printf '%s\n' "${bare_us[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        hu=$(printf '%s\n' "${ht_us[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        cpu_ratio=$(awk -v b="$bu" -v h="$hu" 'BEGIN { if (b > 0) printf "%.2f", h / b; else print "n/a" }')
        # The least of each side's rounds: interference from other work only adds CPU time
        # (cache misses, wake-ups), so the least is the nearest to each server's own cost.
        bl=$(printf '%s\n' "${bare_us[@]}" | sort -g | head -1)
        hl=$(printf '%s\n' "${ht_us[@]}" | sort -g | head -1)
        least_ratio=$(awk -v b="$bl" -v h="$hl" 'BEGIN { if (b > 0) printf "%.2f", h / b; else print "n/a" }')
        SPLIT_ROWS+=("$(printf '%-9s %5s  bare      %s' "$mix_name mix" "$depth" "$(median_split "${bare_split[@]}")")")
        SPLIT_ROWS+=("$(printf '%-9s %5s  hourtally %s' "$mix_name mix" "$depth" "$(median_split "${ht_split[@]}")")")
        CPU_ROWS+=("$(printf '%-9s %5s %12s %14s %6s %12s   bare: %s  hourtally: %s' \
            "$mix_name mix" "$depth" "$bu" "$hu" "$cpu_ratio" "$least_ratio" "${bare_us[*]}" "${ht_us[*]}")")
        ROWS+=("$(printf '%-9s %5s %12s %14s %6s   %-17s %-24s bare: %s  hourtally: %s' \
            "$mix_name mix" "$depth" "$b" "$h" "$ratio" "$bs/$bc  $hs/$hc" \
            "$(note bare "$bs" "$bc")$(note hourtally "$hs" "$hc")" "${bare_rps[*]}" "${ht_rps[*]}")")
    done
done

echo
echo "median requests/s over $ROUNDS rounds of ${SECS}s (after ${WARMUP}s warm-up), $CONNS connections;"
echo "cpu: median % of one core used by server/client during the bare runs, then the hourtally runs"
echo "(a client near 100% means that column measured the client, not the server; a server well"
echo "under 100% was not saturated either: other load on the machine took its core or the client's"
echo "core in turns. Under such contention the kernel shares a core by threads, and hourtally has"
echo "two there (HTTP worker + writer), bare one: rerun on a quiet machine)"
printf '%-9s %5s %12s %14s %6s   %-17s %-24s %s\n' "mix" "depth" "bare rps" "hourtally rps" "ratio" "cpu srv/cli" "limits" "all rounds"
printf '%s\n' "${ROWS[@]}"

echo
echo "server CPU time per request (utime + stime over the requests answered, µs; median over"
echo "$ROUNDS rounds; both servers pinned to core $SERVER_CPU: this is what the server itself spends,"
echo "whatever limited the request rate; least ratio: the least round of each side, the nearest to"
echo "what each server costs without other work on the machine)"
printf '%-9s %5s %12s %14s %6s %12s   %s\n' "mix" "depth" "bare cpu-us" "hourtally" "ratio" "least ratio" "all rounds"
printf '%s\n' "${CPU_ROWS[@]}"

echo
echo "where that CPU time goes (µs per request, user/sys, in the round with the median total):"
echo "by thread: main, hourtally-http (may's workers: every connection), hourtally-write (the"
echo "writer), hourtally-log; threads keeping the process's name are may's timer (hourtally) or"
echo "may's workers and timer (bare)"
printf '%s\n' "${SPLIT_ROWS[@]}"
