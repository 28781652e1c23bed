//! The routes: what each request gets, given the shared state of the server ([`Service`]).
//!
//! `conn` frames requests off a connection and calls [`Service::respond`] once per request;
//! everything a route needs (the ring, the ingest path, the admission window, the metrics)
//! lives in the [`Service`].

pub use super::admission::{Admission, ADMISSION_MARGIN_HOURS};
use super::counts_answers::Rendered;
use super::date::Clock;
use super::error::{ApiError, HttpError, RejectError};
use super::limits::Limits;
use super::metrics_page::{self, Gauges};
use super::post::PostPath;
pub use super::post::PostRun;
use super::range;
use super::response::{self, AfterAnswer, Answer, Body, PROMETHEUS};
pub use super::route::Method;
use super::route::{misroute, route_of, Route};
use super::status::Status;
use super::tally::{Metrics, Tally};
use super::target::split_target;
use super::waker::IoWaker;
use super::{assets, hours};
use crate::ack::Ack;
use crate::alarms::Alarms;
use crate::conns::Connections;
use crate::counts::Counts;
use crate::histogram::BatchStats;
use crate::ingest::Ingest;
use crate::journal::JournalHealth;
use crate::query;
use crate::readiness::{Readiness, Starting};
use crate::ring::Ring;
use crate::shared_log::SharedLog;
use crate::sync::Arc;
use crate::uniques::Uniques;

/// The OpenAPI description of every route (`GET /openapi.json`), kept beside the routes it
/// describes so that a change to one shows in the diff of the other.
const OPENAPI: &[u8] = include_str!("openapi.json").as_bytes();

/// Everything the routes share: the ring, the ingest path, limits, counters.
#[derive(Debug)]
pub struct Service {
    pub(super) ring: Arc<Ring>,
    pub(super) ingest: Arc<Ingest>,
    pub(super) limits: Limits,
    /// Which hours a POST may report.
    pub(super) admission: Admission,
    pub(super) metrics: Metrics,
    /// The open connections (for `--max-connections`, `/metrics` and the drain).
    pub(super) conns: Connections,
    /// Their read deadlines, by the same cells (`alarms`; the server's sweeper wakes them).
    pub(super) alarms: Alarms<IoWaker>,
    /// Until the server is ready, `/analytics` answers 503 naming the phase.
    readiness: Arc<Readiness>,
    /// The journal's health, when the server has one: POSTs get 503 while its writes fail.
    pub(super) journal: Option<Arc<JournalHealth>>,
    /// When a POST gets its answer (`ack`).
    pub(super) ack: Ack,
    /// The queue the writer applies from: `ingest` for a single server; in a cluster the
    /// edge pushes into `ingest` (the publish queue) and the writer applies the stream.
    pub(super) applied_from: Arc<Ingest>,
    /// Cluster mode's log, if on.
    pub(super) log: Option<Arc<dyn SharedLog>>,
    /// The thread that counts unique users over ranges (`/analytics/range`); without it the
    /// route answers 503.
    uniques: Option<Uniques>,
}

impl Service {
    pub fn new(ring: Arc<Ring>, ingest: Arc<Ingest>, limits: Limits, admission: Admission) -> Self {
        Self {
            ring,
            limits,
            admission,
            metrics: Metrics::default(),
            conns: Connections::new(limits.max_connections),
            alarms: Alarms::new(limits.max_connections.max(1)),
            readiness: Arc::new(Readiness::default()),
            journal: None,
            ack: Ack::queued(),
            applied_from: ingest.clone(),
            log: None,
            uniques: None,
            ingest,
        }
    }

    /// Counts `/analytics/range` on `uniques`' thread.
    pub fn with_uniques(mut self, uniques: Uniques) -> Self {
        self.uniques = Some(uniques);
        self
    }

    /// Cluster mode: POSTs go to `ingest` (the publish queue), the writer applies from
    /// `applied_from`, and `log` answers fresh reads and says whether it takes events.
    pub fn with_log(mut self, applied_from: Arc<Ingest>, log: Arc<dyn SharedLog>) -> Self {
        self.applied_from = applied_from;
        self.log = Some(log);
        self.set_starting(Starting::WaitingForNats);
        self
    }

    /// Gives the routes the journal's health (POSTs get 503 while its writes fail).
    pub fn with_journal(mut self, health: Arc<JournalHealth>) -> Self {
        self.journal = Some(health);
        self
    }

    /// When POSTs get their answers (`ack`; queued unless given).
    pub fn with_ack(mut self, ack: Ack) -> Self {
        self.ack = ack;
        self
    }

    /// Shares `readiness` (moved on by the writer thread) instead of its own.
    pub fn with_readiness(mut self, readiness: Arc<Readiness>) -> Self {
        self.readiness = readiness;
        self
    }

    /// Shows the writer's and the publisher's batch figures on `/metrics`.
    pub fn with_batch_stats(mut self, writer: Arc<BatchStats>, publisher: Arc<BatchStats>) -> Self {
        self.metrics = self.metrics.with_batch_stats(writer, publisher);
        self
    }

