//! The `/metrics` page's format and the process's own figures: a leaf that knows no route,
//! no status and no mode. Each owner counts in its own cells and hands the values over at
//! scrape time: the HTTP edge its per-request counters (`http::tally`), the writer and the
//! publisher their batch histograms (`histogram::BatchStats`), the journal and the cluster
//! their figures; `http::metrics_page` puts them on one [`Page`], which `prometheus-client`'s
//! encoder writes ([`exposition`]).
//!
//! Feature `request-metrics` (on by default) is what counting costs: without it the
//! per-request counting, the latency clock reads and the writer's batch figures compile to
//! nothing, which is how `scripts/bench-metrics.sh` measures their price.

pub mod exposition;
pub mod process;

pub use exposition::Page;
pub use process::ProcessFigures;

/// Whether requests are counted and timed (feature `request-metrics`).
pub const ENABLED: bool = cfg!(feature = "request-metrics");
