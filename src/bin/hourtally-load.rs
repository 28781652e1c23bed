//! hourtally-load: an HTTP/1.1 load generator for hourtally (or any server), with the
//! "Tapad mix" of traffic: POSTs of clicks and impressions and GETs of hourly counts, most of
//! them for the current hour.
//!
//! Two modes:
//! - **closed loop** (default): every connection keeps one batch of `--pipeline` requests in
//!   flight, written with one `write`, and sends the next batch as soon as the last answer of
//!   the previous one is read. Latency is measured from the write of a request's batch to the
//!   read of its answer.
//! - **open loop** (`--rate R`): requests leave on a fixed schedule (connection `c` sends its
//!   `k`-th request at `start + (k × connections + c) / R`), whatever the answers do, and the
//!   latency of each is measured from its *intended* send time. A server that stalls is
//!   charged for every request that should have left during the stall (the correction for
//!   coordinated omission, as wrk2 does it).
//!
//! Closed-loop client threads drive several connections each, round-robin, on blocking
//! sockets; the open loop uses one thread per connection, which sleeps until the next send
//! is due and blocks for its answer. Only std and blocking sockets: no async runtime.
//!
//! `--verify` tallies what the server accepted (POSTs answered `204`) per hour and checks,
//! at the end, that `GET` for every touched hour answers exactly that.
//!
//! Exit status: 0 success, 1 verify found a difference, 2 bad flags, cannot connect, or no
//! request got an answer.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hdrhistogram::Histogram;

const HOUR_MS: u64 = 3_600_000;
/// How many hours back the historic share of requests reaches (k in 1..=HISTORIC_HOURS).
const HISTORIC_HOURS: u64 = 24;
/// Largest response head or body the client accepts before calling it a protocol error.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Read buffer per connection (grows up to `MAX_RESPONSE_BYTES` when an answer needs it).
const READ_BUF: usize = 16 * 1024;
/// The verify step waits this long for the server to apply what it accepted.
const VERIFY_WAIT: Duration = Duration::from_secs(5);
/// A connection that cannot reconnect for this long gives up.
const RECONNECT_GIVE_UP: Duration = Duration::from_secs(5);

#[derive(Parser, Debug, Clone)]
#[command(
    name = "hourtally-load",
    version,
    about = "HTTP/1.1 load generator for hourtally: POST clicks/impressions and GET hourly counts \
             (the \"Tapad mix\"), closed loop or open loop (--rate), with latency percentiles.",
    long_about = "HTTP/1.1 load generator for hourtally: POST clicks/impressions and GET hourly \
                  counts (the \"Tapad mix\"), closed loop or open loop (--rate), with latency \
                  percentiles (HdrHistogram, microseconds, 3 significant digits).\n\n\
                  Requests: `POST /analytics?timestamp=T&user=uN&click|impression` and \
                  `GET /analytics?timestamp=T`, on keep-alive connections.\n\n\
                  Closed loop (default): each connection writes --pipeline requests in one \
                  write, reads their answers in order, then writes the next batch. Latency: \
                  from the write of the batch to the read of the answer.\n\n\
                  Open loop (--rate): requests leave on a fixed schedule whatever the server \
                  does, and latency is measured from each request's intended send time, not \
                  from when it was actually sent: this corrects for coordinated omission (a \
                  stalled server is charged for every request that should have left during \
                  the stall).\n\n\
                  The last stdout line is machine-readable: `RESULT rps=... p50_us=... \
                  p99_us=... errors=...`.\n\n\
                  Exit status: 0 success; 1 --verify found a difference; 2 bad flags, \
                  cannot connect, or no request got an answer."
)]
struct Args {
    /// Server address, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,

    /// Keep-alive connections to open.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,

    /// Requests each connection writes in one write before reading their answers (1 = no
    /// pipelining). Open loop (--rate) always uses 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pipeline: u32,

    /// Seconds to measure (after --warmup). Default 10 unless --requests is given.
    #[arg(long, conflicts_with = "requests", value_parser = positive_f64)]
    duration: Option<f64>,

    /// Total requests to measure (instead of --duration).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,

    /// Share of requests that are POSTs (0.0-1.0); the rest are GETs.
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    post_share: f64,

    /// Share of requests for the current hour (0.0-1.0); the rest pick one of the previous
    /// 24 hours uniformly.
    #[arg(long, default_value_t = 0.95, value_parser = share)]
    current_share: f64,

    /// Size of the user space: POSTs use user `u{n}` with n uniform in 0..users.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    users: u64,

    /// Share of POSTs that are clicks (0.0-1.0); the rest are impressions.
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    click_share: f64,

    /// Open loop: total requests per second, spread evenly over the connections, each sent at
    /// its scheduled time; latency is measured from that intended time (coordinated-omission
    /// correction). Absent: closed loop, as fast as the server answers.
    #[arg(long, value_parser = positive_f64)]
    rate: Option<f64>,

    /// Closed loop: client threads (connections are spread over them round-robin; each
    /// thread reads the answers of one connection and writes its next batch, then moves on).
    /// Default: min(connections, 2 × available CPUs). The open loop (--rate) always uses one
    /// thread per connection.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    threads: Option<u32>,

    /// Seed of the random request mix (the same seed gives the same mix of requests).
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Tally what the server accepted (POSTs answered 204) per hour, and at the end check
    /// that GET answers exactly that for every touched hour; exit 1 on a difference. The
    /// check is absolute: it needs a fresh server (no other writer to those hours).
    #[arg(long)]
    verify: bool,

    /// No live progress line on stderr (it is also off when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,

    /// Seconds of load before measuring starts (not counted in the results).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_f64)]
    warmup: f64,

    /// Seconds a connection waits for an answer (or to write) before it counts a timeout and
    /// reconnects.
    #[arg(long, default_value_t = 10.0, value_parser = positive_f64)]
    timeout: f64,

