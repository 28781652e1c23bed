//! `from` / `to` of the range APIs (`/analytics/hours`, `/analytics/range`): two bounds by the
//! rules of a timestamp, in order, and at most `--max-range-hours` hours.

use super::{bound, set_once, QueryError};
use crate::event::hour_of;

/// The hours a range query asks for: `from` and `to` in milliseconds, both included by
/// their hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HourRange {
    /// The hour of `from`.
    pub first: u32,
    /// The hour of `to` (at least `first`).
    pub last: u32,
}

impl HourRange {
    /// The hours in the range, both ends included.
    pub fn len(&self) -> u32 {
        self.last - self.first + 1
    }

    /// Never: a range holds at least the hour of `from`.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn hours(&self) -> std::ops::RangeInclusive<u32> {
        self.first..=self.last
    }
}

/// A GET of `/analytics/hours`: `from` and `to` by the rules of `timestamp`, `from <= to`,
/// and at most `max_hours` hours from the hour of `from` to that of `to`, both included.
/// Errors come in that order: each bound alone (`from` first), then the pair.
pub fn parse_range(query: &[u8], max_hours: u32) -> Result<HourRange, QueryError> {
    let (mut from, mut to) = (None, None);
    for pair in query.split(|&b| b == b'&') {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        match key {
            b"from" => set_once(&mut from, value, "from")?,
            b"to" => set_once(&mut to, value, "to")?,
            _ => {}
        }
    }
    let from = bound(from, "from")?;
    let to = bound(to, "to")?;
    if from > to {
        return Err(QueryError::RangeReversed);
    }
    let range = HourRange {
        first: hour_of(from),
        last: hour_of(to),
    };
    if range.len() > max_hours {
        return Err(QueryError::RangeTooLong { max_hours });
    }
    Ok(range)
}
