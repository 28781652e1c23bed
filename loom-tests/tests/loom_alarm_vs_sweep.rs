//! A connection's read deadline (`alarms::Alarms`, Relaxed cells) against the sweeper that
//! wakes it: two threads, the connection (the main thread) and the sweeper.
//!
//! What it checks, and why Relaxed suffices for it:
//! - **an armed deadline that passes is woken** (`armed_deadline_vs_sweeper`): the
//!   connection registers its waker, arms a deadline, and waits for the wake-up; the
//!   sweeper sweeps with a clock past the deadline until it has woken someone. Whatever the
//!   interleaving, the connection is woken: the sweeper keeps reading the cell until the
//!   store is visible (coherence), and the waker is reached under the lock, which orders the
//!   registration before it. A lost arm would leave the connection waiting for good, which
//!   loom reports as its branch limit.
//! - **nothing is woken through a waker after `unregister` returns**
//!   (`unregister_vs_sweeper`): the connection arms a passed deadline and unregisters at once,
//!   racing the sweeper; a wake-up is allowed only before `unregister` returned. Both
//!   outcomes (woken first, or not at all) are reached.

use hourtally::alarms::{Alarms, Wake};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Counts its wake-ups (a loom atomic, so that the model sees them), and fails if woken after
/// its connection said it was gone.
struct Waker {
    woken: Arc<AtomicUsize>,
    gone: Arc<AtomicBool>,
}

impl Wake for Waker {
    fn wake(&self) {
        assert!(
            !self.gone.load(Ordering::SeqCst),
            "woken through a waker after unregister returned"
        );
        self.woken.fetch_add(1, Ordering::SeqCst);
    }
}

/// A one-cell table with a connection registered in it: the table, the wake-up count and the
/// connection's "gone" flag.
fn registered() -> (Arc<Alarms<Waker>>, Arc<AtomicUsize>, Arc<AtomicBool>) {
    let alarms = Arc::new(Alarms::new(1));
    let woken = Arc::new(AtomicUsize::new(0));
    let gone = Arc::new(AtomicBool::new(false));
    alarms.register(
        0,
        Waker {
            woken: woken.clone(),
            gone: gone.clone(),
        },
    );
    (alarms, woken, gone)
}

#[test]
fn armed_deadline_vs_sweeper() {
    loom_tests::model(|| {
        let (alarms, woken, _gone) = registered();
        let sweeper = {
            let alarms = alarms.clone();
            thread::spawn(move || {
                // The clock says 100; sweep until the armed cell is seen.
                while alarms.sweep(100) == 0 {
                    thread::yield_now();
                }
            })
        };
        alarms.arm(0, 50);
        sweeper.join().unwrap();
        assert_eq!(woken.load(Ordering::SeqCst), 1, "woken once");
        alarms.unregister(0);
    });
}

#[test]
fn unregister_vs_sweeper() {
    let outcomes = loom_tests::model_outcomes(|| {
        let (alarms, woken, gone) = registered();
        alarms.arm(0, 50);
        let sweeper = {
            let alarms = alarms.clone();
            thread::spawn(move || alarms.sweep(100))
        };
        alarms.unregister(0);
        gone.store(true, Ordering::SeqCst);
        let swept = sweeper.join().unwrap();
        assert_eq!(swept, woken.load(Ordering::SeqCst));
        swept
    });
    assert_eq!(outcomes, [0, 1].into(), "both sides of the race reached");
}
