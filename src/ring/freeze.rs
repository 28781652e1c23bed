//! Freezing an hour that is over: its users, sorted into a [`ColdSet`], take the place of its
//! user set and of its log.
//!
//! An hour in the ring holds its users twice: in the writer's [`UserSet`] (about 9.7 bytes a
//! user, for membership) and in its [`Members`] log (8 bytes, for readers). Once an hour is
//! over, few users are new to it (late events), so both can give way to one sorted set of
//! about 5.8 bytes a user that answers membership for the writer and lists the users for a
//! union, in order: a frozen hour costs about a third of a live one.
//!
//! An hour is over once the ring has taken an hour [`FREEZE_BEHIND`] or more later (the
//! admission window lets no event through for an hour that far ahead of the clock, so the
//! current hour is never frozen). The work happens off the writer thread:
//!
//! 1. Between batches the writer picks a slot ([`RingWriter::freeze_job`]): its members and
//!    its count of users `n` at that publish.
//! 2. Another thread lists those `n` users (the base, if any, and the log), sorts them and
//!    builds the set ([`freeze`]). The writer goes on counting meanwhile; users new to the
//!    hour go on being appended to the log after the first `n`.
//! 3. Between later batches the writer installs the set ([`RingWriter::install`]) if the slot
//!    still holds the same members: new [`Members`] whose base is the set and whose log holds
//!    the users counted since `n`, and a user set of just those. The old set and log go back
//!    to the other thread to be freed ([`Retired`]), so no big free stalls the writer.
//!
//! What the writer does itself is proportional to the users counted while the set was being
//! built, not to the hour's users. A frozen hour whose later users grow past an eighth of its
//! base (and at least [`REFREEZE_MIN`]) is frozen again, folding them in.
//!
//! Readers ([`Ring::members`](super::Ring::members)) always find members whose users match
//! the counts they read: the writer installs the new members (under the slot's lock) only
//! after a publish that counts at least their base, and a reader takes the members before the
//! slot snapshot.

use super::members::Members;
use super::users::UserSet;
use super::{RingWriter, EMPTY};
use crate::coldset::ColdSet;
use crate::sync::{Arc, Ordering};

/// An hour is frozen once the ring has taken an hour this many later.
pub const FREEZE_BEHIND: u32 = 2;

/// A frozen hour is frozen again once its later users are an eighth of its base and at least
/// this many.
pub const REFREEZE_MIN: u64 = 1024;

/// What the other thread needs to freeze a slot's hour.
#[derive(Debug)]
pub struct FreezeJob {
    slot: usize,
    members: Arc<Members>,
    /// The hour's users at the writer's last publish (base and log).
    n: u64,
}

impl FreezeJob {
    /// The hour to freeze.
    pub fn hour(&self) -> u32 {
        self.members.hour()
    }
}

/// A frozen hour, ready for [`RingWriter::install`].
#[derive(Debug)]
pub struct Frozen {
    slot: usize,
    /// The members the set was built from (the install checks the slot still has them).
    members: Arc<Members>,
    n: u64,
    set: Arc<ColdSet>,
}

impl Frozen {
    pub fn hour(&self) -> u32 {
        self.members.hour()
    }

    /// How many users the set holds.
    pub fn users(&self) -> u64 {
        self.n
    }
}

/// What a freeze replaced, to be dropped away from the writer thread.
#[derive(Debug)]
pub struct Retired {
    pub users: UserSet,
    pub members: Arc<Members>,
}

/// What [`RingWriter::install`] did with a frozen hour.
#[derive(Debug)]
pub enum Installed {
    /// Installed: what it replaced, to be dropped away from the writer thread.
    Done(Retired),
    /// The slot moved on since the job was taken (a recycle, or a restore): nothing
    /// changed; the set is to be dropped away from the writer thread.
    Stale(Frozen),
    /// A snapshot's capture is under way (it copies the slot's user set): install it after
    /// the capture.
    Wait(Frozen),
}

impl Installed {
    /// Whether the set was installed.
    pub fn is_done(&self) -> bool {
        matches!(self, Installed::Done(_))
    }
}

