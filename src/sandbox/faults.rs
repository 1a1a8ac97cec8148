//! The sandbox's fault knobs and the seeded dice that decide which request fails.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The tenant size presets of Graph's directory throttling limits (resource units per 10 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TenantSize {
    /// Fewer than 50 users: 3,500 resource units per 10 s.
    Small,
    /// 50 to 500 users: 5,000 resource units per 10 s.
    Medium,
    /// More than 500 users: 8,000 resource units per 10 s.
    #[default]
    Large,
}

impl TenantSize {
    /// The resource units an app may spend per 10 s window in a tenant of this size.
    pub fn resource_units_per_window(self) -> f64 {
        match self {
            TenantSize::Small => 3_500.0,
            TenantSize::Medium => 5_000.0,
            TenantSize::Large => 8_000.0,
        }
    }
}

/// Every fault knob; `Default` is a well-behaved large tenant with throttling on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added latency per HTTP request, in milliseconds.
    pub latency_ms: u64,
    /// Share of requests answered 503 `serviceNotAvailable` (0..1).
    pub error_503_rate: f64,
    /// Whether those 503s carry a `Retry-After` header.
    pub error_503_retry_after: bool,
    /// Share of requests answered 504 (0..1).
    pub error_504_rate: f64,
    /// Share of HTTP requests whose connection is closed without a reply (0..1).
    pub drop_rate: f64,
    /// After this many more accepted writes, every Graph request is dropped until cleared.
    pub drop_after_writes: Option<u64>,
    /// How long an accepted write stays invisible to reads, in milliseconds.
    pub replication_lag_ms: u64,
    /// Whether the resource-unit and write buckets answer 429 when empty.
    pub throttling: bool,
    /// The tenant size preset for the resource-unit bucket.
    pub tenant_size: TenantSize,
    /// Time runs this many times faster for buckets and `Retry-After` (must be > 0).
    pub time_scale: f64,
    /// Lifetime of issued access tokens, in seconds.
    pub token_ttl_secs: u64,
    /// Seed of the fault dice (and of the batch reply shuffle).
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_503_rate: 0.0,
            error_503_retry_after: true,
            error_504_rate: 0.0,
            drop_rate: 0.0,
            drop_after_writes: None,
            replication_lag_ms: 0,
            throttling: true,
            tenant_size: TenantSize::Large,
            time_scale: 1.0,
            token_ttl_secs: 3599,
            seed: 0,
        }
    }
}

/// A fault knob update that could not be applied; the message names the knob.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FaultsError(pub String);

impl Faults {
    /// Checks that rates are within 0..1 and the time scale is positive.
    pub fn validate(&self) -> Result<(), FaultsError> {
        for (name, rate) in [
            ("error_503_rate", self.error_503_rate),
            ("error_504_rate", self.error_504_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(FaultsError(format!(
                    "knob `{name}` must be between 0 and 1, got {rate}"
                )));
            }
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(FaultsError(format!(
                "knob `time_scale` must be a positive number, got {}",
                self.time_scale
            )));
        }
        Ok(())
    }

    /// Applies a partial JSON object: only the knobs it names change; an unknown knob is an error.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Faults, FaultsError> {
        let serde_json::Value::Object(patch) = patch else {
            return Err(FaultsError(
                "the body must be a JSON object of fault knobs".to_owned(),
            ));
        };
        let mut current = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(current)) => current,
            _ => return Err(FaultsError("the current knobs do not serialize".to_owned())),
        };
        for (knob, value) in patch {
            if !current.contains_key(knob) {
                return Err(FaultsError(format!(
                    "unknown fault knob `{knob}`; known knobs: {}",
                    current.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            current.insert(knob.clone(), value.clone());
        }
        let faults: Faults = serde_json::from_value(serde_json::Value::Object(current))
            .map_err(|e| FaultsError(format!("invalid fault knob value: {e}")))?;
        faults.validate()?;
        Ok(faults)
    }
}

/// What the dice decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection without a reply.
    Drop,
    /// 503 `serviceNotAvailable`.
    Unavailable,
    /// 504 gateway timeout.
    GatewayTimeout,
}

/// The seeded random source behind every fault decision, so a run can be replayed.
#[derive(Debug)]
pub struct Dice {
    rng: ChaCha8Rng,
}

impl Dice {
    /// Dice that replay the same decisions for the same seed.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// One roll per request; `can_drop` is false for inner batch requests, which have no
    /// connection of their own.
    pub fn roll(&mut self, faults: &Faults, can_drop: bool) -> Option<Fault> {
        let any = faults.error_503_rate > 0.0
            || faults.error_504_rate > 0.0
            || (can_drop && faults.drop_rate > 0.0);
        if !any {
            return None;
        }
        let roll: f64 = self.rng.r#gen();
        let drop = if can_drop { faults.drop_rate } else { 0.0 };
        if roll < drop {
            Some(Fault::Drop)
        } else if roll < drop + faults.error_503_rate {
            Some(Fault::Unavailable)
        } else if roll < drop + faults.error_503_rate + faults.error_504_rate {
            Some(Fault::GatewayTimeout)
        } else {
            None
        }
    }

    /// A permutation of `0..n`, used to answer batch requests out of order.
    pub fn shuffled(&mut self, n: usize) -> Vec<usize> {
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.rng);
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_update_changes_only_named_knobs() {
        let faults = Faults::default()
            .merged(&serde_json::json!({"latency_ms": 5, "tenant_size": "small"}))
            .unwrap();
        assert_eq!(faults.latency_ms, 5);
        assert_eq!(faults.tenant_size, TenantSize::Small);
        assert!(faults.throttling);
    }

    #[test]
    fn unknown_knob_is_named() {
        let err = Faults::default()
            .merged(&serde_json::json!({"latency": 5}))
            .unwrap_err();
        assert!(err.0.contains("`latency`"), "{err}");
    }

    #[test]
    fn rates_outside_unit_interval_are_refused() {
        let err = Faults::default()
            .merged(&serde_json::json!({"drop_rate": 1.5}))
            .unwrap_err();
        assert!(err.0.contains("drop_rate"), "{err}");
        assert!(
            Faults::default()
                .merged(&serde_json::json!({"time_scale": 0.0}))
                .is_err()
        );
    }

    #[test]
    fn same_seed_rolls_the_same_faults() {
        let faults = Faults {
            error_503_rate: 0.3,
            error_504_rate: 0.3,
            ..Faults::default()
        };
        let rolls = |seed| {
            let mut dice = Dice::new(seed);
            (0..50)
                .map(|_| dice.roll(&faults, true))
                .collect::<Vec<_>>()
        };
        assert_eq!(rolls(7), rolls(7));
        assert_ne!(rolls(7), rolls(8));
    }

    #[test]
    fn inner_requests_are_never_dropped() {
        let faults = Faults {
            drop_rate: 1.0,
            ..Faults::default()
        };
        let mut dice = Dice::new(1);
        assert_eq!(dice.roll(&faults, false), None);
        assert_eq!(dice.roll(&faults, true), Some(Fault::Drop));
    }
}
