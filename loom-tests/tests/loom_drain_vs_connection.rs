//! The connection registry's drain (`conns::Connections`) racing with a connection being
//! admitted and going to sleep in a read.
//!
//! What it checks, and why it matters: a stopping server must wake every open connection so
//! it writes out its answers and closes cleanly (a connection left asleep is closed by the
//! process's exit, which can reset it and destroy answers already written, and a client that
//! retries then counts twice). The admit/drain handshake is Dekker's pattern with a SeqCst
//! fence on each side: either the drain finds the connection's fd and shuts it (waking the
//! read), or the connection sees `draining` right after admission and closes by itself. And
//! the drain never shuts an fd after its connection closed it (the number could belong to
//! another file by then).
//!
//! Threads: the main thread drains; one connection thread is admitted, then "reads": it waits
//! (yielding to loom) until the drain's `shut` wakes it, unless it saw `draining` already.
//! A lost wake-up leaves it waiting forever, which loom reports at its branch limit.

use hourtally::conns::Connections;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const FD: i32 = 7;

/// What happened to the connection: (admitted, saw `draining` at admission, woken by `shut`).
type Outcome = (bool, bool, bool);

fn drain_model(fenced: bool) -> std::collections::BTreeSet<Outcome> {
    loom_tests::model_outcomes(move || {
        let conns = Arc::new(Connections::new(1));
        // Set by `shut` (Release), read by the sleeping connection (Acquire): the wake-up a
        // read gets when its socket's read side is shut.
        let woken = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let shuts = Arc::new(AtomicUsize::new(0));

        let conn = {
            let (conns, woken, closed) = (conns.clone(), woken.clone(), closed.clone());
            thread::spawn(move || {
                let ticket = if fenced {
                    conns.admit(FD)
                } else {
                    conns.admit_without_fence(FD)
                };
                let Some(ticket) = ticket else {
                    return (false, false, false);
                };
                let saw_draining = ticket.draining();
                let mut was_woken = false;
                if !saw_draining {
                    // Asleep in a read until the drain shuts the socket.
                    while !woken.load(Ordering::Acquire) {
                        thread::yield_now();
                    }
                    was_woken = true;
                    assert!(
                        ticket.draining(),
                        "drain violation: woken by the drain but `draining` not visible"
                    );
                }
                drop(ticket);
                // The socket is closed only after the ticket gave its cell back.
                closed.store(true, Ordering::Release);
                (true, saw_draining, was_woken)
            })
        };

        let shut = |fd: i32| {
            assert_eq!(fd, FD);
            assert!(
                !closed.load(Ordering::Acquire),
                "drain violation: shut an fd its connection had closed"
            );
            shuts.fetch_add(1, Ordering::Relaxed);
            woken.store(true, Ordering::Release);
        };
        if fenced {
            conns.drain(shut);
        } else {
            conns.drain_without_fence(shut);
        }
        let outcome = conn.join().unwrap();
        assert!(shuts.load(Ordering::Relaxed) <= 1);
        assert_eq!(
            conns.open(),
            0,
            "drain violation: a ticket was not given back"
        );
        outcome
    })
}

#[test]
fn drain_vs_connection_admitted_and_asleep() {
    let outcomes = drain_model(true);
    // Refused (the drain came first), closed by itself (saw `draining`), or woken by `shut`:
    // each was reached, and nothing else.
    let expected = [
        (false, false, false),
        (true, false, true),
        (true, true, false),
    ];
    assert_eq!(outcomes, expected.into(), "outcomes reached");
}

/// Negative control: without the fences, the connection can miss `draining` while the drain
/// misses its fd; it sleeps forever (loom's branch limit).
#[test]
#[should_panic(expected = "branch")]
fn negative_control_drain_without_fences_loses_a_connection() {
    drain_model(false);
}
