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

use super::process::ProcessFigures;
use crate::histogram::HistogramSnapshot;

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
pub struct Page(Vec<Family>);

impl Page {
    /// The page in the Prometheus text format.
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut page = String::with_capacity(8192);
        // Writing into a String cannot fail, and every name and label here is ours.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut page, &registry);
        page
    }

    /// A family of one unlabelled sample. `kind` is "counter" or "gauge", as in the
    /// exposition format.
    pub fn one(&mut self, name: &'static str, kind: &str, help: &'static str, value: u64) {
        self.labelled(name, kind, help, vec![(Vec::new(), value)]);
    }

    pub fn labelled(
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

    pub fn histograms(
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

/// The figures of the process itself (RSS, CPU time) and of the build.
pub fn process_and_build(p: &mut Page) {
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
}
