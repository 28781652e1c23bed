//! The open loop (`--rate R`): requests leave on a fixed schedule, whatever the answers do,
//! and the latency of each is measured from its *intended* send time (the correction for
//! coordinated omission, as wrk2 does it).
//!
//! Each client thread drives its connections from one epoll loop, so one core can schedule
//! far more requests per second than a thread per connection could (every wake-up of a
//! sleeping thread costs tens of µs of CPU on a VM). Connection `c`'s `k`-th request is due
//! at `start + (k × connections + c) / R`. A connection has at most one request in flight;
//! a request that falls due while its connection waits for an answer is queued there and
//! leaves when the answer comes, still timed from its intended send time, so a slow answer
//! is charged to every request it delayed.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::check::Checker;
use crate::conn::{connect, Fail, Reader, RECONNECT_GIVE_UP};
use crate::epoll::{self, Epoll};
use crate::lag::Prober;
use crate::mix::{Pick, Req, Rng, Stamp};
use crate::plan::Plan;
use crate::response::Framing;
use crate::stats::{record, Stats};

/// The token of the prober's connection (the others carry their index in the thread).
const PROBE_TOKEN: u64 = u64::MAX;
/// How often requests in flight are checked against the run's timeout.
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// One connection of the open loop.
struct Conn {
    /// Its index among all the run's connections (its place in the schedule).
    idx: u32,
    stream: Option<TcpStream>,
    reader: Reader,
    /// The request in flight and when its first byte left.
    inflight: Option<(Req, Instant)>,
    /// Bytes of the request in flight still to write (after a short write; rare).
    out: Vec<u8>,
    /// Intended send times of the requests due while the connection was busy.
    queue: VecDeque<Instant>,
    rng: Rng,
    failing_since: Option<Instant>,
    gave_up: bool,
    /// --verify: what this connection's answers have shown so far.
    checker: Checker,
}

/// One client thread of the open loop: its connections, their epoll and its results.
struct Driver<'a> {
    plan: &'a Plan,
    ep: Epoll,
    conns: Vec<Conn>,
    stats: Stats,
    prober: Option<Prober>,
    wbuf: Vec<u8>,
}

/// Client thread of the open loop at `rate` requests/s (all threads together), over
/// connections `idxs`; with `probe`, it also measures the visibility lag (`--lag-every`).
pub fn open_loop(plan: Arc<Plan>, rate: f64, idxs: Vec<u32>, probe: bool) -> Stats {
    let mut stats = Stats::new();
    let ep = match Epoll::new() {
        Ok(ep) => ep,
        Err(e) => {
            eprintln!("hourtally-load: cannot create an epoll instance: {e}");
            plan.abort.store(true, Ordering::Relaxed);
            return stats;
        }
    };
    let conns = idxs
        .into_iter()
        .map(|idx| Conn {
            idx,
            stream: None,
            reader: Reader::new(),
            inflight: None,
            out: Vec::new(),
            queue: VecDeque::new(),
            rng: Rng::new(plan.seed, u64::from(idx)),
            failing_since: None,
            gave_up: false,
            checker: Checker::default(),
        })
        .collect();
    let prober = if probe {
        Prober::start(&plan, &ep, PROBE_TOKEN, &mut stats)
    } else {
        None
    };
    let mut d = Driver {
        plan: &plan,
        ep,
        conns,
        stats,
        prober,
        wbuf: Vec::with_capacity(256),
    };
    // Connect before the schedule starts, so the first requests do not wait for it.
    for c in 0..d.conns.len() {
        d.ensure_stream(c, Instant::now());
    }
    d.run(rate);
    if let Some(p) = d.prober.take() {
        d.stats.probes = p.counts;
    }
    d.stats
}

