#!/usr/bin/env bash
# Schemathesis against the real binary: every route of src/http/openapi.json, as served at
# GET /openapi.json, with `--checks all` except what OpenAPI cannot express (README.md,
# "OpenAPI"; the per-operation exceptions live in scripts/schemathesis.toml).
#
#   scripts/schemathesis.sh            # builds target/debug/hourtally if needed
#   HOURTALLY_BIN=target/release/hourtally MAX_EXAMPLES=200 scripts/schemathesis.sh
#
# Creates a venv under target/schemathesis-venv with a pinned schemathesis from PyPI.
# Exits non-zero when schemathesis finds a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
BIN=${HOURTALLY_BIN:-target/debug/hourtally}
# Per operation (27 operations; 25 of them were about 2 800 cases and 34 s on two shared cores).
MAX_EXAMPLES=${MAX_EXAMPLES:-500}

if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  echo "==> installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [ -z "${HOURTALLY_BIN:-}" ]; then
  cargo build --quiet --bin hourtally
fi

log=$(mktemp)
"$BIN" --ephemeral --listen 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

# The first log line says where it listens: `... listening addr=127.0.0.1:PORT ...`.
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/.*listening addr=\([^ ]*\).*/\1/p' "$log" | head -n1)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "hourtally exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$log"; echo "no listening line" >&2; exit 1; }
url="http://$addr"
# /analytics answers 503 until the server is ready.
for _ in $(seq 100); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "==> schemathesis $SCHEMATHESIS_VERSION against $url/openapi.json (max $MAX_EXAMPLES examples per operation)"
start=$(date +%s)
status=0
"$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run "$url/openapi.json" \
  --max-examples "$MAX_EXAMPLES" \
  --seed "${SCHEMATHESIS_SEED:-$RANDOM}" \
  --report-dir target/schemathesis-report \
  || status=$?
echo "==> schemathesis took $(($(date +%s) - start)) s, exit $status"
kill -0 "$pid" 2>/dev/null || { echo "hourtally died during the run" >&2; cat "$log"; exit 1; }
exit "$status"
