//! The request mix: a seeded RNG, and the next request of the "Tapad mix" (POST of a click
//! or an impression, or GET of the counts; the current hour or one of the previous
//! [`HISTORIC_HOURS`]) written as HTTP/1.1 bytes. With `--other-share`, some requests are
//! instead a HEAD of the counts, a GET of a range of hours, or a GET of `/metrics`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hourtally::civil::hour_label;
use hourtally::event::{Kind, MILLIS_PER_HOUR};

use crate::plan::Plan;
use crate::response::Framing;

/// How many hours back the historic share of requests reaches (k in 1..=HISTORIC_HOURS).
pub const HISTORIC_HOURS: u64 = 24;

/// The most hours a `GET /analytics/hours` of the mix asks for (it asks for 1 to this many,
/// ending at the request's hour).
pub const MAX_RANGE_HOURS: u64 = 6;

/// splitmix64: small, fast, good enough for a request mix.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `GET /analytics?timestamp=T`: the counts of its hour.
    Get,
    /// `POST /analytics?timestamp=T&user=uN&click` (or `&impression`): an event of this kind.
    Post(Kind),
    /// `HEAD /analytics?timestamp=T`: the head of the answer a GET of its hour would get.
    Head,
    /// `GET /analytics/hours?from=F&to=T`: one row per hour from `first` to the request's
    /// hour, both included (hours since the epoch); as CSV (`Accept: text/csv`) when `csv`,
    /// else as JSON (the server's default).
    Hours { first: u64, csv: bool },
    /// `GET /metrics`: the server's metrics in the Prometheus text format.
    Metrics,
}

/// The kinds of request, in the order of [`Op::index`].
pub const OP_NAMES: [&str; 5] = [
    "POST /analytics",
    "GET /analytics",
    "HEAD /analytics",
    "GET /analytics/hours",
    "GET /metrics",
];

impl Op {
    /// Its kind's place in [`OP_NAMES`].
    pub fn index(self) -> usize {
        match self {
            Op::Post(_) => 0,
            Op::Get => 1,
            Op::Head => 2,
            Op::Hours { .. } => 3,
            Op::Metrics => 4,
        }
    }

    /// How the answer to this request is framed (a HEAD's has no body).
    pub fn framing(self) -> Framing {
        match self {
            Op::Head => Framing::Head,
            Op::Get | Op::Post(_) | Op::Hours { .. } | Op::Metrics => Framing::Body,
        }
    }
}

/// One request sent and not yet answered.
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub op: Op,
    /// Hours since the epoch: the hour of its timestamp (`GET /analytics/hours`: of `to`,
    /// the last hour it asks for; `GET /metrics`: of the time it was written).
    pub hour: u64,
    /// POST: the user is `u{user}`; any other request: 0.
    pub user: u64,
    /// Closed loop: when its batch was written; open loop: its intended send time.
    pub t0: Instant,
    /// A visibility probe (`--lag-every`): user `lag{tag}-{user}`, in the probes' own hour.
    pub probe: bool,
}

