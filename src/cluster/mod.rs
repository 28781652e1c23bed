//! Cluster mode (`--nats`): several servers, one replicated log, every count exact.
//!
//! NATS JetStream is the source of truth. Each server publishes the events it accepts, in
//! batches with a de-duplication id, to one stream; every server reads the whole stream in
//! stream order and applies it, its own events included, only through the stream. The apply
//! rule reads no clock, so every server holds the same ring and any server answers any GET.
//!
//! ```text
//! POST → edge checks → publish queue (Ingest) → publisher thread: batches, durable cuts
//!                                                  │ tokio channel
//!                                                  ▼
//!                     nats thread (async-nats on a current-thread tokio runtime)
//!                       publish with Nats-Msg-Id ─▶ JetStream stream ─▶ ordered consumer
//!                                                                          │ Ingest + Feed
//!                                                                          ▼
//!                                 writer thread: apply, publish the ring, capture snapshots
//!                                                  │ tokio channel
//!                                                  ▼
//!                                 nats thread: snapshot → object store bucket
//! ```
//!
//! - **A 204** (`--ack log`, the default) waits until the stream acknowledged the batch
//!   holding the event ([`crate::publisher`], [`outbox`]); the coroutine parks, no OS thread blocks. With
//!   `--ack local` it is answered once queued here.
//! - **Catch-up**: a starting server loads the newest snapshot from the bucket (tagged with
//!   the stream sequence it covers), replays the stream after it, and is ready once it has
//!   applied the stream's last sequence as read at its start.
//! - **Freshness**: a GET answers from the local ring; `fresh=1` first waits until this
//!   server has applied everything the stream held when the GET arrived.
//!
//! The threads: the publisher and the nats thread are OS threads of their own; the writer is
//! the single server's writer with a [`feed::ClusterSink`]. README, "Scale-out", has the
//! guarantees and what each failure does.

pub mod feed;
pub mod nats;
pub mod outbox;
pub mod run;
pub mod state;

use std::path::Path;

use crate::cold::ColdTier;
use crate::config::ClusterFlags;
use crate::journal::Waits;
use crate::shared_log::SharedLog;
use crate::sync::Arc;

pub use state::{ClusterFigures, ClusterState};

/// A cluster server's cold tier (`--cold-retention-hours` with a data directory): derived
/// from the stream like the ring. Its files are this server's own, stored as hours leave its
/// ring; before a snapshot goes to the bucket, the files it would need are uploaded there
/// (`cold-{hour}`), and a server that catches up from it fetches the ones it lacks.
#[derive(Clone, Debug)]
pub struct ClusterCold {
    pub tier: Arc<ColdTier>,
    /// What a snapshot waits for: the hours that left before it stored, its late counts.
    pub waits: Waits,
}

/// This server's node id: `--node-id`, else the one kept in the data directory (made and
/// kept there on first start), else (with `--ephemeral`) a new random one.
pub fn node_id(flags: &ClusterFlags, data_dir: Option<&Path>) -> std::io::Result<String> {
    if let Some(id) = &flags.node_id {
        return Ok(id.clone());
    }
    let Some(dir) = data_dir else {
        return Ok(format!("n{:016x}", random_u64()));
    };
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) | Err(_) => {
            let id = format!("n{:016x}", random_u64());
            let tmp = dir.join("node-id.tmp");
            std::fs::write(&tmp, format!("{id}\n"))?;
            std::fs::rename(&tmp, &path)?;
            Ok(id)
        }
    }
}

/// A random 64-bit number (for node ids and boot ids), from the OS's randomness via the
/// standard library's hasher keys, mixed with the time and the process id.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// What the HTTP edge holds of cluster mode (as a [`SharedLog`]).
#[derive(Debug)]
pub struct ClusterEdge {
    pub state: crate::sync::Arc<ClusterState>,
    /// Questions to the nats thread: "the stream's last sequence now?"
    pub fresh: tokio::sync::mpsc::UnboundedSender<nats::FreshReply>,
    pub fresh_timeout: std::time::Duration,
}

impl SharedLog for ClusterEdge {
    fn refusing(&self) -> bool {
        self.state.log_failing()
    }

    fn wait_fresh(&self) -> bool {
        use std::time::{Duration, Instant};
        let deadline = Instant::now() + self.fresh_timeout;
        let (reply, answer) = may::sync::mpsc::channel();
        if self.fresh.send(reply).is_err() {
            return false;
        }
        let target = match answer.recv_timeout(self.fresh_timeout) {
            Ok(Some(last)) => last,
            _ => return false,
        };
        let mut nap = Duration::from_micros(50);
        while self.state.applied() < target {
            if Instant::now() >= deadline {
                return false;
            }
            may::coroutine::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(2));
        }
        true
    }

    fn figures(&self, out: &mut dyn FnMut(&'static str, &'static str, &'static str, u64)) {
        self.state
            .figures()
            .render(&mut |name, kind, help, value| out(name, kind, help, value));
    }
}
