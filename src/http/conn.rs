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

use super::date::Clock;
use super::error::{ApiError, HttpError};
use super::limits::{MAX_PENDING_OUTPUT, WRITE_TIMEOUT};
use super::response::{self, AfterAnswer};
use super::routes::Service;
use super::session::Session;
use crate::conns::Ticket;
use crate::metrics::Stopwatch;

/// Grows `buf` (whose whole length is usable) when it is full, up to `max`.
fn ensure_room(buf: &mut Vec<u8>, filled: usize, max: usize) {
    if filled == buf.len() && buf.len() < max {
        let new_len = (buf.len() * 2).clamp(4096, max);
        buf.resize(new_len, 0);
    }
}

/// With `--fsync always`, the longest a connection holds its answers for the disk.
pub const DURABLE_WAIT: Duration = Duration::from_secs(15);

/// What the connection is waiting for, and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    /// Between requests: closed quietly after `idle_timeout`.
    Idle,
    /// A request head (the first after accept, or one whose first bytes are here): 408 at
    /// the instant.
    Head(Instant),
    /// The rest of a request body: 408 at the instant.
    Body(Instant),
}

/// Answers a connection until the peer closes, an error closes it, it idles out, or the
/// server drains.
pub fn serve(stream: &mut may::net::TcpStream, service: &Service, ticket: &Ticket<'_>) {
    name_worker_thread();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let limits = service.limits;
    let max_buf = limits.max_read_buffer();
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut clock = Clock::default();
    let mut session = Session::new(service);
    let mut due = Due::Head(Instant::now() + limits.head_timeout);
    // The read timeout set on the socket: set again only when it changes, not before every
    // read (each set is a system call).
    let mut read_timeout: Option<Duration> = None;
    loop {
        let wait = match due {
            Due::Idle => limits.idle_timeout,
            Due::Head(at) | Due::Body(at) => at.saturating_duration_since(Instant::now()),
        };
        let read = if wait.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            ensure_room(&mut buf, filled, max_buf);
            debug_assert!(
                filled < buf.len(),
                "feed refuses heads that would fill the buffer"
            );
            // Round a deadline up to whole milliseconds so that it changes less often; a
            // read that wakes before its deadline only loops.
            let wait = Duration::from_millis(wait.as_millis() as u64 + 1);
            let set = if read_timeout == Some(wait) {
                Ok(())
            } else {
                read_timeout = Some(wait);
                stream.set_read_timeout(Some(wait))
            };
            set.and_then(|()| stream.read(&mut buf[filled..]))
        };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                let expired = match due {
                    Due::Idle => true,
                    Due::Head(at) | Due::Body(at) => Instant::now() >= at,
                };
                if !expired {
                    continue;
                }
                timed_out(stream, service, &mut session, due, &clock, &mut out);
                break;
            }
            Err(_) => break,
        };
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
        loop {
            let accepted_before = session.tally.accepted;
            let outcome = session.feed(&buf[start..filled], &clock, &mut out);
            start += outcome.consumed;
            if session.tally.accepted > accepted_before {
                if let Some(waiters) = &service.durable_waiters {
                    // `--fsync always`: the 204s go out once their events are on disk. If
                    // the disk does not take them in time, close without answering: the
                    // client cannot tell, and may retry (the events may still count).
                    let ticket = service.ingest.durability_ticket();
                    if !waiters.wait(&service.ingest, ticket, service.durable_wait) {
                        service.metrics.flush(&mut session.tally);
                        return;
                    }
                }
            }
            if outcome.answered > 0 {
                due = Due::Idle;
            }
            if !out.is_empty() {
                if stream.write_all(&out).is_err() {
                    close = true;
                }
                out.clear();
            }
            close |= outcome.close;
            if close || !outcome.output_full {
                break;
            }
        }
        service
            .metrics
            .flush_timed(&mut session.tally, batch_started);
        if close {
            linger_close(stream);
            return;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        // A deadline runs from the first byte of a head or body (or from accept) and is not
        // moved by later bytes of the same head or body.
        due = if session.in_body() {
            match due {
                Due::Body(at) => Due::Body(at),
                _ => Due::Body(Instant::now() + limits.head_timeout),
            }
        } else if filled > 0 {
            match due {
                Due::Head(at) => Due::Head(at),
                _ => Due::Head(Instant::now() + limits.head_timeout),
            }
        } else {
            Due::Idle
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

/// Names the OS thread running this coroutine `hourtally-http`, once per thread: may's
/// workers are unnamed, and `top -H`, `perf report --sort comm` and `scripts/bench-compare.sh`
/// tell the threads apart by name (the writer is `hourtally-write`).
fn name_worker_thread() {
    thread_local! {
        static NAMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if NAMED.replace(true) {
        return;
    }
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from the pointer,
    // which points at a static C string literal of 15 bytes with its NUL.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"hourtally-http".as_ptr());
    }
}

/// The read timed out: 408 if a request head or body was due, else (idle) just close.
fn timed_out(
    stream: &mut may::net::TcpStream,
    service: &Service,
    session: &mut Session<'_>,
    due: Due,
    clock: &Clock,
    out: &mut Vec<u8>,
) {
    let secs = service.limits.head_timeout.as_secs();
    let err = match due {
        Due::Idle => return,
        Due::Head(_) => HttpError::HeadTimeout(secs),
        Due::Body(_) => HttpError::BodyTimeout(secs),
    };
    let err = ApiError::from(err);
    out.clear();
    response::write_error(out, &err, AfterAnswer::Close, clock, false);
    session.tally.refuse(&err);
    service.metrics.flush(&mut session.tally);
    let _ = stream.write_all(out);
    linger_close(stream);
}

/// Closes after a final answer without losing it: send FIN, then read and drop what the peer
/// still sends for a short while, so the kernel does not answer unread bytes with a reset
/// that could destroy our answer in flight. Bounded in bytes and time.
fn linger_close(stream: &mut may::net::TcpStream) {
    const LINGER_BYTES: usize = 256 * 1024;
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER_TIME;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
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
