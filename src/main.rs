//! The hourtally server binary: parse the flags, start, wait for SIGTERM or Ctrl-C (or an
//! error a thread of the server cannot go on after), drain. The only place that picks the
//! process's exit code.

use std::process::ExitCode;
use std::sync::mpsc;

use hourtally::config::Config;
use hourtally::log::{self, RejectionReporter, REJECTION_SUMMARY_INTERVAL};
use hourtally::server::Server;
use hourtally::start::{Fatal, StartError};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Exit code for flags that do not fit together (as clap uses for flags it refuses), or
/// that differ from the cluster's.
const EXIT_BAD_FLAGS: u8 = 2;

/// Why the server stops.
enum Halt {
    /// A stop signal.
    Signal(i32),
    /// An error a thread of the server cannot go on after.
    Failed(StartError),
}

/// The exit code for a server that could not start or go on.
fn exit_code(e: &StartError) -> ExitCode {
    match e {
        StartError::Flags(_) => ExitCode::from(EXIT_BAD_FLAGS),
        _ => ExitCode::FAILURE,
    }
}

/// Fixes glibc's mapping threshold at its default, 128 KiB, so that every big allocation
/// gets a mapping of its own and goes back to the OS when freed. By default glibc raises the
/// threshold to the size of each big block freed (up to 32 MiB), after which blocks of that
/// size come from the heap and stay resident as holes once freed: a frozen hour of 2 M users
/// then kept 14 bytes a user resident where it holds 6 (`FROZEN=1 USERS=2000000
/// scripts/bench-memory.sh`: the freeze's 16 MiB sorting buffer raised it, and the hour's
/// log, allocated later, came from the heap).
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` changes a setting of glibc's allocator; it touches no memory of ours,
    // and is called before any thread of ours exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn main() -> ExitCode {
    fix_mmap_threshold();
    // Not `Config::parse`: `validate` needs to know whether --data-dir was given.
    let config = Config::from_args();
    if let Err(e) = log::init(&config.log_level, config.log_format) {
        eprintln!("hourtally: cannot set up logging: {e}");
        return ExitCode::from(EXIT_BAD_FLAGS);
    }
    // Register the handlers before the server exists, so no signal finds it half-started
    // with the default (killing) disposition.
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hourtally: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (halt, halted) = mpsc::channel();
    let fatal = {
        let halt = halt.clone();
        Fatal::new(move |e| {
            let _ = halt.send(Halt::Failed(e));
        })
    };
    let server = match Server::start(&config, fatal) {
        Ok(s) => s,
        Err(e) => {
            // Plain, on stderr: whoever started the server reads this, not a log pipeline.
            eprintln!("hourtally: {e}");
            return exit_code(&e);
        }
    };
    let reporter = RejectionReporter::start(server.service().clone(), REJECTION_SUMMARY_INTERVAL);
    // The first stop signal stops the server; a stop waits for the disk to take every event
    // answered 204, and a second signal gives up on what it has not taken (the exit code
    // says so).
    let give_up = server.give_up_handle();
    let watching = std::thread::Builder::new()
        .name("hourtally-signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if let Some(signal) = signals.next() {
                let _ = halt.send(Halt::Signal(signal));
            }
            for signal in signals {
                if give_up.waits() {
                    tracing::warn!(
                        signal,
                        "second stop signal: giving up on the disk or the log"
                    );
                    give_up.give_up();
                } else {
                    tracing::warn!(signal, "second stop signal: already stopping");
                }
            }
        });
    if let Err(e) = watching {
        eprintln!("hourtally: cannot watch for stop signals: {e}");
        return ExitCode::FAILURE;
    }
    let signal = match halted.recv() {
        Ok(Halt::Signal(signal)) => signal,
        Ok(Halt::Failed(e)) => return fail(&e),
        // Every sender gone: cannot happen while the signal thread runs; stop as for SIGTERM.
        Err(_) => SIGTERM,
    };
    tracing::info!(
        signal,
        "stopping: answering requests taken, then draining the queue"
    );
    let report = server.shutdown();
    if let Ok(reporter) = reporter {
        reporter.stop();
    }
    tracing::info!(
        applied = report.applied,
        sealed_drops = report.sealed_drops,
        duplicates = report.duplicates,
        queued = report.queued,
        unclosed_connections = report.unclosed_connections,
        "stopped"
    );
    // A recovery that failed while the server was stopping still decides the exit.
    if let Ok(Halt::Failed(e)) = halted.try_recv() {
        return fail(&e);
    }
    let lost = report.lost_answered;
    if lost > 0 {
        tracing::error!(lost, "stopped having lost {lost} events answered 204");
        eprintln!(
            "hourtally: stopped having lost {lost} events answered 204: the disk or the log did not take them"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Ends a server that cannot go on: says why, in the log and plainly on stderr.
fn fail(e: &StartError) -> ExitCode {
    tracing::error!(error = %e, "cannot go on");
    eprintln!("hourtally: {e}");
    exit_code(e)
}
