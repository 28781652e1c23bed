//! The `/metrics` page: which series it shows and where each is read, at scrape time.

use super::error::Reason;
use super::route::Route;
use super::status::Status;
use super::tally::Metrics;
use crate::metrics::exposition::process_and_build;
use crate::metrics::Page;
use crate::shared_log::SharedLog;

/// Values the server adds to the page at render time.
#[derive(Default, Clone, Copy)]
pub struct Gauges<'a> {
    pub applied: u64,
    pub sealed_drops: u64,
    pub duplicates: u64,
    pub freezes: u64,
    /// The cold tier's `(hours, bytes, failed stores)`, if the server keeps one.
    pub cold: Option<(u64, u64, u64)>,
    /// Late events `(counted, dropped: their hour's users could not be read)`, if counted.
    pub late: Option<(u64, u64)>,
    pub queued: usize,
    pub queue_capacity: usize,
    pub open_connections: usize,
    pub archived_hours: usize,
    pub ring_slots: usize,
    pub ready: bool,
    /// The journal's `(errors, events lost, bytes written, syncs)`, if the server has one.
    pub journal: Option<(u64, u64, u64, u64)>,
    pub journal_failing: bool,
    /// Cluster mode's log, if the server is in a cluster: its figures.
    pub log: Option<&'a dyn SharedLog>,
}

