//! Wiring: the listener, the HTTP edge's accept loop and sweeper, the writer thread (spawned
//! here and nowhere else) and the mode that feeds it (`single` or `cluster`), and the orderly
//! shutdown that applies every accepted event before it returns.

use std::net::{SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::coarse_monotonic_ms;
use crate::cold::ColdTier;
use crate::config::Config;
use crate::freezer::{CountLate, Freezer, StoreLeft};
use crate::histogram::BatchStats;
use crate::http::limits::WRITE_TIMEOUT;
use crate::http::{accept, conn, Service};
use crate::journal::{DataDir, JournalHealth};
use crate::late::LateCounts;
use crate::readiness::Readiness;
use crate::ring::{Ring, RingWriter};
use crate::start::{Fatal, Mode, Recovery, StartError};
use crate::sync::{Arc, AtomicBool, Ordering};
use crate::uniques::Uniques;
use crate::writer::{Idle, Ingest, Writer};

/// Coroutine stack size, in words (8 bytes each): 64 KiB. A connection needs about 6 KiB
/// (the header array is 4 KiB); the rest is margin. Only touched pages cost memory.
pub const STACK_WORDS: usize = 0x2000;

/// A running server.
pub struct Server {
    /// The HTTP edge's state: routes, connections, counters.
    service: Arc<Service>,
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    accept: may::coroutine::JoinHandle<()>,
    /// The sweeper: wakes connections whose deadline (to read, to write, to close) has
    /// passed (`alarms`).
    sweeper: JoinHandle<()>,
    /// Set once the connections are drained: the sweeper stops. Not `stopping`: a
    /// connection writing to a peer that reads nothing is given up on at its write
    /// deadline, which the sweeper's wake-up brings, during the drain too.
    sweeper_stop: Arc<AtomicBool>,
    writer: JoinHandle<RingWriter>,
    /// Where POSTs queue their events (the writer's queue, or the publish queue).
    posts: Arc<Ingest>,
    /// The queue the writer applies.
    applied: Arc<Ingest>,
    journal: Option<Arc<JournalHealth>>,
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
    /// Of those, dropped because their hour had counted their event id already.
    pub duplicates: u64,
    /// Events still queued at exit (always 0 after a clean drain).
    pub queued: usize,
    /// Connections that had not closed by the drain's deadline (peers that do not read).
    pub unclosed_connections: usize,
    /// Events answered `204` that were lost: the disk did not take them (a stop given up on
    /// a full disk), or the log never acknowledged them (`--ack local`).
    pub lost_answered: u64,
}

impl Server {
    /// Checks the flags, locks the data directory (unless `--ephemeral`), configures the
    /// `may` runtime (once per process), binds, starts the mode's threads, the writer thread
    /// and the accept loop. The writer first recovers (replays the journal, or catches up
    /// with the cluster's log), then marks the server ready; until then `/analytics` answers
    /// 503. An error the server cannot go on after, once started, goes to `fatal`.
    pub fn start(config: &Config, fatal: Fatal) -> Result<Server, StartError> {
        let admission = config.validate().map_err(StartError::Flags)?;
        let listen = |source| StartError::Listen {
            listen: config.listen.clone(),
            source,
        };
        let data = if config.ephemeral {
            None
        } else {
            let cold_hours = if config.keeps_cold_tier() {
                config.cold_retention_hours
            } else {
                0
            };
            let dir = DataDir::open(&config.data_dir, config.retention_hours as u32)
                .and_then(|dir| dir.with_cold_retention(cold_hours))
                .map_err(|source| StartError::DataDir {
                    listen: config.listen.clone(),
                    source,
                })?;
            Some(dir)
        };
        let workers = config.effective_workers();
        may::config()
            .set_workers(workers)
            .set_stack_size(STACK_WORDS)
            .set_worker_pin(config.pin_workers);

        let addr = config
            .listen
            .to_socket_addrs()
            .map_err(listen)?
            .next()
            .ok_or_else(|| {
                listen(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "--listen resolves to no address",
                ))
            })?;
        let listener = bind(addr).map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?;

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
            cold_retention_hours = if config.keeps_cold_tier() { config.cold_retention_hours } else { 0 },
            "listening"
        );

        let cold = match &data {
            Some(dir) if config.keeps_cold_tier() => Some(Arc::new(
                ColdTier::open(&dir.path().join("cold"), config.cold_retention_hours).map_err(
                    StartError::io("open the cold tier (cold/ in the data directory)"),
                )?,
            )),
            _ => None,
        };
        let ring = match cold {
            Some(_) => Ring::new(config.retention_hours)
                .keeping_sealed_users()
                .counting_late_events(config.cold_retention_hours),
            None => Ring::new(config.retention_hours),
        };
        let ring = Arc::new(ring);
        let late = cold
            .clone()
            .map(|cold| Arc::new(LateCounts::new(ring.clone(), cold)));
        let readiness = Arc::new(Readiness::default());
        let writer_stats = Arc::new(BatchStats::default());
        let publisher_stats = Arc::new(BatchStats::default());
        let (mode, cluster) = if config.cluster.enabled() {
            let cluster_cold = cold.clone().map(|tier| crate::cluster::ClusterCold {
                tier,
                waits: crate::journal::Waits {
                    leaving: ring.leaving().cloned(),
                    late: late.clone(),
                },
            });
            let (mode, running) = crate::cluster::run::start(
                config,
                data,
                cluster_cold,
                readiness.clone(),
                publisher_stats.clone(),
                fatal.clone(),
            )?;
            (mode, Some(running))
        } else {
            (crate::single::start(config, data, late.clone())?, None)
        };
        let Mode {
            posts,
            applied,
            ack,
            journal,
            log,
            recovery,
        } = mode;
        let mut service = Service::new(ring.clone(), posts.clone(), l, admission)
            .with_readiness(readiness.clone())
            .with_ack(ack)
            .with_batch_stats(writer_stats.clone(), publisher_stats)
            .with_uniques(
                Uniques::start(ring.clone(), cold.clone(), late.clone())
                    .map_err(StartError::io("start the ranges thread"))?,
            );
        if let Some(journal) = &journal {
            service = service.with_journal(journal.clone());
        }
        if let Some(log) = log {
            service = service.with_log(applied.clone(), log);
        }
        let service = Arc::new(service);
        let writer = spawn_writer(
            WriterParts {
                ring: ring.clone(),
                applied: applied.clone(),
                recovery,
                readiness,
                stats: writer_stats,
                idle: config.writer_idle(),
                freezer: {
                    let applied = applied.clone();
                    let store = cold
                        .clone()
                        .zip(ring.leaving().cloned())
                        .map(|(cold, leaving)| {
                            Box::new(move || cold.store_leaving(&leaving)) as StoreLeft
                        });
                    let count_late = late
                        .clone()
                        .map(|late| Box::new(move || late.apply()) as CountLate);
                    Freezer::start(move || applied.wake_popper(), &ring, store, count_late)
                        .map_err(StartError::io("start the freezing thread"))?
                },
            },
            fatal,
        )?;
        let stopping = Arc::new(AtomicBool::new(false));
        let accept = accept::spawn(listener, service.clone(), stopping.clone())
            .map_err(StartError::io("start the accept loop"))?;
        let sweeper_stop = Arc::new(AtomicBool::new(false));
        let sweeper = {
            let (service, stop) = (service.clone(), sweeper_stop.clone());
            std::thread::Builder::new()
                .name("hourtally-sweep".into())
                .spawn(move || sweep_loop(&service, &stop))
                .map_err(StartError::io("start the sweeper thread"))?
        };
        Ok(Server {
            service,
            addr,
            stopping,
            accept,
            sweeper,
            sweeper_stop,
            writer,
            posts,
            applied,
            journal,
            workers,
            cluster,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP edge's state (its counters, for the rejection reporter).
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// What ends a stop's wait for the disk (the journal) or the log (the publisher) to take
    /// every event answered 204 (a second stop signal).
    pub fn give_up_handle(&self) -> GiveUp {
        GiveUp {
            journal: self.journal.clone(),
            log: self.cluster.as_ref().map(|c| c.give_up_handle()),
        }
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
        // A connection finishes within its write timeout plus its close (a peer that keeps
        // reading gets up to DRAIN_TIME); past that, stop anyway.
        self.service
            .drain_connections(Instant::now() + WRITE_TIMEOUT + conn::DRAIN_TIME);
        // Connections that did not close are left to the process's exit; the sweeper, which
        // woke them at their deadlines until now, stops within a tick.
        // Release: pairs with the sweeper's Acquire load; only the flag itself matters.
        self.sweeper_stop.store(true, Ordering::Release);
        let _ = self.sweeper.join();
        self.posts.close();
        let (ring, log_lost) = match self.cluster {
            Some(cluster) => cluster.stop(self.writer),
            None => match self.writer.join() {
                Ok(ring) => (ring, 0),
                // The writer does not panic on any input; if it did, the process aborts
                // (panic = "abort" in release) before we get here.
                Err(_) => std::process::abort(),
            },
        };
        Report {
            applied: self.applied.applied(),
            sealed_drops: ring.ring().sealed_drops(),
            duplicates: ring.ring().duplicates(),
            queued: self.posts.queued(),
            unclosed_connections: self.service.open_connections(),
            lost_answered: self.journal.as_ref().map_or(0, |j| j.lost()) + log_lost,
        }
    }
}

/// Ends a stop's wait for the disk or the log ([`Server::give_up_handle`]).
#[derive(Clone, Debug)]
pub struct GiveUp {
    journal: Option<Arc<JournalHealth>>,
    log: Option<Arc<AtomicBool>>,
}

impl GiveUp {
    /// Whether a stop waits for anything that giving up would end.
    pub fn waits(&self) -> bool {
        self.journal.is_some() || self.log.is_some()
    }

    /// Stops waiting: what the disk or the log has not taken is lost (and counted).
    pub fn give_up(&self) {
        if let Some(journal) = &self.journal {
            journal.give_up();
        }
        if let Some(log) = &self.log {
            // SeqCst: a flag the publisher reads once per wake-up; nothing else rides on it.
            log.store(true, Ordering::SeqCst);
        }
    }
}

/// What the writer thread is made of.
struct WriterParts {
    ring: Arc<Ring>,
    applied: Arc<Ingest>,
    recovery: Box<dyn Recovery>,
    readiness: Arc<Readiness>,
    stats: Arc<BatchStats>,
    idle: Idle,
    /// Freezes the hours that are over (`ring::freeze`).
    freezer: Freezer,
}

/// Spawns the writer thread: it recovers (the mode's [`Recovery`]), then applies its queue
/// until the queue is closed and empty, and returns the ring's writer. A recovery that fails
/// goes to `fatal`, and the thread ends without applying anything.
fn spawn_writer(w: WriterParts, fatal: Fatal) -> Result<JoinHandle<RingWriter>, StartError> {
    std::thread::Builder::new()
        .name("hourtally-writer".into())
        .spawn(move || {
            crate::thread::enter_writer(w.idle);
            let mut ring_writer = RingWriter::new(w.ring);
            let applying = match w.recovery.recover(&mut ring_writer) {
                Ok(Some(applying)) => applying,
                Ok(None) => return ring_writer,
                Err(e) => {
                    fatal.report(e);
                    return ring_writer;
                }
            };
            let mut writer = Writer::new(w.applied, ring_writer)
                .with_idle(w.idle)
                .with_freezer(w.freezer);
            if crate::metrics::ENABLED {
                writer = writer.with_stats(w.stats);
            }
            if let Some(sink) = applying.sink {
                writer = writer.with_sink(sink);
            }
            if let Some(events) = applying.durable_cuts {
                writer = writer.with_durable_cuts(events);
            }
            if applying.ready {
                w.readiness.set_ready();
                tracing::info!("ready");
            }
            let ring_writer = writer.run();
            // The data directory's lock is released only now, after the last sync.
            drop(applying.hold);
            ring_writer
        })
        .map_err(StartError::io("start the writer thread"))
}

/// How often the sweeper looks at every connection's deadline: a connection times out up to
/// this much late (ARCHITECTURE.md, "Deadlines").
pub const SWEEP_EVERY: Duration = Duration::from_millis(50);

/// The sweeper thread: every [`SWEEP_EVERY`], wakes the connections whose deadline has passed,
/// until the server's connections are drained (`stop`).
fn sweep_loop(service: &Service, stop: &AtomicBool) {
    // Acquire: pairs with `shutdown`'s Release store; only the flag itself matters here.
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(SWEEP_EVERY);
        service.sweep(coarse_monotonic_ms());
    }
}

/// Binds a listening socket without `SO_REUSEPORT`. `may::net::TcpListener::bind` sets it,
/// which lets a second server start on a port already in use and silently take a share of its
/// connections (and of its events); a server must refuse a port that is taken instead.
fn bind(addr: SocketAddr) -> std::io::Result<may::net::TcpListener> {
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
