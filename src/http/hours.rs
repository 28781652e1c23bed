//! `GET /analytics/hours?from=…&to=…`: the counts of every hour of a range, one row per
//! hour (zero hours included), as JSON or, when the client asks for it, CSV.
//!
//! Each hour is read exactly as `GET /analytics` reads one (`Service::read_counts`: the
//! slot's seqlock snapshot, or the archive, never parking the thread), so each row is
//! consistent on its own; rows of different hours are read one after the other, as the same
//! number of GETs would be.

use super::error::ApiError;
use super::response::{Answer, Body};
use super::status::Status;
use crate::counts::Counts;
use crate::event::MILLIS_PER_HOUR;
use crate::query::{self, HourRange};

/// The content type of the JSON answer (the default).
pub const JSON: &str = "application/json";
/// The content type of the CSV answer.
pub const CSV: &str = "text/csv; charset=utf-8";
/// The CSV answer's first line.
pub const CSV_HEADER: &str = "hour_start_ms,unique_users,clicks,impressions\n";

/// How the rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::Csv => CSV,
        }
    }

    /// The format the request's `Accept` values ask for: CSV when they name `text/csv` with
    /// a weight above zero and above that of `application/json` (if named at all); JSON
    /// otherwise, including for no `Accept`, wildcards, or types this route does not have
    /// (a 406 would only get in the way of a client that takes JSON anyway). A range whose
    /// weight is malformed (see [`range_weight`]) weighs 0: it is never chosen.
    pub fn negotiate<'h>(accept: impl IntoIterator<Item = &'h [u8]>) -> Format {
        // Weights in thousandths (RFC 9110 §12.4.2 gives q at most three decimals).
        let (mut csv, mut json): (Option<u16>, Option<u16>) = (None, None);
        for value in accept {
            for range in value.split(|&b| b == b',') {
                let mut parts = range.split(|&b| b == b';');
                let media = parts.next().unwrap_or_default().trim_ascii();
                let slot = if media.eq_ignore_ascii_case(b"text/csv") {
                    &mut csv
                } else if media.eq_ignore_ascii_case(b"application/json") {
                    &mut json
                } else {
                    continue;
                };
                let q = range_weight(parts).unwrap_or(0);
                *slot = Some(slot.map_or(q, |old| old.max(q)));
            }
        }
        match (csv, json) {
            (Some(c), json) if c > 0 && json.is_none_or(|j| c > j) => Format::Csv,
            _ => Format::Json,
        }
    }
}

/// The weight of one media range, from its parameters: 1000 when it gives none; `None`
/// (malformed) when its `q` has no value or not a qvalue, or when it gives `q` twice.
fn range_weight<'p>(params: impl Iterator<Item = &'p [u8]>) -> Option<u16> {
    let mut q = None;
    for p in params {
        let p = p.trim_ascii();
        let (name, value) = match p.iter().position(|&b| b == b'=') {
            Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
            None => (p, None),
        };
        if !name.trim_ascii().eq_ignore_ascii_case(b"q") {
            continue;
        }
        if q.is_some() {
            return None;
        }
        q = Some(weight(value?)?);
    }
    Some(q.unwrap_or(1000))
}

/// A qvalue (RFC 9110 §12.4.2: `0`, `0.` and up to three digits, `1`, `1.` and up to three
/// zeros) in thousandths: `1` is 1000, `0.5` is 500, `0.125` is 125; `None` for anything
/// else, so that a malformed weight never picks CSV.
fn weight(v: &[u8]) -> Option<u16> {
    let v = v.trim_ascii();
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &v[v.len()..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = frac
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .fold(0u16, |t, &d| t * 10 + u16::from(d - b'0'));
    match int {
        b"1" if thousandths == 0 => Some(1000),
        b"0" => Some(thousandths),
        _ => None,
    }
}

/// The rows of `range`, each hour's counts from `read`.
pub fn render(range: HourRange, format: Format, mut read: impl FnMut(u32) -> Counts) -> String {
    // The longest row is about 130 bytes; most are under 90.
    let mut out = String::with_capacity(96 * range.len() as usize + 64);
    let mut num = itoa::Buffer::new();
    match format {
        Format::Json => out.push('['),
        Format::Csv => out.push_str(CSV_HEADER),
    }
    for hour in range.hours() {
        let c = read(hour);
        let start = u64::from(hour) * MILLIS_PER_HOUR;
        match format {
            Format::Json => {
                if hour != range.first {
                    out.push_str(",\n");
                }
                out.push_str("{\"hour_start_ms\":");
                out.push_str(num.format(start));
                out.push_str(",\"unique_users\":");
                out.push_str(num.format(c.unique_users));
                out.push_str(",\"clicks\":");
                out.push_str(num.format(c.clicks));
                out.push_str(",\"impressions\":");
                out.push_str(num.format(c.impressions));
                out.push('}');
            }
            Format::Csv => {
                for (i, v) in [start, c.unique_users, c.clicks, c.impressions]
                    .into_iter()
                    .enumerate()
                {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(num.format(v));
                }
                out.push('\n');
            }
        }
    }
    if format == Format::Json {
        out.push_str("]\n");
    }
    out
}

/// The answer to a GET (or HEAD) of `/analytics/hours`.
/// `read` reads one hour, as `GET /analytics` does.
pub(super) fn answer(
    max_range_hours: u32,
    read: impl FnMut(u32) -> Counts,
    query: &[u8],
    headers: &[httparse::Header<'_>],
) -> Result<Answer, ApiError> {
    let range = query::parse_range(query, max_range_hours)?;
    let format = Format::negotiate(
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("accept"))
            .map(|h| h.value),
    );
    let page = render(range, format, read);
    Ok(Answer {
        status: Status::Ok,
        content_type: format.content_type(),
        // The body depends on Accept: a cache must not hand the JSON to a CSV client.
        extra_headers: "Vary: Accept\r\n",
        body: Body::Page(page),
    })
}

#[cfg(test)]
#[path = "hours_tests.rs"]
mod tests;
