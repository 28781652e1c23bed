"""Pipelined POSTs for the bench scripts (bench-range.sh, bench-memory.sh): sends requests
WINDOW at a time on one connection and reads every answer, failing on any but 204."""
import socket
import sys

WINDOW = 512


def send(addr, requests):
    """Sends every request of the iterable `requests` (bytes) to `addr` ("host:port"), WINDOW
    per write, and reads as many answers; exits the process on an answer other than 204."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    requests = iter(requests)
    while True:
        batch = [r for _, r in zip(range(WINDOW), requests)]
        if not batch:
            break
        s.sendall(b"".join(batch))
        want = len(batch)
        while want:
            chunk = s.recv(1 << 16)
            if not chunk:
                sys.exit("the server closed the connection")
            buf += chunk
            # Whole answers only (a 204 has no body: its head ends it).
            pos = 0
            while want:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    break
                if not buf.startswith(b"HTTP/1.1 204 ", pos):
                    sys.exit("an answer other than 204: %r" % buf[pos:pos + 200])
                pos = end + 4
                want -= 1
            buf = buf[pos:]
    s.close()
