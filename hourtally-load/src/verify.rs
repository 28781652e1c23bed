//! `--verify`: after the run, GET every hour the run touched and compare the counts with
//! what the server accepted ([`Expected`]); and what, of all `--verify` found, fails the run
//! ([`wrongs`]).

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use hourtally::civil::{hour_label, hour_start_ms};
use hourtally::counts::Counts;

use crate::conn::{connect, Reader};
use crate::expected::Expected;
use crate::plan::Plan;
use crate::response::Framing;
use crate::stats::Stats;

/// The verify step waits this long for the server to apply what it accepted.
const VERIFY_WAIT: Duration = Duration::from_secs(5);

/// One GET on a keep-alive connection that reconnects when it must.
struct Probe<'a> {
    plan: &'a Plan,
    stream: Option<TcpStream>,
    reader: Reader,
}

impl Probe<'_> {
    /// The counts the server answers for `hour` (three tries, reconnecting as needed).
    fn counts(&mut self, hour: u64) -> Result<Counts, String> {
        let mut last_err = String::new();
        for _ in 0..3 {
            if self.stream.is_none() {
                match connect(self.plan) {
                    Ok(s) => self.stream = Some(s),
                    Err(e) => {
                        last_err = format!("connect: {e}");
                        continue;
                    }
                }
                self.reader.clear();
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let req = format!(
                "GET /analytics?timestamp={} HTTP/1.1\r\nHost: {}\r\n\r\n",
                hour_start_ms(hour),
                self.plan.host
            );
            if let Err(e) = stream.write_all(req.as_bytes()) {
                last_err = format!("write: {e}");
                self.stream = None;
                continue;
            }
            let mut t = Instant::now();
            match self.reader.next_reply(stream, &mut t, Framing::Body) {
                Ok(a) => {
                    let body = self.reader.body(&a).to_vec();
                    if a.close {
                        self.stream = None;
                    }
                    if a.status != 200 {
                        return Err(format!(
                            "answer {} {:?}",
                            a.status,
                            String::from_utf8_lossy(&body)
                        ));
                    }
                    return Counts::parse(&body).ok_or_else(|| {
                        format!("unexpected body {:?}", String::from_utf8_lossy(&body))
                    });
                }
                Err(f) => {
                    last_err = format!("read: {f:?}");
                    self.stream = None;
                }
            }
        }
        Err(last_err)
    }
}

/// What went wrong in a `--verify` run (empty: nothing), each as a few words: differences
/// at the end (`diffs`), wrong answers, transport errors, requests without an answer. Any of
/// them makes the run fail.
pub fn wrongs(stats: &Stats, diffs: u64) -> Vec<String> {
    let e = &stats.errors;
    [
        (diffs, "hours differ at the end"),
        (stats.wrong, "wrong answers"),
        (e.transport(), "transport errors"),
        (e.lost, "requests without an answer"),
    ]
    .into_iter()
    .filter(|&(n, _)| n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect()
}

/// Checks every hour of `expected` (waiting up to [`VERIFY_WAIT`] for the server to catch
/// up), prints a line per difference and a summary; returns the number of hours that differ.
pub fn verify(plan: &Plan, expected: &Expected, lost_posts: u64) -> u64 {
    let mut probe = Probe {
        plan,
        stream: None,
        reader: Reader::new(),
    };
    let mut hours: Vec<_> = expected.hours.iter().collect();
    hours.sort_by_key(|(h, _)| **h);
    let deadline = Instant::now() + VERIFY_WAIT;
    let mut diffs = 0;
    for (&hour, t) in &hours {
        let want = Counts {
            unique_users: t.users.len(),
            clicks: t.clicks,
            impressions: t.impressions,
        };
        let got = loop {
            let got = probe.counts(hour);
            if got.as_ref().is_ok_and(|g| *g == want) || Instant::now() >= deadline {
                break got;
            }
            thread::sleep(Duration::from_millis(20));
        };
        match got {
            Ok(g) if g == want => {}
            Ok(g) => {
                diffs += 1;
                println!(
                    "verify: hour {hour} ({}): expected unique_users={} clicks={} impressions={}, \
                     got unique_users={} clicks={} impressions={}",
                    hour_label(hour),
                    want.unique_users,
                    want.clicks,
                    want.impressions,
                    g.unique_users,
                    g.clicks,
                    g.impressions
                );
            }
            Err(e) => {
                diffs += 1;
                println!(
                    "verify: hour {hour} ({}): expected unique_users={} clicks={} impressions={}, \
                     GET failed: {e}",
                    hour_label(hour),
                    want.unique_users,
                    want.clicks,
                    want.impressions
                );
            }
        }
    }
    if lost_posts > 0 {
        println!(
            "verify: note: {lost_posts} POSTs got no answer (transport errors); the server may \
             have counted them, so differences up to that many are not necessarily wrong"
        );
    }
    println!("verify: {} hours, {diffs} differences", hours.len());
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_run_fails_on_a_difference_a_wrong_answer_a_transport_error_or_a_lost_request() {
        let mut stats = Stats::new();
        assert!(wrongs(&stats, 0).is_empty(), "a clean run passes");
        assert_eq!(wrongs(&stats, 2), ["2 hours differ at the end"]);
        stats.wrong = 1;
        assert_eq!(wrongs(&stats, 0), ["1 wrong answers"]);
        stats.wrong = 0;
        stats.errors.protocol = 3;
        assert_eq!(wrongs(&stats, 0), ["3 transport errors"]);
        stats.errors.protocol = 0;
        stats.errors.lost = 4;
        assert_eq!(wrongs(&stats, 0), ["4 requests without an answer"]);
        stats.errors.unsent = 5;
        stats.errors.lost = 0;
        assert!(
            wrongs(&stats, 0).is_empty(),
            "open loop: requests still queued when the run's time is up are not an error"
        );
    }
}
