//! UTC calendar arithmetic: days since the epoch to a civil date, and hour labels.
//!
//! Used by the `Date` header of the HTTP edge and by every report that names an hour.

use crate::event::MILLIS_PER_HOUR;

/// `(year, month 1..=12, day 1..=31)` of a day counted from 1970-01-01, proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-11-24T08Z`: the UTC hour `hour` (hours since the epoch), to the hour.
pub fn hour_label(hour: u64) -> String {
    let (y, m, d) = civil_from_days((hour / 24) as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}Z", hour % 24)
}

/// The first millisecond of `hour`.
pub fn hour_start_ms(hour: u64) -> u64 {
    hour * MILLIS_PER_HOUR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_known_hours() {
        assert_eq!(hour_label(0), "1970-01-01T00Z");
        assert_eq!(
            hour_label(1_795_507_800_000 / MILLIS_PER_HOUR),
            "2026-11-24T08Z"
        );
        assert_eq!(
            hour_label(951_782_400_000 / MILLIS_PER_HOUR),
            "2000-02-29T00Z"
        );
        assert_eq!(hour_label(70_389_527), "9999-12-31T23Z");
        assert_eq!(
            hour_label(1_764_000_000_000 / MILLIS_PER_HOUR),
            "2025-11-24T16Z"
        );
        assert_eq!(hour_start_ms(1), 3_600_000);
    }
}
