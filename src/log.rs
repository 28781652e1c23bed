//! Logging: `tracing` to standard output, as text or JSON, and the rejection summary.
//!
//! Who logs: the main thread (start, ready, stop) and the reporter thread below. Connection
//! coroutines never log: a log line takes the stdout lock, which could park a worker thread
//! under all its coroutines, and one line per bad request would let a client flood the log.
//! They count refusals by reason instead (`metrics::Tally`), and the reporter writes one
//! line per interval with the counts per reason, at most. No line ever holds a user name:
//! the name never leaves `query`, only its fingerprint does.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::http::error::{Reason, REASON_COUNT};
use crate::http::tally::Metrics;
use crate::http::Service;
use crate::sync::Arc;

/// How often the reporter summarises refusals (when there were any).
pub const REJECTION_SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Installs the process's log subscriber. `RUST_LOG`, when set, overrides `level`. Returns
/// an error if a subscriber was installed already.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG={spec}: {e}"))?
        }
        // The NATS client logs every reconnect attempt at info; the cluster module logs the
        // connection's changes itself (once each).
        _ => EnvFilter::new(format!("{level},async_nats=warn")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| e.to_string())
}

/// The thread that writes the rejection summary; stops (after a last summary) when dropped
/// or [`stop`](Self::stop)ped.
pub struct RejectionReporter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RejectionReporter {
    /// Starts summarising the refusals counted by `service` every `interval`.
    pub fn start(service: Arc<Service>, interval: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hourtally-log".into())
            .spawn(move || {
                let mut last = [0u64; REASON_COUNT];
                loop {
                    let done = !matches!(
                        stopped.recv_timeout(interval),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    );
                    summarise(service.metrics(), &mut last, interval);
                    if done {
                        return;
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Writes a last summary and stops the thread.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RejectionReporter {
    fn drop(&mut self) {
        self.shut();
    }
}

/// One line with the refusals since the last call, by reason; nothing if there were none.
/// Returns the line written (for tests).
pub fn summarise(
    metrics: &Metrics,
    last: &mut [u64; REASON_COUNT],
    interval: Duration,
) -> Option<String> {
    let mut total = 0;
    let mut by_reason = String::new();
    for reason in Reason::ALL {
        let now = metrics.rejections(*reason);
        let new = now - last[reason.index()];
        last[reason.index()] = now;
        if new > 0 {
            total += new;
            if !by_reason.is_empty() {
                by_reason.push(' ');
            }
            by_reason.push_str(reason.label());
            by_reason.push('=');
            by_reason.push_str(itoa::Buffer::new().format(new));
        }
    }
    if total == 0 {
        return None;
    }
    tracing::warn!(
        refused = total,
        by_reason = by_reason.as_str(),
        interval_s = interval.as_secs(),
        "requests refused"
    );
    Some(by_reason)
}

#[cfg(all(test, feature = "request-metrics"))]
mod tests {
    use super::*;
    use crate::http::error::{ApiError, HttpError};
    use crate::http::tally::Tally;
    use crate::query::QueryError;

    #[test]
    fn a_burst_of_refusals_is_one_line_of_counts_per_interval() {
        let metrics = Metrics::default();
        let mut last = [0u64; REASON_COUNT];
        assert_eq!(
            summarise(&metrics, &mut last, Duration::from_secs(10)),
            None
        );
        let mut tally = Tally::default();
        for _ in 0..10_000 {
            tally.reject(&ApiError::from(QueryError::UserEmpty));
        }
        tally.reject(&ApiError::from(HttpError::NotFound));
        metrics.flush(&mut tally);
        assert_eq!(
            summarise(&metrics, &mut last, Duration::from_secs(10)).as_deref(),
            Some("user_empty=10000 not_found=1")
        );
        // Nothing new: no line.
        assert_eq!(
            summarise(&metrics, &mut last, Duration::from_secs(10)),
            None
        );
    }
}
