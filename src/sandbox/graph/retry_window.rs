//! The `Retry-After` running for the app+tenant scope, so that the sandbox can count the
//! requests a client sent too early (`early_requests`).

use std::time::{Duration, Instant};

use super::request::{Reply, ReplyBody};

/// How long after a 429 went out a request may still arrive without counting as early.
///
/// The sandbox cannot see when a client sent a request, only when it arrived. A request the
/// client sent before it could read the 429 (in flight on another connection, or queued
/// behind the throttled one while the sandbox was busy with it) arrives shortly after the
/// 429 was answered and is no fault of the client's; anything later was sent by a client
/// that knew, or should have known, that the scope was throttled. 50 ms is far more than a
/// loopback hop and a queued request or two take, and far less than the `Retry-After`
/// values a throttled bucket gives at time scales that tests use to check this.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(50);

/// The `Retry-After` currently running for the app+tenant scope.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryWindow {
    /// When the latest reply carrying a 429 went out.
    answered: Instant,
    /// When the longest `Retry-After` given runs out.
    until: Instant,
}

impl RetryWindow {
    /// The window after a reply carrying 429s went out at `now`: the scope is closed until
    /// the longest `Retry-After` given so far has run, counted from when each was given.
    pub(super) fn answered(
        previous: Option<RetryWindow>,
        now: Instant,
        retry_after: Duration,
    ) -> Self {
        let until = now + retry_after;
        RetryWindow {
            answered: now,
            until: previous.map_or(until, |w| w.until.max(until)),
        }
    }

    /// Whether a request arriving at `arrived` came while the window ran, past the grace.
    pub(super) fn early(&self, arrived: Instant) -> bool {
        arrived > self.answered + IN_FLIGHT_GRACE && arrived < self.until
    }
}

/// The longest `Retry-After` of the 429s in a reply: its own, or its batch responses'.
pub(super) fn longest_retry_after(reply: &Reply) -> Option<Duration> {
    let seconds = |value: &str| value.parse::<f64>().ok().map(Duration::from_secs_f64);
    if reply.status == 429 {
        return reply
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
            .and_then(|(_, value)| seconds(value));
    }
    let Some(ReplyBody::Json(body)) = &reply.body else {
        return None;
    };
    body["responses"]
        .as_array()?
        .iter()
        .filter(|response| response["status"] == 429)
        .filter_map(|response| {
            response["headers"]["Retry-After"]
                .as_str()
                .and_then(seconds)
        })
        .max()
}