    /// The edge's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Wakes the connections whose deadline has passed by `now` (milliseconds of
    /// `clock::coarse_monotonic_ms`); the server's sweeper calls it.
    pub fn sweep(&self, now: u64) {
        let woken = self.alarms.sweep(now);
        if woken > 0 {
            self.metrics.connections_woken(woken);
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.conns.open()
    }

    /// The stop: refuses new connections and shuts the read side of every open one, which
    /// wakes it to finish the requests it has taken, answer them and close; then waits for
    /// them to close, until `deadline`. Call from an OS thread.
    pub fn drain_connections(&self, deadline: std::time::Instant) {
        self.conns.drain(|fd| {
            // SAFETY: `shutdown` takes any integer and touches no memory of ours; `drain`
            // passes only fds that are open sockets at this instant (see `conns`).
            unsafe {
                libc::shutdown(fd, libc::SHUT_RD);
            }
        });
        while self.conns.open() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Marks the state recovered: `/analytics` is served and `/readyz` answers 200.
    pub fn set_ready(&self) {
        self.readiness.set_ready();
    }

    /// Moves a server that is not ready yet on to `phase` (never back, never out of ready).
    pub fn set_starting(&self, phase: Starting) {
        self.readiness.set_starting(phase);
    }

    /// What the server is doing before it is ready; `None` once it is.
    pub fn starting(&self) -> Option<Starting> {
        self.readiness.starting()
    }

    /// The readiness the writer thread moves on.
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.readiness
    }

    fn is_ready(&self) -> bool {
        self.starting().is_none()
    }

    fn is_stopping(&self) -> bool {
        self.conns.draining() || self.ingest.is_closed()
    }

    /// What the POST path reads of the state (`post`).
    fn post_path(&self) -> PostPath<'_> {
        PostPath {
            ring: &self.ring,
            ingest: &self.ingest,
            admission: &self.admission,
            journal: self.journal.as_deref(),
            log: self.log.as_deref(),
            uniques: self.uniques.as_ref(),
        }
    }

    /// The counts of `hour`, never parking the OS thread: if the archive lock is held by the
    /// writer for an instant, the coroutine yields and tries again. The one way every route
    /// reads an hour (`/analytics`, each row of `/analytics/hours`).
    pub(super) fn read_counts(&self, hour: u32) -> Counts {
        loop {
            if let Some(counts) = self.ring.try_read(hour) {
                return counts;
            }
            may::coroutine::yield_now();
        }
    }

    /// Validates a GET of `/analytics`; in a cluster, waits first if it asks for `fresh=1`.
    fn get(&self, query: &[u8]) -> Result<u32, ApiError> {
        let hour = query::parse_get(query)?;
        if let Some(log) = &self.log {
            if query::wants_fresh(query)? && !log.wait_fresh() {
                return Err(RejectError::NotFresh.into());
            }
        }
        Ok(hour)
    }

    /// Checks a POST before its body is read (for `Expect: 100-continue`): the error it will
    /// get whatever the body holds, if any.
    pub fn precheck(&self, method: Method, target: &[u8], clock: &Clock) -> Option<ApiError> {
        let (path, query) = split_target(target);
        if path != b"/analytics" || method != Method::Post {
            return None;
        }
        self.post_path().admit(query, clock).err()
    }

