//! A POST's query: the usual shape read in one pass, anything else through the general scan.

use super::{event_id, leading_timestamp, scan, timestamp, user, QueryError, MAX_USER_BYTES};
use crate::bytes;
use crate::event::{event_id_fingerprint, fingerprint, hour_of, Event, Kind, MAX_EVENT_ID_BYTES};

/// A POST's query: the event it reports.
pub fn parse_post(query: &[u8]) -> Result<Event, QueryError> {
    match usual_post(query) {
        Some(event) => Ok(event),
        None => parse_post_scanned(query),
    }
}

/// The event of a POST query in the usual shape, `timestamp=DIGITS&user=NAME&click` (or
/// `&impression`), with or without `&event_id=ID` right after the name or at the end, read in
/// one pass; `None` for anything else (which the general scan answers, errors included).
#[inline]
pub(super) fn usual_post(query: &[u8]) -> Option<Event> {
    let rest = query.strip_prefix(b"timestamp=")?;
    // The digits end at the first non-digit, which must be the `&`.
    let (ms, digits) = leading_timestamp(rest)?;
    let rest = rest[digits..].strip_prefix(b"&user=")?;
    // One scan finds the name's end and any escape in it.
    let stop = bytes::find_any(rest, [b'&', b'%', b'+'])?;
    // The usual name has nothing to decode; one with an escape (or empty, or too long)
    // takes the general scan.
    if rest[stop] != b'&' || !(1..=MAX_USER_BYTES).contains(&stop) {
        return None;
    }
    let user = fingerprint(&rest[..stop]);
    let kind = match &rest[stop + 1..] {
        b"click" => Kind::Click,
        b"impression" => Kind::Impression,
        tail => return usual_post_with_id(hour_of(ms), user, tail),
    };
    Some(Event::new(hour_of(ms), user, kind))
}

/// The rest of [`usual_post`] after the user name when it is not just the kind: the kind
/// with `event_id=ID&` before it or `&event_id=ID` after it. Out of line, so that the usual
/// POST without an id is read by the same instructions as before ids existed.
#[inline(never)]
fn usual_post_with_id(hour: u32, user: u64, mut tail: &[u8]) -> Option<Event> {
    let mut id = 0;
    if let Some(after) = tail.strip_prefix(b"event_id=") {
        // An id before the kind: it ends at the `&`.
        let end = bytes::find_any(after, [b'&', b'%', b'+'])?;
        if after[end] != b'&' {
            return None;
        }
        id = usual_event_id(&after[..end])?;
        tail = &after[end + 1..];
    }
    let (kind, after) = if let Some(after) = tail.strip_prefix(b"click") {
        (Kind::Click, after)
    } else {
        (Kind::Impression, tail.strip_prefix(b"impression")?)
    };
    if !after.is_empty() {
        // Only an id may follow the kind, and only if none came before it.
        if id != 0 {
            return None;
        }
        let value = after.strip_prefix(b"&event_id=")?;
        if bytes::find_any(value, [b'&', b'%', b'+']).is_some() {
            return None;
        }
        id = usual_event_id(value)?;
    }
    Some(Event::new(hour, user, kind).with_id(id))
}

/// The fingerprint of an event id with nothing to decode, if it is 1 to
/// [`MAX_EVENT_ID_BYTES`] bytes (`None`: the general scan answers).
#[inline]
fn usual_event_id(value: &[u8]) -> Option<u64> {
    (1..=MAX_EVENT_ID_BYTES)
        .contains(&value.len())
        .then(|| event_id_fingerprint(value))
}

/// [`parse_post`] of any query, by the general scan.
pub(super) fn parse_post_scanned(query: &[u8]) -> Result<Event, QueryError> {
    let raw = scan(query, true)?;
    let hour = hour_of(timestamp(raw.timestamp)?);
    let user = user(raw.user)?;
    let kind = match (raw.click, raw.impression) {
        (true, false) => Kind::Click,
        (false, true) => Kind::Impression,
        (false, false) => return Err(QueryError::KindMissing),
        (true, true) => return Err(QueryError::KindBoth),
    };
    Ok(Event::new(hour, user, kind).with_id(event_id(raw.event_id)?))
}
