//! The request mix: a seeded RNG, and the next request of the "Tapad mix" (POST of a click
//! or an impression, or GET of the counts; the current hour or one of the previous
//! [`HISTORIC_HOURS`]) written as HTTP/1.1 bytes.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hourtally::event::{Kind, MILLIS_PER_HOUR};

use crate::plan::Plan;

/// How many hours back the historic share of requests reaches (k in 1..=HISTORIC_HOURS).
pub const HISTORIC_HOURS: u64 = 24;

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

/// What a request does: GET the counts of its hour, or POST an event of this kind.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Get,
    Post(Kind),
}

/// One request sent and not yet answered.
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub op: Op,
    /// Hours since the epoch.
    pub hour: u64,
    /// POST: the user is `u{user}`; GET: 0.
    pub user: u64,
    /// Closed loop: when its batch was written; open loop: its intended send time.
    pub t0: Instant,
    /// A visibility probe (`--lag-every`): user `lag{tag}-{user}`, in the probes' own hour.
    pub probe: bool,
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
        let ms = now_ms();
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

/// The next request of the mix, drawn but not yet written: what [`Pick::write`] sends.
pub struct Pick {
    post: Option<(u64, Kind)>,
    /// Hours back from the stamp's hour (0: the current hour).
    back: u64,
}

impl Pick {
    /// Draws the next request of the mix (the same draws whatever is written after).
    pub fn next(plan: &Plan, rng: &mut Rng) -> Self {
        let is_post = rng.unit() < plan.post_share;
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
        Pick { post, back }
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
        match self.post {
            Some((user, kind)) => {
                buf.extend_from_slice(b"POST /analytics?timestamp=");
                push_ts(buf);
                buf.extend_from_slice(b"&user=u");
                push_u64(buf, user);
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
