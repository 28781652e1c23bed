//! hourtally-load: an HTTP/1.1 load generator for hourtally (or any server), with the
//! "Tapad mix" of traffic: POSTs of clicks and impressions and GETs of hourly counts, most of
//! them for the current hour.
//!
//! Two modes:
//! - **closed loop** (default): every connection keeps one batch of `--pipeline` requests in
//!   flight, written with one `write`, and sends the next batch as soon as the last answer of
//!   the previous one is read. Latency is measured from the write of a request's batch to the
//!   read of its answer.
//! - **open loop** (`--rate R`): requests leave on a fixed schedule (connection `c` sends its
//!   `k`-th request at `start + (k × connections + c) / R`), whatever the answers do, and the
//!   latency of each is measured from its *intended* send time. A server that stalls is
//!   charged for every request that should have left during the stall (the correction for
//!   coordinated omission, as wrk2 does it).
//!
//! Closed-loop client threads drive several connections each, round-robin, on blocking
//! sockets. An open-loop thread (one by default) drives all its connections from one epoll
//! loop ([`epoll`], through `libc`): one request in flight per connection, later ones queued
//! there. With `--lag-every N`, one POST in N is also a probe of the POST→GET visibility lag
//! ([`lag`]). No async runtime.
//!
//! `--verify` checks every answer as it arrives against the request it answers ([`check`]:
//! its status, its body, and on each connection no hour's counter going down), tallies what
//! the server accepted (POSTs answered `204`) per hour and checks, at the end, that `GET`
//! for every touched hour answers exactly that ([`verify`]).
//!
//! Exit status:
//! - 0: success;
//! - 1: with `--verify`, anything wrong: a difference at the end, a wrong answer, a transport
//!   or protocol error, or a request without an answer (a client that checks every answer
//!   fails on all of them; without `--verify` they only show in the report);
//! - 2: bad flags, cannot connect, or no request got an answer.
//!
//! Here `main` only wires the run: [`flags`] (the command line) → [`plan`] (the shared plan
//! and schedule) → client threads of [`closed_loop`] or [`open_loop`], which send requests of
//! the [`mix`] over [`conn`]ections, read replies with the [`response`] parser and keep
//! [`stats`] (and, for `--verify`, what is [`expected`]) → [`report`], then [`verify`].
//! The hour arithmetic, the answer format ([`hourtally::counts::Counts`]) and the hour labels
//! come from the `hourtally` library.

mod check;
mod closed_loop;
mod conn;
mod epoll;
mod expected;
mod flags;
mod lag;
mod mix;
mod open_loop;
mod plan;
mod report;
mod response;
mod stats;
mod verify;

use std::io::{self, IsTerminal};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use clap::Parser;

use crate::flags::Args;
use crate::plan::Plan;
use crate::report::{cpu_time, Header};
use crate::stats::Stats;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if args.rate.is_some() && args.pipeline != 1 {
        eprintln!(
            "hourtally-load: --rate (open loop) sends one request at a time: use --pipeline 1"
        );
        return ExitCode::from(2);
    }
    let addr = match args.addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => {
            eprintln!("hourtally-load: cannot resolve --addr {}", args.addr);
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    if let Err(e) = TcpStream::connect_timeout(&addr, timeout) {
        eprintln!("hourtally-load: cannot connect to {addr}: {e}");
        return ExitCode::from(2);
    }
    // Sleeps end within ~1 µs of their deadline instead of the default 50 µs slack (threads
    // inherit it): the open loop's schedule depends on it. Not fatal where unsupported.
    let _ = std::fs::write("/proc/self/timerslack_ns", "1000");

    if args.lag_every > 0 && args.rate.is_none() {
        eprintln!("hourtally-load: --lag-every needs the open loop (--rate)");
        return ExitCode::from(2);
    }
    let cores = thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let threads = match args.rate {
        // One epoll loop drives every connection unless told otherwise.
        Some(_) => args.threads.unwrap_or(1),
        None => args
            .threads
            .unwrap_or_else(|| args.connections.min(2 * cores)),
    }
    .min(args.connections);
    let duration = match (args.duration, args.requests) {
        (Some(d), _) => Some(d),
        (None, None) => Some(10.0),
        (None, Some(_)) => None,
    };
    let plan = Arc::new(Plan::new(&args, addr, timeout, duration));
    let header = Header::new(&args, threads, duration);

    let show_progress = !args.no_progress && io::stderr().is_terminal();
    let (stop_tx, stop_rx) = mpsc::channel();
    let progress_thread = show_progress.then(|| {
        let p = plan.clone();
        thread::spawn(move || report::progress(p, stop_rx))
    });

    let cpu0 = cpu_time();
    let stats = run_clients(&plan, args.rate, threads);
    let cpu = cpu0.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    let wall = plan.start.elapsed();
    drop(stop_tx);
    if let Some(h) = progress_thread {
        let _ = h.join();
    }

    let summary = report::print(&header, &plan, &stats, cpu, wall);
    let mut code = ExitCode::SUCCESS;
    let mut diffs = 0;
    if args.verify {
        diffs = verify::verify(&plan, &stats.expected, stats.errors.lost_posts);
        let wrong = verify::wrongs(&stats, diffs);
        if wrong.is_empty() {
            println!("verify: passed: every answer right, no transport error, no request lost");
        } else {
            println!("verify: FAILED: {}", wrong.join(", "));
            code = ExitCode::from(1);
        }
    }
    println!("{}", summary.result_line(&stats, diffs));
    if stats.answered == 0 && stats.errors.transport() > 0 {
        eprintln!("hourtally-load: no request to {addr} got an answer");
        return ExitCode::from(2);
    }
    code
}

/// Runs the client threads (open loop at `rate`, else closed loop) until the run ends; their
/// results, merged.
fn run_clients(plan: &Arc<Plan>, rate: Option<f64>, threads: u32) -> Stats {
    let mut handles = Vec::new();
    for t in 0..threads {
        let conns: Vec<u32> = (t..plan.connections).step_by(threads as usize).collect();
        let p = plan.clone();
        let h = thread::Builder::new()
            .name(format!("client-{t}"))
            .spawn(move || match rate {
                Some(r) => open_loop::open_loop(p, r, conns, t == 0),
                None => closed_loop::closed_loop(p, conns),
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("hourtally-load: cannot start a client thread: {e}");
                plan.abort.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    let mut stats = Stats::new();
    for h in handles {
        match h.join() {
            Ok(s) => stats.merge(s),
            Err(_) => eprintln!("hourtally-load: a client thread panicked"),
        }
    }
    stats
}
