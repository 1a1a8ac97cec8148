//! What the Graph client sent, counted as it goes: the numbers run reports and `/metrics`
//! show. Shared by the transport and the token client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::GraphStats;

/// What the client sent, counted as it goes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    batched: AtomicU64,
    token_requests: AtomicU64,
    status_2xx: AtomicU64,
    status_4xx: AtomicU64,
    status_5xx: AtomicU64,
    no_reply: AtomicU64,
    throttle_wait_us: AtomicU64,
}

impl Counters {
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn batched(&self, requests: usize) {
        self.batched.fetch_add(requests as u64, Ordering::Relaxed);
    }

    pub(crate) fn token_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.token_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// An HTTP reply's status class (a `$batch` counts once, by its own status).
    pub(crate) fn status(&self, status: u16) {
        let counter = match status {
            200..=399 => &self.status_2xx,
            400..=499 => &self.status_4xx,
            _ => &self.status_5xx,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A request that got no reply (dropped connection, timeout).
    pub(crate) fn no_reply(&self) {
        self.no_reply.fetch_add(1, Ordering::Relaxed);
    }

    /// Time a request spent held back by throttling (the gate or the pace).
    pub(crate) fn waited(&self, wait: Duration) {
        self.throttle_wait_us
            .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> GraphStats {
        GraphStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            batched: self.batched.load(Ordering::Relaxed),
            token_requests: self.token_requests.load(Ordering::Relaxed),
            status_2xx: self.status_2xx.load(Ordering::Relaxed),
            status_4xx: self.status_4xx.load(Ordering::Relaxed),
            status_5xx: self.status_5xx.load(Ordering::Relaxed),
            no_reply: self.no_reply.load(Ordering::Relaxed),
            throttle_wait: Duration::from_micros(self.throttle_wait_us.load(Ordering::Relaxed)),
        }
    }
}
