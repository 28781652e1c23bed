#!/usr/bin/env bash
# RSS per open connection that has made one GET /analytics (read buffer, output buffer,
# coroutine stack, rendered answers): starts the server (--ephemeral, port 0), reads its RSS,
# opens N connections that each GET once and stay open, reads it again.
#
#   bash scripts/bench-conn-rss.sh                      # target/release/hourtally, N=2000
#   N=5000 bash scripts/bench-conn-rss.sh /tmp/hourtally-old target/release/hourtally
set -euo pipefail
cd "$(dirname "$0")/.."
bins=("$@")
[[ ${#bins[@]} -gt 0 ]] || bins=(target/release/hourtally)
for bin in "${bins[@]}"; do
    python3 - "$bin" "${N:-2000}" <<'PY'
import re, socket, subprocess, sys, time
binp, n = sys.argv[1], int(sys.argv[2])
p = subprocess.Popen([binp, "--ephemeral", "--listen", "127.0.0.1:0"],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
try:
    port = int(re.search(r"addr=127\.0\.0\.1:(\d+)", p.stdout.readline()).group(1))
    time.sleep(0.3)
    rss = lambda: int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{p.pid}/status").read()).group(1))
    before = rss()
    ts = int(time.time() * 1000)
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET /analytics?timestamp={ts} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        socks.append(s)
    for s in socks:
        s.recv(4096)
    time.sleep(0.3)
    after = rss()
    print(f"{binp}: RSS {before} KiB idle, {after} KiB with {n} connections: "
          f"{(after - before) * 1024 / n:.0f} bytes per connection")
finally:
    p.kill()
PY
done
