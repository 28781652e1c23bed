//! Wiring: the listener and its accept loop, the connection coroutines, the writer thread,
//! and the orderly shutdown that applies every accepted event before it returns.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Config;
use crate::http::{conn, App};
use crate::ring::{Ring, RingWriter};
use crate::sync::{Arc, AtomicBool, Ordering};
use crate::writer::{Ingest, Writer};

/// Coroutine stack size, in words (8 bytes each): 64 KiB. A connection needs about 6 KiB
/// (the header array is 4 KiB); the rest is margin. Only touched pages cost memory.
pub const STACK_WORDS: usize = 0x2000;

/// A running server.
pub struct Server {
    app: Arc<App>,
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    accept: may::coroutine::JoinHandle<()>,
    writer: JoinHandle<RingWriter>,
    workers: usize,
}

/// What shutdown reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Events the writer applied (counted or dropped as sealed): every accepted event.
    pub applied: u64,
    /// Of those, dropped because their hour was sealed.
    pub sealed_drops: u64,
    /// Events still queued at exit (always 0 after a clean drain).
    pub queued: usize,
}

impl Server {
    /// Configures the `may` runtime (once per process), binds, starts the writer thread and
    /// the accept loop, and marks the server ready.
    pub fn start(config: &Config) -> io::Result<Server> {
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

        let ring = Arc::new(Ring::new(config.retention_hours));
        let ingest = Arc::new(Ingest::new(config.queue_capacity));
        let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone()));
        let writer = std::thread::Builder::new()
            .name("hourtally-writer".into())
            .spawn(move || writer.run())?;

        let app = Arc::new(App::new(
            ring,
            ingest,
            config.limits(),
            config.max_future_hours,
        ));
        let stopping = Arc::new(AtomicBool::new(false));
        let accept = {
            let (app, stopping) = (app.clone(), stopping.clone());
            let builder = may::coroutine::Builder::new().name("hourtally-accept".into());
            // SAFETY: `may` requires that a coroutine not hold thread-local storage across a
            // yield (it may resume on another worker) and stay within its stack. The accept
            // loop touches no thread-locals and uses a few hundred bytes of stack.
            unsafe { builder.spawn(move || accept_loop(listener, app, stopping)) }?
        };
        app.set_ready(true);
        Ok(Server {
            app,
            addr,
            stopping,
            accept,
            writer,
            workers,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (ring, ingest, metrics).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// HTTP worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Stops accepting connections, refuses further POSTs (503), lets the writer apply every
    /// accepted event, and returns what it applied. Call from an OS thread (main).
    pub fn shutdown(self) -> Report {
        self.app.set_ready(false);
        // Relaxed: the accept loop re-reads it after the wake-up connection below, whose
        // accept() happens after this store in any case (a system call apart).
        self.stopping.store(true, Ordering::Relaxed);
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
        self.app.ingest.close();
        let ring = match self.writer.join() {
            Ok(ring) => ring,
            // The writer does not panic on any input; if it did, the process aborts
            // (panic = "abort" in release) before we get here.
            Err(_) => std::process::abort(),
        };
        Report {
            applied: self.app.ingest.applied(),
            sealed_drops: ring.sealed_drops(),
            queued: self.app.ingest.queued(),
        }
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

fn accept_loop(listener: may::net::TcpListener, app: Arc<App>, stopping: Arc<AtomicBool>) {
    let max = app.limits.max_connections;
    for stream in listener.incoming() {
        // Relaxed: see `Server::shutdown`.
        if stopping.load(Ordering::Relaxed) {
            break;
        }
        let Ok(stream) = stream else {
            // EMFILE and friends: back off for a moment rather than spin on the error.
            may::coroutine::sleep(Duration::from_millis(5));
            continue;
        };
        // Relaxed: a counter checked against a limit; a few connections over it during a
        // burst is harmless, and it guards no memory.
        if app.open_connections.fetch_add(1, Ordering::Relaxed) >= max {
            app.open_connections.fetch_sub(1, Ordering::Relaxed);
            app.metrics.connection_refused();
            drop(stream);
            continue;
        }
        app.metrics.connection_accepted();
        let conn_app = app.clone();
        let builder = may::coroutine::Builder::new();
        // SAFETY: as for the accept loop: the connection loop touches no thread-locals across
        // a yield (its only blocking calls are may's own socket I/O), and needs about 6 KiB of
        // its STACK_WORDS stack.
        let spawned = unsafe {
            builder.spawn(move || {
                conn::serve(stream, &conn_app);
                // Relaxed: see above.
                conn_app.open_connections.fetch_sub(1, Ordering::Relaxed);
            })
        };
        if spawned.is_err() {
            // The stream moved into the closure, which was dropped: the connection is
            // closed. Give its place back.
            // Relaxed: see above.
            app.open_connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
