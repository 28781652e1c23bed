//! `--verify` during the run: every answer is checked against the request it answers, as it
//! arrives, so a server that answers the wrong thing (or the right thing out of step) is
//! caught where it happens, not only by the counts at the end ([`crate::verify`]).
//!
//! What each answer must be (README.md, "API"):
//! - `POST /analytics` → `204`, or `503` when the server's queue is full (not counted);
//! - `GET /analytics` → `200` and exactly `unique_users,U\nclicks,C\nimpressions,I\n`
//!   ([`Counts::parse`]);
//! - `HEAD /analytics` → `200`, no body, and a `Content-Length` that a counts body can have
//!   (from three zeros to three `u64::MAX`);
//! - `GET /analytics/hours` → `200` and one row per hour asked for, in order, each in the
//!   documented CSV (`hour_start_ms,unique_users,clicks,impressions` and rows of four
//!   numbers) or JSON (`[{"hour_start_ms":…,"unique_users":…,"clicks":…,"impressions":…},…]`,
//!   one object a line);
//! - `GET /metrics` → `200` and a Prometheus text body naming `hourtally_` metrics, ending
//!   in a newline.
//!
//! And over time: a server only ever adds to an hour, so on one connection, whose answers
//! come one after the other, no counter of an hour (read by `GET /analytics` or as a row of
//! `/analytics/hours`) may go down from one answer to the next. Each connection keeps the
//! last counts it read per hour ([`Checker`]); a new connection starts afresh.

use std::collections::HashMap;

use hourtally::civil::hour_label;
use hourtally::counts::Counts;
use hourtally::event::MILLIS_PER_HOUR;

use crate::conn::Reader;
use crate::mix::{Op, Req};
use crate::response::Reply;
use crate::stats::Stats;

/// The first line of a CSV answer of `/analytics/hours` (README.md, "The range API").
const CSV_HEADER: &[u8] = b"hour_start_ms,unique_users,clicks,impressions\n";

/// The shortest and longest `GET /analytics` body: three zeros, three `u64::MAX`; the range
/// of a HEAD answer's `Content-Length`.
fn counts_body_lengths() -> (u64, u64) {
    let max = Counts {
        unique_users: u64::MAX,
        clicks: u64::MAX,
        impressions: u64::MAX,
    };
    (
        Counts::default().render().as_bytes().len() as u64,
        max.render().as_bytes().len() as u64,
    )
}

/// What one connection's answers have shown so far.
#[derive(Default)]
pub struct Checker {
    /// Per hour (since the epoch), the counts of the last answer that read it.
    last: HashMap<u64, Counts>,
}

impl Checker {
    /// A new connection: what the previous one read no longer binds its answers.
    pub fn reset(&mut self) {
        self.last.clear();
    }

    /// Checks `reply`, read by `reader`, as the answer to `req`, and counts it in `stats`
    /// (with its bytes) when it is wrong.
    pub fn check_answer(&mut self, req: &Req, reply: &Reply, reader: &Reader, stats: &mut Stats) {
        if let Err(why) = self.check(req, reply, reader.body(reply)) {
            stats.wrong_answer(req, &why, reader.raw(reply));
        }
    }

