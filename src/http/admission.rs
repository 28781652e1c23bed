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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    pub max_past_hours: u32,
    pub max_future_hours: u32,
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
        })
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