impl Req {
    /// What the request asked for, in a few words: `GET /analytics hour 499048
    /// (2026-12-06T16Z)`.
    pub fn describe(&self) -> String {
        let hour = |h: u64| format!("hour {h} ({})", hour_label(h));
        match self.op {
            Op::Get => format!("GET /analytics {}", hour(self.hour)),
            Op::Post(Kind::Click) => format!("POST /analytics click {}", hour(self.hour)),
            Op::Post(Kind::Impression) => {
                format!("POST /analytics impression {}", hour(self.hour))
            }
            Op::Head => format!("HEAD /analytics {}", hour(self.hour)),
            Op::Hours { first, csv } => format!(
                "GET /analytics/hours as {} from {} to {}",
                if csv { "CSV" } else { "JSON" },
                hour(first),
                hour(self.hour)
            ),
            Op::Metrics => "GET /metrics".to_string(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Appends the decimal digits of `v`.
fn push_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// The time of a batch: milliseconds since the epoch, and their decimal text (shared by the
/// batch's requests for the current hour).
pub struct Stamp {
    ms: u64,
    digits: [u8; 20],
    len: usize,
}

impl Stamp {
    pub fn now() -> Self {
        Self::at(now_ms())
    }

    /// The stamp of `ms` milliseconds since the epoch.
    pub fn at(ms: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut text = itoa::Buffer::new();
        let text = text.format(ms).as_bytes();
        digits[..text.len()].copy_from_slice(text);
        Stamp {
            ms,
            digits,
            len: text.len(),
        }
    }

    fn text(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

/// A request of the `--other-share`: neither a POST nor a GET of `/analytics`.
#[derive(Clone, Copy, Debug)]
enum Other {
    /// `HEAD /analytics?timestamp=T`.
    Head,
    /// `GET /analytics/hours` of `span` hours ending at the request's hour; CSV or JSON.
    Hours { span: u64, csv: bool },
    /// `GET /metrics`.
    Metrics,
}

/// The next request of the mix, drawn but not yet written: what [`Pick::write`] sends.
pub struct Pick {
    /// A POST by user `u{0}` of this kind.
    post: Option<(u64, Kind)>,
    /// A request of the `--other-share` (then `post` is `None`).
    other: Option<Other>,
    /// Hours back from the stamp's hour (0: the current hour).
    back: u64,
    /// The POST's event id (`--event-ids`; 0: none).
    id: u64,
}

impl Pick {
    /// Draws the next request of the mix (the same draws whatever is written after). With
    /// `--other-share` 0, no draw for it: a seed gives the same requests as without the flag.
    pub fn next(plan: &Plan, rng: &mut Rng) -> Self {
        let other =
            (plan.other_share > 0.0 && rng.unit() < plan.other_share).then(|| match rng.below(3) {
                0 => Other::Head,
                1 => Other::Hours {
                    span: 1 + rng.below(MAX_RANGE_HOURS),
                    csv: rng.below(2) == 0,
                },
                _ => Other::Metrics,
            });
        let is_post = other.is_none() && rng.unit() < plan.post_share;
        let back = if rng.unit() < plan.current_share {
            0
        } else {
            1 + rng.below(HISTORIC_HOURS)
        };
        let post = is_post.then(|| {
            let user = rng.below(plan.users);
            let kind = if rng.unit() < plan.click_share {
                Kind::Click
            } else {
                Kind::Impression
            };
            (user, kind)
        });
        // Random, and different in every run (the run's start time): ids never repeat.
        let id = match is_post && plan.event_ids {
            true => (rng.next_u64() ^ plan.lag_tag).max(1),
            false => 0,
        };
        Pick {
            post,
            other,
            back,
            id,
        }
    }

    pub fn is_post(&self) -> bool {
        self.post.is_some()
    }

    /// Appends the request's bytes to `buf`.
    pub fn write(&self, plan: &Plan, stamp: &Stamp, t0: Instant, buf: &mut Vec<u8>) -> Req {
        let ts = stamp.ms.saturating_sub(self.back * MILLIS_PER_HOUR);
        let hour = ts / MILLIS_PER_HOUR;
        let push_ts = |buf: &mut Vec<u8>| {
            if self.back == 0 {
                buf.extend_from_slice(stamp.text());
            } else {
                push_u64(buf, ts);
            }
        };
        if let Some(other) = self.other {
            let op = match other {
                Other::Head => {
                    buf.extend_from_slice(b"HEAD /analytics?timestamp=");
                    push_ts(buf);
                    Op::Head
                }
                Other::Hours { span, csv } => {
                    let from = ts.saturating_sub((span - 1) * MILLIS_PER_HOUR);
                    buf.extend_from_slice(b"GET /analytics/hours?from=");
                    push_u64(buf, from);
                    buf.extend_from_slice(b"&to=");
                    push_ts(buf);
                    Op::Hours {
                        first: from / MILLIS_PER_HOUR,
                        csv,
                    }
                }
                Other::Metrics => {
                    buf.extend_from_slice(b"GET /metrics");
                    Op::Metrics
                }
            };
            buf.extend_from_slice(b" HTTP/1.1\r\nHost: ");
            buf.extend_from_slice(plan.host.as_bytes());
            if matches!(op, Op::Hours { csv: true, .. }) {
                buf.extend_from_slice(b"\r\nAccept: text/csv");
            }
            buf.extend_from_slice(b"\r\n\r\n");
            return Req {
                op,
                hour,
                user: 0,
                t0,
                probe: false,
            };
        }
        match self.post {
            Some((user, kind)) => {
                buf.extend_from_slice(b"POST /analytics?timestamp=");
                push_ts(buf);
                buf.extend_from_slice(b"&user=u");
                push_u64(buf, user);
                if self.id != 0 {
                    buf.extend_from_slice(format!("&event_id={:016x}", self.id).as_bytes());
                }
                push_post_tail(buf, kind, &plan.host);
                Req {
                    op: Op::Post(kind),
                    hour,
                    user,
                    t0,
                    probe: false,
                }
            }
            None => {
                buf.extend_from_slice(b"GET /analytics?timestamp=");
                push_ts(buf);
                buf.extend_from_slice(b" HTTP/1.1\r\nHost: ");
                buf.extend_from_slice(plan.host.as_bytes());
                buf.extend_from_slice(b"\r\n\r\n");
                Req {
                    op: Op::Get,
                    hour,
                    user: 0,
                    t0,
                    probe: false,
                }
            }
        }
    }

    /// Appends, instead of this POST, a visibility probe: the same kind of event by user
    /// `lag{tag}-{id}` (a name no other request uses) in `hour` (an hour no other request
    /// touches), so a GET of that hour shows when the server counted it.
    pub fn write_probe(
        &self,
        plan: &Plan,
        hour: u64,
        (tag, id): (u64, u64),
        t0: Instant,
        buf: &mut Vec<u8>,
    ) -> Req {
        let kind = self.post.map_or(Kind::Click, |(_, k)| k);
        buf.extend_from_slice(b"POST /analytics?timestamp=");
        push_u64(buf, hour * MILLIS_PER_HOUR);
        buf.extend_from_slice(b"&user=lag");
        push_u64(buf, tag);
        buf.push(b'-');
        push_u64(buf, id);
        push_post_tail(buf, kind, &plan.host);
        Req {
            op: Op::Post(kind),
            hour,
            user: id,
            t0,
            probe: true,
        }
    }
}

/// The end of a POST after its user: the event's kind and the headers.
fn push_post_tail(buf: &mut Vec<u8>, kind: Kind, host: &str) {
    buf.extend_from_slice(match kind {
        Kind::Click => &b"&click HTTP/1.1\r\nHost: "[..],
        Kind::Impression => &b"&impression HTTP/1.1\r\nHost: "[..],
    });
    buf.extend_from_slice(host.as_bytes());
    buf.extend_from_slice(b"\r\n\r\n");
}

/// Picks the next request of the mix and appends its bytes to `buf`.
pub fn next_request(
    plan: &Plan,
    rng: &mut Rng,
    stamp: &Stamp,
    t0: Instant,
    buf: &mut Vec<u8>,
) -> Req {
    Pick::next(plan, rng).write(plan, stamp, t0, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    /// The plan of `hourtally-load ARGS...` against 127.0.0.1:8080.
    fn plan(args: &[&str]) -> Plan {
        let args = crate::flags::Args::try_parse_from(["hourtally-load"].iter().chain(args))
            .expect("valid flags");
        let addr = "127.0.0.1:8080".parse().expect("an address");
        Plan::new(&args, addr, Duration::from_secs(1), Some(1.0))
    }

    /// A fixed time for the requests' stamps: 2026-12-06T16:00:00.123Z.
    const STAMP_MS: u64 = 1_796_572_800_123;

    /// The first `n` requests of connections 0..4 with seed 1, all stamped [`STAMP_MS`]:
    /// their bytes and what each is.
    fn requests(plan: &Plan, n: usize) -> (Vec<u8>, Vec<(Req, Vec<u8>)>) {
        let stamp = Stamp::at(STAMP_MS);
        let (mut all, mut reqs) = (Vec::new(), Vec::new());
        for stream in 0..4 {
            let mut rng = Rng::new(1, stream);
            for _ in 0..n {
                let mut one = Vec::new();
                let r = next_request(plan, &mut rng, &stamp, Instant::now(), &mut one);
                all.extend_from_slice(&one);
                reqs.push((r, one));
            }
        }
        (all, reqs)
    }

    #[test]
    fn without_other_share_a_seed_writes_the_same_requests_as_before_the_flag_existed() {
        // FNV-1a of the 800 requests as the mix wrote them before --other-share (commit
        // a7ea949): the flag at 0 must not draw, or every seed's mix would change.
        let (bytes, _) = requests(&plan(&[]), 200);
        let fnv = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        assert_eq!((bytes.len(), fnv), (66_738, 0xa66b_a927_a915_ed45));
        assert!(bytes.starts_with(
            b"POST /analytics?timestamp=1796572800123&user=u70557&impression HTTP/1.1\r\n\
              Host: 127.0.0.1:8080\r\n\r\nGET /analytics?timestamp=1796572800123 HTTP/1.1\r\n"
        ));
    }

    #[test]
    fn other_share_one_sends_heads_ranges_ending_at_the_requests_hour_and_metrics_evenly() {
        let (_, reqs) = requests(&plan(&["--other-share", "1"]), 1500);
        let (mut heads, mut csv, mut json, mut metrics) = (0, 0, 0, 0);
        for (r, bytes) in &reqs {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                text.ends_with("Host: 127.0.0.1:8080\r\n\r\n")
                    || text.ends_with("Accept: text/csv\r\n\r\n"),
                "{text}"
            );
            match r.op {
                Op::Head => {
                    heads += 1;
                    assert!(text.starts_with("HEAD /analytics?timestamp="), "{text}");
                }
                Op::Hours { first, csv: as_csv } => {
                    let to = r.hour * MILLIS_PER_HOUR;
                    assert!(text.starts_with("GET /analytics/hours?from="), "{text}");
                    assert!(
                        first <= r.hour && r.hour - first < MAX_RANGE_HOURS,
                        "{text}"
                    );
                    assert!(
                        to <= STAMP_MS && STAMP_MS - to < (HISTORIC_HOURS + 1) * MILLIS_PER_HOUR
                    );
                    assert_eq!(text.contains("\r\nAccept: text/csv\r\n"), as_csv, "{text}");
                    if as_csv {
                        csv += 1;
                    } else {
                        json += 1;
                    }
                }
                Op::Metrics => {
                    metrics += 1;
                    assert!(text.starts_with("GET /metrics HTTP/1.1\r\n"), "{text}");
                }
                Op::Get | Op::Post(_) => panic!("--other-share 1 leaves no POST or GET: {text}"),
            }
            assert_eq!(r.op.framing() == Framing::Head, matches!(r.op, Op::Head));
        }
        // 6000 requests, a third of each kind (and half the ranges CSV): far from the edges.
        for n in [heads, csv + json, metrics] {
            assert!((1800..2200).contains(&n), "{heads} {csv} {json} {metrics}");
        }
        assert!(csv > 800 && json > 800, "{csv} {json}");
    }

    #[test]
    fn other_share_takes_its_share_and_leaves_the_rest_to_the_post_share() {
        let (_, reqs) = requests(
            &plan(&["--other-share", "0.2", "--post-share", "0.5"]),
            2500,
        );
        let others = reqs
            .iter()
            .filter(|(r, _)| matches!(r.op, Op::Head | Op::Hours { .. } | Op::Metrics))
            .count();
        let posts = reqs
            .iter()
            .filter(|(r, _)| matches!(r.op, Op::Post(_)))
            .count();
        // 10 000 requests: about 2 000 others and 4 000 POSTs.
        assert!((1800..2200).contains(&others), "{others}");
        assert!((3700..4300).contains(&posts), "{posts}");
    }

    #[test]
    fn rng_below_and_unit_stay_in_their_ranges() {
        let mut r = Rng::new(7, 3);
        for _ in 0..10_000 {
            assert!(r.below(10) < 10);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn push_u64_writes_zero_and_u64_max_in_decimal() {
        let mut b = Vec::new();
        push_u64(&mut b, 0);
        push_u64(&mut b, 18_446_744_073_709_551_615);
        assert_eq!(b, b"018446744073709551615");
    }
}
