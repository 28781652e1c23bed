//! The admission window: which hours a POST may report, so that a 204 always counts.

use super::error::RejectError;

/// Hours of clock difference the admission window tolerates between any two clocks that
/// admit events: a connection's cached clock and another's, or two servers of a cluster.
pub const ADMISSION_MARGIN_HOURS: u32 = 1;

/// Which hours a POST may report, relative to the hour of the server's clock.
///
/// A 204 must mean the event counts. By the apply rule an event is dropped only if its slot
/// already holds a newer hour, that is an hour at least `retention` later. Admitting only
/// hours in `[now − max_past, now + max_future]` with
/// `max_past = retention − max_future − ADMISSION_MARGIN_HOURS − 1` keeps any two admitted
/// hours less than `retention` apart, as long as the clocks that admitted them differ by at
/// most [`ADMISSION_MARGIN_HOURS`] hour boundaries. So no admitted event can seal another
/// (ARCHITECTURE.md, "What a 204 means").
///
/// With a cold tier, an event of an hour that left the ring is counted late, as far back as
/// the cold retention (`late`; ARCHITECTURE.md, "What a 204 means", has the same proof with
/// it in place of the ring's): [`with_late`](Self::with_late) widens `max_past_hours` to
/// match. Event ids are remembered only while their hour is in the ring, so an event with
/// an id keeps the ring's window ([`check_id`](Self::check_id)): a retry is recognised or
/// refused, never counted twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    pub max_past_hours: u32,
    pub max_future_hours: u32,
    /// How far back an event with an id may reach: the ring's window.
    pub max_past_with_id: u32,
}

impl Admission {
    /// The window for a ring of `retention_hours`; `None` when no window exists (the
    /// retention is shorter than `max_future_hours + ADMISSION_MARGIN_HOURS + 1`).
    pub fn new(retention_hours: u32, max_future_hours: u32) -> Option<Self> {
        let max_past_hours = retention_hours
            .checked_sub(max_future_hours)?
            .checked_sub(ADMISSION_MARGIN_HOURS + 1)?;
        Some(Self {
            max_past_hours,
            max_future_hours,
            max_past_with_id: max_past_hours,
        })
    }

    /// The same window, reaching back as far as late events of a cold retention of
    /// `cold_hours` are counted (at least the ring's: `cold_hours ≥ retention`).
    pub fn with_late(self, cold_hours: u32) -> Self {
        let late = cold_hours
            .saturating_sub(self.max_future_hours)
            .saturating_sub(ADMISSION_MARGIN_HOURS + 1);
        Self {
            max_past_hours: late.max(self.max_past_with_id),
            ..self
        }
    }

    /// Whether an event of `hour` that carries an event id may be taken: the ring's window,
    /// where its id is remembered.
    #[inline]
    pub fn check_id(&self, hour: u32, now_hour: u64) -> Result<(), RejectError> {
        if u64::from(hour) + u64::from(self.max_past_with_id) < now_hour {
            return Err(RejectError::TooOldForId {
                max_past_hours: self.max_past_with_id,
            });
        }
        Ok(())
    }

    /// Whether an event of `hour` may be taken when the clock's hour is `now_hour`.
    #[inline]
    pub fn check(&self, hour: u32, now_hour: u64) -> Result<(), RejectError> {
        let hour = u64::from(hour);
        if hour > now_hour + u64::from(self.max_future_hours) {
            return Err(RejectError::FutureHour {
                max_future_hours: self.max_future_hours,
            });
        }
        if hour + u64::from(self.max_past_hours) < now_hour {
            return Err(RejectError::TooOldHour {
                max_past_hours: self.max_past_hours,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_late_events_the_window_reaches_the_cold_retention_but_not_for_event_ids() {
        let a = Admission::new(48, 1).expect("a window").with_late(720);
        assert_eq!((a.max_past_hours, a.max_past_with_id), (717, 45));
        let now = 1000;
        assert_eq!(a.check(283, now), Ok(()));
        assert_eq!(
            a.check(282, now),
            Err(RejectError::TooOldHour {
                max_past_hours: 717
            })
        );
        assert_eq!(a.check_id(955, now), Ok(()));
        assert_eq!(
            a.check_id(954, now),
            Err(RejectError::TooOldForId { max_past_hours: 45 })
        );
    }

    #[test]
    fn admission_window_follows_retention_future_and_margin() {
        let a = Admission::new(48, 1).expect("a window");
        assert_eq!(a.max_past_hours, 45);
        let now = 1000;
        assert_eq!(a.check(1001, now), Ok(()));
        assert_eq!(a.check(955, now), Ok(()));
        assert_eq!(
            a.check(1002, now),
            Err(RejectError::FutureHour {
                max_future_hours: 1
            })
        );
        assert_eq!(
            a.check(954, now),
            Err(RejectError::TooOldHour { max_past_hours: 45 })
        );
        // Two hours admitted by clocks up to the margin apart are less than a ring apart, so
        // they never share a slot: the oldest taken at `now`, the newest at `now + margin`.
        let newest = now + u64::from(ADMISSION_MARGIN_HOURS + a.max_future_hours);
        let oldest = now - u64::from(a.max_past_hours);
        assert!(newest - oldest < 48, "{oldest}..={newest}");
        assert_eq!(Admission::new(3, 1).map(|a| a.max_past_hours), Some(0));
        assert_eq!(Admission::new(2, 1), None);
        assert_eq!(Admission::new(1, 0), None);
    }
}
