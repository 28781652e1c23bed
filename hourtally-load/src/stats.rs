//! A client thread's results, merged at the end: latency and send-lag histograms, replies
//! by status, transport errors and lost requests, what `--verify` expects, and the wrong
//! answers it found.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hourtally::event::MILLIS_PER_HOUR;

use crate::conn::Fail;
use crate::expected::Expected;
use crate::mix::{Op, Req, OP_NAMES};
use crate::plan::Plan;

/// Transport errors and requests without a reply.
#[derive(Default, Clone, Debug)]
pub struct Errors {
    pub connect: u64,
    pub write: u64,
    pub read: u64,
    pub timeout: u64,
    pub closed: u64,
    pub protocol: u64,
    /// The first protocol error's reason.
    pub protocol_why: Option<&'static str>,
    /// Requests written (or scheduled) that got no answer.
    pub lost: u64,
    /// Of those, POSTs: the server may or may not have taken them (matters for --verify).
    pub lost_posts: u64,
    /// Open loop: requests scheduled in the run that had not left when it ended (each
    /// connection waits for its answer before its next send).
    pub unsent: u64,
}

impl Errors {
    pub fn transport(&self) -> u64 {
        self.connect + self.write + self.read + self.timeout + self.closed + self.protocol
    }

    fn merge(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.write += o.write;
        self.read += o.read;
        self.timeout += o.timeout;
        self.closed += o.closed;
        self.protocol += o.protocol;
        self.protocol_why = self.protocol_why.or(o.protocol_why);
        self.lost += o.lost;
        self.lost_posts += o.lost_posts;
        self.unsent += o.unsent;
    }
}

/// What the visibility probes (`--lag-every`) did.
#[derive(Default, Clone, Debug)]
pub struct Probes {
    /// Probe POSTs answered 204.
    pub accepted: u64,
    /// Probe POSTs answered otherwise (not taken: no lag to measure).
    pub refused: u64,
    /// GETs sent to see them.
    pub gets: u64,
    /// Why probing stopped before the run ended, if it did.
    pub stopped: Option<String>,
}

impl Probes {
    fn merge(&mut self, o: &Probes) {
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.gets += o.gets;
        if self.stopped.is_none() {
            self.stopped.clone_from(&o.stopped);
        }
    }
}

/// How many wrong answers the report shows (all are counted).
pub const WRONG_SHOWN: usize = 5;
/// How many bytes of a wrong answer its description shows.
const WRONG_BYTES_SHOWN: usize = 300;

/// Largest value recorded, µs (one hour); larger ones count as this.
const HIST_MAX_US: u64 = MILLIS_PER_HOUR * 1000;

fn new_histogram() -> Histogram<u64> {
    // 3 significant digits; grows with the largest value recorded, so a thread that only
    // sees sub-millisecond latencies keeps a small one.
    Histogram::new(3).expect("3 significant digits is valid")
}

