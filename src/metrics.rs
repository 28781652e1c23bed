//! Counters for `GET /metrics`, in the Prometheus text format.
//!
//! Connections count into a private [`Tally`] while they answer a batch of requests and add
//! it to the shared [`Metrics`] once per batch, so the hot path does not bounce a shared
//! cache line between cores for every request.

use std::fmt::Write as _;

use crate::http::error::{ApiError, Reason, REASON_COUNT};
use crate::http::status::{Status, COUNT as STATUS_COUNT};
use crate::sync::{AtomicU64, Ordering};

/// What one connection counted since its last flush.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Answers sent, by [`Status::index`].
    pub responses: [u64; STATUS_COUNT],
    /// Refusals, by [`Reason::index`].
    pub rejections: [u64; REASON_COUNT],
    /// POSTs whose event was queued.
    pub accepted: u64,
    /// Whether `rejections` holds anything: most batches refuse nothing, and the flush then
    /// skips the table.
    refused: bool,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            responses: [0; STATUS_COUNT],
            rejections: [0; REASON_COUNT],
            accepted: 0,
            refused: false,
        }
    }
}

impl Tally {
    pub fn respond(&mut self, status: Status) {
        self.responses[status.index()] += 1;
    }

    pub fn reject(&mut self, err: &ApiError) {
        self.rejections[err.reason().index()] += 1;
        self.refused = true;
    }

    /// An answer refusing with `err`: counted by its status and by its reason.
    pub fn refuse(&mut self, err: &ApiError) {
        self.respond(err.status());
        self.reject(err);
    }
}

/// Process-wide counters. Every ordering here is Relaxed: these are statistics, each read
/// on its own; no other memory is published through them.
#[derive(Debug)]
pub struct Metrics {
    responses: [AtomicU64; STATUS_COUNT],
    rejections: [AtomicU64; REASON_COUNT],
    accepted: AtomicU64,
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
            rejections: std::array::from_fn(|_| AtomicU64::new(0)),
            accepted: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
        }
    }
}

/// Values the server adds to the page at render time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub applied: u64,
    pub sealed_drops: u64,
    pub queued: usize,
    pub queue_capacity: usize,
    pub open_connections: usize,
    pub archived_hours: usize,
    pub ring_slots: usize,
    pub ready: bool,
    /// The journal's `(errors, events lost, bytes written, syncs)`, if the server has one.
    pub journal: Option<(u64, u64, u64, u64)>,
    pub journal_failing: bool,
    /// Cluster mode's figures, if the server is in a cluster.
    pub cluster: Option<crate::cluster::ClusterFigures>,
}

impl Metrics {
    /// Adds a connection's tally and zeroes it.
    pub fn flush(&self, tally: &mut Tally) {
        for (shared, local) in self.responses.iter().zip(tally.responses.iter_mut()) {
            if *local != 0 {
                // Relaxed: a statistic (see the type doc).
                shared.fetch_add(std::mem::take(local), Ordering::Relaxed);
            }
        }
        if std::mem::take(&mut tally.refused) {
            for (shared, local) in self.rejections.iter().zip(tally.rejections.iter_mut()) {
                if *local != 0 {
                    // Relaxed: a statistic.
                    shared.fetch_add(std::mem::take(local), Ordering::Relaxed);
                }
            }
        }
        if tally.accepted != 0 {
            // Relaxed: a statistic.
            self.accepted
                .fetch_add(std::mem::take(&mut tally.accepted), Ordering::Relaxed);
        }
    }

