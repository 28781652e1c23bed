//! The park handshake's two SeqCst fences (`writer.rs`, Dekker's pattern) with the loom port
//! of crossbeam's `ArrayQueue` (`queue.rs`): one producer pushes one event while the writer
//! (`spin_limit(0)`) goes idle and parks; the main thread joins the producer, waits for
//! `applied() == 1` by spinning, and only then calls `close()` (whose unpark would otherwise
//! wake the writer).
//!
//! - `park_handshake_with_fences`: the real code; every interleaving applies the event.
//! - `negative_control_push_without_fence` / `negative_control_writer_without_fence`: the
//!   same model with one of the two fences left out (`Ingest::push_without_fence`,
//!   `Writer::run_without_fence`, compiled only under `--cfg hourtally_loom`). Loom must find
//!   the lost wake-up: the writer reads the queue empty and parks, the producer reads `idle`
//!   false and does not unpark, and the main thread spins forever, which loom reports as
//!   exceeding its branch limit (the sanity control in `loom_queue_park_progress.rs` shows
//!   that this is how a writer that never applies is reported).

use hourtally::event::{Event, Kind};
use hourtally::ring::{Ring, RingWriter};
use hourtally::writer::{Ingest, Writer};
use loom::sync::Arc;
use loom::thread;

#[derive(Clone, Copy)]
enum Fences {
    Both,
    NoProducerFence,
    NoWriterFence,
}

fn handshake_model(fences: Fences) {
    loom_tests::model(move || {
        let ingest = Arc::new(Ingest::new(2));
        let ring = Arc::new(Ring::new(1));
        let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone())).with_spin_limit(0);
        let writer = thread::spawn(move || match fences {
            Fences::NoWriterFence => writer.run_without_fence(),
            _ => writer.run(),
        });
        let producer = {
            let ingest = ingest.clone();
            thread::spawn(move || {
                let event = Event::new(1, 7, Kind::Click);
                match fences {
                    Fences::NoProducerFence => ingest.push_without_fence(event),
                    _ => ingest.push(event),
                }
                .expect("the queue has room and is open");
            })
        };
        // Join the producer before spinning: the writer's `pop` spins while a push has moved
        // the tail but not yet written its slot, and two threads spinning at once (each
        // waiting for a third) give loom unbounded executions.
        producer.join().unwrap();
        loom_tests::wait_applied(&ingest, 1);
        ingest.close();
        writer.join().unwrap();
        assert_eq!(ring.read(1).clicks, 1, "the event applied once");
    });
}

#[test]
fn park_handshake_with_fences() {
    handshake_model(Fences::Both);
}

#[test]
#[should_panic(expected = "Model exceeded maximum number of branches")]
fn negative_control_push_without_fence() {
    handshake_model(Fences::NoProducerFence);
}

#[test]
#[should_panic(expected = "Model exceeded maximum number of branches")]
fn negative_control_writer_without_fence() {
    handshake_model(Fences::NoWriterFence);
}
