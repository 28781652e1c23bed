//! The open loop (`--rate R`): one thread per connection sends on a fixed schedule, whatever
//! the replies do, and measures latency from each request's intended send time (the
//! correction for coordinated omission, as wrk2 does it).

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::conn::{connect, Fail, Reader, RECONNECT_GIVE_UP};
use crate::mix::{next_request, Rng, Stamp};
use crate::plan::{sleep_until, Plan};
use crate::stats::{record, Stats};

/// Connection `idx` of the open loop: sends its `k`-th request at its intended time (or at
/// once when it is late), then blocks for the answer, so the answer's arrival is seen when
/// it happens. Latency counts from the intended time, so a late send (a slow answer
/// before it) is charged to the server, not hidden.
pub fn open_loop(plan: Arc<Plan>, rate: f64, idx: u32) -> Stats {
    let mut stats = Stats::new();
    let mut rng = Rng::new(plan.seed, u64::from(idx));
    let mut wbuf = Vec::with_capacity(256);
    let mut reader = Reader::new();
    let mut stream: Option<TcpStream> = None;
    let mut failing_since: Option<Instant> = None;
    for k in 0u64.. {
        let due = plan.intended(rate, idx, k);
        if plan.abort.load(Ordering::Relaxed) || plan.end.is_some_and(|e| due >= e) {
            break;
        }
        sleep_until(due, plan.spin);
        if let Some(end) = plan.end {
            // Behind schedule (slow answers) when the run ends: what is left never leaves.
            if Instant::now() >= end {
                let period = f64::from(plan.connections) / rate;
                stats.errors.unsent += ((end - due).as_secs_f64() / period).ceil() as u64;
                break;
            }
        }
        if plan.claim(1, due) == 0 {
            break;
        }
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match connect(&plan) {
                Ok(s) => {
                    failing_since = None;
                    reader.clear();
                    stream.insert(s)
                }
                Err(_) => {
                    stats.connect_failed(&plan);
                    // This request was due and never left: lost.
                    stats.errors.lost += 1;
                    let now = Instant::now();
                    if now.duration_since(*failing_since.get_or_insert(now)) > RECONNECT_GIVE_UP {
                        break;
                    }
                    continue;
                }
            },
        };
        wbuf.clear();
        let req = next_request(&plan, &mut rng, &Stamp::now(), due, &mut wbuf);
        let sent = Instant::now();
        if s.write_all(&wbuf).is_err() {
            stats.fail(&plan, Fail::Write);
            stats.lost(&req);
            stream = None;
            continue;
        }
        if plan.measuring(due) {
            record(&mut stats.lag, sent.saturating_duration_since(due));
        }
        let mut arrived = sent;
        match reader.next_reply(s, &mut arrived) {
            Ok(a) => {
                stats.replied(&plan, &req, a.status, arrived);
                plan.answered.fetch_add(1, Ordering::Relaxed);
                if a.close {
                    stream = None;
                }
            }
            Err(f) => {
                stats.fail(&plan, f);
                stats.lost(&req);
                if let Some(s) = stream.take() {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
    stats
}