    pub fn connection_accepted(&self) {
        // Relaxed: a statistic.
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self) {
        // Relaxed: a statistic.
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// POSTs accepted so far (as flushed).
    pub fn accepted(&self) -> u64 {
        // Relaxed: a statistic.
        self.accepted.load(Ordering::Relaxed)
    }

    /// Answers sent with `status` so far (as flushed).
    pub fn responses(&self, status: Status) -> u64 {
        // Relaxed: a statistic.
        self.responses[status.index()].load(Ordering::Relaxed)
    }

    /// Refusals for `reason` so far (as flushed).
    pub fn rejections(&self, reason: Reason) -> u64 {
        // Relaxed: a statistic.
        self.rejections[reason.index()].load(Ordering::Relaxed)
    }

    /// The page for `GET /metrics`.
    pub fn render(&self, g: &Gauges) -> String {
        let mut page = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(page, "{name}{labels} {value}");
            }
        };
        let codes: Vec<(String, u64)> = Status::ALL
            .iter()
            .map(|s| (format!("{{code=\"{}\"}}", s.code()), self.responses(*s)))
            .collect();
        let codes: Vec<(&str, u64)> = codes.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "hourtally_http_responses_total",
            "counter",
            "HTTP answers sent, by status code.",
            &codes,
        );
        let reasons: Vec<(String, u64)> = Reason::ALL
            .iter()
            .map(|r| (format!("{{reason=\"{}\"}}", r.label()), self.rejections(*r)))
            .collect();
        let reasons: Vec<(&str, u64)> = reasons.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "hourtally_http_rejections_total",
            "counter",
            "Requests refused, by reason (one per refusal row of the API and transport tables).",
            &reasons,
        );
        metric(
            "hourtally_events_accepted_total",
            "counter",
            "POSTs whose event was queued (answered 204).",
            &[("", self.accepted())],
        );
        metric(
            "hourtally_events_applied_total",
            "counter",
            "Events the writer took off the queue and applied (counted or dropped as sealed).",
            &[("", g.applied)],
        );
        metric(
            "hourtally_events_dropped_sealed_total",
            "counter",
            "Events the apply rule dropped because their hour was sealed.",
            &[("", g.sealed_drops)],
        );
        metric(
            "hourtally_queue_depth",
            "gauge",
            "Events queued for the writer.",
            &[("", g.queued as u64)],
        );
        metric(
            "hourtally_queue_capacity",
            "gauge",
            "Most events the queue holds.",
            &[("", g.queue_capacity as u64)],
        );
        // Relaxed loads: statistics.
        metric(
            "hourtally_connections_accepted_total",
            "counter",
            "Connections accepted and served.",
            &[("", self.connections_accepted.load(Ordering::Relaxed))],
        );
        metric(
            "hourtally_connections_refused_total",
            "counter",
            "Connections answered 503 and closed because --max-connections were open (or the server was stopping).",
            &[("", self.connections_refused.load(Ordering::Relaxed))],
        );
        metric(
            "hourtally_connections_open",
            "gauge",
            "Connections open now.",
            &[("", g.open_connections as u64)],
        );
        metric(
            "hourtally_archived_hours",
            "gauge",
            "Sealed hours kept in the archive.",
            &[("", g.archived_hours as u64)],
        );
        metric(
            "hourtally_ring_slots",
            "gauge",
            "Hour slots in the ring (--retention-hours).",
            &[("", g.ring_slots as u64)],
        );
        metric(
            "hourtally_ready",
            "gauge",
            "1 once the server has recovered and answers reads and writes (0 while stopping).",
            &[("", u64::from(g.ready))],
        );
        if let Some((errors, lost, bytes, syncs)) = g.journal {
            metric(
                "hourtally_journal_bytes_total",
                "counter",
                "Bytes written to the journal.",
                &[("", bytes)],
            );
            metric(
                "hourtally_journal_syncs_total",
                "counter",
                "fdatasync calls on the journal.",
                &[("", syncs)],
            );
            metric(
                "hourtally_journal_errors_total",
                "counter",
                "Failed journal writes or syncs (each retried).",
                &[("", errors)],
            );
            metric(
                "hourtally_journal_events_lost_total",
                "counter",
                "Events not journaled because failed writes filled the retry buffer.",
                &[("", lost)],
            );
            metric(
                "hourtally_journal_failing",
                "gauge",
                "1 while journal writes fail (POSTs get 503).",
                &[("", u64::from(g.journal_failing))],
            );
        }
        if let Some(c) = &g.cluster {
            c.render(&mut metric);
        }
        let p = ProcessFigures::read();
        let _ = write!(
            page,
            "# HELP process_resident_memory_bytes Resident memory (RSS) of the process.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes {}\n\
             # HELP process_cpu_seconds_total User and system CPU time of the process.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total {:.3}\n\
             # HELP hourtally_build_info The running build (always 1).\n\
             # TYPE hourtally_build_info gauge\n\
             hourtally_build_info{{version=\"{}\"}} 1\n",
            p.rss_bytes,
            p.cpu_seconds,
            env!("CARGO_PKG_VERSION"),
        );
        page
    }
}

/// The process's own figures, read from `/proc/self` when `/metrics` is rendered. procfs
/// reads never wait on a disk, so a coroutine may make them; zeros where they are missing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessFigures {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessFigures {
    pub fn read() -> Self {
        // SAFETY: sysconf takes a constant and touches no memory of ours.
        let (page, ticks) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_CLK_TCK),
            )
        };
        let rss_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        // Fields after the command name's closing parenthesis: state is the first, utime the
        // 12th and stime the 13th (proc(5) fields 14 and 15).
        let cpu_ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 1..];
                let mut fields = rest.split_whitespace().skip(11);
                let utime: u64 = fields.next()?.parse().ok()?;
                let stime: u64 = fields.next()?.parse().ok()?;
                Some(utime + stime)
            })
            .unwrap_or(0);
        ProcessFigures {
            rss_bytes: rss_pages * page.max(0) as u64,
            cpu_seconds: if ticks > 0 {
                cpu_ticks as f64 / ticks as f64
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_adds_and_zeroes_the_tally() {
        let m = Metrics::default();
        let mut t = Tally::default();
        t.respond(Status::NoContent);
        t.respond(Status::NoContent);
        t.accepted = 2;
        m.flush(&mut t);
        m.flush(&mut t);
        assert_eq!(m.responses(Status::NoContent), 2);
        assert_eq!(m.accepted(), 2);
        let page = m.render(&Gauges::default());
        assert!(
            page.contains("hourtally_http_responses_total{code=\"204\"} 2\n"),
            "{page}"
        );
        assert!(page.contains(
            "# TYPE hourtally_events_accepted_total counter\nhourtally_events_accepted_total 2\n"
        ));
        assert!(page.contains("hourtally_build_info{version=\""), "{page}");
    }

    #[test]
    fn the_process_figures_are_read_from_proc() {
        let p = ProcessFigures::read();
        assert!(p.rss_bytes > 1 << 20, "{p:?}");
        // Burn a little CPU so that the counter is above zero at any tick rate.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(ProcessFigures::read().cpu_seconds > 0.0);
    }

    #[test]
    fn refusals_are_flushed_once_each() {
        let m = Metrics::default();
        let mut t = Tally::default();
        let err = ApiError::from(crate::http::error::HttpError::NotFound);
        t.refuse(&err);
        m.flush(&mut t);
        t.respond(Status::Ok);
        m.flush(&mut t);
        t.refuse(&err);
        t.refuse(&err);
        m.flush(&mut t);
        m.flush(&mut t);
        assert_eq!(m.rejections(err.reason()), 3);
        assert_eq!(m.responses(Status::NotFound), 3);
        assert_eq!(m.responses(Status::Ok), 1);
    }
}