    /// Open loop: spend the last N µs before each scheduled send yielding instead of
    /// sleeping. OS sleeps wake up tens of µs late (the output's "send lag" shows by how
    /// much); spinning sends on time but burns client CPU.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    spin_us: u64,
}

fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0.0 and 1.0".into())
    }
}

fn positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("must be a positive number".into())
    }
}

fn non_negative_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err("must be a number >= 0".into())
    }
}

// ---------------------------------------------------------------------------------------
// The run's shared plan and counters
// ---------------------------------------------------------------------------------------

/// What every client thread needs to know, resolved once.
struct Plan {
    addr: SocketAddr,
    host: String,
    connections: u32,
    pipeline: u32,
    post_share: f64,
    current_share: f64,
    click_share: f64,
    users: u64,
    seed: u64,
    verify: bool,
    timeout: Duration,
    /// Open loop: yield instead of sleeping this long before a send is due.
    spin: Duration,
    /// Load starts (warm-up included).
    start: Instant,
    /// Measuring starts (= start + warmup).
    measure_start: Instant,
    /// Duration mode: no request is sent (closed loop) or scheduled (open loop) at or after this.
    end: Option<Instant>,
    /// Requests mode: measured requests left to claim.
    budget: Option<AtomicU64>,
    /// Set when the run must stop early (e.g. every connection gave up).
    abort: AtomicBool,
    /// Answers so far, warm-up included (for the progress line).
    answered: AtomicU64,
    /// Transport errors so far (for the progress line).
    errors: AtomicU64,
}

impl Plan {
    fn measuring(&self, t: Instant) -> bool {
        t >= self.measure_start
    }

    /// Claims up to `want` requests that may be sent at `now`; 0 means stop.
    fn claim(&self, want: u32, now: Instant) -> u32 {
        if self.abort.load(Ordering::Relaxed) {
            return 0;
        }
        if let Some(end) = self.end {
            if now >= end {
                return 0;
            }
        }
        match &self.budget {
            None => want,
            // Warm-up requests are not taken from the budget.
            Some(_) if now < self.measure_start => want,
            Some(budget) => {
                let mut cur = budget.load(Ordering::Relaxed);
                loop {
                    if cur == 0 {
                        return 0;
                    }
                    let take = cur.min(u64::from(want));
                    match budget.compare_exchange_weak(
                        cur,
                        cur - take,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return take as u32,
                        Err(now_cur) => cur = now_cur,
                    }
                }
            }
        }
    }

    /// The intended send time of request `k` of connection `c` (open loop).
    fn intended(&self, rate: f64, c: u32, k: u64) -> Instant {
        let slot = (k as f64) * f64::from(self.connections) + f64::from(c);
        self.start + Duration::from_nanos((slot * 1e9 / rate) as u64)
    }
}

// ---------------------------------------------------------------------------------------
// Random mix
// ---------------------------------------------------------------------------------------

/// splitmix64: small, fast, good enough for a request mix.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Get,
    Click,
    Impression,
}

