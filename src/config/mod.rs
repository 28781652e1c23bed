//! Command-line flags, each also read from an environment variable.

use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::http::limits::{self, Limits, MAX_HEADERS_CAP};
use crate::http::routes::{Admission, ADMISSION_MARGIN_HOURS};
use crate::journal::FsyncPolicy;
use crate::writer::Idle;

mod cluster;

pub use cluster::{AckMode, ClusterFlags, MAX_LOG_TIMEOUT_S};

/// hourtally: counts unique users, clicks and impressions per UTC hour, over HTTP.
///
/// POST /analytics?timestamp={ms}&user={name}&{click|impression} records an event (204);
/// GET /analytics?timestamp={ms} answers `unique_users,U\nclicks,C\nimpressions,I\n` for that
/// UTC hour. Also GET /healthz, /readyz and /metrics (Prometheus).
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the start-up line prints it).
    #[arg(long, env = "HOURTALLY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Hours kept in the ring of hour slots. Hour h lives in slot h % this; a POST for an
    /// hour whose slot already holds a newer hour is refused as sealed (422), and a GET for it
    /// answers from the archive of sealed hours.
    #[arg(long, env = "HOURTALLY_RETENTION_HOURS", default_value_t = crate::ring::DEFAULT_CAPACITY,
          value_parser = clap::value_parser!(u32).range(1..=100_000).map(|v| v as usize))]
    pub retention_hours: usize,

    /// Events the queue to the writer thread holds (24 bytes each). When it is full, POSTs get
    /// 503 with Retry-After: 1 and the event is not taken.
    #[arg(long, env = "HOURTALLY_QUEUE_CAPACITY", default_value_t = crate::writer::DEFAULT_QUEUE_CAPACITY,
          value_parser = clap::value_parser!(u32).range(1..=(1 << 28)).map(|v| v as usize))]
    pub queue_capacity: usize,

    /// A POST for an hour more than this many hours past the server's clock gets 422. POSTs
    /// are also refused (422, too old) for hours more than retention - this - 2 hours before
    /// the clock's hour, so that no accepted event is ever sealed by another.
    #[arg(long, env = "HOURTALLY_MAX_FUTURE_HOURS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub max_future_hours: u32,

    /// Largest request line plus headers, in bytes; larger gets 431 (414 when the request
    /// line alone is over) and a close.
    #[arg(long, env = "HOURTALLY_MAX_HEAD_BYTES", default_value_t = limits::DEFAULT_MAX_HEAD_BYTES,
          value_parser = clap::value_parser!(u32).range(256..=(1 << 20)).map(|v| v as usize))]
    pub max_head_bytes: usize,

    /// Most header fields in one request; more gets 431 and a close.
    #[arg(long, env = "HOURTALLY_MAX_HEADERS", default_value_t = limits::DEFAULT_MAX_HEADERS,
          value_parser = clap::value_parser!(u32).range(1..=MAX_HEADERS_CAP as i64).map(|v| v as usize))]
    pub max_headers: usize,

    /// Seconds a client has to send a complete request head (from accept, or from the head's
    /// first byte); then 408 and a close.
    #[arg(long, env = "HOURTALLY_HEAD_TIMEOUT", default_value_t = limits::DEFAULT_HEAD_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub head_timeout: u64,

    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, env = "HOURTALLY_IDLE_TIMEOUT", default_value_t = limits::DEFAULT_IDLE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,

    /// Open connections past which new ones are answered 503 (Retry-After: 1) and closed.
    #[arg(long, env = "HOURTALLY_MAX_CONNECTIONS", default_value_t = limits::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|v| v as usize))]
    pub max_connections: usize,

    /// Most hours one GET /analytics/hours may ask for (from the hour of `from` to the hour of
    /// `to`, both included); more gets 400. At least 48: the dashboard asks for 48 hours.
    #[arg(long, env = "HOURTALLY_MAX_RANGE_HOURS", default_value_t = limits::DEFAULT_MAX_RANGE_HOURS,
          value_parser = clap::value_parser!(u32).range(48..=limits::MAX_RANGE_HOURS_CAP as i64))]
    pub max_range_hours: u32,

    /// Worker threads running the HTTP coroutines; 0: one per CPU this process may use. The
    /// writer is one more thread; it sleeps when idle.
    #[arg(long, env = "HOURTALLY_WORKERS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=MAX_WORKERS as i64).map(|v| v as usize))]
    pub workers: usize,

    /// Pin each worker thread to a core (may's default). Off by default, so the writer thread
    /// can share the cores; turn on when the server has cores of its own and the writer
    /// runs elsewhere.
    #[arg(long, env = "HOURTALLY_PIN_WORKERS", default_value_t = false)]
    pub pin_workers: bool,

    /// How the writer thread waits for events: `park` sleeps as soon as the queue is empty
    /// and lets its wake-ups wait for the running thread (SCHED_BATCH); `spin` spins and
    /// yields a while first; `auto` parks when the writer must share a core with a worker
    /// (--workers at least the CPUs this process may use).
    #[arg(long, env = "HOURTALLY_WRITER_IDLE", value_enum, default_value_t = WriterIdle::Auto)]
    pub writer_idle: WriterIdle,

    /// Directory of the journal (created if missing, locked while the server runs). A
    /// restart replays it: nothing answered 204 is lost by a graceful stop, and a crash loses
    /// at most what --fsync allows. Not with --ephemeral.
    #[arg(long, env = "HOURTALLY_DATA_DIR", default_value = "./hourtally-data")]
    pub data_dir: std::path::PathBuf,

    /// Whether `--data-dir` was given (on the command line or in its environment variable)
    /// rather than left at its default: set by [`Config::from_args`], read by `validate`.
    #[arg(skip)]
    pub data_dir_given: bool,

    /// Hours a sealed hour keeps its users (in --data-dir's cold/, one file an hour), counted
    /// back from the newest hour: unique users over a range reach back this far. 0 keeps none.
    /// Totals of sealed hours are kept forever either way. Never with --ephemeral. In a
    /// cluster every server must keep the same (the stream records it).
    #[arg(long, env = "HOURTALLY_COLD_RETENTION_HOURS", default_value_t = crate::cold::DEFAULT_RETENTION_HOURS,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub cold_retention_hours: u32,

    /// Keep nothing on disk: a restart starts from zero counts (benchmarks, tests). Not with
    /// --data-dir (or HOURTALLY_DATA_DIR).
    #[arg(long, env = "HOURTALLY_EPHEMERAL", default_value_t = false)]
    pub ephemeral: bool,

    /// When the journal is flushed to disk: `always` (a POST is answered 204 only once its
    /// event is on disk), `interval` (at most --fsync-interval-ms of acknowledged events can
    /// be lost by a crash of the machine) or `never` (the OS decides).
    #[arg(long, env = "HOURTALLY_FSYNC", value_enum, default_value_t = Fsync::Interval)]
    pub fsync: Fsync,

    /// With --fsync interval: the longest time between a journal write and its fdatasync.
    #[arg(long, env = "HOURTALLY_FSYNC_INTERVAL_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub fsync_interval_ms: u64,

    /// Seconds between snapshots of the ring (written by a thread of their own, so a restart
    /// replays only the journal after the newest, and older segments are deleted); 0: only
    /// at a graceful stop.
    #[arg(long, env = "HOURTALLY_SNAPSHOT_INTERVAL_S", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub snapshot_interval_s: u64,

    /// Size past which a journal segment is closed and a new one begun (tests use small ones).
    #[arg(long, env = "HOURTALLY_JOURNAL_SEGMENT_BYTES", hide = true,
          default_value_t = crate::journal::SEGMENT_BYTES,
          value_parser = clap::value_parser!(u64).range(1024..))]
    pub journal_segment_bytes: u64,

    /// Least severe log level written: error, warn, info, debug or trace. RUST_LOG, when
    /// set, takes precedence (with its full filter syntax).
    #[arg(long, env = "HOURTALLY_LOG_LEVEL", default_value = "info",
          value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,

    /// Log line format: `text` for people, `json` (one object a line) for log pipelines.
    #[arg(long, env = "HOURTALLY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Cluster mode (`--nats` and its flags).
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// The most `--workers` may be.
pub const MAX_WORKERS: usize = 256;

