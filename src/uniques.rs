//! Unique users over a range of hours: the size of the union of the hours' user sets, never
//! the sum of their counts (a user active in three hours is one user).
//!
//! [`count`] reads each hour of the range from the ring ([`Ring::members`]: the hour's counts
//! at one publish and the users those counts count), sums clicks and impressions, and counts
//! the distinct users over all the hours. An hour that left the ring is read from the cold
//! tier (`cold`: its users' file, checked against its archived total), or, while its file is
//! being written, from memory. A range that reaches an hour whose users are not kept (past
//! the cold retention, or no cold tier) is refused ([`RangeError::NoUsers`]), and one whose
//! file is damaged fails ([`RangeError::Unreadable`]): never a sum, never a wrong count.
//!
//! An hour that is over is frozen (`ring::freeze`): most of its users are a sorted
//! [`ColdSet`], the rest a short list. The count sorts the short lists of all the hours into
//! one more sorted set and counts the union of the sorted sets in one pass
//! ([`union_count`]). The work grows with the users of the range, far more than one HTTP
//! worker should do between the requests of its other connections, so it runs on a thread of
//! its own ([`Uniques`]), one range at a time, at most [`MAX_WAITING`] waiting.

use crate::cold::{ColdFault, ColdTier};
use crate::coldset::{union_count, ColdSet, UnionFault};
use crate::counts::Counts;
use crate::late::LateCounts;
use crate::query::HourRange;
use crate::ring::{HourMembers, Ring};
use crate::sync::{Arc, AtomicUsize, Ordering};
use std::sync::mpsc;

/// Ranges waiting for the thread, beyond which a request is refused ([`RangeError::Busy`]).
pub const MAX_WAITING: usize = 8;

/// Why a range is not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// An hour of the range left the ring with users, and only its totals are kept.
    #[error(
        "from/to: the hour starting at {start_ms} ms has only its totals left (its users are \
         past --cold-retention-hours, or this server keeps no cold tier), so unique users \
         over a range that holds it cannot be counted exactly; ask /analytics/hours for its \
         rows, or for unique users over a later range",
        start_ms = u64::from(*hour) * crate::event::MILLIS_PER_HOUR
    )]
    NoUsers { hour: u32 },
    /// An hour's users in the cold tier could not be read back whole: a damaged or
    /// unreadable file. Nothing is counted.
    #[error(
        "cold tier: the users of the hour starting at {start_ms} ms cannot be read \
         (cold/{file}: {fault}), so unique users over a range that holds it cannot be counted",
        start_ms = u64::from(*hour) * crate::event::MILLIS_PER_HOUR,
        file = crate::cold::file_name(*hour)
    )]
    Unreadable { hour: u32, fault: ColdFault },
    /// Too many ranges are waiting to be counted.
    #[error("busy: {MAX_WAITING} ranges are waiting to be counted; retry shortly")]
    Busy,
    /// Counting the range failed: a defect of the server (the panic is in its log). The
    /// thread goes on with the next range.
    #[error("internal: this range could not be counted (a defect; the server's log says where)")]
    Failed,
}

