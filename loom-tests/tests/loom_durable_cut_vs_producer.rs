//! Durable cuts (`--fsync always`, `writer.rs` module doc): a producer that pushes, takes a
//! durability ticket and waits for `durable_cut() >= ticket`, racing with the writer that
//! announces cuts, reads the queue's length, pops, makes batches durable and completes cuts
//! (also on an empty queue, when it goes idle).
//!
//! What it checks, and why it matters: a POST answered 204 under `--fsync always` must be on
//! disk. Here "on disk" is the test sink's record of the batches it was handed (set, with
//! Release, before `batch` returns, as the journal syncs before it returns); once the
//! producer sees its ticket's cut durable, both of its events must be in that record. And no
//! producer waits forever: a lost completion would leave it spinning (loom's branch limit).
//!
//! Threads: the writer (`spin_limit(0)`, so it goes idle and parks at once), the producer
//! (the only thread that spins), and the main thread, which closes once the producer is done.
//! Negative controls: taking the ticket before pushing (loom finds a cut that completes over
//! an empty queue before the push, so the producer is released with nothing on disk), and
//! waiting without `request_cut` (the writer parks after its last cut: the wait never ends).

use hourtally::ring::{Ring, RingWriter};
use hourtally::writer::{Ingest, Writer};
use loom::sync::atomic::AtomicU64;
use loom::sync::Arc;
use loom::thread;

fn durable_cut_model(ticket_before_push: bool, request: bool) {
    loom_tests::model(move || {
        let ingest = Arc::new(Ingest::new(4));
        let on_disk = Arc::new(AtomicU64::new(0));
        let writer = Writer::new(ingest.clone(), RingWriter::new(Arc::new(Ring::new(1))))
            .with_spin_limit(0)
            .with_sink(Box::new(loom_tests::RecordingSink {
                durable: on_disk.clone(),
                refuse_user: None,
            }))
            .with_durable_cuts(4);
        let writer = thread::spawn(move || writer.run());
        let producer = {
            let (ingest, on_disk) = (ingest.clone(), on_disk.clone());
            thread::spawn(move || {
                let bits = loom_tests::push_two_and_wait_for_cut(
                    &ingest,
                    &on_disk,
                    ticket_before_push,
                    request,
                );
                assert_eq!(
                    bits & 0b110,
                    0b110,
                    "durable-cut violation: released with {bits:#b} on disk"
                );
            })
        };
        producer.join().unwrap();
        ingest.close();
        writer.join().unwrap();
    });
}

#[test]
fn durable_cut_vs_producer() {
    durable_cut_model(false, true);
}

/// Negative control: the ticket taken before the push.
#[test]
#[should_panic(expected = "durable-cut violation")]
fn negative_control_ticket_before_push() {
    durable_cut_model(true, true);
}

/// Negative control: a producer that waits without asking for a cut. The writer made its
/// last cut over an empty queue and parked before the producer read `cut`: no cut comes,
/// and the producer waits forever (loom's branch limit).
#[test]
#[should_panic(expected = "branches")]
fn negative_control_waiting_without_a_request() {
    durable_cut_model(false, false);
}
