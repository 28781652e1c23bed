#!/usr/bin/env bash
# A client that checks every answer, against the release server in its default configuration
# (a worker per CPU, unpinned: no --workers, no taskset): two runs of
# `hourtally-load --verify` with HEADs, ranges of hours and /metrics in the mix
# (--other-share), pipelined 16 deep and not pipelined. Each run gets a fresh server (the
# end check of --verify is absolute) and fails on any wrong answer, transport or protocol
# error, lost request or difference at the end (hourtally-load --help, "Exit status").
#
#   cargo build --release --bins && bash scripts/verify-load.sh
#
# Builds nothing: the binaries come from ${TARGET_DIR:-target}/release (CARGO_TARGET_DIR when
# TARGET_DIR is unset). Exits 1 when either run fails, 2 when a binary is missing; about 15 s,
# each run bounded by RUN_LIMIT seconds (default 60). SERVER_ARGS adds server flags for an
# experiment (SERVER_ARGS='--workers 1'); empty by default, as the point is the default
# configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/server.sh

BIN=${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}/release
RUN_LIMIT=${RUN_LIMIT:-60}
read -r -a server_args <<<"${SERVER_ARGS:-}"
for b in hourtally hourtally-load; do
    if [[ ! -x $BIN/$b ]]; then
        echo "verify-load: $BIN/$b is missing: build it first (cargo build --release --bins)" >&2
        exit 2
    fi
done

failed=()

# verified_run NAME ARGS...: starts a fresh server, runs hourtally-load --verify ARGS against
# it (at most RUN_LIMIT seconds), prints what it found, stops the server. A failed run is
# added to `failed` and its whole report printed.
verified_run() {
    local name=$1 rc=0 t0=$SECONDS
    shift
    "$BIN/hourtally" --ephemeral --listen 127.0.0.1:0 "${server_args[@]}" >"$TMP/$name.server.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$TMP/$name.server.log" 400
    echo "==> $name: hourtally-load --verify $* against $ADDR ($(grep -o 'workers=[^ ]*' "$TMP/$name.server.log" | head -1))"
    timeout "$RUN_LIMIT" "$BIN/hourtally-load" --addr "$ADDR" --verify --no-progress --timeout 5 "$@" \
        >"$TMP/$name.out" 2>&1 || rc=$?
    stop_server
    if [[ $rc -eq 0 ]]; then
        grep -E '^(requests  |transport errors|wrong answers|verify: )' "$TMP/$name.out" | sed 's/^/    /'
        echo "    passed in $((SECONDS - t0)) s"
    else
        sed 's/^/    /' "$TMP/$name.out"
        if [[ $rc -eq 124 ]]; then
            echo "    FAILED: still running after ${RUN_LIMIT} s"
        fi
        echo "    FAILED (exit $rc) in $((SECONDS - t0)) s"
        failed+=("$name")
    fi
}

verified_run pipelined --pipeline 16 --connections 8 --duration 4 --other-share 0.2
verified_run one-at-a-time --pipeline 1 --connections 8 --duration 3 --other-share 0.2

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "verify-load: FAILED: ${failed[*]} (${SECONDS} s)" >&2
    exit 1
fi
echo "verify-load: both runs found every answer right (${SECONDS} s)"
