//! The edge's sealed check and push racing with the writer applying a newer hour for the
//! same slot: the sealed-drop path of the apply rule.
//!
//! What it checks, and why it matters: the edge reads the slot's published hour to refuse a
//! sealed hour (422), but that check is advisory: a newer hour for the same slot can be
//! queued, or applied and not yet published, when the older event passes it. The apply rule
//! then drops the older event. That drop must be exact and visible: `applied` counts it,
//! `Ring::sealed_drops` counts it, the sealed hour reads zeros (it never had an event), and
//! the newer hour's counts are untouched. (The server's admission window keeps admitted
//! hours less than a ring apart, so with sane clocks this path is not reached; this model is
//! the safety net's proof.)
//!
//! Threads: the writer (`spin_limit(0)`), producer 1 pushes the newer hour, producer 2 checks
//! `is_sealed` for the older hour and pushes it if not sealed; the main thread closes.

use hourtally::event::{Event, Kind};
use hourtally::ring::{Counts, Ring, RingWriter};
use hourtally::writer::{Ingest, Writer};
use loom::sync::Arc;
use loom::thread;

const OLD: u32 = 3;
const NEW: u32 = 4; // same slot: the ring has one

#[test]
fn edge_sealed_check_vs_newer_hour() {
    let outcomes = loom_tests::model_outcomes(|| {
        let ingest = Arc::new(Ingest::new(4));
        let ring = Arc::new(Ring::new(1));
        let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone())).with_spin_limit(0);
        let writer = thread::spawn(move || writer.run());
        let newer = {
            let ingest = ingest.clone();
            thread::spawn(move || ingest.push(Event::new(NEW, 1, Kind::Click)).is_ok())
        };
        let older = {
            let (ingest, ring) = (ingest.clone(), ring.clone());
            thread::spawn(move || {
                if ring.is_sealed(OLD) {
                    return false; // refused at the edge: 422
                }
                ingest.push(Event::new(OLD, 2, Kind::Impression)).is_ok()
            })
        };
        let (newer, older) = (newer.join().unwrap(), older.join().unwrap());
        assert!(newer, "the queue has room");
        ingest.close();
        writer.join().unwrap();
        let pushed = 1 + u64::from(older);
        assert_eq!(
            ingest.applied(),
            pushed,
            "sealed-drop violation: progress marker"
        );
        let drops = ring.sealed_drops();
        let old = ring.read(OLD);
        if drops == 1 {
            assert!(
                older,
                "sealed-drop violation: a drop of an event never pushed"
            );
            assert_eq!(
                old,
                Counts::default(),
                "sealed-drop violation: dropped yet counted"
            );
        } else {
            assert_eq!(drops, 0);
            let want = if older {
                Counts {
                    unique_users: 1,
                    clicks: 0,
                    impressions: 1,
                }
            } else {
                Counts::default()
            };
            assert_eq!(old, want, "sealed-drop violation: hour {OLD}");
        }
        assert_eq!(
            ring.read(NEW),
            Counts {
                unique_users: 1,
                clicks: 1,
                impressions: 0
            },
            "sealed-drop violation: the newer hour"
        );
        (older, drops)
    });
    // (older pushed, dropped): refused at the edge, applied before the newer hour, and
    // pushed past the check and dropped by the apply rule — each reached.
    let expected = [(false, 0), (true, 0), (true, 1)];
    assert_eq!(outcomes, expected.into(), "outcomes reached");
}
