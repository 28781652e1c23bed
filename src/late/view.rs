//! What others read of the late state, each consistent on its own: a range's [`LateView`] of
//! one hour, and a snapshot's [`LateImage`] of every hour at its position. Neither copies the
//! late users where it is made (on the late thread): each holds the hour's append-only log
//! and how many of it are counted.

use crate::counts::Counts;
use crate::ring::userlog::UserLog;
use crate::ring::RingImage;
use crate::sync::Arc;

/// One hour's late state, as a range reads it.
#[derive(Clone, Debug)]
pub struct LateView {
    /// The hour's counts: what it had when it left, and its late events.
    pub counts: Counts,
    /// Users of the hour when it left (its cold set's size).
    pub base_len: u64,
    /// The users late events counted, none of them in the base, in the order counted: the
    /// first `late_users` of the hour's log (the late thread appends to it before it
    /// publishes a view that counts them; the views' lock orders the two).
    pub(super) log: Arc<UserLog>,
    pub late_users: u64,
}

impl LateView {
    /// Appends the late users this view counts to `out`.
    pub fn users_into(&self, out: &mut Vec<u64>) {
        let listed = self.log.read_into(self.late_users, out);
        assert!(listed, "a late view counts users its log does not hold");
    }
}

/// The late state at a snapshot's position: each hour's counts and late users.
///
/// The users are not copied where the image is taken (on the late thread, which holds its
/// state's lock meanwhile): each hour keeps its log and how many of it are counted. The log
/// only grows, so that prefix is the hour's late users at the position, whatever the late
/// thread appends after; [`merge_into`](Self::merge_into) copies it, on the snapshot's
/// thread.
#[derive(Clone, Debug)]
pub struct LateImage {
    /// The journal position of the capture (the mark's).
    pub covered: u64,
    pub(super) hours: Vec<ImageHour>,
}

/// One hour of a [`LateImage`].
#[derive(Clone, Debug)]
pub(super) struct ImageHour {
    pub(super) hour: u32,
    pub(super) counts: Counts,
    /// The hour's late users in the order counted: the first `users` of them.
    pub(super) log: Arc<UserLog>,
    pub(super) users: u64,
}

impl LateImage {
    /// Puts these late counts into `image`, captured at the same position: each hour's counts
    /// replace its archive entry (which the late thread may have raised past the position,
    /// or not yet to it), its late users go to `image.late`.
    pub fn merge_into(self, image: &mut RingImage) {
        debug_assert_eq!(self.covered, image.covered);
        for h in self.hours {
            match image
                .archive
                .binary_search_by_key(&h.hour, |(hour, _)| *hour)
            {
                Ok(i) => image.archive[i].1 = h.counts,
                Err(i) => image.archive.insert(i, (h.hour, h.counts)),
            }
            // The late thread appended these entries before it left the image, and the
            // images' lock orders the two threads: they are seen written.
            let mut users = Vec::with_capacity(h.users as usize);
            let listed = h.log.read_into(h.users, &mut users);
            assert!(listed, "a late image counts users its log does not hold");
            image.late.push((h.hour, users));
        }
        image.late.sort_unstable_by_key(|(h, _)| *h);
        image.late_marked = false;
    }
}
