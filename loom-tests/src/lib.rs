//! Loom models of hourtally's concurrent protocols; see `tests/`.
//!
//! Every model runs through [`model`] or [`model_outcomes`]: [`loom::model`] (so
//! `LOOM_MAX_PREEMPTIONS`, `LOOM_MAX_BRANCHES`, `LOOM_LOG`, … apply as usual) plus a count of
//! the interleavings explored and the wall time, printed to stderr (`cargo test --
//! --nocapture` shows them; `LOOM_TESTS_PROGRESS=1` also prints a line every 100 000
//! interleavings).

#[cfg(not(hourtally_loom))]
compile_error!(
    "loom-tests must be built with RUSTFLAGS=\"--cfg hourtally_loom\" (see README, Verification)"
);

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Runs `f` under [`loom::model`] and reports how many interleavings loom explored.
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_outcomes(f);
}

/// Runs `f` under [`loom::model`], reports how many interleavings loom explored, and returns
/// the set of outcomes the interleavings ended in (what `f` returned). Tests compare it with
/// the outcomes they expect, to show that the model reaches every case its assertions are
/// about, rather than passing because loom never got there.
///
/// The counter and the set are plain `std` objects, outside the model: loom neither sees nor
/// permutes them, and they are touched only outside any loom operation.
pub fn model_outcomes<T, F>(f: F) -> BTreeSet<T>
where
    T: Ord + Debug + Send + 'static,
    F: Fn() -> T + Sync + Send + 'static,
{
    let iterations = Arc::new(AtomicU64::new(0));
    let outcomes = Arc::new(Mutex::new(BTreeSet::new()));
    let start = Instant::now();
    let progress = std::env::var_os("LOOM_TESTS_PROGRESS").is_some();
    {
        let (iterations, outcomes) = (iterations.clone(), outcomes.clone());
        loom::model(move || {
            let i = iterations.fetch_add(1, Ordering::Relaxed) + 1;
            if progress && i % 100_000 == 0 {
                eprintln!("  ... {i} interleavings, {:.2?}", start.elapsed());
            }
            let outcome = f();
            outcomes
                .lock()
                .expect("outcome set poisoned")
                .insert(outcome);
        });
    }
    let name = std::thread::current()
        .name()
        .unwrap_or("loom model")
        .to_owned();
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcome set poisoned"));
    eprintln!(
        "{name}: {} interleavings in {:.2?} (LOOM_MAX_PREEMPTIONS={}); outcomes {outcomes:?}",
        iterations.load(Ordering::Relaxed),
        start.elapsed(),
        std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "unbounded".into()),
    );
    outcomes
}
