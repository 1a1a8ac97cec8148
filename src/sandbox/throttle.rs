//! Graph's directory throttling model: a resource-unit bucket and a write bucket per app+tenant.
//!
//! Both buckets refill continuously (capacity / window tokens per second, times the time
//! scale). A request that does not fit is still charged ("throttled requests still count",
//! GRAPH.md), so a client that ignores `Retry-After` digs itself deeper; the debt is capped at
//! one window so that a well-behaved client always recovers.

use std::time::Instant;

use super::faults::TenantSize;

/// The write bucket: 3,000 writes per 150 s.
const WRITES_PER_WINDOW: f64 = 3_000.0;
const WRITE_WINDOW_SECS: f64 = 150.0;
const RESOURCE_UNIT_WINDOW_SECS: f64 = 10.0;
/// `x-ms-throttle-limit-percentage` appears once this share of a bucket is used.
const NEAR_LIMIT_PERCENT: f64 = 80.0;

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    fn new(capacity: f64, window_secs: f64, time_scale: f64, now: Instant) -> Self {
        Self {
            capacity,
            per_second: capacity / window_secs * time_scale,
            tokens: capacity,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.refilled_at = now;
    }

    /// Seconds until the bucket holds `cost` tokens again.
    fn wait_for(&self, cost: f64) -> f64 {
        ((cost - self.tokens) / self.per_second).max(0.0)
    }

    fn used_percent(&self) -> f64 {
        (self.capacity - self.tokens) / self.capacity * 100.0
    }
}

/// What the buckets said about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Served; `near_limit` is the used share (percent) when at least 80 %.
    Allowed {
        /// Percentage of the tightest bucket in use, when it is near the limit.
        near_limit: Option<u32>,
    },
    /// 429: wait this many (already time-scaled) seconds; `scope` names the bucket.
    Throttled {
        /// Seconds until the request would fit.
        retry_after: f64,
        /// The `x-ms-throttle-scope` value.
        scope: &'static str,
    },
}

/// The two buckets of one app in one tenant.
#[derive(Debug)]
pub struct Throttle {
    resource_units: Bucket,
    writes: Bucket,
}

impl Throttle {
    /// Full buckets for a tenant of this size, refilling `time_scale` times faster than real time.
    pub fn new(size: TenantSize, time_scale: f64) -> Self {
        let now = Instant::now();
        Self {
            resource_units: Bucket::new(
                size.resource_units_per_window(),
                RESOURCE_UNIT_WINDOW_SECS,
                time_scale,
                now,
            ),
            writes: Bucket::new(WRITES_PER_WINDOW, WRITE_WINDOW_SECS, time_scale, now),
        }
    }

    /// Charges a request of `cost` resource units (and one write if `write`), throttled or not.
    pub fn charge(&mut self, cost: u32, write: bool, now: Instant) -> Verdict {
        let cost = f64::from(cost);
        self.resource_units.refill(now);
        self.writes.refill(now);
        let units_short = self.resource_units.tokens < cost;
        let writes_short = write && self.writes.tokens < 1.0;
        self.resource_units.tokens =
            (self.resource_units.tokens - cost).max(-self.resource_units.capacity);
        if write {
            self.writes.tokens = (self.writes.tokens - 1.0).max(-self.writes.capacity);
        }
        if units_short || writes_short {
            let mut retry_after: f64 = 0.0;
            let mut scope = "";
            if units_short {
                retry_after = self.resource_units.wait_for(cost);
                scope = "Tenant_Application/ReadWrite/ResourceUnits";
            }
            if writes_short && self.writes.wait_for(1.0) >= retry_after {
                retry_after = self.writes.wait_for(1.0);
                scope = "Tenant_Application/Write/Writes";
            }
            return Verdict::Throttled {
                retry_after: round_up_millis(retry_after),
                scope,
            };
        }
        let used = self.resource_units.used_percent().max(if write {
            self.writes.used_percent()
        } else {
            0.0
        });
        Verdict::Allowed {
            near_limit: (used >= NEAR_LIMIT_PERCENT).then(|| used.min(100.0) as u32),
        }
    }
}

/// Rounds up to three decimals (never 0), so that waiting exactly that long is enough.
fn round_up_millis(seconds: f64) -> f64 {
    ((seconds * 1000.0).ceil() / 1000.0).max(0.001)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_throttles_once_capacity_is_spent() {
        let mut throttle = Throttle::new(TenantSize::Small, 1.0);
        let now = Instant::now();
        for _ in 0..3_500 {
            assert!(matches!(
                throttle.charge(1, false, now),
                Verdict::Allowed { .. }
            ));
        }
        let Verdict::Throttled { retry_after, scope } = throttle.charge(3, false, now) else {
            panic!("the bucket is empty");
        };
        // The throttled request is charged too: it needs 3 units on a bucket at -3, and the
        // small tenant refills 350 units per second.
        assert!((retry_after - 6.0 / 350.0).abs() < 0.002, "{retry_after}");
        assert!(scope.contains("ResourceUnits"));
    }

    #[test]
    fn waiting_retry_after_is_enough() {
        let mut throttle = Throttle::new(TenantSize::Small, 1.0);
        let now = Instant::now();
        throttle.charge(3_500, false, now);
        let Verdict::Throttled { retry_after, .. } = throttle.charge(3, false, now) else {
            panic!("the bucket is empty");
        };
        let later = now + Duration::from_secs_f64(retry_after);
        assert!(matches!(
            throttle.charge(3, false, later),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn time_scale_shortens_retry_after() {
        let wait = |scale| {
            let mut throttle = Throttle::new(TenantSize::Large, scale);
            let now = Instant::now();
            throttle.charge(8_000, false, now);
            match throttle.charge(100, false, now) {
                Verdict::Throttled { retry_after, .. } => retry_after,
                Verdict::Allowed { .. } => panic!("the bucket is empty"),
            }
        };
        assert!((wait(1.0) / wait(10.0) - 10.0).abs() < 0.1);
    }

    #[test]
    fn writes_have_their_own_bucket() {
        let mut throttle = Throttle::new(TenantSize::Large, 1.0);
        let now = Instant::now();
        for _ in 0..3_000 {
            throttle.charge(1, true, now);
        }
        let verdict = throttle.charge(1, true, now);
        assert!(
            matches!(verdict, Verdict::Throttled { scope, .. } if scope.contains("Write")),
            "{verdict:?}"
        );
    }

    #[test]
    fn near_limit_is_reported_from_eighty_percent() {
        let mut throttle = Throttle::new(TenantSize::Large, 1.0);
        let now = Instant::now();
        assert_eq!(
            throttle.charge(6_000, false, now),
            Verdict::Allowed { near_limit: None }
        );
        assert_eq!(
            throttle.charge(400, false, now),
            Verdict::Allowed {
                near_limit: Some(80)
            }
        );
    }
}
