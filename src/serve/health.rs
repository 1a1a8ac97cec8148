//! `/healthz`'s verdict: healthy while the last success is recent enough, judged the same
//! way for the probe and the status page.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// `/healthz`'s verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Whether the last success is recent enough.
    pub healthy: bool,
    /// Why, in words.
    pub reason: String,
    /// When the last successful run, rebuild or apply finished, if one is recorded.
    pub last_success: Option<DateTime<Utc>>,
    /// When this process started.
    pub started_at: DateTime<Utc>,
    /// `[serve].max_success_age`, in seconds.
    pub max_success_age_seconds: u64,
}

/// Judges health at `now`: healthy while the last success, or the start of this process if
/// that is later, is at most `max_age` old. A fresh start (or a restart after a long stop)
/// thus has `max_age` to succeed before it is called unhealthy.
pub fn judge(
    now: DateTime<Utc>,
    started_at: DateTime<Utc>,
    last_success: Option<DateTime<Utc>>,
    max_age: Duration,
) -> Health {
    let max = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    let since = last_success.map_or(started_at, |at| at.max(started_at));
    let healthy = now - since <= max;
    let age = |at: DateTime<Utc>| humantime::format_duration(seconds(now - at));
    let limit = humantime::format_duration(max_age);
    let reason = match (healthy, last_success) {
        (true, Some(at)) if at >= started_at => {
            format!("the last successful run finished {} ago", age(at))
        }
        (true, _) => format!(
            "started {} ago; waiting for the first successful run (allowed {limit})",
            age(started_at)
        ),
        (false, Some(at)) => format!(
            "no successful run for {} (the last finished {at}), longer than max_success_age {limit}: see `rollcall status` and `rollcall runs`",
            age(at)
        ),
        (false, None) => format!(
            "no successful run since serve started {} ago, longer than max_success_age {limit}: see `rollcall status` and `rollcall runs`",
            age(started_at)
        ),
    };
    Health {
        healthy,
        reason,
        last_success,
        started_at,
        max_success_age_seconds: max_age.as_secs(),
    }
}

fn seconds(d: chrono::Duration) -> Duration {
    Duration::from_secs(u64::try_from(d.num_seconds()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, minute, 0).unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_recent_success_is_healthy() {
        let health = judge(at(50), at(0), Some(at(40)), HOUR);
        assert!(health.healthy, "{health:?}");
        assert!(health.reason.contains("10m ago"), "{}", health.reason);
    }

    #[test]
    fn a_success_older_than_max_age_is_unhealthy() {
        let health = judge(at(50), at(0), Some(at(40)), Duration::from_secs(300));
        assert!(!health.healthy);
        assert!(
            health.reason.contains("max_success_age 5m"),
            "{}",
            health.reason
        );
    }

    #[test]
    fn a_fresh_start_has_max_age_to_succeed() {
        assert!(judge(at(30), at(0), None, HOUR).healthy);
        let late = judge(at(30), at(0), None, Duration::from_secs(600));
        assert!(!late.healthy);
        assert!(
            late.reason
                .contains("no successful run since serve started"),
            "{}",
            late.reason
        );
        // A restart after a long stop is not unhealthy at once.
        let restarted = judge(at(30), at(25), Some(at(0)), Duration::from_secs(600));
        assert!(restarted.healthy, "{restarted:?}");
    }
}