/// The counts of `range`: unique users over all its hours, clicks and impressions summed.
/// Hours that left the ring are read from `cold`, if the server keeps a cold tier, with the
/// late events `late` counted for them. May wait briefly for a lock of the writer's and maps
/// files: call it from an OS thread, not a coroutine.
pub fn count(
    ring: &Ring,
    cold: Option<&ColdTier>,
    late: Option<&LateCounts>,
    range: HourRange,
) -> Result<Counts, RangeError> {
    let mut total = Counts::default();
    let mut sets: Vec<Arc<ColdSet>> = Vec::new();
    // Which of `sets` are files of the cold tier, and of which hour.
    let mut filed: Vec<(usize, u32)> = Vec::new();
    let mut loose = Vec::new();
    for hour in range.hours() {
        let members = ring.members(hour);
        // An hour that left the ring and had late events: its counts and late users (`late`
        // publishes a view before the archive entry it raises, so with no view the archive
        // still holds the hour's count when it left).
        let view = match members {
            HourMembers::Leaving { .. } | HourMembers::Sealed(_) => late.and_then(|l| l.view(hour)),
            HourMembers::InRing { .. } | HourMembers::NotStarted => None,
        };
        if let Some(view) = &view {
            view.users_into(&mut loose);
        }
        let counts = match members {
            HourMembers::InRing { counts, members } | HourMembers::Leaving { counts, members } => {
                let listed = members.added_into(counts.unique_users, &mut loose);
                assert!(
                    listed,
                    "hour {hour}: a published count its members do not hold"
                );
                sets.extend(members.base().cloned());
                view.map_or(counts, |v| v.counts)
            }
            HourMembers::NotStarted => continue,
            HourMembers::Sealed(counts) => {
                let (counts, base_len) =
                    view.map_or((counts, counts.unique_users), |v| (v.counts, v.base_len));
                if base_len > 0 {
                    let Some(cold) = cold else {
                        return Err(RangeError::NoUsers { hour });
                    };
                    match cold.load_for_union(hour, base_len) {
                        Ok(Some(set)) => {
                            sets.push(Arc::new(set));
                            filed.push((sets.len() - 1, hour));
                        }
                        Ok(None) => return Err(RangeError::NoUsers { hour }),
                        Err(fault) => return Err(RangeError::Unreadable { hour, fault }),
                    }
                }
                counts
            }
        };
        total.clicks += counts.clicks;
        total.impressions += counts.impressions;
    }
    loose.sort_unstable();
    loose.dedup();
    let loose = ColdSet::from_sorted(&loose);
    let mut all: Vec<&ColdSet> = sets.iter().map(|s| &**s).collect();
    all.push(&loose);
    total.unique_users = union_count(&all).map_err(|UnionFault { set, error }| {
        // Only a file's order and checksum are left to the union to check: the ring's sets
        // (frozen hours' bases) and the one of loose users built here are in order, and carry
        // no checksum.
        let hour = filed
            .iter()
            .find(|&&(i, _)| i == set)
            .map(|&(_, hour)| hour)
            .expect("a damaged set is a file's");
        RangeError::Unreadable {
            hour,
            fault: ColdFault::Damaged(error),
        }
    })?;
    Ok(total)
}

/// What the thread is asked: a range, and where its answer goes.
struct Job {
    range: HourRange,
    reply: Box<dyn FnOnce(Result<Counts, RangeError>) + Send>,
}

/// The thread that counts ranges, and the way to it. Dropping it lets the thread end once
/// the ranges it has are answered.
#[derive(Debug)]
pub struct Uniques {
    jobs: mpsc::Sender<Job>,
    /// The cold tier the thread reads, if the server keeps one, and its late events.
    cold: Option<Arc<ColdTier>>,
    late: Option<Arc<LateCounts>>,
    /// Ranges sent and not yet answered.
    waiting: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("range", &self.range).finish()
    }
}

impl Uniques {
    /// Starts the thread, which counts ranges of `ring` (and of `cold`, its cold tier, with
    /// the late events of `late`).
    pub fn start(
        ring: Arc<Ring>,
        cold: Option<Arc<ColdTier>>,
        late: Option<Arc<LateCounts>>,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let (tier, late_counts) = (cold.clone(), late.clone());
        let left = Arc::clone(&waiting);
        std::thread::Builder::new()
            .name("hourtally-ranges".into())
            .spawn(move || {
                for job in rx {
                    // A panic in the count (a broken invariant; the hook prints it) fails
                    // this range only: the thread goes on serving the next ones.
                    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        count(&ring, cold.as_deref(), late.as_deref(), job.range)
                    }))
                    .unwrap_or(Err(RangeError::Failed));
                    (job.reply)(answer);
                    // Relaxed: a bound on the queue, which publishes nothing.
                    left.fetch_sub(1, Ordering::Relaxed);
                }
            })?;
        Ok(Self {
            jobs,
            cold: tier,
            late: late_counts,
            waiting,
        })
    }

    /// The cold tier ranges read, if the server keeps one.
    pub fn cold(&self) -> Option<&Arc<ColdTier>> {
        self.cold.as_ref()
    }

    /// The late events' counts ranges read, if the server counts them.
    pub fn late(&self) -> Option<&Arc<LateCounts>> {
        self.late.as_ref()
    }

    /// Asks for `range`; `reply` gets the answer on the thread. [`RangeError::Busy`] (and
    /// `reply` is not called) when [`MAX_WAITING`] ranges wait already. Never blocks.
    pub fn ask(
        &self,
        range: HourRange,
        reply: impl FnOnce(Result<Counts, RangeError>) + Send + 'static,
    ) -> Result<(), RangeError> {
        // Relaxed: a bound on the queue, which publishes nothing.
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(RangeError::Busy);
        }
        let job = Job {
            range,
            reply: Box::new(reply),
        };
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            // The thread is gone: it ends only when `self` is dropped, or if a reply panicked.
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            drop(job);
            return Err(RangeError::Failed);
        }
        Ok(())
    }
}

#[cfg(all(test, not(hourtally_loom)))]
#[path = "uniques_tests.rs"]
mod tests;
