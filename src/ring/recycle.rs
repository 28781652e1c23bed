//! The apply rule's two ways out of a slot: an event whose slot holds a newer hour (late, or
//! sealed and dropped), and one whose slot holds an older hour (the slot is recycled: its hour
//! is sealed into the archive, its users handed to `Leaving`, and it takes the new hour).
//! Both are rare beside an event of the slot's own hour, so they live out of the hot path.

use super::{Applied, Counts, Late, LeavingHour, Members, RingWriter, Snapshot, EMPTY};
use crate::event::Event;
use crate::sync::{Arc, Ordering};

impl RingWriter {
    /// An event whose slot holds a newer hour: late, if the ring counts late events and it
    /// is within the window; else sealed, dropped and counted as such.
    #[inline(never)]
    pub(super) fn late_or_sealed(&mut self, event: Event) -> Applied {
        if let Some(late) = &self.ring.late {
            // Sequence-derived: the newest hour taken, never a clock. An event with an
            // id is never late: ids are remembered in the ring only, so a retry of a
            // late one could count twice (the edge keeps such events to the ring's
            // window; this is the safety net if a clock stepped).
            if event.id == 0
                && u64::from(event.hour) + u64::from(late.window()) >= u64::from(self.newest)
            {
                late.add(Late::Event(event));
                return Applied::Late;
            }
        }
        // Relaxed: a statistic; single writer, so load-add-store is exact.
        let drops = self.ring.sealed_drops.load(Ordering::Relaxed);
        self.ring.sealed_drops.store(drops + 1, Ordering::Relaxed);
        Applied::Sealed
    }

    /// Slot `i` holds an older hour (or none) and an event of `hour` comes: the old hour is
    /// sealed (and its users handed to `Leaving`), and the slot starts `hour` empty.
    #[cold]
    #[inline(never)]
    pub(super) fn recycle(&mut self, i: usize, hour: u32) {
        let w = &mut self.slots[i];
        if w.snap.hour != EMPTY {
            // Sealed before the slot is published with the new hour (see the module
            // doc): the archive lock's release and the slot's Release store order it.
            self.ring.archive.seal(w.snap.hour, w.snap.counts);
            // Its users, too, until they are stored (the same order, `leaving`).
            if let Some(leaving) = &self.ring.leaving {
                if w.snap.counts.unique_users > 0 {
                    self.left = leaving.add(LeavingHour {
                        hour: w.snap.hour,
                        counts: w.snap.counts,
                        members: Arc::clone(&w.members),
                        taken_by: hour,
                    });
                }
            }
        }
        w.snap = Snapshot {
            hour,
            counts: Counts::default(),
        };
        let old = std::mem::take(&mut w.users);
        let old_ids = std::mem::take(&mut w.ids);
        w.base = None;
        w.logged = 0;
        if self.newest == EMPTY || hour > self.newest {
            self.newest = hour;
        }
        // Before the slot is published with the new hour (see `Ring::members`).
        w.members = Arc::new(Members::new(hour));
        let members = Arc::clone(&w.members);
        // The old members are freed (if no reader holds them) after the lock, so
        // that readers do not wait on the free.
        let old_members = self.ring.members[i].with_write(|m| std::mem::replace(m, members));
        drop(old_members);
        if let Some(c) = self.capture.as_mut() {
            c.retire(i, old, old_ids);
        }
    }
}
