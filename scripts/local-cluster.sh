#!/usr/bin/env bash
# A local cluster on loopback: three nats-server processes as one JetStream cluster, and N
# hourtally servers in cluster mode on it. Prints every address, then waits; Ctrl-C (or
# SIGTERM) stops them all and removes their data. The nats-server is the release hourtally is
# tested against (scripts/current-nats.sh), with `sync_interval: always`: JetStream syncs each
# write to disk before it acknowledges it, so an acknowledged batch survives a power loss of
# the NATS nodes (README, "Scale-out", says what it costs).
#
#   scripts/local-cluster.sh [N]        # N hourtally servers (default 3)
#
# Env: NATS_PORT (first NATS client port, default 4222), HTTP_PORT (first hourtally port,
# default 8080), ACK (log|local, default log), BIN (the hourtally binary; default: built with
# cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3}
nats_port=${NATS_PORT:-4222}
http_port=${HTTP_PORT:-8080}
ack=${ACK:-log}
nats_bin=$(bash scripts/current-nats.sh)
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/hourtally
fi
work=$(mktemp -d /tmp/hourtally-local-cluster.XXXXXX)
pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping ${#pids[@]} processes"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop INT TERM EXIT

routes=()
for i in 0 1 2; do routes+=("nats://127.0.0.1:$((nats_port + 100 + i))"); done
urls=()
for i in 0 1 2; do
  others=$(printf '%s\n' "${routes[@]}" | grep -v ":$((nats_port + 100 + i))$" | paste -sd, -)
  printf 'jetstream {\n  sync_interval: always\n}\n' >"$work/nats$i.conf"
  "$nats_bin" -c "$work/nats$i.conf" -a 127.0.0.1 -p $((nats_port + i)) -n "local-n$i" -js -sd "$work/nats$i" \
    --cluster_name hourtally-local --cluster "${routes[$i]}" --routes "$others" \
    >"$work/nats$i.log" 2>&1 &
  pids+=($!)
  urls+=("nats://127.0.0.1:$((nats_port + i))")
  echo "nats-server n$i   nats://127.0.0.1:$((nats_port + i))   log $work/nats$i.log"
done
nats=$(IFS=,; echo "${urls[*]}")
for i in $(seq 0 $((n - 1))); do
  "$BIN" --listen "127.0.0.1:$((http_port + i))" --data-dir "$work/hourtally$i" \
    --nats "$nats" --ack "$ack" >"$work/hourtally$i.log" 2>&1 &
  pids+=($!)
done
for i in $(seq 0 $((n - 1))); do
  for _ in $(seq 1 300); do
    grep -q " ready" "$work/hourtally$i.log" 2>/dev/null && break
    sleep 0.1
  done
  if grep -q " ready" "$work/hourtally$i.log"; then state=ready; else state="NOT READY (see log)"; fi
  echo "hourtally $i      http://127.0.0.1:$((http_port + i))   $state   log $work/hourtally$i.log"
done
echo "try: curl -X POST 'http://127.0.0.1:$http_port/analytics?timestamp='\$(date +%s000)'&user=ann&click'"
echo "     curl 'http://127.0.0.1:$((http_port + n - 1))/analytics?timestamp='\$(date +%s000)'&fresh=1'"
echo "Ctrl-C stops everything."
wait
