#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for SECONDS each (default 60), on the nightly toolchain
# while the project stays pinned, and prints one line per target: the seconds, the
# executions (libFuzzer's `stat::number_of_executed_units`) and the crashes found.
#
#   scripts/fuzz.sh [SECONDS]            every target
#   TARGETS="query snapshot" scripts/fuzz.sh 30
#
# Needs `rustup toolchain install nightly` and `cargo install cargo-fuzz`. Each run starts
# from the seeds in fuzz/corpus/<target>/ (kept in git) plus what earlier runs found in
# fuzz/work/<target>/ (not kept); a crash leaves its input in fuzz/artifacts/<target>/, and
# `cargo +nightly fuzz run <target> <that file>` replays it. Exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
targets=${TARGETS:-session head query journal_record snapshot cold_set}
logs=fuzz/work/logs
mkdir -p "$logs"

# -a: debug assertions (and overflow checks) on, as in the tests.
cargo +nightly fuzz build -a

failed=0
printf '%-16s %8s %14s %8s\n' target seconds executions crashes > "$logs/summary.txt"
for t in $targets; do
    mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    start=$(date +%s)
    # The first corpus directory is where libFuzzer writes what it finds; the seeds are
    # read only. Keep running past a crash? No: the first crash is the one to fix.
    # The session's stream may be longer than a read buffer (24 KiB by default), so that
    # 414 / 431 under the default limits and the bounded buffer are in reach; libFuzzer's
    # own cap (4096 bytes, from the seeds) would keep them out.
    # A cold set of more than about 600 values (sets of several slices of a union, a slice
    # that outgrows the union's table) is longer than 4096 bytes too.
    max_len=4096
    [ "$t" = session ] && max_len=40000
    [ "$t" = cold_set ] && max_len=40000
    set +e
    cargo +nightly fuzz run -a "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 > "$logs/$t.log" 2>&1
    rc=$?
    set -e
    took=$(($(date +%s) - start))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | tail -1 | grep -o '[0-9]*$' || echo '?')
    crashes=$(($(find "fuzz/artifacts/$t" -type f | wc -l) - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="? (exit $rc, see $logs/$t.log)"
    fi
    [ "$rc" -ne 0 ] && failed=1
    printf '%-16s %8s %14s %8s\n' "$t" "$took" "$execs" "$crashes" >> "$logs/summary.txt"
    tail -1 "$logs/summary.txt"
done
echo
cat "$logs/summary.txt"
exit "$failed"