/// The page for `GET /metrics`.
pub fn render(m: &Metrics, g: &Gauges) -> String {
    let mut p = Page::default();
    p.labelled(
        "hourtally_http_responses_total",
        "counter",
        "HTTP answers sent, by status code.",
        Status::ALL
            .iter()
            .map(|s| (vec![("code", s.code().to_string())], m.responses(*s)))
            .collect(),
    );
    p.labelled(
        "hourtally_http_rejections_total",
        "counter",
        "Requests refused, by reason (one per refusal row of the API and transport tables).",
        Reason::ALL
            .iter()
            .map(|r| (vec![("reason", r.label().to_string())], m.rejections(*r)))
            .collect(),
    );
    p.histograms(
        "hourtally_http_request_duration_seconds",
        "Time from the read that completed a request to the write of its answer (with --fsync always or --ack log, the wait for the disk or the log included), by route.",
        1e9,
        Route::ALL
            .iter()
            .map(|r| {
                let (path, method) = r.labels();
                (
                    vec![("path", path.to_string()), ("method", method.to_string())],
                    m.latency(*r),
                )
            })
            .collect(),
    );
    p.one(
        "hourtally_events_accepted_total",
        "counter",
        "POSTs whose event was queued (answered 204, or closed unanswered when a durable wait timed out).",
        m.accepted(),
    );
    p.one(
        "hourtally_events_applied_total",
        "counter",
        "Events the writer took off the queue and applied (counted, dropped as sealed or as a repeated event id, or refused by the disk with --fsync always).",
        g.applied,
    );
    p.one(
        "hourtally_events_dropped_sealed_total",
        "counter",
        "Events the apply rule dropped because their hour was sealed.",
        g.sealed_drops,
    );
    p.one(
        "hourtally_events_dropped_duplicate_total",
        "counter",
        "Events the apply rule dropped because their hour had counted their event id already.",
        g.duplicates,
    );
    p.one(
        "hourtally_hours_frozen_total",
        "counter",
        "Hours that were over frozen into sorted sets (a first freeze, or a later one folding in late users).",
        g.freezes,
    );
    if let Some((hours, bytes, failures)) = g.cold {
        p.one(
            "hourtally_cold_hours",
            "gauge",
            "Hours whose users are stored in the cold tier (cold/ in the data directory).",
            hours,
        );
        p.one(
            "hourtally_cold_bytes",
            "gauge",
            "Bytes of the cold tier's files.",
            bytes,
        );
        p.one(
            "hourtally_cold_store_failures_total",
            "counter",
            "Stores of an hour's users into the cold tier that failed (a full disk): the hour stays in memory and the store is tried again.",
            failures,
        );
    }
    if let Some((counted, dropped)) = g.late {
        p.one(
            "hourtally_events_late_total",
            "counter",
            "Late events counted: events of hours that had left the ring, within the cold retention.",
            counted,
        );
        p.one(
            "hourtally_late_dropped_total",
            "counter",
            "Late events dropped because their hour's users could not be read (a damaged or removed cold file; logged).",
            dropped,
        );
    }
    p.one(
        "hourtally_queue_depth",
        "gauge",
        "Events queued for the writer (with the batch size histograms: the writer's lag).",
        g.queued as u64,
    );
    p.one(
        "hourtally_queue_capacity",
        "gauge",
        "Most events the queue holds.",
        g.queue_capacity as u64,
    );
    p.histograms(
        "hourtally_writer_batch_events",
        "Events per batch the writer applied.",
        1.0,
        vec![(Vec::new(), m.writer().events.snapshot())],
    );
    p.histograms(
        "hourtally_writer_batch_duration_seconds",
        "Time from taking a batch off the queue to publishing it (journal write and apply).",
        1e9,
        vec![(Vec::new(), m.writer().nanos.snapshot())],
    );
    let (accepted, refused, woken) = m.connections();
    p.one(
        "hourtally_connections_accepted_total",
        "counter",
        "Connections accepted and served.",
        accepted,
    );
    p.one("hourtally_connections_refused_total", "counter", "Connections answered 503 and closed because --max-connections were open (or the server was stopping).", refused);
    p.one(
        "hourtally_connections_woken_total",
        "counter",
        "Connections the sweeper woke because a deadline had passed: a request head's or body's, the idle one, a write's waiting for room, the linger's (a hint: the connection checks its own clock).",
        woken,
    );
    p.one(
        "hourtally_connections_open",
        "gauge",
        "Connections open now.",
        g.open_connections as u64,
    );
    p.one(
        "hourtally_archived_hours",
        "gauge",
        "Sealed hours kept in the archive.",
        g.archived_hours as u64,
    );
    p.one(
        "hourtally_ring_slots",
        "gauge",
        "Hour slots in the ring (--retention-hours).",
        g.ring_slots as u64,
    );
    p.one(
        "hourtally_ready",
        "gauge",
        "1 once the server has recovered and answers reads and writes (0 while stopping).",
        u64::from(g.ready),
    );
    if let Some((errors, lost, bytes, syncs)) = g.journal {
        p.one(
            "hourtally_journal_bytes_total",
            "counter",
            "Bytes written to the journal.",
            bytes,
        );
        p.one(
            "hourtally_journal_syncs_total",
            "counter",
            "fdatasync calls on the journal.",
            syncs,
        );
        p.one(
            "hourtally_journal_errors_total",
            "counter",
            "Failed journal writes or syncs (each retried).",
            errors,
        );
        p.one(
            "hourtally_journal_events_lost_total",
            "counter",
            "Events not journaled because failed writes filled the retry buffer.",
            lost,
        );
        p.one(
            "hourtally_journal_failing",
            "gauge",
            "1 while journal writes fail (POSTs get 503).",
            u64::from(g.journal_failing),
        );
    }
    if let Some(log) = &g.log {
        log.figures(&mut |name, kind, help, value| p.one(name, kind, help, value));
        p.histograms(
            "hourtally_cluster_batch_events",
            "Events per batch this server published to the log (acknowledged batches).",
            1.0,
            vec![(Vec::new(), m.publisher().events.snapshot())],
        );
        p.histograms(
            "hourtally_cluster_batch_ack_seconds",
            "Time from publishing a batch to the log's acknowledgement.",
            1e9,
            vec![(Vec::new(), m.publisher().nanos.snapshot())],
        );
    }
    process_and_build(&mut p);
    p.encode()
}
