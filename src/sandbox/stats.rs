//! What the sandbox served, so that benchmarks can report Graph calls (`GET /_sandbox/stats`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Counts per fault kind.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FaultCounts {
    /// 503 replies.
    #[serde(rename = "503")]
    pub unavailable: u64,
    /// 504 replies.
    #[serde(rename = "504")]
    pub gateway_timeout: u64,
    /// Connections closed without a reply.
    pub dropped: u64,
}

/// Replies per route template and status.
pub type ByRoute = BTreeMap<String, BTreeMap<String, u64>>;

/// Every counter `GET /_sandbox/stats` reports.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    /// HTTP requests served (a batch counts once).
    pub round_trips: u64,
    /// Outer requests by `"<METHOD> <route template>"` and status.
    pub requests: ByRoute,
    /// Requests inside batches.
    pub batch_inner: u64,
    /// Inner requests by route template and status.
    pub batch_inner_by_route: ByRoute,
    /// 429 replies, outer and inner.
    pub throttled: u64,
    /// Injected faults.
    pub faults: FaultCounts,
    /// Accepted write operations (each member or owner bound counts one).
    pub writes: u64,
    /// Write requests, inner ones included, whatever their outcome.
    pub write_requests: u64,
    /// HTTP requests that carried at least one write (a write, or a batch holding one).
    pub write_round_trips: u64,
    /// `DELETE …/members/{id}` without `/$ref`: a client bug that must stay at 0.
    pub member_deletes_without_ref: u64,
    /// Resource units charged, throttled requests included.
    pub resource_units: u64,
    /// Requests that arrived while a `Retry-After` the sandbox gave was still running (and
    /// too long after that 429 went out to have been in flight already): a client bug that
    /// must stay at 0.
    pub early_requests: u64,
}

/// The counters behind a lock held only to bump a few numbers.
#[derive(Debug, Default)]
pub struct Stats {
    counters: Mutex<Counters>,
}

impl Stats {
    /// Runs `f` on the counters.
    pub fn update(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.counters.lock().expect("stats lock"));
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Counters {
        self.counters.lock().expect("stats lock").clone()
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        *self.counters.lock().expect("stats lock") = Counters::default();
    }
}

/// Bumps `map[route][status]`.
pub fn count(map: &mut ByRoute, route: &str, status: u16) {
    // Look up before inserting: this runs on every request and the route is almost always known.
    let statuses = match map.get_mut(route) {
        Some(statuses) => statuses,
        None => map.entry(route.to_owned()).or_default(),
    };
    *statuses.entry(status.to_string()).or_default() += 1;
}
