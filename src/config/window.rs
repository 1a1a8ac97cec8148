//! Dated exceptions (DESIGN.md "The academic year"): an override applies only inside its
//! `from`/`until` window. Dates are whole days, inclusive, in `[schedule].timezone`; RFC 3339
//! times are instants. Pure: the moment to judge at is given.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// When an exception applies: from `from` (inclusive) to `until` (exclusive); an open end
/// when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// The first moment it applies.
    pub from: Option<DateTime<Utc>>,
    /// The first moment it no longer applies.
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    /// Reads `from` and `until` as written in the configuration or an override source: a date
    /// (`2026-09-21`, the whole day in `timezone`) or an RFC 3339 time. Empty means open.
    pub fn parse(from: Option<&str>, until: Option<&str>, timezone: Tz) -> Result<Window, String> {
        let from = bound(from, timezone, false).map_err(|m| format!("from: {m}"))?;
        let until = bound(until, timezone, true).map_err(|m| format!("until: {m}"))?;
        if let (Some(from), Some(until)) = (from, until)
            && from >= until
        {
            return Err(format!(
                "until: the window ends ({until}) before it begins ({from})"
            ));
        }
        Ok(Window { from, until })
    }

    /// Whether the exception applies at `now`.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| now >= from) && self.until.is_none_or(|until| now < until)
    }

    /// Whether the window is over at `now` (it will never apply again).
    pub fn ended(&self, now: DateTime<Utc>) -> bool {
        self.until.is_some_and(|until| now >= until)
    }
}

/// One end of a window. A date's `until` is the start of the next day: the day is included.
fn bound(text: Option<&str>, timezone: Tz, end: bool) -> Result<Option<DateTime<Utc>>, String> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.with_timezone(&Utc)));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        format!(
            "`{text}` is neither a date (2026-09-21) nor an RFC 3339 time (2026-09-21T09:00:00Z)"
        )
    })?;
    let day = if end {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Midnight may fall in a gap or an overlap of a time-zone change: take the earliest
    // moment that is that local time, or the first moment after the gap.
    let local = timezone
        .from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            timezone
                .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        })
        .ok_or_else(|| format!("`{text}` has no midnight in {timezone}"))?;
    Ok(Some(local.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_date_window_covers_whole_days_in_the_time_zone() {
        let london: Tz = "Europe/London".parse().unwrap();
        // British Summer Time: local midnight is 23:00 UTC the day before.
        let window = Window::parse(Some("2026-09-21"), Some("2026-09-25"), london).unwrap();
        assert!(!window.contains(at("2026-09-20T22:59:59Z")));
        assert!(window.contains(at("2026-09-20T23:00:00Z")));
        assert!(window.contains(at("2026-09-25T22:59:59Z")));
        assert!(!window.contains(at("2026-09-25T23:00:00Z")));
        assert!(window.ended(at("2026-09-25T23:00:00Z")));
    }

    #[test]
    fn a_window_across_the_clock_change_keeps_local_midnights() {
        let london: Tz = "Europe/London".parse().unwrap();
        // The clocks go back on 2026-10-25: the day after is in GMT again.
        let window = Window::parse(Some("2026-10-24"), Some("2026-10-26"), london).unwrap();
        assert_eq!(window.from, Some(at("2026-10-23T23:00:00Z")));
        assert_eq!(window.until, Some(at("2026-10-27T00:00:00Z")));
    }

    #[test]
    fn times_are_instants_and_open_ends_are_open() {
        let utc: Tz = "UTC".parse().unwrap();
        let window = Window::parse(None, Some("2027-01-31T12:00:00+01:00"), utc).unwrap();
        assert!(window.contains(at("1990-01-01T00:00:00Z")));
        assert!(window.contains(at("2027-01-31T10:59:59Z")));
        assert!(!window.contains(at("2027-01-31T11:00:00Z")));
        assert!(Window::default().contains(at("2026-12-06T00:00:00Z")));
        assert!(!Window::default().ended(at("2999-01-01T00:00:00Z")));
    }

    #[test]
    fn bad_bounds_name_the_end_and_the_forms_it_takes() {
        let utc: Tz = "UTC".parse().unwrap();
        let error = Window::parse(Some("21/09/2026"), None, utc).unwrap_err();
        assert!(
            error.starts_with("from: `21/09/2026` is neither a date"),
            "{error}"
        );
        let error = Window::parse(Some("2026-10-01"), Some("2026-09-30"), utc).unwrap_err();
        assert!(error.starts_with("until: the window ends"), "{error}");
        assert!(Window::parse(Some("2026-10-01"), Some("2026-10-01"), utc).is_ok());
    }
}
