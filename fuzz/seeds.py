#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/) from requests, queries and encodings of the
tests (tests/transport.rs, tests/api.rs, src/http/session_tests.rs, src/query.rs, the journal
tests). Run again after changing it; the files are committed."""
import os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TS = 3_600_000_000  # hour 1000: the harness's clock

def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# session: control byte (0: one piece, ready, default limits), then the stream.
H = "Host: t\r\n"
requests = {
    "get_healthz": f"GET /healthz HTTP/1.1\r\n{H}\r\n",
    "post_click": f"POST /analytics?timestamp={TS}&user=alice&click HTTP/1.1\r\n{H}\r\n",
    "get_counts": f"GET /analytics?timestamp={TS} HTTP/1.1\r\n{H}\r\n",
    "head_counts": f"HEAD /analytics?timestamp={TS} HTTP/1.1\r\n{H}\r\n",
    "pipelined": f"GET /healthz HTTP/1.1\r\n{H}\r\nGET /nope HTTP/1.1\r\n{H}\r\n"
                 f"POST /analytics?timestamp={TS}&user=b&impression HTTP/1.1\r\n{H}\r\nGET /heal",
    "body_skipped": f"POST /analytics?timestamp={TS}&user=a&impression HTTP/1.1\r\n{H}"
                    f"Content-Length: 34\r\n\r\nGET /healthz HTTP/1.1\r\n{H}\r\n",
    "expect_continue": f"POST /analytics?timestamp={TS}&user=e&click HTTP/1.1\r\n{H}"
                       "Expect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    "expect_refused": f"POST /analytics?timestamp=0&user=a&click HTTP/1.1\r\n{H}"
                      "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    "http10_keep_alive": "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /readyz HTTP/1.0\r\n\r\n",
    "close_then_more": f"GET /healthz HTTP/1.1\r\n{H}Connection: close\r\n\r\nGET /healthz HTTP/1.1\r\n{H}\r\n",
    "chunked": f"POST /analytics HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "two_lengths": f"GET / HTTP/1.1\r\n{H}Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "no_host": "GET /healthz HTTP/1.1\r\n\r\n",
    "http2": f"GET / HTTP/2.0\r\n{H}\r\n",
    "absolute_form": "GET http://t/healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    "method_put": f"PUT /analytics?timestamp=1 HTTP/1.1\r\n{H}\r\n",
    "metrics": f"GET /metrics HTTP/1.1\r\n{H}\r\n",
    "bad_query": f"GET /analytics?timestamp=x1&timestamp=2 HTTP/1.1\r\n{H}\r\n",
    "too_many_headers": f"GET /healthz HTTP/1.1\r\n{H}" + "".join(f"X-H{i}: v\r\n" for i in range(6)) + "\r\n",
}
# tests/transport.rs: a request line alone over the 16 KiB head limit (414).
requests["long_line"] = f"GET /analytics?timestamp=1&pad={'p' * 17_000} HTTP/1.1\r\n{H}\r\n"
for name, raw in requests.items():
    put("session", name, b"\x00" + raw.encode())
# head: the number of fields allowed (byte % 32 + 1: 16), then the same requests.
for name, raw in requests.items():
    if len(raw) < 4096:
        put("head", name, b"\x0f" + raw.encode())
put("session", "tls_hello", b"\x00\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
put("session", "nul_in_line", b"\x00GET\x00/ HTTP/1.1\r\nHost: t\r\n\r\n")
# Split in three pieces (offsets 10 and 40), small limits, not ready, a queue of 2.
raw = requests["pipelined"].encode()
put("session", "pipelined_split", bytes([2]) + struct.pack("<HH", 10, 40) + raw)
put("session", "pipelined_small_limits", bytes([16]) + raw)
put("session", "recovering", bytes([8]) + requests["get_counts"].encode())
put("session", "queue_full", bytes([32]) + (requests["post_click"] * 3).encode())

# query: raw query strings.
queries = [
    f"timestamp={TS}&user=alice&click",
    "impression=yes&user=bob&timestamp=7199999",
    "timestamp=0000003600000",
    "timestamp=253402300799999",
    "timestamp=99999999999999999999999x",
    "timestamp=1&user=J%C3%BCrgen+K&click",
    "timestamp=1&user=%4&click",
    "timestamp=1&user=a&click&impression",
    "timestamp=1&timestamp=1&user=a&click",
    "timestamp=1&user=a&click&utm=x&utm=y&&=&x",
    "timestamp=1&fresh=1",
    "fresh&timestamp=1",
    "fresh=1&fresh=1",
    "%c3%A9%00%ff+a",
]
for i, q in enumerate(queries):
    put("query", f"q{i:02}", q.encode())

# journal_record: mode byte 0, then one group as record.rs encodes it.
def group(first_seq, events):
    head = struct.pack("<IIQ", int.from_bytes(b"HTJ1", "little"), len(events), first_seq)
    recs = b"".join(struct.pack("<QIB3x", user, hour, kind) for hour, user, kind in events)
    crc = zlib.crc32(head + recs) & 0xFFFFFFFF
    return head + struct.pack("<II", crc, 0) + recs

events = [(490_000 + i % 5, (i * 0x9E3779B97F4A7C15) & (2**64 - 1), 0 if i % 3 == 0 else 1) for i in range(3)]
put("journal_record", "group3", b"\x00" + group(7, events))
put("journal_record", "group1_then_torn", b"\x00" + group(0, events[:1]) + group(1, events)[:30])
put("journal_record", "group3_crc_fixed", b"\x01" + group(7, events))

# snapshot: mode byte 0, then a small snapshot as snapshot.rs encodes it.
def snapshot(covered, drops, archive, slots):
    out = b"HTSNAP" + struct.pack("<HII", 1, len(slots), 0) + struct.pack("<QQQ", covered, drops, len(archive))
    for hour, (u, c, i) in archive:
        out += struct.pack("<IIQQQ", hour, 0, u, c, i)
    for hour, (u, c, i), users in slots:
        out += struct.pack("<IIQQQQ", hour, 0, u, c, i, len(users))
        out += b"".join(struct.pack("<Q", fp) for fp in users)
    return out + struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF) + b"HTSE"

EMPTY = 0xFFFFFFFF
snap = snapshot(12, 1, [(900, (3, 4, 5))],
                [(1000, (2, 1, 3), [0x1111, 0x2222]), (EMPTY, (0, 0, 0), [])])
put("snapshot", "small", b"\x00" + snap)
put("snapshot", "small_crc_fixed", b"\x01" + snap)
put("snapshot", "empty_ring", b"\x00" + snapshot(0, 0, [], [(EMPTY, (0, 0, 0), [])] * 2))

# cold_set: mode byte (bit 0: the harness fixes the CRC), then a cold set as
# src/coldset/mod.rs lays it out (Elias-Fano: low bits, upper vector in unary).
def low_bits(n):
    return 63 if n <= 1 else 64 - ((n - 1).bit_length() - 1) - 1

def cold_set(values):
    n, l = len(values), low_bits(len(values))
    upper_bits = n + (1 << (64 - l))
    low = upper = 0
    for i, x in enumerate(values):
        low |= (x & ((1 << l) - 1)) << (i * l)
        upper |= 1 << ((x >> l) + i)
    body = (b"HTCS" + struct.pack("<HBBQQ", 1, l, 0, n, upper_bits)
            + low.to_bytes(8 * -(-n * l // 64), "little")
            + upper.to_bytes(8 * -(-upper_bits // 64), "little"))
    return body + struct.pack("<I", zlib.crc32(body)) + b"HTCE"

import random
rng = random.Random(23)
def spread(n, bits=64):
    values = set()
    while len(values) < n:
        values.add(rng.getrandbits(bits))
    return sorted(values)
put("cold_set", "empty", b"\x00" + cold_set([]))
put("cold_set", "one", b"\x00" + cold_set([0xdead_beef_0123_4567]))
put("cold_set", "ends", b"\x00" + cold_set([0, 1, (1 << 64) - 2, (1 << 64) - 1]))
put("cold_set", "spread_400", b"\x00" + cold_set(spread(400)))
put("cold_set", "spread_4000", b"\x00" + cold_set(spread(4000)))
# Every value in the union's first slice: more than its table holds (its own table).
put("cold_set", "crowded_4500", b"\x00" + cold_set(spread(4500, 52)))
# Two neighbours of one bucket (the same high bits) swapped: a set whose structure and
# checksum are right and whose values go back, which only an order check finds.
v = spread(400)
l = low_bits(len(v))
i = next(i for i in range(len(v) - 1) if v[i] >> l == v[i + 1] >> l)
v[i], v[i + 1] = v[i + 1], v[i]
put("cold_set", "out_of_order", b"\x00" + cold_set(v))
put("cold_set", "spread_400_crc_fixed", b"\x01" + cold_set(spread(400)))
