//! The writer's batch figures (`histogram::BatchStats`, Relaxed atomics) while `/metrics`
//! reads them: three threads, the writer (with stats, parking when idle), a scraper, and the
//! main thread, which pushes two events, waits until both are applied, then stops the writer.
//!
//! What it checks, and why Relaxed suffices for it:
//! - **no lost add**: after the join, the events histogram's count is the number of batches
//!   (1 or 2, both reached), its sum is exactly the 2 events, and the time histogram counted
//!   the same batches. Each add is one atomic read-modify-write, whatever its ordering, and
//!   the join orders every add before the final read;
//! - **a scrape never sees more than happened, nor a figure go back**: the scraper reads the
//!   figures twice while the writer runs; each read is at most the final value, and the
//!   second is never below the first (coherence of each single atomic, which Relaxed keeps).
//!   What Relaxed does not give, and the scrape does not need, is a consistent view across
//!   cells: a scrape may see a batch's sum before its bucket.
//!
//! Under loom a batch's time is fixed (`BatchStats::record`): a clock reading would make the
//! touched cell differ between loom's replays of one execution.

use hourtally::event::{Event, Kind};
use hourtally::histogram::{BatchStats, HistogramSnapshot};
use hourtally::ring::{Ring, RingWriter};
use hourtally::writer::{Ingest, Writer};
use loom::sync::Arc;
use loom::thread;

/// `(batches, events)` as one scrape reads them from the events histogram.
fn read(stats: &BatchStats) -> (u64, u64) {
    let HistogramSnapshot { count, sum, .. } = stats.events.snapshot();
    (count, sum)
}

#[test]
fn batch_stats_are_exact_after_the_writer_and_monotone_while_it_runs() {
    let outcomes = loom_tests::model_outcomes(|| {
        let ingest = Arc::new(Ingest::new(4));
        let stats = Arc::new(BatchStats::default());
        let writer = Writer::new(ingest.clone(), RingWriter::new(Arc::new(Ring::new(1))))
            .with_spin_limit(0)
            .with_stats(stats.clone());
        let writer = thread::spawn(move || writer.run());
        let scraper = {
            let stats = stats.clone();
            thread::spawn(move || {
                let first = read(&stats);
                let second = read(&stats);
                assert!(
                    second.0 >= first.0 && second.1 >= first.1,
                    "{first:?} {second:?}"
                );
                assert!(second.0 <= 2 && second.1 <= 2, "{second:?}");
            })
        };
        ingest
            .push(Event::new(3, 1, Kind::Click))
            .expect("the queue has room and is open");
        ingest
            .push(Event::new(3, 2, Kind::Click))
            .expect("the queue has room and is open");
        // Only this thread spins (the scraper never waits): see loom_queue_park_progress.rs.
        loom_tests::wait_applied(&ingest, 2);
        ingest.close();
        writer.join().unwrap();
        scraper.join().unwrap();
        let (batches, events) = read(&stats);
        assert_eq!(events, 2, "every event counted once");
        assert_eq!(stats.nanos.snapshot().count, batches, "one time per batch");
        batches
    });
    assert_eq!(outcomes, [1, 2].into(), "both batchings reached");
}