/// `--fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fsync {
    Always,
    Interval,
    Never,
}

/// `--writer-idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriterIdle {
    Auto,
    Park,
    Spin,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The flags of this process (and their environment variables), as [`Parser::parse`]
    /// reads them (exiting with clap's message and code on a flag it refuses), and whether
    /// `--data-dir` was given.
    pub fn from_args() -> Self {
        Self::try_from_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// [`from_args`](Self::from_args) over `args` (the first is the program's name).
    pub fn try_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(args)?;
        let mut config = Self::from_arg_matches(&matches)?;
        config.data_dir_given = matches
            .value_source("data_dir")
            .is_some_and(|source| source != ValueSource::DefaultValue);
        Ok(config)
    }

    /// Checks what the flags' own ranges cannot: how they fit together. Returns the
    /// admission window they give, or the message to print (the binary exits with code 2).
    pub fn validate(&self) -> Result<Admission, String> {
        if self.cluster.nats.iter().any(|url| url.trim().is_empty()) {
            return Err(format!(
                "--nats: an empty URL in {:?}; give one or more NATS URLs, comma-separated \
                 (nats://host:4222), or leave --nats out for a single server",
                self.cluster.nats.join(","),
            ));
        }
        if self.ephemeral && self.data_dir_given {
            return Err(format!(
                "--ephemeral keeps nothing on disk, but --data-dir (or HOURTALLY_DATA_DIR) gives \
                 {}: give one or the other",
                self.data_dir.display(),
            ));
        }
        if self.cluster.ack == AckMode::Local && !self.cluster.enabled() {
            return Err(
                "--ack local without --nats: --ack chooses what a 204 waits for in \
                        cluster mode; give --nats too, or leave --ack out (a single server's \
                        204 follows --fsync)"
                    .to_owned(),
            );
        }
        if self.keeps_cold_tier() && (self.cold_retention_hours as usize) < self.retention_hours {
            return Err(format!(
                "--cold-retention-hours ({}) must be 0 or at least --retention-hours ({}): an \
                 hour leaves the ring only once an hour that much later comes, so a shorter cold \
                 retention would keep no hour",
                self.cold_retention_hours, self.retention_hours,
            ));
        }
        let retention = self.retention_hours as u32;
        let admission = Admission::new(retention, self.max_future_hours).ok_or_else(|| {
            format!(
                "--retention-hours ({retention}) must be at least --max-future-hours ({}) + {}: \
                 with less, one POST for a future hour could seal an hour that already has \
                 acknowledged events",
                self.max_future_hours,
                ADMISSION_MARGIN_HOURS + 1,
            )
        })?;
        // With a cold tier, an event of an hour that left the ring is counted late, as far
        // back as the cold retention (`late`).
        Ok(if self.keeps_cold_tier() {
            admission.with_late(self.cold_retention_hours)
        } else {
            admission
        })
    }

    /// Whether sealed hours keep their users in a cold tier: a data directory and a cold
    /// retention (a single server or a cluster's).
    pub fn keeps_cold_tier(&self) -> bool {
        !self.ephemeral && self.cold_retention_hours > 0
    }

    /// The journal's fsync policy.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        match self.fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Interval => FsyncPolicy::Interval(Duration::from_millis(self.fsync_interval_ms)),
            Fsync::Never => FsyncPolicy::Never,
        }
    }

    /// How often the writer snapshots the ring (`None`: only at a graceful stop).
    pub fn snapshot_every(&self) -> Option<Duration> {
        (self.snapshot_interval_s > 0).then(|| Duration::from_secs(self.snapshot_interval_s))
    }

    /// The HTTP limits these flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            max_head_bytes: self.max_head_bytes,
            max_headers: self.max_headers,
            head_timeout: Duration::from_secs(self.head_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: self.max_connections,
            max_range_hours: self.max_range_hours,
        }
    }

    /// Worker threads to run: `--workers`, or the CPUs this process may use.
    pub fn effective_workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            cpus()
        }
    }

    /// How the writer waits for events (`--writer-idle`, `auto` resolved).
    pub fn writer_idle(&self) -> Idle {
        match self.writer_idle {
            WriterIdle::Auto => Idle::auto(self.effective_workers(), cpus()),
            WriterIdle::Park => Idle::Park,
            WriterIdle::Spin => Idle::Spin,
        }
    }
}

/// The CPUs this process may use (its affinity mask: `taskset` counts).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
