#!/usr/bin/env bash
# The partition tests (tests/partition.rs) with every fault held longer, several times over
# (README, "Partitions"): each round runs the whole file with HOURTALLY_PARTITION_LONG=FACTOR,
# so every cut, split and impairment lasts FACTOR times its `cargo test` hold (15–20 s), each
# scenario on fresh namespaces, NATS nodes and servers. Not part of CI (about 7 minutes a
# round with the defaults). Needs root and ip (iproute2), as the tests do.
#
#   bash scripts/partition-long.sh                 # FACTOR=4 ROUNDS=3 FILTER= (all tests)
#   FILTER=delay ROUNDS=5 bash scripts/partition-long.sh   # only the tests whose name has "delay"
#
# Prints each round's figures (per scenario: acknowledged, refused and unanswered per server,
# what each server counts after healing), then the rounds that failed; the whole output goes
# to LOG. Exit 1 if any round failed.
set -euo pipefail
cd "$(dirname "$0")/.."

FACTOR=${FACTOR:-4}
ROUNDS=${ROUNDS:-3}
FILTER=${FILTER:-}
LOG=${LOG:-$(mktemp /tmp/partition-long.XXXXXX.log)}

# The nats-server the tests run (tests/common/nats.rs), as scripts/test.sh sets it.
HOURTALLY_NATS_SERVER=$(bash scripts/current-nats.sh)
export HOURTALLY_NATS_SERVER
echo "+ cargo test --test partition --no-run"
cargo test --test partition --no-run
# TMP, removed on exit or interrupt (no server of its own: the tests start theirs).
source scripts/lib.sh

failed=()
for round in $(seq "$ROUNDS"); do
    echo "==> round $round of $ROUNDS: every fault held ${FACTOR}× (HOURTALLY_PARTITION_LONG=$FACTOR)"
    start=$SECONDS
    status=0
    # One test at a time (they take one lock anyway), so that each one's lines stay together.
    HOURTALLY_PARTITION_LONG=$FACTOR cargo test --test partition -- --nocapture \
        --test-threads 1 ${FILTER:+"$FILTER"} >"$TMP/out" 2>&1 || status=$?
    cat "$TMP/out" >>"$LOG"
    # The figures: the tests' own lines ("tag: ..."), each test's verdict, and any panic.
    awk '/^test |^[a-z ]+: / { print; next } /panicked at/ { print; getline; print }' "$TMP/out"
    echo "    round $round: $((SECONDS - start)) s, cargo test exit $status"
    [[ $status -eq 0 ]] || failed+=("$round")
done
echo "==> full output: $LOG"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "==> rounds that failed: ${failed[*]} of $ROUNDS"
    exit 1
fi
echo "==> all $ROUNDS rounds passed"
