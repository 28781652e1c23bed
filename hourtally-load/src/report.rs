//! What the run prints: the live progress line on stderr, the report on stdout (mode,
//! command, config, throughput, latency percentiles, replies by status, errors, client CPU)
//! and its last line, the machine-readable `RESULT` line.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::flags::Args;
use crate::mix::{Op, OP_NAMES};
use crate::plan::Plan;
use crate::stats::Stats;

/// This process's CPU time (user + system, all threads), from /proc; None elsewhere.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`: state is field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // USER_HZ is 100 on every mainstream Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// `s` as a POSIX shell word: as it is when it is safe, else single-quoted.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The live progress line on stderr (elapsed seconds, req/s of the last second, errors),
/// redrawn every second until `stop` is dropped, then erased.
pub fn progress(plan: Arc<Plan>, stop: mpsc::Receiver<()>) {
    let mut last = 0u64;
    let mut err = io::stderr();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(Duration::from_secs(1)) {
        let now = Instant::now();
        let answered = plan.answered.load(Ordering::Relaxed);
        let errors = plan.errors.load(Ordering::Relaxed);
        let phase = if now < plan.measure_start {
            "warm-up "
        } else {
            ""
        };
        let _ = write!(
            err,
            "\r\x1b[2K{phase}{:>5.0}s  {:>9} req/s  errors {errors}",
            now.duration_since(plan.start).as_secs_f64(),
            answered - last
        );
        let _ = err.flush();
        last = answered;
    }
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

/// The first lines of the report, resolved before the run: the mode, the command line as
/// typed, and the full configuration.
pub struct Header {
    mode: String,
    command: String,
    config: String,
    /// Open loop (`--rate`).
    open_loop: bool,
    /// Visibility probes (`--lag-every`).
    lag_every: bool,
    /// Every answer checked (`--verify`).
    verify: bool,
}

impl Header {
    pub fn new(args: &Args, threads: u32, duration: Option<f64>) -> Self {
        let mode = match args.rate {
            Some(r) => format!("open loop at {r} req/s (latency from the intended send time: corrected for coordinated omission)"),
            None => "closed loop (latency from the write of the batch to the read of the answer)".to_string(),
        };
        let command: Vec<String> = std::env::args().map(|a| shell_quote(&a)).collect();
        let length = match (duration, args.requests) {
            (Some(d), _) => format!("duration={d}s"),
            (None, Some(n)) => format!("requests={n}"),
            (None, None) => unreachable!("duration defaults to 10 s"),
        };
        let config = format!(
            "addr={} connections={} pipeline={} threads={threads} {length} warmup={}s \
             post_share={} other_share={} current_share={} click_share={} users={} rate={} seed={} verify={} timeout={}s spin_us={} lag_every={} lag_hours_back={}",
            args.addr,
            args.connections,
            args.pipeline,
            args.warmup,
            args.post_share,
            args.other_share,
            args.current_share,
            args.click_share,
            args.users,
            args.rate.map_or("none".to_string(), |r| r.to_string()),
            args.seed,
            args.verify,
            args.timeout,
            args.spin_us,
            args.lag_every,
            args.lag_hours_back,
        );
        Header {
            mode,
            command: command.join(" "),
            config,
            open_loop: args.rate.is_some(),
            lag_every: args.lag_every > 0,
            verify: args.verify,
        }
    }
}

/// The numbers of the `RESULT` line that the report computes.
pub struct Summary {
    rps: f64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    non2xx: u64,
    /// Client CPU over the whole run (warm-up included), % of one core.
    cpu_pct: Option<f64>,
    /// `--lag-every`: the visibility lag's probes seen, p50 and p99, µs.
    visibility: Option<(u64, u64, u64)>,
    /// `--verify`: every answer was checked (else `wrong_answers` is `n/a`).
    verify: bool,
}

impl Summary {
    /// The last stdout line: `RESULT rps=... requests=... p50_us=... ...`.
    pub fn result_line(&self, stats: &Stats, diffs: u64) -> String {
        let e = &stats.errors;
        let lag = self.visibility.map_or(String::new(), |(n, p50, p99)| {
            format!(" lag_probes={n} lag_p50_us={p50} lag_p99_us={p99}")
        });
        format!(
            "RESULT rps={:.0} requests={} p50_us={} p90_us={} p99_us={} p999_us={} \
             max_us={} errors={} lost={} unsent={} non2xx={} verify_diffs={diffs} wrong_answers={} \
             client_cpu_pct={}{lag}",
            self.rps,
            stats.answered,
            self.p50,
            self.p90,
            self.p99,
            self.p999,
            self.max,
            e.transport(),
            e.lost,
            e.unsent,
            self.non2xx,
            if self.verify {
                stats.wrong.to_string()
            } else {
                "n/a".to_string()
            },
            self.cpu_pct
                .map_or("n/a".to_string(), |p| format!("{p:.0}"))
        )
    }
}

/// Prints the report of the run (all but the verify lines and the `RESULT` line) to stdout.
/// `cpu`: the client's CPU time over `wall`, the whole run.
pub fn print(
    header: &Header,
    plan: &Plan,
    stats: &Stats,
    cpu: Option<Duration>,
    wall: Duration,
) -> Summary {
    let elapsed = stats.last.map_or(Duration::ZERO, |l| {
        l.saturating_duration_since(plan.measure_start)
    });
    let secs = elapsed.as_secs_f64();
    let rps = if secs > 0.0 {
        stats.answered as f64 / secs
    } else {
        0.0
    };
    let h = &stats.latency;
    let q = |x: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(x)
        }
    };
    let (p50, p90, p99, p999, max) = (q(0.5), q(0.9), q(0.99), q(0.999), h.max());
    let e = &stats.errors;
    let non2xx: u64 = stats
        .status
        .iter()
        .enumerate()
        .filter(|(s, _)| !(200..300).contains(s))
        .map(|(_, n)| n)
        .sum();

    let mut out = String::new();
    let _ = writeln!(out, "hourtally-load: {}", header.mode);
    let _ = writeln!(out, "command: {}", header.command);
    let _ = writeln!(out, "config: {}", header.config);
    let _ = writeln!(out, "requests      {}", stats.answered);
    let _ = writeln!(out, "duration      {secs:.3} s");
    let _ = writeln!(out, "requests/s    {rps:.0}");
    let _ = writeln!(
        out,
        "latency (µs){}",
        if header.open_loop {
            ", from the intended send time (coordinated omission corrected)"
        } else {
            ", from the write of the batch to the read of the answer"
        }
    );
    let _ = writeln!(out, "  p50         {p50}");
    let _ = writeln!(out, "  p90         {p90}");
    let _ = writeln!(out, "  p99         {p99}");
    let _ = writeln!(out, "  p99.9       {p999}");
    let _ = writeln!(out, "  max         {max}");
    if header.open_loop && !stats.lag.is_empty() {
        let l = &stats.lag;
        let _ = writeln!(
            out,
            "send lag (µs, how late the client sent vs. the schedule)  p50 {}  p99 {}  max {}",
            l.value_at_quantile(0.5),
            l.value_at_quantile(0.99),
            l.max()
        );
    }
    let visibility = header.lag_every.then(|| {
        let v = &stats.visibility;
        let p = &stats.probes;
        let q = |x| {
            if v.is_empty() {
                0
            } else {
                v.value_at_quantile(x)
            }
        };
        let _ = writeln!(
            out,
            "visibility lag (µs, a POST's 204 to the first GET answer that counts it; {} probes \
             seen of {} accepted, {} refused, {} GETs)",
            v.len(),
            p.accepted,
            p.refused,
            p.gets
        );
        let _ = writeln!(
            out,
            "  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            v.max()
        );
        if let Some(why) = &p.stopped {
            let _ = writeln!(out, "  probing stopped early: {why}");
        }
        (v.len(), q(0.5), q(0.99))
    });
    if header.open_loop {
        let _ = writeln!(
            out,
            "unsent        {} (scheduled, but still waiting for an earlier answer when the run ended)",
            e.unsent
        );
    }
    // HEAD, ranges and /metrics (--other-share): then what the mix held, by kind.
    if stats.by_op[Op::Head.index()..].iter().any(|&n| n > 0) {
        let _ = writeln!(out, "answers by request");
        for (name, n) in OP_NAMES.iter().zip(stats.by_op) {
            let _ = writeln!(out, "  {name:<22}{n}");
        }
    }
    let _ = writeln!(out, "answers by status");
    for (code, &n) in stats.status.iter().enumerate() {
        if n > 0 || matches!(code, 200 | 204 | 503) {
            let _ = writeln!(out, "  {code}:        {n}");
        }
    }
    let _ = writeln!(
        out,
        "transport errors {} (connect {}, write {}, read {}, timeout {}, closed {}, protocol {}{}); requests without an answer {}",
        e.transport(),
        e.connect,
        e.write,
        e.read,
        e.timeout,
        e.closed,
        e.protocol,
        e.protocol_why.map_or(String::new(), |w| format!(": {w}")),
        e.lost
    );
    if header.verify {
        let _ = writeln!(
            out,
            "wrong answers {} (every answer checked against its request, warm-up included)",
            stats.wrong
        );
        for w in &stats.wrong_shown {
            let _ = writeln!(out, "  wrong: {w}");
        }
    }
    // Client CPU over the whole run (warm-up included), % of one core.
    let cpu_pct = cpu.map(|c| 100.0 * c.as_secs_f64() / wall.as_secs_f64().max(1e-9));
    if let (Some(cpu), Some(pct)) = (cpu, cpu_pct) {
        let total = plan.answered.load(Ordering::Relaxed).max(1);
        let _ = writeln!(
            out,
            "client cpu    {pct:.0}% of one core over {:.2} s ({:.2} µs per request){}",
            wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / total as f64,
            if pct >= 90.0 {
                " - the client may be the bottleneck"
            } else {
                ""
            }
        );
    }
    print!("{out}");
    let _ = io::stdout().flush();
    Summary {
        rps,
        p50,
        p90,
        p99,
        p999,
        max,
        non2xx,
        cpu_pct,
        visibility,
        verify: header.verify,
    }
}