/// One request sent and not yet answered.
#[derive(Clone, Copy, Debug)]
struct Req {
    kind: Kind,
    hour: u64,
    user: u64,
    /// Closed loop: when its batch was written; open loop: its intended send time.
    t0: Instant,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Picks the next request of the mix and appends its bytes to `buf`.
/// The time of a batch: milliseconds since the epoch, and their decimal text (shared by the
/// batch's requests for the current hour).
struct Stamp {
    ms: u64,
    text: [u8; 20],
    /// The digits are `text[start..]`.
    start: usize,
}

impl Stamp {
    fn now() -> Self {
        let ms = now_ms();
        let mut text = [0u8; 20];
        let (mut start, mut v) = (text.len(), ms);
        loop {
            start -= 1;
            text[start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Stamp { ms, text, start }
    }
}

fn next_request(plan: &Plan, rng: &mut Rng, stamp: &Stamp, t0: Instant, buf: &mut Vec<u8>) -> Req {
    let is_post = rng.unit() < plan.post_share;
    let back = if rng.unit() < plan.current_share {
        0
    } else {
        1 + rng.below(HISTORIC_HOURS)
    };
    let ts = stamp.ms.saturating_sub(back * HOUR_MS);
    let hour = ts / HOUR_MS;
    let push_ts = |buf: &mut Vec<u8>| {
        if back == 0 {
            buf.extend_from_slice(&stamp.text[stamp.start..]);
        } else {
            push_u64(buf, ts);
        }
    };
    if is_post {
        let user = rng.below(plan.users);
        let click = rng.unit() < plan.click_share;
        buf.extend_from_slice(b"POST /analytics?timestamp=");
        push_ts(buf);
        buf.extend_from_slice(b"&user=u");
        push_u64(buf, user);
        buf.extend_from_slice(if click {
            &b"&click HTTP/1.1\r\nHost: "[..]
        } else {
            &b"&impression HTTP/1.1\r\nHost: "[..]
        });
        buf.extend_from_slice(plan.host.as_bytes());
        buf.extend_from_slice(b"\r\n\r\n");
        Req {
            kind: if click { Kind::Click } else { Kind::Impression },
            hour,
            user,
            t0,
        }
    } else {
        buf.extend_from_slice(b"GET /analytics?timestamp=");
        push_ts(buf);
        buf.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        buf.extend_from_slice(plan.host.as_bytes());
        buf.extend_from_slice(b"\r\n\r\n");
        Req {
            kind: Kind::Get,
            hour,
            user: 0,
            t0,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Response parsing: status line, headers (Content-Length, Connection), body
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    /// Where the answer starts in the reader's buffer (set by `Reader`; 0 from the parser).
    at: usize,
    /// Status line + headers + blank line.
    head_len: usize,
    /// Head + body.
    len: usize,
    /// The server closes the connection after this answer.
    close: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// More bytes needed.
    Partial,
    /// A 1xx interim answer of this many bytes: skip it, the real answer follows.
    Interim(usize),
    Done(Answer),
    /// Not an HTTP/1.x answer this client understands.
    Bad(&'static str),
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// The index of the first `\n` in `s`, eight bytes at a time.
fn find_newline(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let w = u64::from_le_bytes(a) ^ NL;
        // The lowest set bit marks the first zero byte of `w` exactly.
        let z = w.wrapping_sub(LO) & !w & HI;
        if z != 0 {
            return Some(base + (z.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
}

/// Parses one answer at the start of `buf`. Lines may end in CRLF or a bare LF.
fn parse_response(buf: &[u8]) -> Parsed {
    // Status line: `HTTP/1.x SSS[ reason]`.
    let Some(nl) = find_newline(buf) else {
        return if !b"HTTP/1.".starts_with(&buf[..buf.len().min(7)]) {
            Parsed::Bad("not an HTTP/1.x answer")
        } else if buf.len() > MAX_RESPONSE_BYTES {
            Parsed::Bad("status line too long")
        } else {
            Parsed::Partial
        };
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    if line.len() < 12
        || !line.starts_with(b"HTTP/1.")
        || !matches!(line[7], b'0' | b'1')
        || line[8] != b' '
        || !line[9..12].iter().all(u8::is_ascii_digit)
        || (line.len() > 12 && line[12] != b' ')
        || line[9] == b'0'
    {
        return Parsed::Bad("bad status line");
    }
    let http10 = line[7] == b'0';
    let status = line[9..12]
        .iter()
        .fold(0u16, |a, &b| a * 10 + u16::from(b - b'0'));
    // Headers, up to the blank line.
    let mut pos = nl + 1;
    let mut content_length: Option<u64> = None;
    let mut close = http10;
    loop {
        let Some(off) = find_newline(&buf[pos..]) else {
            return if buf.len() > MAX_RESPONSE_BYTES {
                Parsed::Bad("answer head too long")
            } else {
                Parsed::Partial
            };
        };
        let raw = &buf[pos..pos + off];
        pos += off + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Parsed::Bad("header line without a colon");
        };
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let Some(n) = parse_decimal(value) else {
                return Parsed::Bad("bad Content-Length");
            };
            if content_length.is_some_and(|m| m != n) {
                return Parsed::Bad("conflicting Content-Length");
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Bad("Transfer-Encoding is not supported");
        } else if name.eq_ignore_ascii_case(b"connection") {
            if contains_token(value, b"close") {
                close = true;
            } else if http10 && contains_token(value, b"keep-alive") {
                close = false;
            }
        }
    }
    if status < 200 {
        return Parsed::Interim(pos);
    }
    let body_len = if status == 204 || status == 304 {
        0
    } else {
        match content_length {
            Some(n) => n,
            None => return Parsed::Bad("answer without Content-Length"),
        }
    };
    if body_len > MAX_RESPONSE_BYTES as u64 {
        return Parsed::Bad("body too large");
    }
    let len = pos + body_len as usize;
    if buf.len() < len {
        return Parsed::Partial;
    }
    Parsed::Done(Answer {
        status,
        at: 0,
        head_len: pos,
        len,
        close,
    })
}

// ---------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Fail {
    Write,
    Read,
    Timeout,
    Closed,
    Protocol(&'static str),
}

fn connect(plan: &Plan) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&plan.addr, plan.timeout)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(plan.timeout))?;
    s.set_write_timeout(Some(plan.timeout))?;
    Ok(s)
}

/// Buffered reads of answers from one socket.
struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    fn new() -> Self {
        Reader {
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The next complete answer, reading (blocking) as needed. `arrived` is set to the time
    /// of each read that brought bytes: the arrival time of the answers in them. The answer's
    /// body is `self.body(&answer)` until the next call.
    fn next_answer(
        &mut self,
        stream: &mut TcpStream,
        arrived: &mut Instant,
    ) -> Result<Answer, Fail> {
        loop {
            match parse_response(&self.buf[self.start..self.end]) {
                Parsed::Done(mut a) => {
                    a.at = self.start;
                    self.start += a.len;
                    if self.start == self.end {
                        // The bytes stay in place until the next read, so `body` still works.
                        self.start = 0;
                        self.end = 0;
                    }
                    return Ok(a);
                }
                Parsed::Interim(n) => {
                    self.start += n;
                    continue;
                }
                Parsed::Bad(why) => return Err(Fail::Protocol(why)),
                Parsed::Partial => {}
            }
            if self.end == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                } else if self.buf.len() < 4 * MAX_RESPONSE_BYTES {
                    self.buf.resize(self.buf.len() * 2, 0);
                } else {
                    return Err(Fail::Protocol("answer too large"));
                }
            }
            match stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(Fail::Closed),
                Ok(n) => {
                    self.end += n;
                    *arrived = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Fail::Timeout)
                }
                Err(_) => return Err(Fail::Read),
            }
        }
    }

    fn body(&self, a: &Answer) -> &[u8] {
        &self.buf[a.at + a.head_len..a.at + a.len]
    }
}

// ---------------------------------------------------------------------------------------
// Results: per thread, merged at the end
// ---------------------------------------------------------------------------------------

#[derive(Default, Clone, Debug)]
struct Errors {
    connect: u64,
    write: u64,
    read: u64,
    timeout: u64,
    closed: u64,
    protocol: u64,
    /// The first protocol error's reason.
    protocol_why: Option<&'static str>,
    /// Requests written (or scheduled) that got no answer.
    lost: u64,
    /// Of those, POSTs: the server may or may not have taken them (matters for --verify).
    lost_posts: u64,
    /// Open loop: requests scheduled in the run that had not left when it ended (each
    /// connection waits for its answer before its next send).
    unsent: u64,
}

impl Errors {
    fn transport(&self) -> u64 {
        self.connect + self.write + self.read + self.timeout + self.closed + self.protocol
    }

    fn merge(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.write += o.write;
        self.read += o.read;
        self.timeout += o.timeout;
        self.closed += o.closed;
        self.protocol += o.protocol;
        self.protocol_why = self.protocol_why.or(o.protocol_why);
        self.lost += o.lost;
        self.lost_posts += o.lost_posts;
        self.unsent += o.unsent;
    }
}

enum UserSet {
    Bits(Vec<u64>),
    Set(HashSet<u64>),
}

impl UserSet {
    fn new(users: u64) -> Self {
        if users <= 1 << 22 {
            UserSet::Bits(vec![0; users.div_ceil(64) as usize])
        } else {
            UserSet::Set(HashSet::new())
        }
    }

    fn insert(&mut self, u: u64) {
        match self {
            UserSet::Bits(b) => b[(u / 64) as usize] |= 1 << (u % 64),
            UserSet::Set(s) => {
                s.insert(u);
            }
        }
    }

    fn union(&mut self, o: &UserSet) {
        match (self, o) {
            (UserSet::Bits(a), UserSet::Bits(b)) => a.iter_mut().zip(b).for_each(|(x, y)| *x |= y),
            (UserSet::Set(a), UserSet::Set(b)) => a.extend(b),
            _ => unreachable!("one --users for the whole run"),
        }
    }

    fn len(&self) -> u64 {
        match self {
            UserSet::Bits(b) => b.iter().map(|w| u64::from(w.count_ones())).sum(),
            UserSet::Set(s) => s.len() as u64,
        }
    }
}

struct HourTally {
    clicks: u64,
    impressions: u64,
    users: UserSet,
}

/// What the server accepted, per hour (only with --verify).
#[derive(Default)]
struct Tally {
    hours: HashMap<u64, HourTally>,
}

impl Tally {
    fn add(&mut self, users: u64, r: &Req) {
        let h = self.hours.entry(r.hour).or_insert_with(|| HourTally {
            clicks: 0,
            impressions: 0,
            users: UserSet::new(users),
        });
        match r.kind {
            Kind::Click => h.clicks += 1,
            Kind::Impression => h.impressions += 1,
            Kind::Get => return,
        }
        h.users.insert(r.user);
    }

    fn merge(&mut self, o: Tally) {
        for (hour, t) in o.hours {
            match self.hours.get_mut(&hour) {
                Some(h) => {
                    h.clicks += t.clicks;
                    h.impressions += t.impressions;
                    h.users.union(&t.users);
                }
                None => {
                    self.hours.insert(hour, t);
                }
            }
        }
    }
}

/// Largest value recorded, µs (one hour); larger ones count as this.
const HIST_MAX_US: u64 = 3_600_000_000;

fn new_histogram() -> Histogram<u64> {
    // 3 significant digits; grows with the largest value recorded, so a thread that only
    // sees sub-millisecond latencies keeps a small one.
    Histogram::new(3).expect("3 significant digits is valid")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).map_or(HIST_MAX_US, |v| v.min(HIST_MAX_US));
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

struct Stats {
    /// Latency of measured answers, µs.
    latency: Histogram<u64>,
    /// Open loop: how late requests left compared with their schedule, µs.
    lag: Histogram<u64>,
    /// Measured answers by status code.
    status: Vec<u64>,
    /// Measured answers.
    answered: u64,
    /// When the last measured answer arrived.
    last: Option<Instant>,
    errors: Errors,
    tally: Tally,
}

impl Stats {
    fn new() -> Self {
        Stats {
            latency: new_histogram(),
            lag: new_histogram(),
            status: vec![0; 1000],
            answered: 0,
            last: None,
            errors: Errors::default(),
            tally: Tally::default(),
        }
    }

    fn answer(&mut self, plan: &Plan, req: &Req, status: u16, arrived: Instant) {
        if plan.verify && status == 204 && !matches!(req.kind, Kind::Get) {
            self.tally.add(plan.users, req);
        }
        if plan.measuring(req.t0) {
            record(&mut self.latency, arrived.saturating_duration_since(req.t0));
            self.status[usize::from(status)] += 1;
            self.answered += 1;
            if self.last.is_none_or(|l| l < arrived) {
                self.last = Some(arrived);
            }
        }
    }

    fn fail(&mut self, plan: &Plan, f: Fail) {
        let e = &mut self.errors;
        match f {
            Fail::Write => e.write += 1,
            Fail::Read => e.read += 1,
            Fail::Timeout => e.timeout += 1,
            Fail::Closed => e.closed += 1,
            Fail::Protocol(why) => {
                e.protocol += 1;
                e.protocol_why.get_or_insert(why);
            }
        }
        plan.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn connect_failed(&mut self, plan: &Plan) {
        self.errors.connect += 1;
        plan.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn lost(&mut self, req: &Req) {
        self.errors.lost += 1;
        if !matches!(req.kind, Kind::Get) {
            self.errors.lost_posts += 1;
        }
    }

    fn merge(&mut self, o: Stats) {
        // Auto-resizing histograms with the same precision: `add` cannot fail.
        let _ = self.latency.add(&o.latency);
        let _ = self.lag.add(&o.lag);
        for (a, b) in self.status.iter_mut().zip(&o.status) {
            *a += b;
        }
        self.answered += o.answered;
        self.last = match (self.last, o.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.errors.merge(&o.errors);
        self.tally.merge(o.tally);
    }
}

// ---------------------------------------------------------------------------------------
// Closed loop: each thread drives its connections round-robin
// ---------------------------------------------------------------------------------------

struct ClosedConn {
    idx: u32,
    stream: Option<TcpStream>,
    reader: Reader,
    inflight: std::collections::VecDeque<Req>,
    rng: Rng,
    wbuf: Vec<u8>,
    failing_since: Option<Instant>,
    gave_up: bool,
}

impl ClosedConn {
    /// Drops the connection; requests still in flight count as lost.
    fn drop_stream(&mut self, stats: &mut Stats) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.reader.clear();
        for r in self.inflight.drain(..) {
            stats.lost(&r);
        }
    }

    /// Reads the answers of the batch in flight.
    fn complete(&mut self, plan: &Plan, stats: &mut Stats) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut arrived = Instant::now();
        let mut n = 0;
        while let Some(req) = self.inflight.front().copied() {
            match self.reader.next_answer(stream, &mut arrived) {
                Ok(a) => {
                    self.inflight.pop_front();
                    n += 1;
                    stats.answer(plan, &req, a.status, arrived);
                    if a.close {
                        if !self.inflight.is_empty() {
                            stats.fail(plan, Fail::Closed);
                        }
                        self.drop_stream(stats);
                        break;
                    }
                }
                Err(f) => {
                    stats.fail(plan, f);
                    self.drop_stream(stats);
                    break;
                }
            }
        }
        plan.answered.fetch_add(n, Ordering::Relaxed);
    }

    /// Writes the next batch. False when this connection is done.
    fn send(&mut self, plan: &Plan, stats: &mut Stats) -> bool {
        if self.gave_up {
            return false;
        }
        let now = Instant::now();
        let n = plan.claim(plan.pipeline, now);
        if n == 0 {
            return false;
        }
        if self.stream.is_none() {
            match connect(plan) {
                Ok(s) => {
                    self.stream = Some(s);
                    self.failing_since = None;
                }
                Err(_) => {
                    stats.connect_failed(plan);
                    if let Some(b) = &plan.budget {
                        if now >= plan.measure_start {
                            b.fetch_add(u64::from(n), Ordering::Relaxed);
                        }
                    }
                    let since = *self.failing_since.get_or_insert(now);
                    if now.duration_since(since) > RECONNECT_GIVE_UP {
                        self.gave_up = true;
                        return false;
                    }
                    thread::sleep(Duration::from_millis(10));
                    return true;
                }
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return true;
        };
        self.wbuf.clear();
        let stamp = Stamp::now();
        for _ in 0..n {
            let r = next_request(plan, &mut self.rng, &stamp, now, &mut self.wbuf);
            self.inflight.push_back(r);
        }
        let t0 = Instant::now();
        for r in self.inflight.iter_mut() {
            r.t0 = t0;
        }
        if stream.write_all(&self.wbuf).is_err() {
            stats.fail(plan, Fail::Write);
            self.drop_stream(stats);
        }
        true
    }
}

fn closed_loop(plan: Arc<Plan>, conns: Vec<u32>) -> Stats {
    let mut stats = Stats::new();
    let mut conns: Vec<ClosedConn> = conns
        .into_iter()
        .map(|idx| ClosedConn {
            idx,
            stream: None,
            reader: Reader::new(),
            inflight: std::collections::VecDeque::with_capacity(plan.pipeline as usize),
            rng: Rng::new(plan.seed, u64::from(idx)),
            wbuf: Vec::with_capacity(plan.pipeline as usize * 128),
            failing_since: None,
            gave_up: false,
        })
        .collect();
    // Start together, at the start of the (warm-up or measured) run.
    sleep_until(plan.start, Duration::ZERO);
    loop {
        let mut busy = false;
        for c in conns.iter_mut() {
            c.complete(&plan, &mut stats);
            busy |= c.send(&plan, &mut stats);
        }
        if !busy {
            break;
        }
    }
    debug_assert!(conns
        .iter()
        .all(|c| c.inflight.is_empty() && c.idx < plan.connections));
    stats
}

// ---------------------------------------------------------------------------------------
// Open loop: one thread per connection sends on the schedule and reads the answer
// ---------------------------------------------------------------------------------------

/// Sleeps until `t`. The OS sleep wakes up tens of µs late (more in a VM); with `spin`, the
/// last `spin` before `t` are spent yielding instead (punctual, but it burns CPU).
fn sleep_until(t: Instant, spin: Duration) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > spin {
            thread::sleep(left - spin);
        } else {
            thread::yield_now();
        }
    }
}

/// Connection `idx` of the open loop: sends its `k`-th request at its intended time (or at
/// once when it is late), then blocks for the answer, so the answer's arrival is seen when
/// it happens. Latency counts from the intended time, so a late send (a slow answer
/// before it) is charged to the server, not hidden.
fn open_loop(plan: Arc<Plan>, rate: f64, idx: u32) -> Stats {
    let mut stats = Stats::new();
    let mut rng = Rng::new(plan.seed, u64::from(idx));
    let mut wbuf = Vec::with_capacity(256);
    let mut reader = Reader::new();
    let mut stream: Option<TcpStream> = None;
    let mut failing_since: Option<Instant> = None;
    for k in 0u64.. {
        let due = plan.intended(rate, idx, k);
        if plan.abort.load(Ordering::Relaxed) || plan.end.is_some_and(|e| due >= e) {
            break;
        }
        sleep_until(due, plan.spin);
        if let Some(end) = plan.end {
            // Behind schedule (slow answers) when the run ends: what is left never leaves.
            if Instant::now() >= end {
                let period = f64::from(plan.connections) / rate;
                stats.errors.unsent += ((end - due).as_secs_f64() / period).ceil() as u64;
                break;
            }
        }
        if plan.claim(1, due) == 0 {
            break;
        }
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match connect(&plan) {
                Ok(s) => {
                    failing_since = None;
                    reader.clear();
                    stream.insert(s)
                }
                Err(_) => {
                    stats.connect_failed(&plan);
                    // This request was due and never left: lost.
                    stats.errors.lost += 1;
                    let now = Instant::now();
                    if now.duration_since(*failing_since.get_or_insert(now)) > RECONNECT_GIVE_UP {
                        break;
                    }
                    continue;
                }
            },
        };
        wbuf.clear();
        let req = next_request(&plan, &mut rng, &Stamp::now(), due, &mut wbuf);
        let sent = Instant::now();
        if s.write_all(&wbuf).is_err() {
            stats.fail(&plan, Fail::Write);
            stats.lost(&req);
            stream = None;
            continue;
        }
        if plan.measuring(due) {
            record(&mut stats.lag, sent.saturating_duration_since(due));
        }
        let mut arrived = sent;
        match reader.next_answer(s, &mut arrived) {
            Ok(a) => {
                stats.answer(&plan, &req, a.status, arrived);
                plan.answered.fetch_add(1, Ordering::Relaxed);
                if a.close {
                    stream = None;
                }
            }
            Err(f) => {
                stats.fail(&plan, f);
                stats.lost(&req);
                if let Some(s) = stream.take() {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
    stats
}

// ---------------------------------------------------------------------------------------
// Verify: GET every touched hour and compare with what was accepted
// ---------------------------------------------------------------------------------------

/// One GET on a keep-alive connection that reconnects when it must.
struct Probe<'a> {
    plan: &'a Plan,
    stream: Option<TcpStream>,
    reader: Reader,
}

impl Probe<'_> {
    fn counts(&mut self, hour: u64) -> Result<(u64, u64, u64), String> {
        let mut last_err = String::new();
        for _ in 0..3 {
            if self.stream.is_none() {
                match connect(self.plan) {
                    Ok(s) => self.stream = Some(s),
                    Err(e) => {
                        last_err = format!("connect: {e}");
                        continue;
                    }
                }
                self.reader.clear();
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let req = format!(
                "GET /analytics?timestamp={} HTTP/1.1\r\nHost: {}\r\n\r\n",
                hour * HOUR_MS,
                self.plan.host
            );
            if let Err(e) = stream.write_all(req.as_bytes()) {
                last_err = format!("write: {e}");
                self.stream = None;
                continue;
            }
            let mut t = Instant::now();
            match self.reader.next_answer(stream, &mut t) {
                Ok(a) => {
                    let body = self.reader.body(&a).to_vec();
                    if a.close {
                        self.stream = None;
                    }
                    if a.status != 200 {
                        return Err(format!(
                            "answer {} {:?}",
                            a.status,
                            String::from_utf8_lossy(&body)
                        ));
                    }
                    return parse_counts(&body).ok_or_else(|| {
                        format!("unexpected body {:?}", String::from_utf8_lossy(&body))
                    });
                }
                Err(f) => {
                    last_err = format!("read: {f:?}");
                    self.stream = None;
                }
            }
        }
        Err(last_err)
    }
}

/// `unique_users,U\nclicks,C\nimpressions,I\n` → (U, C, I).
fn parse_counts(body: &[u8]) -> Option<(u64, u64, u64)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut lines = text.strip_suffix('\n')?.split('\n');
    let mut field = |name: &str| -> Option<u64> {
        let (n, v) = lines.next()?.split_once(',')?;
        if n != name {
            return None;
        }
        parse_decimal(v.as_bytes())
    };
    let v = (
        field("unique_users")?,
        field("clicks")?,
        field("impressions")?,
    );
    lines.next().is_none().then_some(v)
}

/// `2026-11-24T08Z` for an hour since the epoch.
fn hour_label(hour: u64) -> String {
    // Days to civil date (Howard Hinnant's algorithm).
    let days = (hour / 24) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}Z", hour % 24)
}

/// Returns the number of hours that differ.
fn verify(plan: &Plan, tally: &Tally, lost_posts: u64) -> u64 {
    let mut probe = Probe {
        plan,
        stream: None,
        reader: Reader::new(),
    };
    let mut hours: Vec<_> = tally.hours.iter().collect();
    hours.sort_by_key(|(h, _)| **h);
    let deadline = Instant::now() + VERIFY_WAIT;
    let mut diffs = 0;
    for (&hour, t) in &hours {
        let want = (t.users.len(), t.clicks, t.impressions);
        let got = loop {
            let got = probe.counts(hour);
            if got.as_ref().is_ok_and(|g| *g == want) || Instant::now() >= deadline {
                break got;
            }
            thread::sleep(Duration::from_millis(20));
        };
        match got {
            Ok(g) if g == want => {}
            Ok(g) => {
                diffs += 1;
                println!(
                    "verify: hour {hour} ({}): expected unique_users={} clicks={} impressions={}, \
                     got unique_users={} clicks={} impressions={}",
                    hour_label(hour),
                    want.0,
                    want.1,
                    want.2,
                    g.0,
                    g.1,
                    g.2
                );
            }
            Err(e) => {
                diffs += 1;
                println!(
                    "verify: hour {hour} ({}): expected unique_users={} clicks={} impressions={}, \
                     GET failed: {e}",
                    hour_label(hour),
                    want.0,
                    want.1,
                    want.2
                );
            }
        }
    }
    if lost_posts > 0 {
        println!(
            "verify: note: {lost_posts} POSTs got no answer (transport errors); the server may \
             have counted them, so differences up to that many are not necessarily wrong"
        );
    }
    println!("verify: {} hours, {diffs} differences", hours.len());
    diffs
}

// ---------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------

/// This process's CPU time (user + system, all threads), from /proc; None elsewhere.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`: state is field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // USER_HZ is 100 on every mainstream Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn progress(plan: Arc<Plan>, stop: mpsc::Receiver<()>) {
    let mut last = 0u64;
    let mut err = io::stderr();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(Duration::from_secs(1)) {
        let now = Instant::now();
        let answered = plan.answered.load(Ordering::Relaxed);
        let errors = plan.errors.load(Ordering::Relaxed);
        let phase = if now < plan.measure_start {
            "warm-up "
        } else {
            ""
        };
        let _ = write!(
            err,
            "\r\x1b[2K{phase}{:>5.0}s  {:>9} req/s  errors {errors}",
            now.duration_since(plan.start).as_secs_f64(),
            answered - last
        );
        let _ = err.flush();
        last = answered;
    }
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if args.rate.is_some() && args.pipeline != 1 {
        eprintln!(
            "hourtally-load: --rate (open loop) sends one request at a time: use --pipeline 1"
        );
        return ExitCode::from(2);
    }
    let addr = match args.addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => {
            eprintln!("hourtally-load: cannot resolve --addr {}", args.addr);
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    if let Err(e) = TcpStream::connect_timeout(&addr, timeout) {
        eprintln!("hourtally-load: cannot connect to {addr}: {e}");
        return ExitCode::from(2);
    }
    // Sleeps end within ~1 µs of their deadline instead of the default 50 µs slack (threads
    // inherit it): the open loop's schedule depends on it. Not fatal where unsupported.
    let _ = std::fs::write("/proc/self/timerslack_ns", "1000");

    let cores = thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let threads = match args.rate {
        // The open loop reads each answer when it arrives: a thread per connection.
        Some(_) => args.connections,
        None => args
            .threads
            .unwrap_or_else(|| args.connections.min(2 * cores))
            .min(args.connections),
    };
    let duration = match (args.duration, args.requests) {
        (Some(d), _) => Some(d),
        (None, None) => Some(10.0),
        (None, Some(_)) => None,
    };
    let start = Instant::now() + Duration::from_millis(5);
    let measure_start = start + Duration::from_secs_f64(args.warmup);
    let plan = Arc::new(Plan {
        addr,
        host: args.addr.clone(),
        connections: args.connections,
        pipeline: args.pipeline,
        post_share: args.post_share,
        current_share: args.current_share,
        click_share: args.click_share,
        users: args.users,
        seed: args.seed,
        verify: args.verify,
        timeout,
        spin: Duration::from_micros(args.spin_us),
        start,
        measure_start,
        end: duration.map(|d| measure_start + Duration::from_secs_f64(d)),
        budget: args.requests.map(AtomicU64::new),
        abort: AtomicBool::new(false),
        answered: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });

    let mode = match args.rate {
        Some(r) => format!("open loop at {r} req/s (latency from the intended send time: corrected for coordinated omission)"),
        None => "closed loop (latency from the write of the batch to the read of the answer)".to_string(),
    };
    let command: Vec<String> = std::env::args().map(|a| shell_quote(&a)).collect();
    let length = match (duration, args.requests) {
        (Some(d), _) => format!("duration={d}s"),
        (None, Some(n)) => format!("requests={n}"),
        (None, None) => unreachable!("duration defaults to 10 s"),
    };
    let config = format!(
        "addr={} connections={} pipeline={} threads={threads} {length} warmup={}s \
         post_share={} current_share={} click_share={} users={} rate={} seed={} verify={} timeout={}s spin_us={}",
        args.addr,
        args.connections,
        args.pipeline,
        args.warmup,
        args.post_share,
        args.current_share,
        args.click_share,
        args.users,
        args.rate.map_or("none".to_string(), |r| r.to_string()),
        args.seed,
        args.verify,
        args.timeout,
        args.spin_us,
    );

    let show_progress = !args.no_progress && io::stderr().is_terminal();
    let (stop_tx, stop_rx) = mpsc::channel();
    let progress_thread = show_progress.then(|| {
        let p = plan.clone();
        thread::spawn(move || progress(p, stop_rx))
    });

    let cpu0 = cpu_time();
    let mut handles = Vec::new();
    for t in 0..threads {
        let conns: Vec<u32> = (t..args.connections).step_by(threads as usize).collect();
        let p = plan.clone();
        let rate = args.rate;
        let h = thread::Builder::new()
            .name(format!("client-{t}"))
            .spawn(move || match rate {
                Some(r) => open_loop(p, r, t),
                None => closed_loop(p, conns),
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("hourtally-load: cannot start a client thread: {e}");
                plan.abort.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    let mut stats = Stats::new();
    for h in handles {
        match h.join() {
            Ok(s) => stats.merge(s),
            Err(_) => eprintln!("hourtally-load: a client thread panicked"),
        }
    }
    let cpu = cpu0.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    let wall = start.elapsed();
    drop(stop_tx);
    if let Some(h) = progress_thread {
        let _ = h.join();
    }

    // The report.
    let elapsed = stats.last.map_or(Duration::ZERO, |l| {
        l.saturating_duration_since(measure_start)
    });
    let secs = elapsed.as_secs_f64();
    let rps = if secs > 0.0 {
        stats.answered as f64 / secs
    } else {
        0.0
    };
    let h = &stats.latency;
    let q = |x: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(x)
        }
    };
    let (p50, p90, p99, p999, max) = (q(0.5), q(0.9), q(0.99), q(0.999), h.max());
    let e = &stats.errors;
    let non2xx: u64 = stats
        .status
        .iter()
        .enumerate()
        .filter(|(s, _)| !(200..300).contains(s))
        .map(|(_, n)| n)
        .sum();

    let mut out = String::new();
    let _ = writeln!(out, "hourtally-load: {mode}");
    let _ = writeln!(out, "command: {}", command.join(" "));
    let _ = writeln!(out, "config: {config}");
    let _ = writeln!(out, "requests      {}", stats.answered);
    let _ = writeln!(out, "duration      {secs:.3} s");
    let _ = writeln!(out, "requests/s    {rps:.0}");
    let _ = writeln!(
        out,
        "latency (µs){}",
        if args.rate.is_some() {
            ", from the intended send time (coordinated omission corrected)"
        } else {
            ", from the write of the batch to the read of the answer"
        }
    );
    let _ = writeln!(out, "  p50         {p50}");
    let _ = writeln!(out, "  p90         {p90}");
    let _ = writeln!(out, "  p99         {p99}");
    let _ = writeln!(out, "  p99.9       {p999}");
    let _ = writeln!(out, "  max         {max}");
    if args.rate.is_some() && !stats.lag.is_empty() {
        let l = &stats.lag;
        let _ = writeln!(
            out,
            "send lag (µs, how late the client sent vs. the schedule)  p50 {}  p99 {}  max {}",
            l.value_at_quantile(0.5),
            l.value_at_quantile(0.99),
            l.max()
        );
    }
    if args.rate.is_some() {
        let _ = writeln!(
            out,
            "unsent        {} (scheduled, but still waiting for an earlier answer when the run ended)",
            e.unsent
        );
    }
    let _ = writeln!(out, "answers by status");
    for (code, &n) in stats.status.iter().enumerate() {
        if n > 0 || matches!(code, 200 | 204 | 503) {
            let _ = writeln!(out, "  {code}:        {n}");
        }
    }
    let _ = writeln!(
        out,
        "transport errors {} (connect {}, write {}, read {}, timeout {}, closed {}, protocol {}{}); requests without an answer {}",
        e.transport(),
        e.connect,
        e.write,
        e.read,
        e.timeout,
        e.closed,
        e.protocol,
        e.protocol_why.map_or(String::new(), |w| format!(": {w}")),
        e.lost
    );
    // Client CPU over the whole run (warm-up included), % of one core.
    let cpu_pct = cpu.map(|c| 100.0 * c.as_secs_f64() / wall.as_secs_f64().max(1e-9));
    if let (Some(cpu), Some(pct)) = (cpu, cpu_pct) {
        let total = plan.answered.load(Ordering::Relaxed).max(1);
        let _ = writeln!(
            out,
            "client cpu    {pct:.0}% of one core over {:.2} s ({:.2} µs per request){}",
            wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / total as f64,
            if pct >= 90.0 {
                " - the client may be the bottleneck"
            } else {
                ""
            }
        );
    }
    print!("{out}");
    let _ = io::stdout().flush();

    let mut code = ExitCode::SUCCESS;
    let mut diffs = 0;
    if args.verify {
        diffs = verify(&plan, &stats.tally, e.lost_posts);
        if diffs > 0 {
            code = ExitCode::from(1);
        }
    }
    let all_failed = stats.answered == 0 && e.transport() > 0;
    println!(
        "RESULT rps={rps:.0} requests={} p50_us={p50} p90_us={p90} p99_us={p99} p999_us={p999} \
         max_us={max} errors={} lost={} unsent={} non2xx={non2xx} verify_diffs={diffs} client_cpu_pct={}",
        stats.answered,
        e.transport(),
        e.lost,
        e.unsent,
        cpu_pct.map_or("n/a".to_string(), |p| format!("{p:.0}"))
    );
    if all_failed {
        eprintln!("hourtally-load: no request to {addr} got an answer");
        return ExitCode::from(2);
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let r = b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let Parsed::Done(a) = parse_response(r) else {
            panic!()
        };
        assert_eq!((a.status, a.len, a.close), (204, 36, false));
        let Parsed::Done(b) = parse_response(&r[a.len..]) else {
            panic!()
        };
        assert_eq!((b.status, b.head_len, b.len), (200, 38, 41));
        for cut in 0..r.len() - a.len {
            assert_eq!(
                parse_response(&r[a.len..a.len + cut]),
                Parsed::Partial,
                "{cut}"
            );
        }
        assert!(matches!(
            parse_response(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Parsed::Interim(25)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.0 200 OK\nContent-Length: 0\n\n"),
            Parsed::Done(Answer { close: true, .. })
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"),
            Parsed::Done(Answer { close: true, .. })
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(parse_response(b"garbage\r\n"), Parsed::Bad(_)));
        assert!(matches!(parse_response(b"xyz"), Parsed::Bad(_)));
        assert!(matches!(
            parse_response(b"HTTP/1.1 2x4 No\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert_eq!(parse_response(b"HTTP/1"), Parsed::Partial);
    }

    #[test]
    fn finds_newlines() {
        let mut r = Rng::new(1, 1);
        for _ in 0..20_000 {
            let len = r.below(40) as usize;
            let v: Vec<u8> = (0..len)
                .map(|_| [b'\n', b'\r', b'a', 0x8a, 0x0b, 0x09][r.below(6) as usize])
                .collect();
            assert_eq!(
                find_newline(&v),
                v.iter().position(|&b| b == b'\n'),
                "{v:?}"
            );
        }
    }

    #[test]
    fn counts_and_labels() {
        assert_eq!(
            parse_counts(b"unique_users,1\nclicks,2\nimpressions,3\n"),
            Some((1, 2, 3))
        );
        assert_eq!(
            parse_counts(b"unique_users,1\nclicks,2\nimpressions,3"),
            None
        );
        assert_eq!(parse_counts(b"unique_users,1\nclicks,2\n"), None);
        assert_eq!(hour_label(0), "1970-01-01T00Z");
        assert_eq!(hour_label(1_764_000_000_000 / HOUR_MS), "2025-11-24T16Z");
    }

    #[test]
    fn rng_ranges() {
        let mut r = Rng::new(7, 3);
        for _ in 0..10_000 {
            assert!(r.below(10) < 10);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        let mut b = Vec::new();
        push_u64(&mut b, 0);
        push_u64(&mut b, 18_446_744_073_709_551_615);
        assert_eq!(b, b"018446744073709551615");
    }
}