    /// Why `reply` (its body `body`) is not a right answer to `req`, if it is not.
    pub fn check(&mut self, req: &Req, reply: &Reply, body: &[u8]) -> Result<(), String> {
        let status_200 = || match reply.status {
            200 => Ok(()),
            s => Err(format!("status {s}, not 200")),
        };
        match req.op {
            Op::Post(_) => match reply.status {
                204 | 503 => Ok(()),
                s => Err(format!("status {s}, not 204 (or 503, queue full)")),
            },
            Op::Get => {
                status_200()?;
                let counts = Counts::parse(body).ok_or(
                    "the body is not `unique_users,U\\nclicks,C\\nimpressions,I\\n`".to_string(),
                )?;
                self.saw(req.hour, counts)
            }
            Op::Head => {
                status_200()?;
                if !body.is_empty() {
                    return Err("a body in the answer to a HEAD".into());
                }
                let (shortest, longest) = counts_body_lengths();
                match reply.content_length {
                    Some(n) if (shortest..=longest).contains(&n) => Ok(()),
                    Some(n) => Err(format!(
                        "Content-Length {n}: no counts body is that long (from {shortest} to \
                         {longest} bytes)"
                    )),
                    None => Err("no Content-Length".into()),
                }
            }
            Op::Hours { first, csv } => {
                status_200()?;
                let rows = if csv {
                    csv_rows(body).ok_or("the body is not the documented CSV")?
                } else {
                    json_rows(body).ok_or("the body is not the documented JSON")?
                };
                let asked = req.hour.saturating_sub(first) + 1;
                if rows.len() as u64 != asked {
                    return Err(format!(
                        "{} rows for the {asked} hours asked for",
                        rows.len()
                    ));
                }
                for (hour, (start_ms, counts)) in (first..).zip(rows) {
                    if start_ms != hour * MILLIS_PER_HOUR {
                        return Err(format!(
                            "a row for hour_start_ms {start_ms} where hour {hour} ({}) belongs",
                            hour_label(hour)
                        ));
                    }
                    self.saw(hour, counts).map_err(|why| {
                        format!("the row of hour {hour} ({}): {why}", hour_label(hour))
                    })?;
                }
                Ok(())
            }
            Op::Metrics => {
                status_200()?;
                if !body.windows(10).any(|w| w == b"hourtally_") {
                    Err("no `hourtally_` metric in the body".into())
                } else if body.last() != Some(&b'\n') {
                    Err("the body does not end with a newline".into())
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Records that an answer read `now` for `hour`; an error when a counter went down since
    /// the previous answer that read it.
    fn saw(&mut self, hour: u64, now: Counts) -> Result<(), String> {
        let Some(before) = self.last.insert(hour, now) else {
            return Ok(());
        };
        for (name, b, n) in [
            ("unique_users", before.unique_users, now.unique_users),
            ("clicks", before.clicks, now.clicks),
            ("impressions", before.impressions, now.impressions),
        ] {
            if n < b {
                return Err(format!(
                    "{name} went down from {b} to {n} since this connection's previous answer \
                     for the hour"
                ));
            }
        }
        Ok(())
    }
}

/// A decimal number of ASCII digits that fits `u64`; nothing else (no sign, no space).
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The rows of a CSV answer: the header line, then `hour_start_ms,unique_users,clicks,
/// impressions` as four numbers a line, each line ending in `\n`.
fn csv_rows(body: &[u8]) -> Option<Vec<(u64, Counts)>> {
    let rows = body.strip_prefix(CSV_HEADER)?.strip_suffix(b"\n")?;
    rows.split(|&b| b == b'\n')
        .map(|line| {
            let mut fields = line.split(|&b| b == b',').map(number);
            let row = (
                fields.next()??,
                Counts {
                    unique_users: fields.next()??,
                    clicks: fields.next()??,
                    impressions: fields.next()??,
                },
            );
            fields.next().is_none().then_some(row)
        })
        .collect()
}

/// The rows of a JSON answer: `[`, objects
/// `{"hour_start_ms":N,"unique_users":N,"clicks":N,"impressions":N}` separated by `,\n`,
/// then `]\n`.
fn json_rows(body: &[u8]) -> Option<Vec<(u64, Counts)>> {
    let rows = body.strip_prefix(b"[")?.strip_suffix(b"]\n")?;
    let mut out = Vec::new();
    let mut rest = rows;
    loop {
        let (object, tail) = match rest.windows(2).position(|w| w == b",\n") {
            Some(i) => (&rest[..i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
        let mut s = object.strip_prefix(b"{")?.strip_suffix(b"}")?;
        let mut field = |name: &[u8], last: bool| -> Option<u64> {
            s = s
                .strip_prefix(b"\"")?
                .strip_prefix(name)?
                .strip_prefix(b"\":")?;
            let end = if last {
                s.len()
            } else {
                s.iter().position(|&b| b == b',')?
            };
            let v = number(&s[..end])?;
            s = s.get(end + usize::from(!last)..)?;
            Some(v)
        };
        let start = field(b"hour_start_ms", false)?;
        let counts = Counts {
            unique_users: field(b"unique_users", false)?,
            clicks: field(b"clicks", false)?,
            impressions: field(b"impressions", true)?,
        };
        out.push((start, counts));
        match tail {
            Some(t) => rest = t,
            None => return Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::{parse_response, Parsed};
    use hourtally::event::Kind;
    use std::time::Instant;

    /// 2026-12-06T16Z.
    const HOUR: u64 = 499_048;

    fn req(op: Op) -> Req {
        Req {
            op,
            hour: HOUR,
            user: 0,
            t0: Instant::now(),
            probe: false,
        }
    }

    /// What the checker says of `raw`, a whole answer to `op` as it came off the wire.
    fn check(checker: &mut Checker, op: Op, raw: &[u8]) -> Result<(), String> {
        let Parsed::Done(reply) = parse_response(raw, op.framing()) else {
            panic!("a complete answer: {:?}", String::from_utf8_lossy(raw))
        };
        assert_eq!(reply.len, raw.len(), "one answer");
        checker.check(&req(op), &reply, &raw[reply.head_len..])
    }

    /// A `200` with `body`.
    fn ok(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn counts(u: u64, c: u64, i: u64) -> Vec<u8> {
        ok(&format!("unique_users,{u}\nclicks,{c}\nimpressions,{i}\n"))
    }

    #[test]
    fn a_post_must_be_answered_204_or_503() {
        let mut c = Checker::default();
        let post = Op::Post(Kind::Click);
        assert_eq!(
            check(&mut c, post, b"HTTP/1.1 204 No Content\r\n\r\n"),
            Ok(())
        );
        assert_eq!(
            check(
                &mut c,
                post,
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
            ),
            Ok(())
        );
        assert!(check(&mut c, post, &counts(1, 2, 3)).is_err());
        assert!(check(
            &mut c,
            post,
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        )
        .is_err());
    }

    #[test]
    fn a_get_must_be_answered_200_with_exactly_the_counts_body() {
        let mut c = Checker::default();
        assert_eq!(check(&mut c, Op::Get, &counts(1, 2, 3)), Ok(()));
        for bad in [
            // Bytes of another answer where the body should be.
            ok("HTTP/1.1 204 No Content\r\n\r\nHTTP"),
            ok("unique_users,1\nclicks,2\n"),
            ok("unique_users,1\nclicks,2\nimpressions,3"),
            ok("unique_users,1\nclicks,2\nimpressions,3\nunique"),
            ok("clicks,2\nunique_users,1\nimpressions,3\n"),
            ok(""),
        ] {
            let why = check(&mut Checker::default(), Op::Get, &bad)
                .expect_err("a bad body is a wrong answer");
            assert!(why.contains("body"), "{why}");
        }
        let why = check(&mut c, Op::Get, b"HTTP/1.1 204 No Content\r\n\r\n")
            .expect_err("a 204 to a GET is a wrong answer");
        assert!(why.contains("status 204"), "{why}");
    }

    #[test]
    fn a_counter_that_goes_down_on_one_connection_is_a_wrong_answer_until_it_reconnects() {
        let mut c = Checker::default();
        assert_eq!(check(&mut c, Op::Get, &counts(5, 3, 2)), Ok(()));
        assert_eq!(
            check(&mut c, Op::Get, &counts(5, 3, 2)),
            Ok(()),
            "no change"
        );
        assert_eq!(check(&mut c, Op::Get, &counts(6, 4, 2)), Ok(()), "growth");
        let why = check(&mut c, Op::Get, &counts(6, 3, 9)).expect_err("clicks went down");
        assert!(why.contains("clicks went down from 4 to 3"), "{why}");
        let why = check(&mut c, Op::Get, &counts(5, 3, 9)).expect_err("users went down");
        assert!(why.contains("unique_users went down from 6 to 5"), "{why}");
        // Another hour is another story.
        let mut other = req(Op::Get);
        other.hour = HOUR - 1;
        let reply = Reply {
            status: 200,
            at: 0,
            head_len: 0,
            len: 0,
            close: false,
            content_length: None,
        };
        assert_eq!(
            c.check(&other, &reply, b"unique_users,0\nclicks,0\nimpressions,0\n"),
            Ok(())
        );
        // A new connection has seen nothing yet.
        c.reset();
        assert_eq!(check(&mut c, Op::Get, &counts(1, 1, 1)), Ok(()));
    }

    #[test]
    fn a_head_must_be_answered_200_with_the_content_length_of_a_counts_body() {
        let head = |cl: &str| format!("HTTP/1.1 200 OK\r\n{cl}\r\n").into_bytes();
        let mut c = Checker::default();
        assert_eq!(
            check(&mut c, Op::Head, &head("Content-Length: 38\r\n")),
            Ok(())
        );
        // Three u64::MAX: 95 bytes.
        assert_eq!(
            check(&mut c, Op::Head, &head("Content-Length: 95\r\n")),
            Ok(())
        );
        for bad in ["Content-Length: 37\r\n", "Content-Length: 96\r\n", ""] {
            assert!(check(&mut c, Op::Head, &head(bad)).is_err(), "{bad:?}");
        }
        assert!(check(
            &mut c,
            Op::Head,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 38\r\n\r\n"
        )
        .is_err());
    }

    const CSV: &str = "hour_start_ms,unique_users,clicks,impressions\n\
                       1796565600000,1,2,3\n1796569200000,0,0,0\n1796572800000,4,5,6\n";
    const JSON: &str = "[{\"hour_start_ms\":1796565600000,\"unique_users\":1,\"clicks\":2,\"impressions\":3},\n\
                        {\"hour_start_ms\":1796569200000,\"unique_users\":0,\"clicks\":0,\"impressions\":0},\n\
                        {\"hour_start_ms\":1796572800000,\"unique_users\":4,\"clicks\":5,\"impressions\":6}]\n";
    /// The three hours of [`CSV`] and [`JSON`], ending at [`HOUR`].
    const CSV_RANGE: Op = Op::Hours {
        first: HOUR - 2,
        csv: true,
    };
    const JSON_RANGE: Op = Op::Hours {
        first: HOUR - 2,
        csv: false,
    };

    #[test]
    fn a_range_must_be_answered_with_one_documented_row_per_hour_asked_for() {
        let mut c = Checker::default();
        assert_eq!(check(&mut c, CSV_RANGE, &ok(CSV)), Ok(()));
        assert_eq!(check(&mut c, JSON_RANGE, &ok(JSON)), Ok(()));
        let two_hours = Op::Hours {
            first: HOUR - 1,
            csv: true,
        };
        let why = check(&mut c, two_hours, &ok(CSV)).expect_err("three rows for two hours");
        assert!(why.contains("3 rows for the 2 hours"), "{why}");
        for bad in [
            CSV.replace("hour_start_ms,", "hour,"),
            CSV.replace(",2,3\n", ",2,3,4\n"),
            CSV.replace(",2,3\n", ",-2,3\n"),
            CSV.trim_end().to_string(),
            CSV.replace("1796569200000", "1796569200001"),
        ] {
            assert!(check(&mut c, CSV_RANGE, &ok(&bad)).is_err(), "{bad:?}");
        }
        for bad in [
            JSON.replace("\"clicks\":2", "\"clicks\":\"2\""),
            JSON.replace("},\n{", "},{"),
            JSON.replace("]\n", "]"),
            JSON.replace("\"impressions\":3}", "\"impressions\":3,\"x\":1}"),
        ] {
            assert!(check(&mut c, JSON_RANGE, &ok(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_range_row_may_not_count_less_than_an_earlier_answer_for_its_hour() {
        let mut c = Checker::default();
        assert_eq!(check(&mut c, Op::Get, &counts(4, 5, 7)), Ok(()));
        let why = check(&mut c, CSV_RANGE, &ok(CSV)).expect_err("impressions 7 then 6");
        assert!(why.contains("impressions went down from 7 to 6"), "{why}");
    }

    #[test]
    fn metrics_must_be_answered_200_with_hourtally_metrics() {
        let mut c = Checker::default();
        let good = "# TYPE hourtally_ready gauge\nhourtally_ready 1\n";
        assert_eq!(check(&mut c, Op::Metrics, &ok(good)), Ok(()));
        assert!(check(&mut c, Op::Metrics, &ok("")).is_err());
        assert!(check(&mut c, Op::Metrics, &ok("process_cpu_seconds_total 1\n")).is_err());
        assert!(check(&mut c, Op::Metrics, &ok(good.trim_end())).is_err());
    }

    #[test]
    fn stats_count_every_wrong_answer_and_show_the_first_few_with_their_bytes() {
        let mut stats = Stats::new();
        for i in 0..7 {
            stats.wrong_answer(
                &req(Op::Get),
                &format!("reason {i}"),
                b"HTTP/1.1 200 OK\r\n\xff",
            );
        }
        assert_eq!(stats.wrong, 7);
        assert_eq!(stats.wrong_shown.len(), crate::stats::WRONG_SHOWN);
        let first = &stats.wrong_shown[0];
        assert!(
            first.starts_with("GET /analytics hour 499048 (2026-12-06T16Z): reason 0"),
            "{first}"
        );
        // Lossily: CR and LF escaped, the byte that is not UTF-8 as U+FFFD.
        assert!(
            first.ends_with("; the answer: \"HTTP/1.1 200 OK\\r\\n\u{fffd}\""),
            "{first}"
        );
    }
}
