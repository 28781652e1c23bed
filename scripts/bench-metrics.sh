#!/usr/bin/env bash
# What everything /metrics adds costs the hot path (issue 13: at most 3 % of POST throughput at
# pipeline depth 16): the server built with and without the `request-metrics` feature, which
# compiles out the per-request counters, the two clock reads per batch that time requests by
# route, and the writer's batch histograms. Both are run by scripts/bench-compare.sh in
# alternating rounds, on the same core, under the same load; the "bare" column is the build
# without metrics, the "hourtally" column the default build.
#
#   bash scripts/bench-metrics.sh                 # ROUNDS=5 SECS=5, POST mix, depth 16
#   MIXES="POST GET" DEPTHS="1 16" bash scripts/bench-metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export ROUNDS=${ROUNDS:-5} SECS=${SECS:-5} MIXES=${MIXES:-POST} DEPTHS=${DEPTHS:-16}
TARGET=${CARGO_TARGET_DIR:-target}
BASE=$(mktemp -d)/hourtally-no-metrics
trap 'rm -rf "$(dirname "$BASE")"' EXIT

# Same target directory (the dependencies are built once); bench-compare.sh then builds the
# default binary over it.
echo "+ cargo build --release --bin hourtally --no-default-features --features server"
cargo build --release --bin hourtally --no-default-features --features server
cp "$TARGET/release/hourtally" "$BASE"
BASE_BIN=$BASE bash scripts/bench-compare.sh
