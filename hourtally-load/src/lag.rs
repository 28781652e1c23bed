//! POST→GET visibility lag (`--lag-every N`): how long after a POST's `204` a GET first
//! counts it. One POST of the mix in N becomes a probe: a user of its own (`lag{tag}-{id}`)
//! in an hour no other request touches, so the probes' hour holds exactly the probes and
//! "counted" is a plain comparison of its `unique_users`. After the probe's 204, a
//! connection of the prober's own GETs that hour back to back until the answer counts it; the
//! lag runs from the 204's arrival to that answer's. One probe at a time, so every answer
//! that counts one more user counts this probe.

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::Instant;

use hourtally::civil::hour_start_ms;
use hourtally::counts::Counts;

use crate::conn::{connect, Reader};
use crate::epoll::Epoll;
use crate::plan::Plan;
use crate::response::Framing;
use crate::stats::{record, Probes, Stats};

/// After this many refusals and no acceptance, the server will not take the probes' hour.
const REFUSALS_BEFORE_STOP: u64 = 3;

enum State {
    /// Waiting for the next probe.
    Idle,
    /// A probe POST is on its way, on a connection of the mix.
    Posted,
    /// Its 204 arrived at `acked`; a GET of the probes' hour left at `get_sent`.
    Watching { acked: Instant, get_sent: Instant },
    /// No more probes this run (the reason is in `Probes::stopped`).
    Stopped,
}

/// The visibility probes of one client thread and their connection.
pub struct Prober {
    every: u64,
    /// POSTs of the mix since the last probe was seen.
    posts: u64,
    next_id: u64,
    state: State,
    stream: TcpStream,
    reader: Reader,
    get: Vec<u8>,
    /// Users in the probes' hour before this run's first probe (0 on a fresh server).
    base: u64,
    pub counts: Probes,
}

impl Prober {
    /// The prober of `plan` (`None` without `--lag-every`), its connection watched by `ep`
    /// under `token`. A prober that cannot start says why in `stats` and returns `None`.
    pub fn start(plan: &Plan, ep: &Epoll, token: u64, stats: &mut Stats) -> Option<Prober> {
        if plan.lag_every == 0 {
            return None;
        }
        let get = format!(
            "GET /analytics?timestamp={} HTTP/1.1\r\nHost: {}\r\n\r\n",
            hour_start_ms(plan.lag_hour),
            plan.host
        )
        .into_bytes();
        let started = (|| -> Result<(TcpStream, Reader, u64), String> {
            let mut stream = connect(plan).map_err(|e| format!("cannot connect: {e}"))?;
            let mut reader = Reader::new();
            stream
                .write_all(&get)
                .map_err(|e| format!("first GET: {e}"))?;
            let mut at = Instant::now();
            let a = reader
                .next_reply(&mut stream, &mut at, Framing::Body)
                .map_err(|f| format!("first GET: {f:?}"))?;
            let base = Counts::parse(reader.body(&a))
                .filter(|_| a.status == 200 && !a.close)
                .ok_or_else(|| format!("first GET of the probes' hour answered {}", a.status))?
                .unique_users;
            stream
                .set_nonblocking(true)
                .and_then(|()| ep.add(&stream, token))
                .map_err(|e| format!("cannot watch its connection: {e}"))?;
            Ok((stream, reader, base))
        })();
        match started {
            Ok((stream, reader, base)) => Some(Prober {
                every: plan.lag_every,
                posts: 0,
                next_id: 0,
                state: State::Idle,
                stream,
                reader,
                get,
                base,
                counts: Probes::default(),
            }),
            Err(why) => {
                stats.probes.stopped = Some(format!("the prober did not start: {why}"));
                None
            }
        }
    }

