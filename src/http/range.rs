//! `GET /analytics/range?from=…&to=…`: unique users over all the hours of a range (a union,
//! never a sum), clicks and impressions summed, in the format of `GET /analytics`.
//!
//! The count runs on the ranges thread (`uniques`): its work grows with the users of the
//! range, which an HTTP worker must not spend between its other connections' requests. The
//! request's coroutine parks on a `may` channel until the answer comes, never its OS thread.

use super::error::ApiError;
use super::response::{Answer, Body};
use crate::query;
use crate::uniques::{RangeError, Uniques};

/// A GET of `/analytics/range` with `query`: the range's counts, from the ranges thread
/// (`uniques`; 503 without one, as when it is busy).
pub(super) fn answer(
    uniques: Option<&Uniques>,
    max_range_hours: u32,
    query: &[u8],
) -> Result<Answer, ApiError> {
    let range = query::parse_range(query, max_range_hours)?;
    let uniques = uniques.ok_or(RangeError::Busy)?;
    let (tx, rx) = may::sync::mpsc::channel();
    uniques.ask(range, move |answer| {
        // The request may be gone (its connection closed); nothing waits then.
        let _ = tx.send(answer);
    })?;
    // No answer at all only if the thread died with the range: not counted.
    let counts = rx.recv().unwrap_or(Err(RangeError::Failed))?;
    // The answer's format lives in `counts`; it is ASCII.
    let body = String::from_utf8_lossy(counts.render().as_bytes()).into_owned();
    Ok(Answer::text(Body::Page(body)))
}
