//! The ring's negative controls, compiled only under loom (`--cfg hourtally_loom`): the
//! writer's protocol with one step in the wrong order, which the models in `loom-tests/`
//! must catch.

use super::leaving::LeavingHour;
use super::{standing, Applied, RingWriter, Snapshot, Standing, EMPTY};
use crate::event::Event;
use crate::sync::Arc;

impl RingWriter {
    /// NEGATIVE CONTROL, compiled only under loom: from now on each user new to its hour is
    /// listed in its `Members` only after the publish that counts it, so a reader can take a
    /// count whose users are not listed yet. `loom-tests/tests/loom_members_vs_writer.rs`
    /// checks that loom finds it.
    #[doc(hidden)]
    pub fn list_after_publish(&mut self) {
        self.late_listing = Some(Vec::new());
    }

    /// NEGATIVE CONTROL, compiled only under loom (never in a normal build): [`apply_and_publish`]
    /// with the recycle hand-off in the wrong order. When `event` recycles its slot, the slot
    /// is published with the new hour *before* the old hour is sealed into the archive (and
    /// handed to [`Leaving`](super::Leaving), if the ring keeps sealed users), so a reader can find the old
    /// hour neither in its slot nor in the archive (nor its users anywhere).
    /// `loom-tests/tests/loom_recycle_vs_readers.rs` and `loom_leaving_vs_reader.rs` check
    /// that loom rejects it.
    ///
    /// [`apply_and_publish`]: Self::apply_and_publish
    #[doc(hidden)]
    pub fn apply_and_publish_before_seal(&mut self, event: Event) -> Applied {
        let i = event.hour as usize % self.slots.len();
        let old = self.slots[i].snap;
        if old.hour == EMPTY || standing(old.hour, event.hour) != Standing::NotStarted {
            return self.apply_and_publish(event);
        }
        // Forget the old hour so that `apply` takes the slot without sealing it, publish,
        // and only then seal: the two steps of the real protocol, swapped.
        let old_members = Arc::clone(&self.slots[i].members);
        self.slots[i].snap = Snapshot::EMPTY;
        let applied = self.apply_and_publish(event);
        self.ring.archive.seal(old.hour, old.counts);
        if let Some(leaving) = &self.ring.leaving {
            self.left = leaving.add(LeavingHour {
                hour: old.hour,
                counts: old.counts,
                members: old_members,
                taken_by: event.hour,
            });
        }
        applied
    }
}