    /// Called for each POST the mix is about to send: `Some((tag, id))` when this one is
    /// to be a probe, with the parts of its user's name.
    pub fn take(&mut self, plan: &Plan) -> Option<(u64, u64)> {
        if !matches!(self.state, State::Idle) {
            return None;
        }
        self.posts += 1;
        if self.posts < self.every {
            return None;
        }
        self.posts = 0;
        self.state = State::Posted;
        self.next_id += 1;
        Some((plan.lag_tag, self.next_id - 1))
    }

    /// The probe POST was answered `status` at `arrived`: on a 204, start watching.
    pub fn posted(&mut self, status: u16, arrived: Instant) {
        if status != 204 {
            self.counts.refused += 1;
            self.state = State::Idle;
            if self.counts.accepted == 0 && self.counts.refused >= REFUSALS_BEFORE_STOP {
                self.stop(format!(
                    "the server answered {status} to every probe POST (is --lag-hours-back \
                     inside its retention?)"
                ));
            }
            return;
        }
        self.counts.accepted += 1;
        self.state = State::Watching {
            acked: arrived,
            get_sent: arrived,
        };
        self.send_get();
    }

    /// The probe POST got no answer: the server may or may not have counted it, so the
    /// probes' hour no longer tells what it holds.
    pub fn lost(&mut self) {
        self.stop("a probe POST got no answer (transport error)".into());
    }

    fn stop(&mut self, why: String) {
        self.state = State::Stopped;
        self.counts.stopped.get_or_insert(why);
    }

    fn send_get(&mut self) {
        let State::Watching { acked, .. } = self.state else {
            return;
        };
        self.counts.gets += 1;
        // A few dozen bytes on a connection with nothing else in flight: the socket's
        // buffer takes them whole, or the connection is broken.
        match self.stream.write(&self.get) {
            Ok(n) if n == self.get.len() => {
                self.state = State::Watching {
                    acked,
                    get_sent: Instant::now(),
                }
            }
            Ok(_) => self.stop("a probe GET was written in part".into()),
            Err(e) => self.stop(format!("a probe GET: {e}")),
        }
    }

    /// Readiness on the prober's connection: reads the answers, records the lag when one
    /// counts the probe, else asks again.
    pub fn on_event(&mut self, plan: &Plan, stats: &mut Stats) {
        loop {
            let room = self.reader.room();
            let n = match self.reader.fill(&mut self.stream) {
                Ok(0) => return self.stop("the server closed the probes' connection".into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.stop(format!("reading a probe GET's answer: {e}")),
            };
            let arrived = Instant::now();
            loop {
                let a = match self.reader.buffered(Framing::Body) {
                    Ok(Some(a)) => a,
                    Ok(None) => break,
                    Err(f) => return self.stop(format!("a probe GET's answer: {f:?}")),
                };
                let State::Watching { acked, .. } = self.state else {
                    return self.stop("an answer on the probes' connection with no GET".into());
                };
                let counts = Counts::parse(self.reader.body(&a)).filter(|_| a.status == 200);
                let Some(counts) = counts else {
                    return self.stop(format!("a probe GET answered {}", a.status));
                };
                if counts.unique_users >= self.base + self.counts.accepted {
                    if plan.measuring(acked) {
                        record(
                            &mut stats.visibility,
                            arrived.saturating_duration_since(acked),
                        );
                    }
                    self.state = State::Idle;
                } else if arrived.saturating_duration_since(acked) > plan.timeout {
                    return self.stop(format!(
                        "a probe was still not counted {:?} after its 204",
                        plan.timeout
                    ));
                } else {
                    self.send_get();
                }
                if a.close {
                    return self.stop("the server closed the probes' connection".into());
                }
            }
            if n < room {
                return;
            }
        }
    }

    /// Stops when a probe GET has waited longer than the run's timeout for its answer.
    pub fn check(&mut self, plan: &Plan, now: Instant) {
        if let State::Watching { get_sent, .. } = self.state {
            if now.saturating_duration_since(get_sent) > plan.timeout {
                self.stop("a probe GET got no answer".into());
            }
        }
    }
}
