//! The accept loop: each connection gets a coroutine of its own, or, past
//! `--max-connections` (or while the server stops), a `503` and a close.

use std::time::Duration;

use super::conn;
use super::date::Clock;
use super::error::{ApiError, HttpError};
use super::response::{self, AfterAnswer};
use super::routes::Service;
use super::tally::Tally;
use crate::sync::{Arc, AtomicBool, Ordering};

/// Starts the accept loop on `listener`, until `stopping` is set and a connection wakes it.
pub fn spawn(
    listener: may::net::TcpListener,
    service: Arc<Service>,
    stopping: Arc<AtomicBool>,
) -> std::io::Result<may::coroutine::JoinHandle<()>> {
    let builder = may::coroutine::Builder::new().name("hourtally-accept".into());
    // SAFETY: `may` requires that a coroutine not hold thread-local storage across a yield
    // (it may resume on another worker) and stay within its stack. The accept loop touches no
    // thread-locals and uses a few hundred bytes of stack.
    unsafe { builder.spawn(move || accept_loop(listener, service, stopping)) }
}

fn accept_loop(listener: may::net::TcpListener, service: Arc<Service>, stopping: Arc<AtomicBool>) {
    use std::os::unix::io::AsRawFd;
    for stream in listener.incoming() {
        // Acquire: pairs with the stopping server's Release store; only the flag matters.
        if stopping.load(Ordering::Acquire) {
            break;
        }
        let Ok(stream) = stream else {
            // EMFILE and friends: back off for a moment rather than spin on the error.
            may::coroutine::sleep(Duration::from_millis(5));
            continue;
        };
        let service = service.clone();
        let builder = may::coroutine::Builder::new();
        // SAFETY: as for the accept loop: the connection loop touches no thread-locals across
        // a yield (its only blocking calls are may's own socket I/O and sleeps), and needs
        // about 6 KiB of its STACK_WORDS stack.
        let spawned = unsafe {
            builder.spawn(move || {
                let Some(ticket) = service.conns.admit(stream.as_raw_fd()) else {
                    service.metrics.connection_refused();
                    refuse(stream, &service);
                    return;
                };
                service.metrics.connection_accepted();
                let mut stream = stream;
                conn::serve(&mut stream, &service, &ticket);
                // The ticket gives its cell back before the socket closes: the drain never
                // shuts a closed (or reused) fd.
                drop(ticket);
                drop(stream);
            })
        };
        // On error the stream moved into the closure, which was dropped: the connection is
        // closed and was never counted.
        let _ = spawned;
    }
}

/// Answers a connection past `--max-connections` (or one that arrived while stopping) with
/// `503` and `Retry-After`, and closes it. Bounded: one short write, a short linger.
fn refuse(mut stream: may::net::TcpStream, service: &Service) {
    use std::io::{Read, Write};
    let err = ApiError::from(HttpError::TooManyConnections);
    let mut out = Vec::with_capacity(256);
    let clock = Clock::default();
    response::write_error(&mut out, &err, AfterAnswer::Close, &clock, false);
    let mut tally = Tally::default();
    tally.refuse(&err);
    service.metrics.flush(&mut tally);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(&out).is_ok() {
        // Read and drop what the client sent (its request) so that closing does not reset
        // the connection under our answer; a few KiB and 100 ms at most.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let mut sink = [0u8; 4096];
        for _ in 0..4 {
            match stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}
