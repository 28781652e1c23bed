//! The HTTP edge: a small HTTP/1.1 server on `may` coroutines and `httparse`.
//!
//! The layers run one way: `accept` spawns a coroutine per connection; `conn` (the socket
//! loop) drives `session` (framing a byte stream into requests, without I/O; each head is read
//! by `head`'s fast path, or by httparse), which calls `routes` ([`Service`]: what each
//! request gets). `route` is the route table (path and method → [`route::Route`], its labels,
//! why a request has none); `hours` answers a range of hours, `range` unique users over one
//! (on the ranges thread of `crate::uniques`), `assets` the dashboard's files,
//! `metrics_page` `/metrics` (from the counters of `tally`); `response` holds the answers
//! (`Answer`, `Body`) and writes them (`counts_answers` those of `GET /analytics`, once per
//! change of the counts, per connection); `error` and `status` are the one table of what each
//! failure answers. When a POST's answer may go out is not decided here but in `crate::ack`;
//! cluster mode is reached only through `crate::shared_log::SharedLog`.
//!
//! Why not stock `may_minihttp`: ARCHITECTURE.md ("Transport") lists what its connection loop
//! gets wrong for a public endpoint (unbounded header memory, a POST body run as a request,
//! no answer to bad input, HTTP/1.0 keep-alive hangs); this loop keeps its hot-path shape
//! (read what is there, answer every complete request, write once).

pub mod accept;
pub mod admission;
pub mod assets;
pub mod conn;
pub mod counts_answers;
pub mod date;
pub mod error;
pub mod head;
pub mod hours;
pub mod limits;
pub mod metrics_page;
pub mod post;
pub mod range;
pub mod response;
pub mod route;
pub mod routes;
pub mod session;
pub mod status;
pub mod tally;
pub mod target;
pub mod waker;

pub use routes::{Admission, Method, Service};
