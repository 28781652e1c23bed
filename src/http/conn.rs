//! One connection's socket loop on a `may` coroutine: read what is there, let the
//! [`Session`] answer every complete request, write all answers at once, repeat; with the
//! head, body and idle deadlines, and the closes that never lose an answer already written.
//!
//! Memory per connection is bounded: the read buffer never grows past
//! [`Limits::max_read_buffer`](super::limits::Limits::max_read_buffer) (a head that does not
//! fit is refused), and answers are written out whenever
//! [`MAX_PENDING_OUTPUT`](super::limits::MAX_PENDING_OUTPUT) bytes are pending.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use may::io::WaitIo;

use super::date::Clock;
use super::error::{ApiError, HttpError};
use super::limits::{MAX_PENDING_OUTPUT, WRITE_TIMEOUT};
use super::response::{self, AfterAnswer};
use super::routes::Service;
use super::session::Session;
use super::tally::Stopwatch;
use super::waker::IoWaker;
use crate::ack::Settled;
use crate::alarms::Alarms;
use crate::clock::coarse_monotonic_ms;
use crate::conns::Ticket;

/// Grows `buf` (whose whole length is usable) when it is full, up to `max`.
fn ensure_room(buf: &mut Vec<u8>, filled: usize, max: usize) {
    if filled == buf.len() && buf.len() < max {
        let new_len = (buf.len() * 2).clamp(4096, max);
        buf.resize(new_len, 0);
    }
}

/// What the connection is waiting for, and until when (milliseconds of
/// [`coarse_monotonic_ms`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    /// Between requests: closed quietly at the instant (`idle_timeout` after the last batch).
    Idle(u64),
    /// A request head (the first after accept, or one whose first bytes are here): 408 at
    /// the instant.
    Head(u64),
    /// The rest of a request body: 408 at the instant.
    Body(u64),
}

impl Due {
    fn at(self) -> u64 {
        match self {
            Due::Idle(at) | Due::Head(at) | Due::Body(at) => at,
        }
    }
}

/// An idle deadline is kept to this many milliseconds (rounded up), so that a busy
/// connection stores a new one in its alarm cell a few times a second, not once per batch.
const IDLE_GRAIN_MS: u64 = 256;

/// The connection's place in the server's alarm table, given back when dropped.
struct Alarm<'a> {
    alarms: &'a Alarms<IoWaker>,
    cell: usize,
}

impl Drop for Alarm<'_> {
    fn drop(&mut self) {
        self.alarms.unregister(self.cell);
    }
}

impl Alarm<'_> {
    /// Waits in `wait_io` for the socket, with `at` (milliseconds of [`coarse_monotonic_ms`])
    /// in the cell, so that the sweeper wakes the connection then if nothing else does
    /// first. False, without waiting, once `at` has passed: every wait on the socket (to
    /// read, to write, to close) ends this way.
    fn wait(&self, stream: &mut may::net::TcpStream, at: u64) -> bool {
        if coarse_monotonic_ms() >= at {
            return false;
        }
        self.alarms.arm(self.cell, at);
        stream.wait_io();
        true
    }
}

