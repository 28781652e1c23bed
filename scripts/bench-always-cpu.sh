#!/usr/bin/env bash
# The server's CPU time per request (utime + stime of the whole process over the requests
# answered) with --fsync always: POST mix, 32 connections 16 deep, the server pinned to core
# 0 (--workers 1), the load generator to core 1, 4 alternating rounds of two builds on a fresh
# data directory each.
#
#   bash scripts/bench-always-cpu.sh /tmp/hourtally-old target/release/hourtally
set -u
cd "$(dirname "$0")/.."
[[ $# -eq 2 ]] || { echo "usage: $0 BIN_BEFORE BIN_AFTER" >&2; exit 2; }
tck=$(getconf CLK_TCK)
for r in 1 2 3 4; do for b in "$1" "$2"; do
  rm -rf ${TMPDIR:-/tmp}/hourtally-always-cpu; taskset -c 0 $b --data-dir ${TMPDIR:-/tmp}/hourtally-always-cpu --fsync always --workers 1 --listen 127.0.0.1:18090 >${TMPDIR:-/tmp}/hourtally-always-cpu.log 2>&1 & pid=$!; sleep 1
  t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(taskset -c 1 ./target/release/hourtally-load --addr 127.0.0.1:18090 --connections 32 --pipeline 16 --post-share 1.0 --duration 4 --no-progress 2>&1 | grep RESULT)
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  req=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/'); rps=$(echo "$out" | sed 's/.*rps=\([0-9]*\).*/\1/')
  echo "$b rps=$rps cpu_us_per_req=$(echo "scale=3; ($t1-$t0)*1000000/$tck/$req" | bc)"
  kill $pid; wait $pid 2>/dev/null
done; done
