//! Wiring: the listener and its accept loop, the connection coroutines, the writer thread,
//! and the orderly shutdown that applies every accepted event before it returns.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::coarse_monotonic_ms;
use crate::config::Config;
use crate::http::error::{ApiError, HttpError};
use crate::http::limits::WRITE_TIMEOUT;
use crate::http::{conn, Service};
use crate::journal::DataDir;
use crate::ring::{Ring, RingWriter};
use crate::sync::{Arc, AtomicBool, Ordering};
use crate::writer::Ingest;

/// Coroutine stack size, in words (8 bytes each): 64 KiB. A connection needs about 6 KiB
/// (the header array is 4 KiB); the rest is margin. Only touched pages cost memory.
pub const STACK_WORDS: usize = 0x2000;

/// Most events in one writer batch with `--fsync always` (one `fdatasync` each).
pub const ALWAYS_BATCH: usize = 16 * 1024;

/// A running server.
pub struct Server {
    service: Arc<Service>,
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    accept: may::coroutine::JoinHandle<()>,
    /// The sweeper: wakes connections whose read deadline has passed (`alarms`).
    sweeper: JoinHandle<()>,
    writer: JoinHandle<RingWriter>,
    workers: usize,
    /// Cluster mode's threads, if on.
    cluster: Option<crate::cluster::run::Running>,
}

/// What shutdown reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Events the writer applied (counted, dropped as sealed, or refused by a full disk under
    /// `--fsync always` and answered 503): every accepted event.
    pub applied: u64,
    /// Of those, dropped because their hour was sealed.
    pub sealed_drops: u64,
    /// Events still queued at exit (always 0 after a clean drain).
    pub queued: usize,
    /// Connections that had not closed by the drain's deadline (peers that do not read).
    pub unclosed_connections: usize,
}

