//! Sealed hours: the final counts of every hour whose slot was recycled for a newer hour.
//!
//! A few bytes an hour, kept forever (a year is 8 760 entries). Written by the writer, once
//! per recycled slot, under a short write lock, and afterwards only by the late thread, as
//! late events raise an hour's counts (`late`); read for the rare GET of an hour that has
//! left the ring.

use ahash::AHashMap;

use super::slot::Counts;
use crate::sync::RwLock;

/// Hour → final counts of that hour.
#[derive(Debug, Default)]
pub struct Archive {
    hours: RwLock<AHashMap<u32, Counts>>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the final counts of `hour`. An hour is sealed at most once: after it, the slot
    /// holds a newer hour and every later event of `hour` is dropped by the apply rule.
    pub fn seal(&self, hour: u32, counts: Counts) {
        self.hours.with_write(|hours| {
            let previous = hours.insert(hour, counts);
            debug_assert!(previous.is_none(), "hour {hour} sealed twice");
        });
    }

    /// Sets the counts of a sealed hour (or of an hour that never had an event in the ring)
    /// to `counts`, which late events raised (`late`: the late thread, the only writer of an
    /// entry once its hour is sealed).
    pub fn count_late(&self, hour: u32, counts: Counts) {
        self.hours.with_write(|hours| {
            hours.insert(hour, counts);
        });
    }

    /// The counts of a sealed hour; `None` if it was never sealed. Waits for the lock if
    /// the writer holds it (for one map insert).
    pub fn get(&self, hour: u32) -> Option<Counts> {
        self.hours.with_read(|hours| hours.get(&hour).copied())
    }

    /// [`get`](Self::get) without waiting: `Err(())` if the writer holds the lock right now.
    #[allow(clippy::result_unit_err)]
    pub fn try_get(&self, hour: u32) -> Result<Option<Counts>, ()> {
        self.hours
            .try_with_read(|hours| hours.get(&hour).copied())
            .ok_or(())
    }

    /// Every sealed hour and its counts, in no particular order (for a snapshot).
    pub fn entries(&self) -> Vec<(u32, Counts)> {
        self.hours
            .with_read(|hours| hours.iter().map(|(h, c)| (*h, *c)).collect())
    }

    /// Number of sealed hours.
    pub fn len(&self) -> usize {
        self.hours.with_read(|hours| hours.len())
    }

    /// [`len`](Self::len) without waiting: `None` if the writer holds the lock right now.
    pub fn try_len(&self) -> Option<usize> {
        self.hours.try_with_read(|hours| hours.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
