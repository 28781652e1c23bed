//! The run's plan, resolved once from the flags and shared by every client thread: where to
//! connect, the mix, when load and measuring start and end, the request budget, and the
//! counters of the live progress line. Also the open loop's schedule (intended send times)
//! and the closed loop's wait for the start.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hourtally::event::MILLIS_PER_HOUR;

use crate::flags::Args;

/// What every client thread needs to know, resolved once.
pub struct Plan {
    pub addr: SocketAddr,
    pub host: String,
    pub connections: u32,
    pub pipeline: u32,
    pub post_share: f64,
    /// Share of requests that are a HEAD, a range of hours or `/metrics` (`--other-share`).
    pub other_share: f64,
    pub current_share: f64,
    pub click_share: f64,
    /// Every POST carries a new event id (`--event-ids`).
    pub event_ids: bool,
    pub users: u64,
    pub seed: u64,
    pub verify: bool,
    pub timeout: Duration,
    /// Open loop: poll instead of sleeping this long before a send is due.
    pub spin: Duration,
    /// Open loop: one POST in this many is a visibility probe (0: none).
    pub lag_every: u64,
    /// The probes' hour (hours since the epoch), fixed at the start.
    pub lag_hour: u64,
    /// Makes this run's probe user names unique (`lag{tag}-{id}`): the start time, ns.
    pub lag_tag: u64,
    /// Load starts (warm-up included).
    pub start: Instant,
    /// Measuring starts (= start + warmup).
    pub measure_start: Instant,
    /// Duration mode: no request is sent (closed loop) or scheduled (open loop) at or after this.
    pub end: Option<Instant>,
    /// Requests mode: measured requests left to claim.
    pub budget: Option<AtomicU64>,
    /// Set when the run must stop early (e.g. every connection gave up).
    pub abort: AtomicBool,
    /// Answers so far, warm-up included (for the progress line).
    pub answered: AtomicU64,
    /// Transport errors so far (for the progress line).
    pub errors: AtomicU64,
}

impl Plan {
    /// The plan of `args`: load starts 5 ms from now, measuring `--warmup` later, and ends
    /// `duration` after that (`None`: when `--requests` are answered).
    pub fn new(args: &Args, addr: SocketAddr, timeout: Duration, duration: Option<f64>) -> Self {
        let start = Instant::now() + Duration::from_millis(5);
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let measure_start = start + Duration::from_secs_f64(args.warmup);
        Plan {
            addr,
            host: args.addr.clone(),
            connections: args.connections,
            pipeline: args.pipeline,
            post_share: args.post_share,
            other_share: args.other_share,
            current_share: args.current_share,
            click_share: args.click_share,
            event_ids: args.event_ids,
            users: args.users,
            seed: args.seed,
            verify: args.verify,
            timeout,
            spin: Duration::from_micros(args.spin_us),
            lag_every: args.lag_every,
            lag_hour: (since_epoch.as_millis() as u64 / MILLIS_PER_HOUR)
                .saturating_sub(args.lag_hours_back),
            lag_tag: since_epoch.as_nanos() as u64,
            start,
            measure_start,
            end: duration.map(|d| measure_start + Duration::from_secs_f64(d)),
            budget: args.requests.map(AtomicU64::new),
            abort: AtomicBool::new(false),
            answered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// True when a request sent (or due) at `t` is measured, not warm-up.
    pub fn measuring(&self, t: Instant) -> bool {
        t >= self.measure_start
    }

    /// Claims up to `want` requests that may be sent at `now`; 0 means stop.
    pub fn claim(&self, want: u32, now: Instant) -> u32 {
        if self.abort.load(Ordering::Relaxed) {
            return 0;
        }
        if let Some(end) = self.end {
            if now >= end {
                return 0;
            }
        }
        match &self.budget {
            None => want,
            // Warm-up requests are not taken from the budget.
            Some(_) if now < self.measure_start => want,
            Some(budget) => {
                let mut cur = budget.load(Ordering::Relaxed);
                loop {
                    if cur == 0 {
                        return 0;
                    }
                    let take = cur.min(u64::from(want));
                    match budget.compare_exchange_weak(
                        cur,
                        cur - take,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return take as u32,
                        Err(now_cur) => cur = now_cur,
                    }
                }
            }
        }
    }

    /// The intended send time of request `k` of connection `c` (open loop).
    pub fn intended(&self, rate: f64, c: u32, k: u64) -> Instant {
        let slot = (k as f64) * f64::from(self.connections) + f64::from(c);
        self.start + Duration::from_nanos((slot * 1e9 / rate) as u64)
    }
}

/// Sleeps until `t`. The OS sleep wakes up tens of µs late (more in a VM); with `spin`, the
/// last `spin` before `t` are spent yielding instead (punctual, but it burns CPU).
pub fn sleep_until(t: Instant, spin: Duration) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > spin {
            thread::sleep(left - spin);
        } else {
            thread::yield_now();
        }
    }
}
