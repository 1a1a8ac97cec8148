//! The moment calendar decisions are taken at (dated exceptions): now, or the moment
//! `ROLLCALL_NOW` names, so that an operator can rehearse what a run will do on the first
//! day of term (`ROLLCALL_NOW=2026-09-21T06:00:00Z rollcall plan`) and tests can move the
//! calendar without waiting. Leases, tokens and timeouts always use the real clock.

use chrono::{DateTime, Utc};

/// The environment variable that sets the calendar's "now" (an RFC 3339 time).
pub const NOW_VAR: &str = "ROLLCALL_NOW";

/// The moment set by [`NOW_VAR`], if any; an error names the variable and the form it takes.
pub fn configured() -> Result<Option<DateTime<Utc>>, String> {
    match std::env::var(NOW_VAR) {
        Ok(text) if !text.trim().is_empty() => DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| {
                format!("{NOW_VAR} = `{text}` is not an RFC 3339 time (2026-09-21T06:00:00Z): {e}")
            }),
        _ => Ok(None),
    }
}

/// Now, for calendar decisions: [`NOW_VAR`] when it is set (configuration validation has
/// refused a bad value), else the real time.
pub fn now() -> DateTime<Utc> {
    configured().ok().flatten().unwrap_or_else(Utc::now)
}
