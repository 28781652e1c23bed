//! The `/metrics` page: every series as read at scrape time, encoded in the Prometheus text
//! format (0.0.4) by `prometheus-client`'s encoder.
//!
//! The figures are gathered first, into owned [`Family`] values (a scrape reads each atomic
//! once), then a [`Collector`] hands them to the crate, which writes the `# HELP` and
//! `# TYPE` lines, the `_total` suffix of counters, the escaping of help texts and label
//! values, and a histogram's cumulative `_bucket`, `_sum` and `_count` lines.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{Metrics, ProcessFigures, Route};
use crate::histogram::HistogramSnapshot;
use crate::http::error::Reason;
use crate::http::status::Status;

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

/// One sample's value.
#[derive(Clone, Debug)]
enum Value {
    Int(u64),
    Float(f64),
    /// A histogram, and the divisor that turns its unit into the series' base unit (1e9 for
    /// nanoseconds into seconds: a division of two exact integers is correctly rounded, so
    /// 1000 ns prints as `1e-6`, where a product with 1e-9 would print `1.0000000000000002e-6`).
    Histogram(HistogramSnapshot, f64),
}

/// One sample: its labels and value.
#[derive(Clone, Debug)]
struct Sample {
    labels: Vec<(&'static str, String)>,
    value: Value,
}

/// One metric family: its name as exposed (counters with their `_total`), type, help text
/// and samples.
#[derive(Clone, Debug)]
struct Family {
    name: &'static str,
    kind: MetricType,
    help: &'static str,
    samples: Vec<Sample>,
}

/// The page's families, in order.
#[derive(Clone, Debug, Default)]
struct Page(Vec<Family>);

impl Page {
    /// A family of one unlabelled sample. `kind` is "counter" or "gauge", as in the
    /// exposition format.
    fn one(&mut self, name: &'static str, kind: &str, help: &'static str, value: u64) {
        self.labelled(name, kind, help, vec![(Vec::new(), value)]);
    }

    fn labelled(
        &mut self,
        name: &'static str,
        kind: &str,
        help: &'static str,
        samples: Vec<(Vec<(&'static str, String)>, u64)>,
    ) {
        let kind = match kind {
            "counter" => MetricType::Counter,
            _ => MetricType::Gauge,
        };
        self.0.push(Family {
            name,
            kind,
            help,
            samples: samples
                .into_iter()
                .map(|(labels, v)| Sample {
                    labels,
                    value: Value::Int(v),
                })
                .collect(),
        });
    }

    fn histograms(
        &mut self,
        name: &'static str,
        help: &'static str,
        divisor: f64,
        samples: Vec<(Vec<(&'static str, String)>, HistogramSnapshot)>,
    ) {
        self.0.push(Family {
            name,
            kind: MetricType::Histogram,
            help,
            samples: samples
                .into_iter()
                .map(|(labels, h)| Sample {
                    labels,
                    value: Value::Histogram(h, divisor),
                })
                .collect(),
        });
    }
}

/// Encodes one sample through the crate's metric encoder.
struct Encoded<'a>(&'a Value, MetricType);

impl std::fmt::Debug for Encoded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl EncodeMetric for Encoded<'_> {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        match (self.0, self.1) {
            (Value::Int(v), MetricType::Counter) => {
                encoder.encode_counter::<NoLabelSet, _, u64>(v, None)
            }
            (Value::Float(v), MetricType::Counter) => {
                encoder.encode_counter::<NoLabelSet, _, f64>(v, None)
            }
            (Value::Int(v), _) => encoder.encode_gauge(v),
            (Value::Float(v), _) => encoder.encode_gauge(v),
            (Value::Histogram(h, divisor), _) => {
                let buckets: Vec<(f64, u64)> = h
                    .buckets
                    .iter()
                    .map(|&(bound, n)| (bound as f64 / divisor, n))
                    .collect();
                encoder.encode_histogram::<NoLabelSet>(
                    h.sum as f64 / divisor,
                    h.count,
                    &buckets,
                    None,
                )
            }
        }
    }

    fn metric_type(&self) -> MetricType {
        self.1
    }
}

impl Collector for Page {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            // The crate appends `_total` to a counter's name (and `_info` to an info's).
            let name = match f.kind {
                MetricType::Counter => f.name.strip_suffix("_total").unwrap_or(f.name),
                MetricType::Info => f.name.strip_suffix("_info").unwrap_or(f.name),
                _ => f.name,
            };
            let mut family = encoder.encode_descriptor(name, f.help, None, f.kind)?;
            match f.samples.as_slice() {
                // An unlabelled family has its one sample.
                [only] if only.labels.is_empty() => Encoded(&only.value, f.kind).encode(family)?,
                samples => {
                    for s in samples {
                        Encoded(&s.value, f.kind).encode(family.encode_family(&s.labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
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
        "Events the writer took off the queue and applied (counted, dropped as sealed, or refused by the disk with --fsync always).",
        g.applied,
    );
    p.one(
        "hourtally_events_dropped_sealed_total",
        "counter",
        "Events the apply rule dropped because their hour was sealed.",
        g.sealed_drops,
    );
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
        vec![(Vec::new(), m.writer.events.snapshot())],
    );
    p.histograms(
        "hourtally_writer_batch_duration_seconds",
        "Time from taking a batch off the queue to publishing it (journal write and apply).",
        1e9,
        vec![(Vec::new(), m.writer.nanos.snapshot())],
    );
    let (accepted, refused) = m.connections();
    p.one(
        "hourtally_connections_accepted_total",
        "counter",
        "Connections accepted and served.",
        accepted,
    );
    p.one("hourtally_connections_refused_total", "counter", "Connections answered 503 and closed because --max-connections were open (or the server was stopping).", refused);
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
    if let Some(c) = &g.cluster {
        c.render(&mut |name, kind, help, value| p.one(name, kind, help, value));
        p.histograms(
            "hourtally_cluster_batch_events",
            "Events per batch this server published to the log (acknowledged batches).",
            1.0,
            vec![(Vec::new(), m.publisher.events.snapshot())],
        );
        p.histograms(
            "hourtally_cluster_batch_ack_seconds",
            "Time from publishing a batch to the log's acknowledgement.",
            1e9,
            vec![(Vec::new(), m.publisher.nanos.snapshot())],
        );
    }
    let proc = ProcessFigures::read();
    p.one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory (RSS) of the process.",
        proc.rss_bytes,
    );
    p.0.push(Family {
        name: "process_cpu_seconds_total",
        kind: MetricType::Counter,
        help: "User and system CPU time of the process.",
        samples: vec![Sample {
            labels: Vec::new(),
            value: Value::Float(proc.cpu_seconds),
        }],
    });
    p.labelled(
        "hourtally_build_info",
        "gauge",
        "The running build (always 1).",
        vec![(vec![("version", env!("CARGO_PKG_VERSION").to_string())], 1)],
    );
    let mut registry = Registry::default();
    registry.register_collector(Box::new(p));
    let mut page = String::with_capacity(8192);
    // Writing into a String cannot fail, and every name and label here is ours.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut page, &registry);
    page
}
