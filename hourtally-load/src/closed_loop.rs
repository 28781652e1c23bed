//! The closed loop (the default): each client thread drives its connections round-robin;
//! every connection keeps one batch of `--pipeline` requests in flight, written with one
//! `write`, and sends the next batch once the last reply of the previous one is read.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::check::Checker;
use crate::conn::{connect, Fail, Reader, RECONNECT_GIVE_UP};
use crate::mix::{next_request, Req, Rng, Stamp};
use crate::plan::{sleep_until, Plan};
use crate::stats::Stats;

/// One connection of the closed loop and its batch in flight.
struct ClosedConn {
    idx: u32,
    stream: Option<TcpStream>,
    reader: Reader,
    inflight: VecDeque<Req>,
    rng: Rng,
    wbuf: Vec<u8>,
    failing_since: Option<Instant>,
    gave_up: bool,
    /// --verify: what this connection's answers have shown so far.
    checker: Checker,
}

impl ClosedConn {
    /// Drops the connection; requests still in flight count as lost.
    fn drop_stream(&mut self, stats: &mut Stats) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.reader.clear();
        self.checker.reset();
        for r in self.inflight.drain(..) {
            stats.lost(&r);
        }
    }

    /// Reads the replies of the batch in flight.
    fn complete(&mut self, plan: &Plan, stats: &mut Stats) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut arrived = Instant::now();
        let mut n = 0;
        while let Some(req) = self.inflight.front().copied() {
            match self
                .reader
                .next_reply(stream, &mut arrived, req.op.framing())
            {
                Ok(a) => {
                    self.inflight.pop_front();
                    n += 1;
                    if plan.verify {
                        self.checker.check_answer(&req, &a, &self.reader, stats);
                    }
                    stats.replied(plan, &req, a.status, arrived);
                    if a.close {
                        if !self.inflight.is_empty() {
                            stats.fail(plan, Fail::Closed);
                        }
                        self.drop_stream(stats);
                        break;
                    }
                }
                Err(f) => {
                    stats.fail(plan, f);
                    self.drop_stream(stats);
                    break;
                }
            }
        }
        plan.answered.fetch_add(n, Ordering::Relaxed);
    }

    /// Writes the next batch. False when this connection is done.
    fn send(&mut self, plan: &Plan, stats: &mut Stats) -> bool {
        if self.gave_up {
            return false;
        }
        let now = Instant::now();
        let n = plan.claim(plan.pipeline, now);
        if n == 0 {
            return false;
        }
        if self.stream.is_none() {
            match connect(plan) {
                Ok(s) => {
                    self.stream = Some(s);
                    self.failing_since = None;
                }
                Err(_) => {
                    stats.connect_failed(plan);
                    if let Some(b) = &plan.budget {
                        if now >= plan.measure_start {
                            b.fetch_add(u64::from(n), Ordering::Relaxed);
                        }
                    }
                    let since = *self.failing_since.get_or_insert(now);
                    if now.duration_since(since) > RECONNECT_GIVE_UP {
                        self.gave_up = true;
                        return false;
                    }
                    thread::sleep(Duration::from_millis(10));
                    return true;
                }
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return true;
        };
        self.wbuf.clear();
        let stamp = Stamp::now();
        for _ in 0..n {
            let r = next_request(plan, &mut self.rng, &stamp, now, &mut self.wbuf);
            self.inflight.push_back(r);
        }
        let t0 = Instant::now();
        for r in self.inflight.iter_mut() {
            r.t0 = t0;
        }
        if stream.write_all(&self.wbuf).is_err() {
            stats.fail(plan, Fail::Write);
            self.drop_stream(stats);
        }
        true
    }
}

/// Client thread of the closed loop: drives connections `conns` until the run ends.
pub fn closed_loop(plan: Arc<Plan>, conns: Vec<u32>) -> Stats {
    let mut stats = Stats::new();
    let mut conns: Vec<ClosedConn> = conns
        .into_iter()
        .map(|idx| ClosedConn {
            idx,
            stream: None,
            reader: Reader::new(),
            inflight: VecDeque::with_capacity(plan.pipeline as usize),
            rng: Rng::new(plan.seed, u64::from(idx)),
            wbuf: Vec::with_capacity(plan.pipeline as usize * 128),
            failing_since: None,
            gave_up: false,
            checker: Checker::default(),
        })
        .collect();
    // Start together, at the start of the (warm-up or measured) run.
    sleep_until(plan.start, Duration::ZERO);
    loop {
        let mut busy = false;
        for c in conns.iter_mut() {
            c.complete(&plan, &mut stats);
            busy |= c.send(&plan, &mut stats);
        }
        if !busy {
            break;
        }
    }
    debug_assert!(conns
        .iter()
        .all(|c| c.inflight.is_empty() && c.idx < plan.connections));
    stats
}
