//! What starting a server is made of, shared by its two modes (`single`, `cluster`) and the
//! wiring that runs them (`server`): the errors that stop a start, which go back to `main`
//! (it alone picks the exit code); how the writer thread gets its state before it applies
//! ([`Recovery`]); and what a mode hands the server ([`Mode`]).

use std::io;
use std::path::PathBuf;

use crate::ack::Ack;
use crate::ingest::Ingest;
use crate::journal::{DataDir, DataDirError, JournalHealth};
use crate::ring::RingWriter;
use crate::shared_log::SharedLog;
use crate::sync::Arc;
use crate::writer::Sink;

/// Why a server did not start, or stopped because it could not go on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Flags that do not fit together, or that differ from the cluster's: nothing was started.
    #[error("{0}")]
    Flags(String),
    /// The listening address cannot be resolved or bound.
    #[error("cannot start on {listen}: {source}")]
    Listen { listen: String, source: io::Error },
    /// The data directory cannot be opened or locked.
    #[error("cannot start on {listen}: {source}")]
    DataDir {
        listen: String,
        source: DataDirError,
    },
    /// A thread or a file the server needs cannot be made.
    #[error("cannot {what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    /// The data directory holds state that cannot be read back: serving with part of the
    /// acknowledged events missing would answer wrong counts.
    #[error("cannot recover {what} in {}: {reason}", dir.display())]
    Recover {
        what: &'static str,
        dir: PathBuf,
        reason: String,
    },
    /// Cluster mode cannot rebuild the counts from the log.
    #[error("{0}")]
    Cluster(String),
}

impl StartError {
    /// An `Io` error, for `map_err`.
    pub fn io(what: &'static str) -> impl FnOnce(io::Error) -> StartError {
        move |source| StartError::Io { what, source }
    }
}

/// Where a thread of the server reports an error it cannot go on after (a journal that cannot
/// be replayed, a stream that lost events): `main` ends the process with it.
#[derive(Clone)]
pub struct Fatal(Arc<dyn Fn(StartError) + Send + Sync>);

impl Fatal {
    pub fn new(report: impl Fn(StartError) + Send + Sync + 'static) -> Self {
        Fatal(Arc::new(report))
    }

    /// Reports `error`; the thread then ends what it was doing.
    pub fn report(&self, error: StartError) {
        (self.0)(error);
    }
}

impl std::fmt::Debug for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fatal")
    }
}

/// How the writer thread gets its state before it applies: a single server replays its
/// journal; a cluster server loads the newest snapshot and catches up with the log. Runs on
/// the writer thread, which owns the ring.
pub trait Recovery: Send {
    /// Restores `ring` and says how to go on, or `None` if the server stopped before there
    /// was anything to recover from.
    fn recover(self: Box<Self>, ring: &mut RingWriter) -> Result<Option<Applying>, StartError>;
}

/// How the writer applies once recovered.
pub struct Applying {
    /// Where each batch goes before it is applied: the journal, or the cluster's feed.
    pub sink: Option<Box<dyn Sink>>,
    /// `--fsync always`: let batches grow to this many events while a sync runs.
    pub durable_cuts: Option<usize>,
    /// Whether the server is ready now (else the sink marks it ready once caught up).
    pub ready: bool,
    /// The data directory, whose lock is held until the writer has stopped.
    pub hold: Option<DataDir>,
}

/// What a mode (`single` or `cluster`) hands the server.
pub struct Mode {
    /// Where POSTs queue their events: the writer's queue, or in a cluster the publish queue.
    pub posts: Arc<Ingest>,
    /// The queue the writer applies.
    pub applied: Arc<Ingest>,
    /// When a POST gets its answer.
    pub ack: Ack,
    /// The journal's health (a single server with a data directory).
    pub journal: Option<Arc<JournalHealth>>,
    /// The cluster's log.
    pub log: Option<Arc<dyn SharedLog>>,
    /// Run first on the writer thread.
    pub recovery: Box<dyn Recovery>,
}
