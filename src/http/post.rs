//! `POST /analytics`: a POST's admission (its query, its hour against the window and the
//! ring, its event id) and its push into the ingest path, through the connection's run of
//! pushes ([`PostRun`]).

use super::admission::Admission;
use super::date::Clock;
use super::error::{ApiError, RejectError};
use crate::event::Event;
use crate::ingest::{Ingest, Producer, PushError};
use crate::journal::JournalHealth;
use crate::query;
use crate::ring::Ring;
use crate::shared_log::SharedLog;
use crate::uniques::Uniques;

/// A connection's run of POSTs ([`Ingest::producer`]): its entry into the ingest gate, once
/// a POST began it, and the source its events carry (`Event::src`: with `--fsync always`,
/// the connection's slot, so that the writer can tell it which of them a failed group
/// refused; 0 otherwise).
#[derive(Debug, Default)]
pub struct PostRun<'s> {
    pub producer: Option<Producer<'s>>,
    pub src: u16,
}

/// The event id of an `Idempotency-Key` header, if the request has one (at most one).
fn idempotency_key(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, ApiError> {
    const NAME: &str = "idempotency-key";
    let mut found = None;
    for h in headers {
        // The length first: most fields are not this one, and are told apart in one compare.
        if h.name.len() == NAME.len() && h.name.eq_ignore_ascii_case(NAME) {
            if found.is_some() {
                return Err(query::QueryError::Duplicate("Idempotency-Key").into());
            }
            found = Some(query::header_event_id(h.value)?);
        }
    }
    Ok(found)
}

/// What a POST reads of the server's state, borrowed from the edge's `Service` for each
/// request (`Service::post_path`).
#[derive(Clone, Copy)]
pub(super) struct PostPath<'s> {
    pub ring: &'s Ring,
    pub ingest: &'s Ingest,
    /// Which hours a POST may report.
    pub admission: &'s Admission,
    /// The journal's health, when the server has one: POSTs get 503 while its writes fail.
    pub journal: Option<&'s JournalHealth>,
    /// Cluster mode's log, if on: POSTs get 503 while it refuses events.
    pub log: Option<&'s dyn SharedLog>,
    /// The ranges thread, whose cold tier and late counts tell whether a late event's hour
    /// kept its users.
    pub uniques: Option<&'s Uniques>,
}

impl<'s> PostPath<'s> {
    /// Whether the users of `hour`, which left the ring, are kept for its late events: it
    /// had none, or they wait to be stored, or the cold tier has its file. Never parks the
    /// thread: a lock held right now yields the coroutine and asks again.
    fn users_kept(&self, hour: u32) -> bool {
        // What it had when it left: its late view's base if late events came for it (their
        // count raises its archive entry), else its archive entry. The view is published
        // before the archive entry is raised, so the archive is read first.
        let late = self.uniques.and_then(|u| u.late());
        let had = loop {
            let archived = self.ring.archive().try_get(hour);
            let view = late.map_or(Some(None), |l| l.try_view(hour));
            match (archived, view) {
                (_, Some(Some(view))) => break view.base_len,
                (Ok(counts), Some(None)) => break counts.map_or(0, |c| c.unique_users),
                _ => may::coroutine::yield_now(),
            }
        };
        if had == 0 {
            return true;
        }
        loop {
            let leaving = self
                .ring
                .leaving()
                .map_or(Some(false), |l| l.try_contains(hour));
            let filed = self
                .uniques
                .and_then(|u| u.cold())
                .map_or(Some(false), |c| c.try_has(hour));
            match (leaving, filed) {
                (Some(leaving), Some(filed)) => return leaving || filed,
                _ => may::coroutine::yield_now(),
            }
        }
    }

    /// A POST's event, if its query is valid and its hour admitted: what is known before its
    /// body, and the same whatever the body holds.
    pub(super) fn admit(&self, query: &[u8], clock: &Clock) -> Result<Event, ApiError> {
        let event = query::parse_post(query)?;
        self.admission.check(event.hour, clock.hour())?;
        Ok(event)
    }

    /// Validates, admits and queues one POST of `/analytics`, through the run of pushes
    /// `run` (entered here if the run has not begun).
    pub(super) fn post(
        &self,
        query: &[u8],
        headers: &[httparse::Header<'_>],
        clock: &Clock,
        run: &mut PostRun<'s>,
    ) -> Result<(), ApiError> {
        let mut event = self.admit(query, clock)?;
        if let Some(id) = idempotency_key(headers)? {
            if event.id != 0 {
                return Err(query::QueryError::EventIdBoth.into());
            }
            event.id = id;
        }
        if event.id != 0 {
            self.admission.check_id(event.hour, clock.hour())?;
        }
        // With refusals (`--fsync always`), a POST goes on to the disk, which takes it or
        // refuses it: that try is also how the journal finds that space came back. Unless
        // the journal holds failed writes to retry: its group would only queue behind them.
        if self
            .journal
            .is_some_and(|j| j.failing() && (run.src == 0 || j.holding()))
        {
            return Err(RejectError::JournalFailing.into());
        }
        if self.log.is_some_and(|l| l.refusing()) {
            return Err(RejectError::LogFailing.into());
        }
        // Advisory: only clocks further apart than the admission margin get here. With a cold
        // tier an admitted event of a sealed hour is late, and counted (`late`), if it is
        // within the late window and its hour's users are kept.
        match (self.ring.late(), self.ring.sealed_by(event.hour)) {
            (_, None) => {}
            (None, Some(_)) => return Err(RejectError::SealedHour.into()),
            (Some(late), Some(holder)) => {
                if u64::from(event.hour) + u64::from(late.window()) < u64::from(holder) {
                    return Err(RejectError::SealedHour.into());
                }
                if !self.users_kept(event.hour) {
                    // Past the window of the newest hour the ring took (its file may be gone
                    // with the retention): the writer would seal it. Else its users were
                    // never kept (it left before this server kept a cold tier).
                    let newest = self.ring.newest_published();
                    if newest != crate::ring::EMPTY
                        && u64::from(event.hour) + u64::from(late.window()) < u64::from(newest)
                    {
                        return Err(RejectError::SealedHour.into());
                    }
                    return Err(RejectError::LateWithoutUsers.into());
                }
            }
        }
        let to_api = |e| match e {
            PushError::Full => RejectError::QueueFull.into(),
            PushError::Closed => RejectError::ShuttingDown.into(),
        };
        let src = run.src;
        let producer = match &mut run.producer {
            Some(producer) => producer,
            None => run
                .producer
                .insert(self.ingest.producer_for(src).map_err(to_api)?),
        };
        producer.push(event).map_err(to_api)
    }
}
