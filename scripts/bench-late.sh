#!/usr/bin/env bash
# Late events, measured on the real server: server CPU (utime + stime of the whole process,
# the late thread's counting included) per POST of a late event (an hour in the cold tier)
# against per POST of the current hour, in the same run (issue 23's goal: at most 2x).
#
#   bash scripts/bench-late.sh              # USERS=1000000 N=300000 ROUNDS=3
#
# A data directory whose journal holds 6 past hours of USERS users each (half of them the
# same in every hour; examples/journal_of_hours.rs) for a ring of 3 slots: the release
# binary replays it and 3 hours leave the ring into the cold tier. Then ROUNDS rounds of: N
# POSTs of the current hour, then N POSTs of the oldest stored hour (half of them users the
# hour had, half new), each over one pipelined connection (scripts/pipeline.py), waiting
# for every event to be counted (the late ones by hourtally_events_late_total).
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-1000000}
N=${N:-300000}
ROUNDS=${ROUNDS:-3}

echo "+ cargo build --release --bin hourtally --example journal_of_hours" >&2
cargo build --release --bin hourtally --example journal_of_hours
target=${CARGO_TARGET_DIR:-target}/release
HOURTALLY=${HOURTALLY:-$target/hourtally}
source scripts/lib.sh

cat >"$TMP/post.py" <<'PY'
import sys
sys.path.insert(0, sys.argv[5])
from pipeline import send
addr, ts, prefix, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
send(addr, (b"POST /analytics?timestamp=%d&user=%s%d&click HTTP/1.1\r\nHost: b\r\n\r\n"
            % (ts, prefix.encode(), i) for i in range(n)))
PY

read -r first _ < <("$target/examples/journal_of_hours" "$TMP/data" 6 "$USERS" | paste -sd' ')
start_server "$TMP/server.log" "$HOURTALLY" --data-dir "$TMP/data" --retention-hours 3 --listen 127.0.0.1:0
addr=$ADDR
wait_for hourtally_cold_hours 3
now=$(($(date +%s) * 1000))
tick=$(getconf CLK_TCK)
late_done=0
applied=$(metric hourtally_events_applied_total)
printf '%-6s %-22s %-22s %-6s\n' round "current µs/POST" "late µs/POST" ratio
for r in $(seq "$ROUNDS"); do
    c0=$(cpu_ticks "$SERVER_PID")
    python3 "$TMP/post.py" "$addr" "$now" "c${r}x" "$N" "$PWD/scripts"
    applied=$((applied + N))
    wait_for hourtally_events_applied_total "$applied"
    c1=$(cpu_ticks "$SERVER_PID")
    # Half the hour's own users (the shared "s" half of every hour), half new.
    python3 "$TMP/post.py" "$addr" "$first" "s" $((N / 2)) "$PWD/scripts"
    python3 "$TMP/post.py" "$addr" "$first" "l${r}x" $((N - N / 2)) "$PWD/scripts"
    applied=$((applied + N))
    late_done=$((late_done + N))
    wait_for hourtally_events_late_total "$late_done"
    c2=$(cpu_ticks "$SERVER_PID")
    awk -v a=$((c1 - c0)) -v b=$((c2 - c1)) -v n="$N" -v t="$tick" -v r="$r" 'BEGIN {
        cur = a * 1e6 / t / n; late = b * 1e6 / t / n
        printf "%-6d %-22.3f %-22.3f %-6.2f\n", r, cur, late, late / cur
    }'
done
