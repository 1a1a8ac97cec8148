//! When `serve` runs next: the `[schedule]` cron expressions read in their timezone, the
//! rebuild winning a tie with the run, and a little jitter so that instances sharing a state
//! database do not all knock on its lease in the same millisecond.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use cron::Schedule;
use rand::Rng;

use crate::config::ScheduleConfig;
use crate::store::RunKind;

/// The longest jitter, whatever the interval.
const MAX_JITTER: Duration = Duration::from_secs(5);

/// `[schedule]`, parsed.
#[derive(Debug, Clone)]
pub struct Schedules {
    run: Schedule,
    rebuild: Option<Schedule>,
    timezone: Tz,
}

/// One scheduled tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// When it falls due.
    pub at: DateTime<Utc>,
    /// What it runs: `run` or `rebuild`.
    pub kind: RunKind,
}

impl Schedules {
    /// Parses `[schedule]`. The config's validation already checked every field, so an error
    /// here names the key all the same rather than trusting that.
    pub fn parse(config: &ScheduleConfig) -> anyhow::Result<Schedules> {
        let parse = |key: &str, expr: &str| {
            Schedule::from_str(expr).map_err(|e| {
                anyhow::anyhow!(
                    "[schedule] {key} = `{expr}` is not a cron expression with a seconds field first ({e})"
                )
            })
        };
        Ok(Schedules {
            run: parse("run", &config.run)?,
            rebuild: config
                .rebuild
                .as_deref()
                .map(|expr| parse("rebuild", expr))
                .transpose()?,
            timezone: config.timezone.parse().map_err(|_| {
                anyhow::anyhow!(
                    "[schedule] timezone = `{}` is not an IANA timezone name",
                    config.timezone
                )
            })?,
        })
    }

    /// The first tick strictly after `now`. Ticks missed while a run went on are never caught
    /// up: the caller asks again with the time it is then. A rebuild due at the same moment
    /// as a run replaces it (a rebuild reconciles too).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<Tick> {
        let run = next(&self.run, self.timezone, now).map(|at| Tick {
            at,
            kind: RunKind::Run,
        });
        let rebuild = self
            .rebuild
            .as_ref()
            .and_then(|s| next(s, self.timezone, now))
            .map(|at| Tick {
                at,
                kind: RunKind::Rebuild,
            });
        match (run, rebuild) {
            (Some(run), Some(rebuild)) if rebuild.at <= run.at => Some(rebuild),
            (Some(run), _) => Some(run),
            (None, rebuild) => rebuild,
        }
    }

    /// The jitter bound for a tick: a tenth of the time to the tick after it, at most
    /// [`MAX_JITTER`], so that a jittered tick never runs into the next one.
    pub fn max_jitter(&self, tick: &Tick) -> Duration {
        let Some(following) = self.next_after(tick.at) else {
            return MAX_JITTER;
        };
        let interval = (following.at - tick.at).to_std().unwrap_or_default();
        (interval / 10).min(MAX_JITTER)
    }
}

fn next(schedule: &Schedule, timezone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule
        .after(&now.with_timezone(&timezone))
        .next()
        .map(|at| at.with_timezone(&Utc))
}

/// A random delay in `[0, max]`.
pub fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn schedules(run: &str, rebuild: Option<&str>, timezone: &str) -> Schedules {
        Schedules::parse(&ScheduleConfig {
            run: run.to_owned(),
            rebuild: rebuild.map(str::to_owned),
            timezone: timezone.to_owned(),
        })
        .unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn the_next_run_is_strictly_after_now() {
        let s = schedules("0 */15 * * * *", None, "UTC");
        let tick = s.next_after(utc(2026, 3, 2, 10, 15, 0)).unwrap();
        assert_eq!(tick.at, utc(2026, 3, 2, 10, 30, 0));
        assert_eq!(tick.kind, RunKind::Run);
    }

    #[test]
    fn missed_ticks_are_skipped_not_caught_up() {
        // A run that started at 10:00 and ended at 10:47 is followed by the 11:00 tick, not
        // by the three it overran.
        let s = schedules("0 */15 * * * *", None, "UTC");
        let tick = s.next_after(utc(2026, 3, 2, 10, 47, 12)).unwrap();
        assert_eq!(tick.at, utc(2026, 3, 2, 11, 0, 0));
    }

    #[test]
    fn a_rebuild_due_with_a_run_wins() {
        let s = schedules("0 */15 * * * *", Some("0 30 3 * * Sun"), "UTC");
        // 2026-03-01 is a Sunday.
        let tick = s.next_after(utc(2026, 3, 1, 3, 20, 0)).unwrap();
        assert_eq!(
            tick,
            Tick {
                at: utc(2026, 3, 1, 3, 30, 0),
                kind: RunKind::Rebuild
            }
        );
        let after = s.next_after(tick.at).unwrap();
        assert_eq!(
            after,
            Tick {
                at: utc(2026, 3, 1, 3, 45, 0),
                kind: RunKind::Run
            }
        );
    }

    #[test]
    fn schedules_are_read_in_their_timezone() {
        // 03:30 in London during summer time is 02:30 UTC.
        let s = schedules("0 30 3 * * *", None, "Europe/London");
        let tick = s.next_after(utc(2026, 7, 1, 0, 0, 0)).unwrap();
        assert_eq!(tick.at, utc(2026, 7, 1, 2, 30, 0));
    }

    #[test]
    fn jitter_stays_within_a_tenth_of_the_interval_and_five_seconds() {
        let every_two = schedules("*/2 * * * * *", None, "UTC");
        let tick = every_two.next_after(utc(2026, 3, 2, 10, 0, 0)).unwrap();
        assert_eq!(every_two.max_jitter(&tick), Duration::from_millis(200));
        let quarterly = schedules("0 */15 * * * *", None, "UTC");
        let tick = quarterly.next_after(utc(2026, 3, 2, 10, 0, 0)).unwrap();
        assert_eq!(quarterly.max_jitter(&tick), MAX_JITTER);
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(200)) <= Duration::from_millis(200));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_bad_expression_names_its_key() {
        let e = Schedules::parse(&ScheduleConfig {
            run: "every day".to_owned(),
            rebuild: None,
            timezone: "UTC".to_owned(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("[schedule] run"), "{e}");
    }
}