impl Driver<'_> {
    fn run(&mut self, rate: f64) {
        let plan = self.plan;
        let n = self.conns.len() as u64;
        let due = |m: u64, conns: &[Conn]| plan.intended(rate, conns[(m % n) as usize].idx, m / n);
        let mut events = epoll::buffer(256);
        let mut m = 0u64;
        let mut next_due = due(0, &self.conns);
        let mut scheduling = true;
        let mut next_check = Instant::now() + CHECK_EVERY;
        let mut drain_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            while scheduling && next_due <= now {
                if plan.abort.load(Ordering::Relaxed)
                    || plan.end.is_some_and(|e| next_due >= e)
                    || plan.claim(1, next_due) == 0
                {
                    scheduling = false;
                    break;
                }
                let c = (m % n) as usize;
                if self.conns[c].gave_up {
                    self.stats.errors.lost += 1;
                } else {
                    self.conns[c].queue.push_back(next_due);
                    self.send_next(c, now);
                }
                m += 1;
                next_due = due(m, &self.conns);
            }
            let timeout = if scheduling {
                let left = next_due.saturating_duration_since(now);
                left.saturating_sub(plan.spin).min(CHECK_EVERY)
            } else {
                // The schedule is over: what is queued stays unsent when the run's time is
                // up (else, with --requests, it still leaves); wait for what is in flight.
                let over = plan.end.is_some_and(|e| now >= e) || plan.abort.load(Ordering::Relaxed);
                let busy = self
                    .conns
                    .iter()
                    .any(|c| c.inflight.is_some() || (!over && !c.queue.is_empty() && !c.gave_up));
                if !busy {
                    break;
                }
                let until = *drain_until.get_or_insert(now + plan.timeout);
                if now >= until {
                    break;
                }
                CHECK_EVERY
            };
            let got = match self.ep.wait(&mut events, Some(timeout)) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("hourtally-load: epoll_wait: {e}");
                    plan.abort.store(true, Ordering::Relaxed);
                    break;
                }
            };
            for e in &events[..got] {
                match epoll::token(e) {
                    PROBE_TOKEN => {
                        if let Some(p) = self.prober.as_mut() {
                            p.on_event(plan, &mut self.stats);
                        }
                    }
                    t => self.on_event(t as usize, epoll::writable(e), epoll::readable(e)),
                }
            }
            let now = Instant::now();
            if now >= next_check {
                next_check = now + CHECK_EVERY;
                self.check_timeouts(now);
            }
        }
        for c in 0..self.conns.len() {
            if let Some((req, _)) = self.conns[c].inflight.take() {
                self.stats.fail(plan, Fail::Timeout);
                self.lose(&req);
            }
            self.stats.errors.unsent += self.conns[c].queue.len() as u64;
        }
    }

    /// A connection for `conns[c]`, connecting when it has none. False when it cannot
    /// connect (it gives up after [`RECONNECT_GIVE_UP`] of failures).
    fn ensure_stream(&mut self, c: usize, now: Instant) -> bool {
        let conn = &mut self.conns[c];
        if conn.stream.is_some() {
            return true;
        }
        let made = connect(self.plan).and_then(|s| {
            s.set_nonblocking(true)?;
            self.ep.add(&s, c as u64)?;
            Ok(s)
        });
        match made {
            Ok(s) => {
                conn.stream = Some(s);
                conn.reader.clear();
                conn.failing_since = None;
                true
            }
            Err(_) => {
                self.stats.connect_failed(self.plan);
                let since = *conn.failing_since.get_or_insert(now);
                if now.duration_since(since) > RECONNECT_GIVE_UP {
                    conn.gave_up = true;
                    if self.conns.iter().all(|c| c.gave_up) {
                        self.plan.abort.store(true, Ordering::Relaxed);
                    }
                }
                false
            }
        }
    }

    /// Sends the oldest request queued on `conns[c]` if nothing is in flight there.
    fn send_next(&mut self, c: usize, now: Instant) {
        let plan = self.plan;
        let conn = &self.conns[c];
        if conn.inflight.is_some() || conn.queue.is_empty() {
            return;
        }
        if plan.end.is_some_and(|e| now >= e) {
            // The run is over: what is queued stays unsent (counted at the end).
            return;
        }
        if !self.ensure_stream(c, now) {
            // Everything queued here was due and never left: lost.
            let conn = &mut self.conns[c];
            self.stats.errors.lost += conn.queue.len() as u64;
            conn.queue.clear();
            return;
        }
        let conn = &mut self.conns[c];
        let Some(due) = conn.queue.pop_front() else {
            return;
        };
        self.wbuf.clear();
        let pick = Pick::next(plan, &mut conn.rng);
        let probe = match self.prober.as_mut() {
            Some(p) if pick.is_post() => p.take(plan),
            _ => None,
        };
        let req = match probe {
            Some(id) => pick.write_probe(plan, plan.lag_hour, id, due, &mut self.wbuf),
            None => pick.write(plan, &Stamp::now(), due, &mut self.wbuf),
        };
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        let sent = Instant::now();
        let written = match stream.write(&self.wbuf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                self.stats.fail(plan, Fail::Write);
                self.lose(&req);
                self.drop_stream(c);
                return;
            }
        };
        let conn = &mut self.conns[c];
        conn.out.clear();
        conn.out.extend_from_slice(&self.wbuf[written..]);
        conn.inflight = Some((req, sent));
        if plan.measuring(due) {
            record(&mut self.stats.lag, sent.saturating_duration_since(due));
        }
    }

    /// Readiness on `conns[c]`: finishes a short write, reads the answer, sends what is queued.
    fn on_event(&mut self, c: usize, writable: bool, readable: bool) {
        if writable && !self.conns[c].out.is_empty() {
            let conn = &mut self.conns[c];
            let Some(stream) = conn.stream.as_mut() else {
                return;
            };
            match stream.write(&conn.out) {
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return self.fail(c, Fail::Write),
            }
        }
        if readable {
            if let Err(f) = self.read_answers(c) {
                return self.fail(c, f);
            }
        }
        self.send_next(c, Instant::now());
    }

    /// Reads until the socket is drained, and counts the answers in what came.
    fn read_answers(&mut self, c: usize) -> Result<(), Fail> {
        let plan = self.plan;
        loop {
            let conn = &mut self.conns[c];
            let Some(stream) = conn.stream.as_mut() else {
                return Ok(());
            };
            let room = conn.reader.room();
            let n = match conn.reader.fill(stream) {
                Ok(0) if conn.inflight.is_none() => {
                    // The server closed an idle connection: reconnect on the next send.
                    self.drop_stream(c);
                    return Ok(());
                }
                Ok(0) => return Err(Fail::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(Fail::Protocol("answer too large"))
                }
                Err(_) => return Err(Fail::Read),
            };
            let arrived = Instant::now();
            // The answer is to the request in flight (one at a time), which tells its framing.
            let framing =
                |conn: &Conn| conn.inflight.map_or(Framing::Body, |(r, _)| r.op.framing());
            while let Some(a) = conn.reader.buffered(framing(conn))? {
                let Some((req, _)) = conn.inflight.take() else {
                    return Err(Fail::Protocol("an answer to no request"));
                };
                if plan.verify {
                    conn.checker
                        .check_answer(&req, &a, &conn.reader, &mut self.stats);
                }
                self.stats.replied(plan, &req, a.status, arrived);
                plan.answered.fetch_add(1, Ordering::Relaxed);
                if req.probe {
                    if let Some(p) = self.prober.as_mut() {
                        p.posted(a.status, arrived);
                    }
                }
                if a.close {
                    self.drop_stream(c);
                    return Ok(());
                }
            }
            if n < room {
                return Ok(());
            }
        }
    }

    /// Counts `f`, drops the connection and loses its request in flight.
    fn fail(&mut self, c: usize, f: Fail) {
        self.stats.fail(self.plan, f);
        if let Some((req, _)) = self.conns[c].inflight.take() {
            self.lose(&req);
        }
        self.drop_stream(c);
    }

    fn drop_stream(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        if let Some(s) = conn.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        conn.reader.clear();
        conn.out.clear();
        conn.checker.reset();
    }

    fn lose(&mut self, req: &Req) {
        self.stats.lost(req);
        if req.probe {
            if let Some(p) = self.prober.as_mut() {
                p.lost();
            }
        }
    }

    /// Fails the requests (and the probe GET) that have waited longer than the run's timeout.
    fn check_timeouts(&mut self, now: Instant) {
        for c in 0..self.conns.len() {
            let late = self.conns[c]
                .inflight
                .is_some_and(|(_, sent)| now.saturating_duration_since(sent) > self.plan.timeout);
            if late {
                self.fail(c, Fail::Timeout);
                self.send_next(c, now);
            }
        }
        if let Some(p) = self.prober.as_mut() {
            p.check(self.plan, now);
        }
    }
}
