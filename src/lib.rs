//! hourtally counts, for every UTC hour, the unique users, clicks and impressions it is told
//! about over HTTP, and answers for any hour in microseconds.
//!
//! ```text
//!  POST ─ query::parse_post ─► Event{hour, user fingerprint, kind} ─► Ingest (bounded queue) ─► writer thread
//!                                  │                                     │ full → 503            │
//!                                  │                                                             ▼
//!  GET ── query::parse_get ── Ring::try_read(hour) ── seqlock snapshot of one slot ◄── RingWriter::apply
//!                                                     or the archive of sealed hours      + publish
//! ```
//!
//! - [`ring`]: a fixed ring of hour slots (`hour % capacity`). Each slot's hour and counters
//!   are published through a sequence lock ([`ring::slot`]), so a reader never waits for the
//!   writer and never sees a torn answer; the user fingerprints of a slot live in a striped
//!   set ([`ring::users`]) that only the writer touches. When a slot is recycled for a newer
//!   hour, the old hour's totals move to the [`ring::archive`] first.
//! - [`writer`]: one OS thread drains the queue ([`ingest`], on [`queue`]) and applies events
//!   in order by the deterministic apply rule: the ring's state is a pure function of the
//!   applied sequence. It parks when idle and is woken by the producer that finds it parked.
//!   Before it applies a batch it hands it to a [`writer::Sink`]: the journal, or in a
//!   cluster the stream's feed.
//! - [`conns`]: the registry of open connections, which a stopping server wakes so that every
//!   request taken is answered before its connection closes.
//! - `http` (feature `server`): a small HTTP/1.1 connection loop on `may` coroutines and
//!   `httparse`, hardened against every bad input of ARCHITECTURE.md, "The API"; POSTs are
//!   admitted by the clock so that no admitted event can seal another ("What a 204 means").
//! - `ack` (feature `server`): when a POST gets its answer (queued, on disk, or in the log).
//! - `journal`, `single` (feature `server`): the data directory and the append-only journal of
//!   events, replayed at start ("Durability"); `cluster`: several servers on one NATS
//!   JetStream stream ("Scale-out").
//! - `server` wires them: one writer thread, fed by the mode `single` or `cluster` builds
//!   (`start`); `main` alone turns an error into an exit code. ARCHITECTURE.md, "Module map",
//!   has every module in its tier, which `tests/module_graph.rs` checks.
//!
//! Trade-offs: counts are exact but for fingerprint collisions (about n²/2⁶⁵ for n users in an
//! hour, see [`event::fingerprint`]); by default a POST is acknowledged once queued, so a GET
//! right after it may not include it yet (the writer publishes every batch of at most
//! [`writer::BATCH`] events, microseconds behind), and a crash can lose the events still
//! queued and, by `--fsync`, the last journal writes (`--fsync always` and `--ack log` make the
//! POST wait instead); POSTs for hours older than the admission window are refused, which is
//! what makes a 204 always count and replicas and replays agree.
//!
//! Concurrency is verified with loom (`loom-tests/`): build with `--cfg hourtally_loom` and
//! [`sync`] swaps every atomic, lock and parker for loom's.

// `clippy.toml` refuses `thread_local!` (no coroutine may touch thread-local state). Code that
// exists only in unit-test builds runs on the test harness's plain threads; the lint cannot be
// allowed on one item (it fires on the macro's expansion), so it is allowed for those builds,
// and the server's own build is still checked.
#![cfg_attr(test, allow(clippy::disallowed_macros))]

pub mod alarms;
pub mod bytes;
pub mod civil;
pub mod clock;
pub mod coldset;
pub mod conns;
pub mod counts;
pub mod event;
pub mod freezer;
pub mod histogram;
pub mod ingest;
pub mod publisher;
pub mod query;
pub mod queue;
pub mod ring;
pub mod sync;
pub mod writer;

#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod ack;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod cluster;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod cold;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod config;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod durable;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod http;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod journal;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod late;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod log;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod metrics;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod readiness;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod record;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod server;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod shared_log;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod single;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod start;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod thread;
#[cfg(all(feature = "server", not(hourtally_loom)))]
pub mod uniques;