impl Server {
    /// Locks the data directory (unless `--ephemeral`), configures the `may` runtime (once
    /// per process), binds, and starts the accept loop and the writer thread. The writer
    /// first replays the journal, then marks the server ready; until then `/analytics`
    /// answers 503. A journal that cannot be replayed ends the process with its reason.
    pub fn start(config: &Config) -> io::Result<Server> {
        let admission = config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let data = if config.ephemeral {
            None
        } else {
            let dir = DataDir::open(&config.data_dir, config.retention_hours as u32)
                .map_err(|e| io::Error::other(e.to_string()))?;
            Some(dir)
        };
        let workers = config.effective_workers();
        may::config()
            .set_workers(workers)
            .set_stack_size(STACK_WORDS)
            .set_worker_pin(config.pin_workers);

        let addr = config.listen.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "--listen resolves to no address",
            )
        })?;
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;

        // Before the writer starts, whose first lines are the recovery's.
        let l = config.limits();

        tracing::info!(
            addr = %addr,
            retention_hours = config.retention_hours,
            queue_capacity = config.queue_capacity,
            max_future_hours = admission.max_future_hours,
            max_past_hours = admission.max_past_hours,
            max_head_bytes = l.max_head_bytes,
            max_headers = l.max_headers,
            head_timeout_s = l.head_timeout.as_secs(),
            idle_timeout_s = l.idle_timeout.as_secs(),
            max_connections = l.max_connections,
            max_range_hours = l.max_range_hours,
            workers = workers,
            pin_workers = config.pin_workers,
            writer_idle = ?config.writer_idle(),
            data_dir = %if config.ephemeral { "(ephemeral)".into() } else { config.data_dir.display().to_string() },
            fsync = ?config.fsync_policy(),
            "listening"
        );

        let ring = Arc::new(Ring::new(config.retention_hours));
        let mut ingest = Ingest::new(config.queue_capacity);
        if data.is_some()
            && !config.cluster.enabled()
            && config.fsync_policy() == crate::journal::FsyncPolicy::Always
        {
            // A source per connection slot (1-based), so that a group the disk refuses is
            // answered 503 to exactly the POSTs whose events it held.
            ingest = ingest.with_refusals(config.max_connections + 1);
        }
        let ingest = Arc::new(ingest);
        let service = Service::new(ring.clone(), ingest.clone(), config.limits(), admission);
        let (service, writer, cluster) = if config.cluster.enabled() {
            let (service, writer, running) =
                crate::cluster::run::start(config, data, ring, service)?;
            (service, writer, Some(running))
        } else {
            let (service, writer) = crate::single::start(config, data, ring, ingest, service)?;
            (service, writer, None)
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let accept = {
            let (service, stopping) = (service.clone(), stopping.clone());
            let builder = may::coroutine::Builder::new().name("hourtally-accept".into());
            // SAFETY: `may` requires that a coroutine not hold thread-local storage across a
            // yield (it may resume on another worker) and stay within its stack. The accept
            // loop touches no thread-locals and uses a few hundred bytes of stack.
            unsafe { builder.spawn(move || accept_loop(listener, service, stopping)) }?
        };
        let sweeper = {
            let (service, stopping) = (service.clone(), stopping.clone());
            std::thread::Builder::new()
                .name("hourtally-sweep".into())
                .spawn(move || sweep_loop(&service, &stopping))?
        };
        Ok(Server {
            service,
            addr,
            stopping,
            accept,
            sweeper,
            writer,
            workers,
            cluster,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state of the routes (ring, ingest, metrics).
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// HTTP worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Stops the server without losing an answer or an event: stops accepting connections;
    /// wakes every connection, which finishes the requests it has taken, writes their answers
    /// and closes cleanly (bytes not yet taken are not answered, so a client retries them);
    /// then lets the writer apply every accepted event, and returns what it applied. Call
    /// from an OS thread (main).
    pub fn shutdown(self) -> Report {
        // Release: pairs with the accept loop's Acquire load; nothing else is published
        // through it, but it keeps the stop from leaning on the wake-up's system calls.
        self.stopping.store(true, Ordering::Release);
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if std::net::TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            let _ = self.accept.join();
        }
        self.service.conns.drain(|fd| {
            // SAFETY: `shutdown` takes any integer and touches no memory of ours; `drain`
            // passes only fds that are open sockets at this instant (see `conns`).
            unsafe {
                libc::shutdown(fd, libc::SHUT_RD);
            }
        });
        // A connection finishes within its write timeout plus its close (a peer that keeps
        // reading gets up to DRAIN_TIME); past that, stop anyway.
        let deadline = std::time::Instant::now() + WRITE_TIMEOUT + conn::DRAIN_TIME;
        while self.service.conns.open() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Connections that did not close are left to the process's exit; the sweeper stops
        // on the flag set above within a tick.
        let _ = self.sweeper.join();
        self.service.ingest.close();
        let ring = match self.cluster {
            Some(cluster) => cluster.stop(self.writer),
            None => match self.writer.join() {
                Ok(ring) => ring,
                // The writer does not panic on any input; if it did, the process aborts
                // (panic = "abort" in release) before we get here.
                Err(_) => std::process::abort(),
            },
        };
        Report {
            applied: self.service.applied_from.applied(),
            sealed_drops: ring.ring().sealed_drops(),
            queued: self.service.ingest.queued(),
            unclosed_connections: self.service.conns.open(),
        }
    }
}

/// How often the sweeper looks at every connection's read deadline: a connection times out
/// up to this much late (ARCHITECTURE.md, "Deadlines").
pub const SWEEP_EVERY: Duration = Duration::from_millis(50);

/// The sweeper thread: every [`SWEEP_EVERY`], wakes the connections whose deadline has passed,
/// until the server stops.
fn sweep_loop(service: &Service, stopping: &AtomicBool) {
    // Acquire: pairs with `shutdown`'s Release store; only the flag itself matters here.
    while !stopping.load(Ordering::Acquire) {
        std::thread::sleep(SWEEP_EVERY);
        service.alarms.sweep(coarse_monotonic_ms());
    }
}

/// Binds a listening socket without `SO_REUSEPORT`. `may::net::TcpListener::bind` sets it,
/// which lets a second server start on a port already in use and silently take a share of its
/// connections (and of its events); a server must refuse a port that is taken instead.
fn bind(addr: SocketAddr) -> io::Result<may::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // SO_REUSEADDR only lets a restarted server bind over connections in TIME_WAIT; unlike
    // SO_REUSEPORT it does not let two listeners share the port.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a listening TCP socket we just created and own; `into_raw_fd` gave up
    // that ownership, and `from_raw_fd` takes it over (may sets it non-blocking and registers
    // it with its event loop), so it is closed exactly once.
    Ok(unsafe { may::net::TcpListener::from_raw_fd(fd) })
}

fn accept_loop(listener: may::net::TcpListener, service: Arc<Service>, stopping: Arc<AtomicBool>) {
    use std::os::unix::io::AsRawFd;
    for stream in listener.incoming() {
        // Acquire: see `Server::shutdown`.
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
    let clock = crate::http::date::Clock::default();
    crate::http::response::write_error(
        &mut out,
        &err,
        crate::http::response::AfterAnswer::Close,
        &clock,
        false,
    );
    let mut tally = crate::http::tally::Tally::default();
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
