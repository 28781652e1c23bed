//! The flags of cluster mode (`--nats` and what goes with it), flattened into the server's
//! [`Config`](super::Config).

use std::time::Duration;

/// Longest `--log-timeout-s`: a batch is retried with its de-duplication id for
/// `cluster::outbox::RETRY_FOR` at most, and every POST waiting for it must have been closed
/// unanswered before that (module doc of `cluster::outbox`).
pub const MAX_LOG_TIMEOUT_S: u64 = 60;

/// What a 204 waits for in cluster mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckMode {
    /// The event's batch is in the replicated log (JetStream acknowledged it).
    Log,
    /// The event is in this server's publish queue; a crash of this server before the batch
    /// reaches the log loses it (README, "Scale-out").
    Local,
}

/// Cluster mode's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterFlags {
    /// NATS servers (comma-separated URLs, e.g. nats://127.0.0.1:4222). Given: cluster mode,
    /// where a JetStream stream is the source of truth and every server applies all of it.
    /// Not given: one server with its own journal (the default).
    #[arg(long, env = "HOURTALLY_NATS", value_delimiter = ',')]
    pub nats: Vec<String>,

    /// The JetStream stream that carries the events (created if missing; subject
    /// `{stream}.events`, snapshots in the object store bucket `{stream}-snapshots`).
    #[arg(long, env = "HOURTALLY_STREAM", default_value = "hourtally",
          value_parser = stream_name)]
    pub stream: String,

    /// Replicas of the stream and of the snapshot bucket when this server creates them
    /// (3 for a three-node NATS cluster, 1 for a single NATS server).
    #[arg(long, env = "HOURTALLY_STREAM_REPLICAS", default_value_t = 3,
          value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=5), |v| v as usize))]
    pub stream_replicas: usize,

    /// Hours the stream keeps events (its max age, when this server creates it). Replay
    /// after the newest snapshot needs every event since it: keep this well above
    /// --snapshot-interval-s and above the longest time every server may be down at once.
    #[arg(long, env = "HOURTALLY_STREAM_MAX_AGE_HOURS", default_value_t = 168,
          value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub stream_max_age_hours: u64,

    /// This server's name in the de-duplication ids of its batches. Default: generated once
    /// and kept in the data directory (`node-id`), or new each start with --ephemeral.
    #[arg(long, env = "HOURTALLY_NODE_ID", value_parser = node_id)]
    pub node_id: Option<String>,

    /// When a POST gets its 204 in cluster mode: `log` (its event is in the replicated log)
    /// or `local` (queued here; faster, and a crash of this server can lose it).
    #[arg(long, env = "HOURTALLY_ACK", value_enum, default_value_t = AckMode::Log)]
    pub ack: AckMode,

    /// Seconds the log may refuse events before POSTs get 503; a POST waiting that long for
    /// its batch to be acknowledged is closed unanswered (it may still count). Longer than a
    /// leader election.
    #[arg(long, env = "HOURTALLY_LOG_TIMEOUT_S", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=MAX_LOG_TIMEOUT_S))]
    pub log_timeout_s: u64,

    /// Longest wait of a `GET ...&fresh=1` for this server to apply what the stream held
    /// when the GET arrived; then 504.
    #[arg(long, env = "HOURTALLY_FRESH_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub fresh_timeout_ms: u64,
}

impl ClusterFlags {
    /// Whether cluster mode is on.
    pub fn enabled(&self) -> bool {
        !self.nats.is_empty()
    }

    pub fn log_timeout(&self) -> Duration {
        Duration::from_secs(self.log_timeout_s)
    }

    pub fn fresh_timeout(&self) -> Duration {
        Duration::from_millis(self.fresh_timeout_ms)
    }

    /// The subject events are published on.
    pub fn subject(&self) -> String {
        format!("{}.events", self.stream)
    }

    /// The object store bucket of the snapshots.
    pub fn bucket(&self) -> String {
        format!("{}-snapshots", self.stream)
    }
}

/// A stream name JetStream takes and that is a subject token: letters, digits, `-`, `_`.
fn stream_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 {
        return Err("give 1 to 64 characters".into());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("use only letters, digits, '-' and '_'".into());
    }
    Ok(s.to_owned())
}

/// A node id: what a stream name may hold, up to 64 characters.
fn node_id(s: &str) -> Result<String, String> {
    stream_name(s)
}