/// Answers a connection until the peer closes, an error closes it, it idles out, or the
/// server drains.
///
/// Reads are non-blocking reads of the socket, and a read that finds nothing waits in
/// `WaitIo::wait_io` for the socket to become readable, for the drain (which shuts the read
/// side: readable), or for the server's sweeper, which wakes the connection when the deadline
/// it stored in its alarm cell has passed (`alarms`). No wait on the socket carries a timeout
/// of may's: may would register and remove a timer on every read that blocks, and its timed
/// waits remove their timer from whichever thread resumes them, which races the event loop
/// that owns the timer list (may 0.3.51, `EventData::schedule` and `fast_schedule`). Writes
/// that wait for room and the linger before a close wait in `wait_io` too, with their own
/// deadline in the cell ([`write_out`], [`linger_close`]).
pub fn serve(stream: &mut may::net::TcpStream, service: &Service, ticket: &Ticket<'_>) {
    name_worker_thread();
    let _ = stream.set_nodelay(true);
    let limits = service.limits;
    let (head_ms, idle_ms) = (millis(limits.head_timeout), millis(limits.idle_timeout));
    let max_buf = limits.max_read_buffer();
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut clock = Clock::default();
    // When this connection's POSTs get their answers (`ack`): with `--fsync always`, its
    // slot tags its events, so that the writer can tell it which a refused group held.
    let answering = service.ack.connection(&service.ingest, ticket.index());
    let mut session = Session::new(service).with_src(answering.src());
    let mut due = Due::Head(coarse_monotonic_ms() + head_ms);
    service
        .alarms
        .register(ticket.index(), IoWaker(stream.waker()));
    let alarm = Alarm {
        alarms: &service.alarms,
        cell: ticket.index(),
    };
    // Whether the last read left the socket empty: it returned fewer bytes than it had room
    // for, so the receive queue held no more at that moment.
    let mut drained = false;
    loop {
        ensure_room(&mut buf, filled, max_buf);
        debug_assert!(
            filled < buf.len(),
            "feed refuses heads that would fill the buffer"
        );
        // After a short read, wait for the socket before reading again instead of reading
        // to meet `WouldBlock`: one system call less per batch (per request at depth 1).
        // No wake-up is lost. may registers the socket edge-triggered, and its poller sets
        // the socket's event flag for every arrival after the flag was last cleared (by the
        // `wait_io` that ended our previous wait, before the short read). `wait_io` returns
        // at once while the flag is set, and a coroutine that parks re-checks the flag after
        // it has stored itself (`RawIoBlock::subscribe`). So bytes that arrive after the
        // short read wake us, and bytes that arrived before it were read by it. At worst
        // an event for bytes already read wakes us once for nothing, and the read below
        // meets `WouldBlock` as it always did. Nothing else may clear the flag in between:
        // may's own `write` does (before every write), so answers go out through the
        // socket itself (`write_out`), and a write that had to wait in `wait_io` clears
        // `drained`.
        let space = buf.len() - filled;
        let read = if drained {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            stream.inner_mut().read(&mut buf[filled..])
        };
        drained = false;
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Woken by bytes, by the drain, or by the sweeper (which disarmed the cell,
                // so that a wake-up before the deadline, from a rounded or stale one, arms
                // it again on the next turn).
                if !alarm.wait(stream, due.at()) {
                    timed_out(stream, &alarm, service, &mut session, due, &clock, &mut out);
                    break;
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        drained = n < space;
        if ticket.draining() {
            // The server is stopping: these bytes are not taken. Every answer of a request
            // taken before is written; close so that they all arrive.
            break;
        }
        filled += n;
        clock.tick();
        // The batch's requests are timed from here to their answers' write (`/metrics`).
        let batch_started = Stopwatch::start();
        let mut start = 0;
        let mut close = false;
        let mut flag_cleared = false;
        loop {
            let begun = answering.begin();
            session.accepted.clear();
            let outcome = session.feed(&buf[start..filled], &clock, &mut out);
            start += outcome.consumed;
            match answering.settle(begun, outcome.accepted) {
                Settled::Answer => {}
                Settled::Refuse(n) => refuse_answers(&mut out, &mut session, n, &clock),
                Settled::GaveUp => {
                    service.metrics.flush(&mut session.tally);
                    return;
                }
            }
            if outcome.answered > 0 {
                due = Due::Idle(idle_deadline(coarse_monotonic_ms(), idle_ms));
            }
            if !out.is_empty() {
                match write_out(stream, &out, &alarm) {
                    Ok(Written::AtOnce) => {}
                    // Its `wait_io` cleared the socket's event flag: read before waiting.
                    Ok(Written::AfterWaiting) => flag_cleared = true,
                    Err(_) => close = true,
                }
                out.clear();
            }
            close |= outcome.close;
            if close || !outcome.output_full {
                break;
            }
        }
        drained &= !flag_cleared;
        service
            .metrics
            .flush_timed(&mut session.tally, batch_started);
        if close {
            linger_close(stream, &alarm);
            return;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        // A deadline runs from the first byte of a head or body (or from accept) and is not
        // moved by later bytes of the same head or body.
        let now = coarse_monotonic_ms();
        due = if session.in_body() {
            match due {
                Due::Body(at) => Due::Body(at),
                _ => Due::Body(now + head_ms),
            }
        } else if filled > 0 {
            match due {
                Due::Head(at) => Due::Head(at),
                _ => Due::Head(now + head_ms),
            }
        } else {
            match due {
                // Still idle (a batch that answered nothing): the deadline stands.
                Due::Idle(at) => Due::Idle(at.max(idle_deadline(now, idle_ms))),
                _ => Due::Idle(idle_deadline(now, idle_ms)),
            }
        };
        if out.capacity() > MAX_PENDING_OUTPUT * 2 {
            out.shrink_to(MAX_PENDING_OUTPUT);
        }
    }
    service.metrics.flush(&mut session.tally);
    if ticket.draining() {
        drain_close(stream);
    }
}

/// How [`write_out`] wrote.
enum Written {
    /// In full, without waiting: the socket's event flag is as the last `wait_io` left it,
    /// plus what arrived since.
    AtOnce,
    /// After waiting in `wait_io` for room, which cleared the event flag.
    AfterWaiting,
}

/// Writes `out` in full through the non-blocking socket. While its buffer is full, waits in
/// `wait_io` (woken when the socket takes bytes again, by any other event, or by the sweeper
/// at the write deadline in the connection's alarm cell): a peer that takes no byte for
/// [`WRITE_TIMEOUT`] is given up on (`TimedOut`); each byte it takes starts that time again.
fn write_out(
    stream: &mut may::net::TcpStream,
    out: &[u8],
    alarm: &Alarm<'_>,
) -> io::Result<Written> {
    let mut written = 0;
    let mut waited = false;
    // The write deadline, from the first wait since bytes last went out.
    let mut deadline = None;
    while written < out.len() {
        match stream.inner_mut().write(&out[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written += n;
                deadline = None;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let at = *deadline.get_or_insert(coarse_monotonic_ms() + millis(WRITE_TIMEOUT));
                if !alarm.wait(stream, at) {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                waited = true;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(if waited {
        Written::AfterWaiting
    } else {
        Written::AtOnce
    })
}

/// The idle deadline of a connection whose last batch ended at `now`, rounded up to
/// [`IDLE_GRAIN_MS`] (a connection idles out up to that much late).
fn idle_deadline(now: u64, idle_ms: u64) -> u64 {
    (now + idle_ms).div_ceil(IDLE_GRAIN_MS) * IDLE_GRAIN_MS
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// Names the OS thread running this coroutine `hourtally-http`: may's workers are unnamed,
/// and `top -H`, `perf report --sort comm` and `scripts/bench-compare.sh` tell the threads
/// apart by name (the writer is `hourtally-write`). Once per connection, one system call: a
/// "once per thread" flag would be thread-local state on a coroutine's path, which is wrong
/// under `may` (`counts_answers` says why).
fn name_worker_thread() {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from the pointer,
    // which points at a static C string literal of 15 bytes with its NUL.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"hourtally-http".as_ptr());
    }
}

/// The writer refused the last `n` events of this batch's POSTs (`ingest::Refusals`: once
/// it refuses one event of a run, it refuses the rest, so they are the run's last): their
/// `204`s in `out` become `503`s, which mean "not taken, never counted", and the tally says
/// so.
fn refuse_answers(out: &mut Vec<u8>, session: &mut Session<'_>, n: u64, clock: &Clock) {
    let accepted = std::mem::take(&mut session.accepted);
    let n = usize::try_from(n).unwrap_or(usize::MAX).min(accepted.len());
    let err = ApiError::from(crate::http::error::RejectError::JournalFailing);
    let mut rebuilt = Vec::with_capacity(out.len() + n * 128);
    let mut at = 0;
    for &(begin, end, after) in &accepted[accepted.len() - n..] {
        rebuilt.extend_from_slice(&out[at..begin]);
        response::write_error(&mut rebuilt, &err, after, clock, false);
        session.tally.accepted_then_refused(&err);
        at = end;
    }
    rebuilt.extend_from_slice(&out[at..]);
    *out = rebuilt;
}

/// The read timed out: 408 if a request head or body was due, else (idle) just close.
fn timed_out(
    stream: &mut may::net::TcpStream,
    alarm: &Alarm<'_>,
    service: &Service,
    session: &mut Session<'_>,
    due: Due,
    clock: &Clock,
    out: &mut Vec<u8>,
) {
    let secs = service.limits.head_timeout.as_secs();
    let err = match due {
        Due::Idle(_) => return,
        Due::Head(_) => HttpError::HeadTimeout(secs),
        Due::Body(_) => HttpError::BodyTimeout(secs),
    };
    let err = ApiError::from(err);
    out.clear();
    response::write_error(out, &err, AfterAnswer::Close, clock, false);
    session.tally.refuse(&err);
    service.metrics.flush(&mut session.tally);
    if write_out(stream, out, alarm).is_ok() {
        linger_close(stream, alarm);
    }
}

/// Closes after a final answer without losing it: send FIN, then read and drop what the peer
/// still sends for a short while, so the kernel does not answer unread bytes with a reset
/// that could destroy our answer in flight. Bounded in bytes and time ([`LINGER_TIME`], in
/// the alarm cell while it waits in `wait_io`).
fn linger_close(stream: &mut may::net::TcpStream, alarm: &Alarm<'_>) {
    const LINGER_BYTES: usize = 256 * 1024;
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = coarse_monotonic_ms() + millis(LINGER_TIME);
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match stream.inner_mut().read(&mut sink) {
            Ok(0) => break,
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !alarm.wait(stream, deadline) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
}

/// How long a closing connection waits for its last answers to be taken by the peer.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Closes a connection of a draining server without losing an answer already written.
///
/// The drain shut the socket's read side, so reading cannot tell when the peer has taken
/// our answers, and closing a socket with unread input makes the kernel send a reset that
/// throws away whatever is still unsent. So: wait until the peer has acknowledged every byte
/// we sent, and only then send FIN and close. Not FIN first: a socket whose read side is shut
/// and whose FIN is sent (FIN_WAIT) answers any further byte from the peer (the next
/// pipelined request) with a reset, dropping the unsent answers (RFC 1122 4.2.2.13; measured
/// here: 40 000 answers lost to it under load). A peer that reads slowly gets as long as it
/// keeps taking bytes (up to [`DRAIN_TIME`] in all); one that takes none for
/// [`WRITE_TIMEOUT`] (as for any write) is given up on. Not less: a peer with a small receive
/// window is probed by TCP's persist timer, whose backoff leaves seconds between two bytes
/// taken.
fn drain_close(stream: &mut may::net::TcpStream) {
    let started = Instant::now();
    let mut last = (unsent_bytes(stream), started);
    while last.0 > 0 && started.elapsed() < DRAIN_TIME {
        may::coroutine::sleep(Duration::from_millis(1));
        let unsent = unsent_bytes(stream);
        if unsent < last.0 {
            last = (unsent, Instant::now());
        } else if last.1.elapsed() >= WRITE_TIMEOUT {
            break;
        }
        last.0 = unsent;
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// The longest a draining connection waits for a peer that keeps reading its answers.
pub const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Bytes written to `stream` that the peer has not acknowledged yet (0 if unknown).
fn unsent_bytes(stream: &may::net::TcpStream) -> usize {
    use std::os::unix::io::AsRawFd;
    let mut unsent: libc::c_int = 0;
    // SAFETY: `TIOCOUTQ` (SIOCOUTQ for TCP) writes one `c_int` through the pointer, which
    // points at a live local `c_int`; the fd is the stream's own, open for this call.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut unsent) };
    if rc == 0 {
        usize::try_from(unsent).unwrap_or(0)
    } else {
        0
    }
}