/// Builds the frozen set of `job`'s hour (any thread; the writer's is the one to avoid).
pub fn freeze(job: FreezeJob) -> Frozen {
    let set = sorted_users(&job.members, job.n);
    Frozen {
        slot: job.slot,
        members: job.members,
        n: job.n,
        set: Arc::new(set),
    }
}

/// The first `n` users of `members` (base and log) as one sorted set. Panics if they do not
/// hold `n` (a caller takes `n` from a publish, or a seal, of these members).
pub fn sorted_users(members: &Members, n: u64) -> ColdSet {
    let mut added = Vec::new();
    assert!(
        members.added_into(n, &mut added),
        "hour {}: asked for {} users its members do not hold",
        members.hour(),
        n
    );
    added.sort_unstable();
    match members.base() {
        None => ColdSet::from_sorted(&added),
        Some(base) if added.is_empty() => ColdSet::clone(base),
        Some(base) => {
            // Merge two sorted lists that share nothing (the log holds users new to the base).
            let mut all = Vec::with_capacity(n as usize);
            let mut later = added.iter().copied().peekable();
            for x in base.iter() {
                while let Some(y) = later.next_if(|&y| y < x) {
                    all.push(y);
                }
                all.push(x);
            }
            all.extend(later);
            ColdSet::from_sorted(&all)
        }
    }
}

impl RingWriter {
    /// A slot whose hour is over and worth freezing now, if any (call between batches).
    pub fn freeze_job(&self) -> Option<FreezeJob> {
        if self.newest == EMPTY {
            return None;
        }
        self.slots.iter().enumerate().find_map(|(slot, w)| {
            let over = w.snap.hour != EMPTY && w.snap.hour + FREEZE_BEHIND <= self.newest;
            let base = w.base.as_ref().map_or(0, |b| b.len());
            let worth = match base {
                0 => w.logged > 0,
                base => w.logged >= (base / 8).max(REFREEZE_MIN),
            };
            (over && worth).then(|| FreezeJob {
                slot,
                members: Arc::clone(&w.members),
                n: w.snap.counts.unique_users,
            })
        })
    }

    /// Installs `frozen` (call between batches; [`Installed`] says what came of it).
    pub fn install(&mut self, frozen: Frozen) -> Installed {
        if self.capture.is_some() {
            return Installed::Wait(frozen);
        }
        let w = &mut self.slots[frozen.slot];
        if !Arc::ptr_eq(&w.members, &frozen.members) {
            return Installed::Stale(frozen);
        }
        // The users counted since the job: the log's entries past the set, and only those
        // (the writer reads nothing of the hour's other users).
        let old_base = w.base.as_ref().map_or(0, |b| b.len());
        let mut since = Vec::new();
        let listed = frozen
            .members
            .logged_range(frozen.n - old_base, w.logged, &mut since);
        debug_assert!(listed, "the writer's own count is in its log");
        let members = Members::frozen(frozen.members.hour(), Some(Arc::clone(&frozen.set)));
        let mut users = UserSet::new();
        for (i, &fp) in since.iter().enumerate() {
            members.append(i as u64, fp);
            users.insert(fp);
        }
        // The new members before any publish that readers could pair with them; the slot's
        // published count is at least the set's already (the job took `n` at a publish).
        let members = Arc::new(members);
        let shared = Arc::clone(&members);
        self.ring.members[frozen.slot].with_write(|m| *m = shared);
        w.base = Some(frozen.set);
        w.logged = since.len() as u64;
        // Relaxed: a statistic; single writer, so load-add-store is exact.
        let freezes = self.ring.freezes.load(Ordering::Relaxed);
        self.ring.freezes.store(freezes + 1, Ordering::Relaxed);
        let retired = Retired {
            users: std::mem::replace(&mut w.users, users),
            members: std::mem::replace(&mut w.members, members),
        };
        Installed::Done(retired)
    }
}

#[cfg(all(test, not(hourtally_loom)))]
#[path = "freeze_tests.rs"]
mod tests;