    fn gauges(&self) -> Gauges<'_> {
        Gauges {
            applied: self.applied_from.applied(),
            sealed_drops: self.ring.sealed_drops(),
            duplicates: self.ring.duplicates(),
            freezes: self.ring.freezes(),
            cold: self
                .uniques
                .as_ref()
                .and_then(|u| u.cold())
                .map(|c| (c.figures().0, c.figures().1, c.failures())),
            late: self
                .uniques
                .as_ref()
                .and_then(|u| u.late())
                .map(|l| l.figures()),
            queued: self.ingest.queued()
                + self.log.as_ref().map_or(0, |_| self.applied_from.queued()),
            queue_capacity: self.ingest.capacity(),
            open_connections: self.conns.open(),
            archived_hours: loop {
                // As in `read_counts`: never park the OS thread on the archive's lock.
                match self.ring.archive().try_len() {
                    Some(n) => break n,
                    None => may::coroutine::yield_now(),
                }
            },
            ring_slots: self.ring.capacity(),
            ready: self.is_ready() && !self.is_stopping(),
            journal: self.journal.as_ref().map(|j| j.figures()),
            journal_failing: self.journal.as_ref().is_some_and(|j| j.failing()),
            log: self.log.as_deref(),
        }
    }

    /// Answers one request into `out` and counts it in `tally`. Returns the status sent.
    ///
    /// A run of POSTs shares one entry into the ingest gate (`run`, see
    /// [`Ingest::producer`]); any other request ends the run first, since some of them may
    /// wait (a read of a busy archive yields, a fresh read waits for the log). The caller
    /// ends the run (drops it) once its batch of requests is answered.
    ///
    /// `headers` are the request's; only routes that read one look at them (`Accept` on
    /// `/analytics/hours`, `If-None-Match` on the dashboard's files, `Idempotency-Key` on a
    /// POST of `/analytics`), so a GET of `/analytics` pays nothing for them.
    // Nine: the request (method, target, headers, framing), the connection's clock and
    // output, and what the batch carries from one request to the next (tally, run of
    // pushes). A struct to hold them would be built and torn down per request on the
    // hottest path.
    #[allow(clippy::too_many_arguments)]
    // Inline: its one caller is `Session::feed`, per request, which passes it constants of the
    // connection (`after`, the clock) that the compiler folds in once the two are one function
    // (about 20 instructions a GET by `scripts/instructions.sh`).
    #[inline]
    pub fn respond<'s>(
        &'s self,
        method: Method,
        target: &[u8],
        headers: &[httparse::Header<'_>],
        after: AfterAnswer,
        clock: &Clock,
        out: &mut Vec<u8>,
        tally: &mut Tally,
        rendered: &mut Rendered,
        run: &mut PostRun<'s>,
    ) -> Status {
        let (path, query) = split_target(target);
        let route = route_of(path, method);
        tally.route(route);
        if route != Route::AnalyticsPost {
            run.producer = None;
        }
        // `/analytics` by its route, which was matched once already; every other path below.
        // Until the server is ready, `/analytics` and `/analytics/hours` answer 503 naming
        // what it is doing.
        let starting = self.starting();
        let result = match (route, starting) {
            (
                Route::AnalyticsGet
                | Route::AnalyticsPost
                | Route::AnalyticsHours
                | Route::AnalyticsRange,
                Some(phase),
            ) => Err(RejectError::Recovering(phase).into()),
            (Route::AnalyticsGet, None) => self
                .get(query)
                .map(|hour| Answer::text(Body::Counts(hour, self.read_counts(hour)))),
            (Route::AnalyticsPost, None) => {
                self.post_path().post(query, headers, clock, run).map(|()| {
                    tally.accepted += 1;
                    Answer {
                        status: Status::NoContent,
                        content_type: "",
                        extra_headers: "",
                        body: Body::Static(b""),
                    }
                })
            }
            (Route::AnalyticsHours, None) => hours::answer(
                self.limits.max_range_hours,
                |hour| self.read_counts(hour),
                query,
                headers,
            ),
            (Route::AnalyticsRange, None) => {
                range::answer(self.uniques.as_ref(), self.limits.max_range_hours, query)
            }
            (Route::Healthz, _) => Ok(Answer::text(Body::Static(b"ok\n"))),
            (Route::Readyz, _) => {
                let not_ready = |line| {
                    Ok(Answer {
                        status: Status::ServiceUnavailable,
                        ..Answer::text(Body::Static(line))
                    })
                };
                match starting {
                    _ if self.is_stopping() => not_ready(b"not ready: shutting down\n"),
                    Some(phase) => not_ready(phase.readyz()),
                    None => Ok(Answer::text(Body::Static(b"ready\n"))),
                }
            }
            (Route::Metrics, _) => Ok(Answer {
                content_type: PROMETHEUS,
                ..Answer::text(Body::Page(metrics_page::render(
                    &self.metrics,
                    &self.gauges(),
                )))
            }),
            (Route::OpenApi, _) => Ok(Answer {
                content_type: "application/json",
                ..Answer::text(Body::Static(OPENAPI))
            }),
            // The dashboard and its files: bytes of the binary.
            (Route::Dashboard, _) => match assets::find(path) {
                Some(file) => {
                    let not_modified = file.not_modified(
                        headers
                            .iter()
                            .filter(|h| h.name.eq_ignore_ascii_case("if-none-match"))
                            .map(|h| h.value),
                    );
                    Ok(Answer {
                        status: if not_modified {
                            Status::NotModified
                        } else {
                            Status::Ok
                        },
                        content_type: file.asset.content_type,
                        extra_headers: file.headers.as_str(),
                        body: Body::Static(if not_modified { b"" } else { file.asset.body }),
                    })
                }
                None => Err(HttpError::NotFound.into()),
            },
            // Other methods of `/analytics` while starting: the phase, as for its own.
            (Route::Other, Some(phase)) if path == b"/analytics" => {
                Err(RejectError::Recovering(phase).into())
            }
            (Route::Other, _) => Err(misroute(path).into()),
        };
        let head_only = method == Method::Head;
        match result {
            Ok(a) => {
                let body = match &a.body {
                    Body::Counts(hour, counts) => {
                        rendered.write(out, *hour, *counts, after, clock, head_only);
                        None
                    }
                    Body::Static(b) => Some(*b),
                    Body::Page(page) => Some(page.as_bytes()),
                };
                if let Some(body) = body {
                    let (status, headers, content_type) =
                        (a.status, a.extra_headers, a.content_type);
                    response::write(
                        out,
                        status,
                        after,
                        clock,
                        headers,
                        content_type,
                        body,
                        head_only,
                    );
                }
                tally.respond(a.status);
                a.status
            }
            Err(err) => {
                response::write_error(out, &err, after, clock, head_only);
                tally.refuse(&err);
                err.status()
            }
        }
    }
}
