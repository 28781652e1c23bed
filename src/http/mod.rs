//! The HTTP edge: a small HTTP/1.1 server on `may` coroutines and `httparse`.
//!
//! [`conn`] frames requests on a connection (keep-alive, pipelining, limits, bodies) and
//! [`App::respond`] answers one request. Why not stock `may_minihttp`: DESIGN.md §1 lists
//! what its connection loop gets wrong for a public endpoint (unbounded header memory, a POST
//! body run as a request, no answer to bad input, HTTP/1.0 keep-alive hangs); this loop keeps
//! its hot-path shape (read what is there, answer every complete request, write once).

pub mod conn;
pub mod date;
pub mod limits;
pub mod response;

use date::Clock;
use limits::Limits;
use response::{Persist, TEXT_PLAIN};

use crate::counts::{Counts, CountsBody};
use crate::error::{ApiError, HttpError, RejectError, Status};
use crate::metrics::{Gauges, Metrics, Tally};
use crate::query;
use crate::ring::Ring;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Ordering};
use crate::writer::{Ingest, PushError};

/// The body of a successful answer.
enum Body {
    Static(&'static [u8]),
    /// A GET of `/analytics`, rendered on the stack.
    Counts(CountsBody),
    /// A page built for this request (`/metrics`).
    Page(String),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Static(b) => b,
            Body::Counts(body) => body.as_bytes(),
            Body::Page(page) => page.as_bytes(),
        }
    }
}

/// A successful answer: status, content type, body.
struct Answer {
    status: Status,
    content_type: &'static str,
    body: Body,
}

impl Answer {
    /// `200 OK` with a plain-text body.
    fn text(body: Body) -> Self {
        Answer {
            status: Status::Ok,
            content_type: TEXT_PLAIN,
            body,
        }
    }
}

/// The request methods the routes tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

impl Method {
    pub fn parse(method: &str) -> Self {
        match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

/// Everything the routes share: the ring, the ingest path, limits, counters.
#[derive(Debug)]
pub struct App {
    pub ring: Arc<Ring>,
    pub ingest: Arc<Ingest>,
    pub limits: Limits,
    /// POSTs for an hour more than this many hours past the server's clock get 422.
    pub max_future_hours: u32,
    pub metrics: Metrics,
    /// Connections open now (for `--max-connections`).
    pub open_connections: AtomicUsize,
    /// Set once the server serves reads and writes.
    ready: AtomicBool,
}

impl App {
    pub fn new(
        ring: Arc<Ring>,
        ingest: Arc<Ingest>,
        limits: Limits,
        max_future_hours: u32,
    ) -> Self {
        Self {
            ring,
            ingest,
            limits,
            max_future_hours,
            metrics: Metrics::default(),
            open_connections: AtomicUsize::new(0),
            ready: AtomicBool::new(false),
        }
    }

    /// Marks the server ready (`/readyz` answers 200).
    pub fn set_ready(&self, ready: bool) {
        // Relaxed: readiness is a report to operators; it guards no memory.
        self.ready.store(ready, Ordering::Relaxed);
    }

    fn is_ready(&self) -> bool {
        // Relaxed: see `set_ready`.
        self.ready.load(Ordering::Relaxed)
    }

    /// The counts of `hour`, never parking the OS thread: if the archive lock is held by the
    /// writer for an instant, the coroutine yields and tries again.
    fn read_counts(&self, hour: u32) -> Counts {
        loop {
            if let Some(counts) = self.ring.try_read(hour) {
                return counts;
            }
            may::coroutine::yield_now();
        }
    }

    /// Validates and queues one POST of `/analytics`.
    fn post(&self, query: &[u8], clock: &Clock) -> Result<(), ApiError> {
        let event = query::parse_post(query)?;
        if u64::from(event.hour) > clock.hour() + u64::from(self.max_future_hours) {
            return Err(RejectError::FutureHour {
                max_future_hours: self.max_future_hours,
            }
            .into());
        }
        if self.ring.is_sealed(event.hour) {
            return Err(RejectError::SealedHour.into());
        }
        self.ingest.push(event).map_err(|e| match e {
            PushError::Full => RejectError::QueueFull.into(),
            PushError::Closed => RejectError::ShuttingDown.into(),
        })
    }

    fn gauges(&self) -> Gauges {
        Gauges {
            applied: self.ingest.applied(),
            sealed_drops: self.ingest.sealed_drops(),
            queued: self.ingest.queued(),
            queue_capacity: self.ingest.capacity(),
            // Relaxed: a statistic.
            open_connections: self.open_connections.load(Ordering::Relaxed),
            archived_hours: loop {
                // As in `read_counts`: never park the OS thread on the archive's lock.
                match self.ring.archive().try_len() {
                    Some(n) => break n,
                    None => may::coroutine::yield_now(),
                }
            },
            ring_slots: self.ring.capacity(),
            ready: self.is_ready(),
        }
    }

    /// Answers one request into `out` and counts it in `tally`. Returns the status sent.
    pub fn respond(
        &self,
        method: Method,
        target: &[u8],
        persist: Persist,
        clock: &Clock,
        out: &mut Vec<u8>,
        tally: &mut Tally,
    ) -> Status {
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(q) => (&target[..q], &target[q + 1..]),
            None => (target, &target[target.len()..]),
        };
        let result = match (path, method) {
            (b"/analytics", Method::Get | Method::Head) => query::parse_get(query)
                .map(|hour| Answer::text(Body::Counts(self.read_counts(hour).render())))
                .map_err(ApiError::from),
            (b"/analytics", Method::Post) => self.post(query, clock).map(|()| {
                tally.accepted += 1;
                Answer {
                    status: Status::NoContent,
                    content_type: "",
                    body: Body::Static(b""),
                }
            }),
            (b"/analytics", Method::Other) => Err(HttpError::MethodNotAllowed.into()),
            (b"/healthz", Method::Get | Method::Head) => Ok(Answer::text(Body::Static(b"ok\n"))),
            (b"/readyz", Method::Get | Method::Head) => {
                if self.ingest.is_closed() {
                    Err(RejectError::ShuttingDown.into())
                } else if self.is_ready() {
                    Ok(Answer::text(Body::Static(b"ready\n")))
                } else {
                    Ok(Answer {
                        status: Status::ServiceUnavailable,
                        ..Answer::text(Body::Static(b"not ready: starting\n"))
                    })
                }
            }
            (b"/metrics", Method::Get | Method::Head) => Ok(Answer {
                status: Status::Ok,
                content_type: response::PROMETHEUS,
                body: Body::Page(self.metrics.render(&self.gauges())),
            }),
            _ => Err(HttpError::NotFound.into()),
        };
        let head_only = method == Method::Head;
        let status = match result {
            Ok(a) => {
                let body = a.body.bytes();
                response::write(
                    out,
                    a.status,
                    persist,
                    clock,
                    "",
                    a.content_type,
                    body,
                    head_only,
                );
                a.status
            }
            Err(err) => {
                response::write_error(out, &err, persist, clock, head_only);
                err.status()
            }
        };
        tally.respond(status);
        status
    }
}