/// Records `d` in µs, clamped to [`HIST_MAX_US`].
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).map_or(HIST_MAX_US, |v| v.min(HIST_MAX_US));
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// One client thread's results (all of them, once merged).
pub struct Stats {
    /// Latency of measured answers, µs.
    pub latency: Histogram<u64>,
    /// Open loop: how late requests left compared with their schedule, µs.
    pub lag: Histogram<u64>,
    /// Open loop with `--lag-every`: from a probe POST's 204 to the first GET answer that
    /// counts it, µs.
    pub visibility: Histogram<u64>,
    pub probes: Probes,
    /// Measured answers by status code.
    pub status: Vec<u64>,
    /// Measured answers by kind of request ([`crate::mix::OP_NAMES`]).
    pub by_op: [u64; OP_NAMES.len()],
    /// Measured answers.
    pub answered: u64,
    /// When the last measured answer arrived.
    pub last: Option<Instant>,
    pub errors: Errors,
    /// --verify: what the server accepted.
    pub expected: Expected,
    /// --verify: answers, warm-up included, that were wrong for their request (see
    /// [`crate::check`]).
    pub wrong: u64,
    /// At most [`WRONG_SHOWN`] of them (the first of each client thread, in thread order):
    /// the request, why, and the answer's bytes.
    pub wrong_shown: Vec<String>,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            latency: new_histogram(),
            lag: new_histogram(),
            visibility: new_histogram(),
            probes: Probes::default(),
            status: vec![0; 1000],
            by_op: [0; OP_NAMES.len()],
            answered: 0,
            last: None,
            errors: Errors::default(),
            expected: Expected::default(),
            wrong: 0,
            wrong_shown: Vec::new(),
        }
    }

    /// Counts a wrong answer to `req`, `why` it is wrong and its bytes `raw` (shown, lossily
    /// and cut to a few hundred bytes, for the first [`WRONG_SHOWN`]).
    pub fn wrong_answer(&mut self, req: &Req, why: &str, raw: &[u8]) {
        self.wrong += 1;
        if self.wrong_shown.len() < WRONG_SHOWN {
            let shown = &raw[..raw.len().min(WRONG_BYTES_SHOWN)];
            let cut = if shown.len() < raw.len() {
                format!(" (first {} of {} bytes)", shown.len(), raw.len())
            } else {
                String::new()
            };
            self.wrong_shown.push(format!(
                "{}: {why}; the answer: {:?}{cut}",
                req.describe(),
                String::from_utf8_lossy(shown)
            ));
        }
    }

    /// Counts the reply to `req`: its status, and its latency from `req.t0` to `arrived`.
    pub fn replied(&mut self, plan: &Plan, req: &Req, status: u16, arrived: Instant) {
        if plan.verify && status == 204 {
            if let Op::Post(kind) = req.op {
                if req.probe {
                    self.expected.add_probe(req.hour, kind);
                } else {
                    self.expected.add(plan.users, req.hour, req.user, kind);
                }
            }
        }
        if plan.measuring(req.t0) {
            record(&mut self.latency, arrived.saturating_duration_since(req.t0));
            self.status[usize::from(status)] += 1;
            self.by_op[req.op.index()] += 1;
            self.answered += 1;
            if self.last.is_none_or(|l| l < arrived) {
                self.last = Some(arrived);
            }
        }
    }

    pub fn fail(&mut self, plan: &Plan, f: Fail) {
        let e = &mut self.errors;
        match f {
            Fail::Write => e.write += 1,
            Fail::Read => e.read += 1,
            Fail::Timeout => e.timeout += 1,
            Fail::Closed => e.closed += 1,
            Fail::Protocol(why) => {
                e.protocol += 1;
                e.protocol_why.get_or_insert(why);
            }
        }
        plan.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connect_failed(&mut self, plan: &Plan) {
        self.errors.connect += 1;
        plan.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A request that got no answer (a POST among them may or may not have been taken).
    pub fn lost(&mut self, req: &Req) {
        self.errors.lost += 1;
        if matches!(req.op, Op::Post(_)) {
            self.errors.lost_posts += 1;
        }
    }

    pub fn merge(&mut self, o: Stats) {
        // Auto-resizing histograms with the same precision: `add` cannot fail.
        let _ = self.latency.add(&o.latency);
        let _ = self.lag.add(&o.lag);
        let _ = self.visibility.add(&o.visibility);
        self.probes.merge(&o.probes);
        for (a, b) in self.status.iter_mut().zip(&o.status) {
            *a += b;
        }
        for (a, b) in self.by_op.iter_mut().zip(&o.by_op) {
            *a += b;
        }
        self.answered += o.answered;
        self.last = match (self.last, o.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.errors.merge(&o.errors);
        self.expected.merge(o.expected);
        self.wrong += o.wrong;
        let room = WRONG_SHOWN.saturating_sub(self.wrong_shown.len());
        self.wrong_shown
            .extend(o.wrong_shown.into_iter().take(room));
    }
}
