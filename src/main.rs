//! The hourtally server binary: parse the flags, start, wait for SIGTERM or Ctrl-C, drain.

use std::process::ExitCode;

use hourtally::config::Config;
use hourtally::log::{self, RejectionReporter, REJECTION_SUMMARY_INTERVAL};
use hourtally::server::Server;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Exit code for flags that do not fit together (as clap uses for flags it refuses).
const EXIT_BAD_FLAGS: u8 = 2;

fn main() -> ExitCode {
    // Not `Config::parse`: `validate` needs to know whether --data-dir was given.
    let config = Config::from_args();
    if let Err(e) = log::init(&config.log_level, config.log_format) {
        eprintln!("hourtally: cannot set up logging: {e}");
        return ExitCode::from(EXIT_BAD_FLAGS);
    }
    if let Err(e) = config.validate() {
        eprintln!("hourtally: {e}");
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
    let server = match Server::start(&config) {
        Ok(s) => s,
        Err(e) => {
            // Plain, on stderr: whoever started the server reads this, not a log pipeline.
            eprintln!("hourtally: cannot start on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let reporter = RejectionReporter::start(server.service().clone(), REJECTION_SUMMARY_INTERVAL);
    let signal = signals.forever().next().unwrap_or(SIGTERM);
    tracing::info!(
        signal,
        "stopping: answering requests taken, then draining the queue"
    );
    // A stop waits for the disk to take every event answered 204; a second signal gives up
    // on what it has not taken (and the exit code says so).
    let journal = server.service().journal.clone();
    if let Some(journal) = journal.clone() {
        let spawned = std::thread::Builder::new()
            .name("hourtally-signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    tracing::warn!(signal, "second stop signal: giving up on the disk");
                    journal.give_up();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot watch for a second stop signal");
        }
    }
    let report = server.shutdown();
    if let Ok(reporter) = reporter {
        reporter.stop();
    }
    tracing::info!(
        applied = report.applied,
        sealed_drops = report.sealed_drops,
        queued = report.queued,
        unclosed_connections = report.unclosed_connections,
        "stopped"
    );
    let lost = journal.map_or(0, |j| j.lost());
    if lost > 0 {
        tracing::error!(lost, "stopped having lost {lost} events answered 204");
        eprintln!(
            "hourtally: stopped having lost {lost} events answered 204: the disk did not take them"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
