//! The users of one hour as any thread may list them: what a union over hours reads.
//!
//! Each slot shares one [`Members`] per hour it holds: a *base*, the users of the hour up to
//! some point as a sorted [`ColdSet`] (none until the hour is frozen, `ring::freeze`), and a
//! log of the users counted after it, appended by the writer as it counts them. The writer
//! replaces the slot's `Members` when the slot takes a new hour (before it publishes the slot
//! with that hour) and when it freezes the hour (base and log folded into a new base, the
//! log then holding only users counted since). A reader pairs it with a slot snapshot
//! ([`Ring::members`](super::Ring::members)): the snapshot's `unique_users = n` counts
//! exactly the base and the log's first `n − base.len()` entries.

use super::slot::Counts;
use super::userlog::UserLog;
use super::{standing, Ring, Standing};
use crate::coldset::ColdSet;
use crate::sync::{spin_loop, Arc};

/// The users of one hour: a sorted base, then the ones counted after it, in the order the
/// writer counted them.
#[derive(Debug)]
pub struct Members {
    /// The hour ([`EMPTY`](super::EMPTY) for a slot that never held one).
    hour: u32,
    /// The users counted before the hour was frozen, if it was.
    base: Option<Arc<ColdSet>>,
    /// The users counted after them, each once and none of the base.
    log: UserLog,
}

impl Members {
    pub fn new(hour: u32) -> Self {
        Self::frozen(hour, None)
    }

    /// Members of `hour` whose first users are `base`.
    pub(super) fn frozen(hour: u32, base: Option<Arc<ColdSet>>) -> Self {
        Self {
            hour,
            base,
            log: UserLog::new(),
        }
    }

    pub fn hour(&self) -> u32 {
        self.hour
    }

    /// The users counted before the hour was frozen (none if it was not).
    pub fn base(&self) -> Option<&Arc<ColdSet>> {
        self.base.as_ref()
    }

    /// How many users the base holds.
    pub fn base_len(&self) -> u64 {
        self.base.as_ref().map_or(0, |b| b.len())
    }

    /// Records the hour's user number `base_len() + i` (`i` 0-based in the log). The ring's
    /// writer only.
    #[inline]
    pub(super) fn append(&self, i: u64, fp: u64) {
        self.log.append(i, fp);
    }

    /// Appends to `out` the users after the base among the first `n`, those a published
    /// `unique_users = n` counts; `false` (and `out` untouched) if `n` is below the base or
    /// the writer has not written them (a caller that took `n` from a slot snapshot of this
    /// hour after it took these members never sees either).
    pub fn added_into(&self, n: u64, out: &mut Vec<u64>) -> bool {
        match n.checked_sub(self.base_len()) {
            Some(logged) => self.log.read_into(logged, out),
            None => false,
        }
    }

    /// Appends to `out` the log's entries `from..to` (0-based in the log): the writer's way to
    /// take the users counted while a freeze was built, without reading the rest.
    pub(super) fn logged_range(&self, from: u64, to: u64, out: &mut Vec<u64>) -> bool {
        self.log.read_range(from, to, out)
    }

    /// Appends to `out` all of the first `n` users, the base's included (see
    /// [`added_into`](Self::added_into)).
    pub fn users_into(&self, n: u64, out: &mut Vec<u64>) -> bool {
        let before = out.len();
        if let Some(base) = &self.base {
            out.extend(base.iter());
        }
        let listed = self.added_into(n, out);
        if !listed {
            out.truncate(before);
        }
        listed
    }
}

/// One hour as a union reads it ([`Ring::members`](super::Ring::members)).
#[derive(Clone, Debug)]
pub enum HourMembers {
    /// The hour holds its slot: its counts at one publish, and its users, of which the first
    /// `counts.unique_users` are the ones those counts count.
    InRing {
        counts: Counts,
        members: Arc<Members>,
    },
    /// Nothing of the hour has been published: no users, zeros.
    NotStarted,
    /// The hour left the ring and its users wait to be stored in the cold tier
    /// ([`Leaving`](super::Leaving)): its final counts and its users, as for `InRing`.
    Leaving {
        counts: Counts,
        members: Arc<Members>,
    },
    /// The hour left the ring: its final counts from the archive (zeros if it never had an
    /// event). Its users are not in the ring any more (the cold tier may have them).
    Sealed(Counts),
}

impl Ring {
    /// `hour`'s counts and the users they count, for a union over hours. May wait briefly
    /// for a lock the writer takes once per recycle: call it from an OS thread of its own,
    /// never a coroutine.
    pub fn members(&self, hour: u32) -> HourMembers {
        self.members_impl::<true>(hour)
    }

    /// NEGATIVE CONTROL, compiled only under loom: [`members`](Self::members) without the
    /// second look at the members, so that a freeze installed between the first look and
    /// the snapshot goes unseen. `loom-tests/tests/loom_members_vs_writer.rs` checks that
    /// loom finds it.
    #[cfg(hourtally_loom)]
    #[doc(hidden)]
    pub fn members_without_recheck(&self, hour: u32) -> HourMembers {
        self.members_impl::<false>(hour)
    }

    /// `members`; `RECHECK == false` only for the loom negative control.
    fn members_impl<const RECHECK: bool>(&self, hour: u32) -> HourMembers {
        let i = hour as usize % self.slots.len();
        loop {
            // The members, the slot, the members again. The writer replaces a slot's members
            // (a new hour, or a freeze of the hour) before any publish that counts a user
            // of the new ones. So if the members are the same before and after the snapshot,
            // no replacement came before the snapshot's publish, and every user it counts is
            // in them; and the first look makes sure they were there before it, so that the
            // snapshot counts at least their base. Otherwise look again.
            let members = self.members[i].with_read(Arc::clone);
            let snap = self.slots[i].read();
            match standing(snap.hour, hour) {
                Standing::InSlot
                    if members.hour() == hour
                        && (!RECHECK
                            || self.members[i].with_read(|m| Arc::ptr_eq(m, &members))) =>
                {
                    return HourMembers::InRing {
                        counts: snap.counts,
                        members,
                    }
                }
                // The writer replaced the members and has not published the slot since:
                // it does within this batch.
                Standing::InSlot => spin_loop(),
                Standing::NotStarted => return HourMembers::NotStarted,
                Standing::Sealed => {
                    // The writer adds a leaving hour before it publishes the slot with the
                    // new hour, and the cold tier files it before it lets it go (`leaving`).
                    if let Some((counts, members)) = self.leaving.as_ref().and_then(|l| l.get(hour))
                    {
                        return HourMembers::Leaving { counts, members };
                    }
                    return HourMembers::Sealed(self.archive.get(hour).unwrap_or_default());
                }
            }
        }
    }
}
