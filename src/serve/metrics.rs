//! `/metrics`: what `serve` counts as its ticks run, and what it reads from the state store
//! at each scrape (so that the gauges survive a restart and show every instance's runs).
//!
//! prometheus-client (the Prometheus project's own Rust client) rather than `metrics` +
//! its exporter: the registry is a value `serve` owns, not a process-wide recorder, and label
//! sets are typed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::config::GraphConfig;
use crate::exit::Exit;
use crate::graph::GraphStats;
use crate::plan::GuardKind;
use crate::plan::HoldReason;
use crate::reconcile::RunReport;
use crate::store::{OpKind, OpStatus, Run, RunKind, RunStatus, Store, StoreError};

/// Every sample name `/metrics` can carry, as Prometheus queries them (a counter's with
/// `_total`, the histogram's `_bucket`, `_sum` and `_count`): the list the deployed alert rules
/// and dashboard are checked against. A unit test keeps it equal to what is registered.
pub const SAMPLE_NAMES: [&str; 17] = [
    "rollcall_runs_total",
    "rollcall_run_duration_seconds_bucket",
    "rollcall_run_duration_seconds_sum",
    "rollcall_run_duration_seconds_count",
    "rollcall_operations_total",
    "rollcall_graph_requests_total",
    "rollcall_graph_throttled_total",
    "rollcall_graph_throttle_wait_seconds_total",
    "rollcall_guard_trips_total",
    "rollcall_drift_lists",
    "rollcall_held_lists",
    "rollcall_members_in_grace",
    "rollcall_last_success_timestamp_seconds",
    "rollcall_unresolved_members",
    "rollcall_pending_operations",
    "rollcall_paused",
    "rollcall_credential_expiry_seconds",
];

/// The run kinds whose success keeps `serve` healthy.
pub const RECONCILING: &[RunKind] = &[RunKind::Run, RunKind::Rebuild, RunKind::Apply];

/// How a tick ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// Every planned change applied.
    Success,
    /// Every list applied but some, held each for a reason of its own (exit 7).
    Held,
    /// The run failed (exit 1), or could not start.
    Failed,
    /// Stopped before any change (exit 3).
    Stopped,
    /// Interrupted with operations pending (exit 4).
    Interrupted,
    /// Skipped: the lease is held elsewhere or rollcall is paused (exit 6).
    Skipped,
}

impl TickOutcome {
    /// Every outcome, so that each counter starts at zero.
    pub const ALL: [TickOutcome; 6] = [
        TickOutcome::Success,
        TickOutcome::Held,
        TickOutcome::Failed,
        TickOutcome::Stopped,
        TickOutcome::Interrupted,
        TickOutcome::Skipped,
    ];

    /// The outcome a run's exit code stands for.
    pub fn of(exit: Exit) -> TickOutcome {
        match exit {
            Exit::Success | Exit::Drift => TickOutcome::Success,
            Exit::Held => TickOutcome::Held,
            Exit::Stopped => TickOutcome::Stopped,
            Exit::Interrupted => TickOutcome::Interrupted,
            Exit::Skipped => TickOutcome::Skipped,
            Exit::Failed | Exit::Usage => TickOutcome::Failed,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TickOutcome::Success => "success",
            TickOutcome::Held => "held",
            TickOutcome::Failed => "failed",
            TickOutcome::Stopped => "stopped",
            TickOutcome::Interrupted => "interrupted",
            TickOutcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    kind: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuardLabels {
    guard: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HoldLabels {
    reason: String,
}

/// `thumbprint`: the SHA-1 thumbprint of the certificate rollcall signs in with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CertificateLabels {
    thumbprint: String,
}

/// What one tick did, for the counters.
#[derive(Debug, Clone, Default)]
pub struct TickRecord {
    /// Operations this tick settled, by kind and final status (done or failed).
    pub operations: Vec<(OpKind, OpStatus, u64)>,
    /// Microsoft Graph traffic of the tick, when it got as far as connecting.
    pub graph: Option<GraphStats>,
    /// Guards that tripped in the tick's run.
    pub tripped: Vec<GuardKind>,
}

/// Every metric `serve` exposes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    operations: Family<OperationLabels, Counter>,
    graph_requests: Family<StatusLabels, Counter>,
    throttled: Counter,
    throttle_wait: Counter<f64, AtomicU64>,
    guard_trips: Family<GuardLabels, Counter>,
    drift: Family<KindLabels, Gauge>,
    held: Family<HoldLabels, Gauge>,
    leaving: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    unresolved: Gauge,
    pending: Gauge,
    paused: Gauge,
    credential_expiry: Family<CertificateLabels, Gauge<f64, AtomicU64>>,
    /// The `[graph]` section whose certificate `credential_expiry` reports, re-read at every
    /// scrape so that a certificate replaced at the same path shows at once.
    graph: RwLock<Option<GraphConfig>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric, the run counters of scheduled kinds at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0])
        });
        let operations = Family::<OperationLabels, Counter>::default();
        let graph_requests = Family::<StatusLabels, Counter>::default();
        let throttled = Counter::default();
        let throttle_wait = Counter::<f64, AtomicU64>::default();
        let guard_trips = Family::<GuardLabels, Counter>::default();
        let drift = Family::<KindLabels, Gauge>::default();
        let held = Family::<HoldLabels, Gauge>::default();
        let leaving = Gauge::default();
        let last_success = Gauge::<f64, AtomicU64>::default();
        let unresolved = Gauge::default();
        let pending = Gauge::default();
        let paused = Gauge::default();
        let credential_expiry = Family::<CertificateLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "rollcall_runs",
            "Scheduled runs by kind and outcome (success, held, failed, stopped, interrupted, skipped)",
            runs.clone(),
        );
        registry.register_with_unit(
            "rollcall_run_duration",
            "How long scheduled runs took, skipped ones excluded",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "rollcall_operations",
            "Journalled operations settled by scheduled runs, by kind (add, remove, create, tag, retitle) and outcome (done, failed)",
            operations.clone(),
        );
        registry.register(
            "rollcall_graph_requests",
            "Microsoft Graph requests by reply status class (2xx, 4xx, 5xx, no_reply)",
            graph_requests.clone(),
        );
        registry.register(
            "rollcall_graph_throttled",
            "429 replies from Microsoft Graph",
            throttled.clone(),
        );
        registry.register_with_unit(
            "rollcall_graph_throttle_wait",
            "Time requests spent held back by Microsoft Graph throttling (summed over concurrent requests)",
            Unit::Seconds,
            throttle_wait.clone(),
        );
        registry.register(
            "rollcall_guard_trips",
            "Guards that stopped a scheduled run, by guard",
            guard_trips.clone(),
        );
        registry.register(
            "rollcall_drift_lists",
            "Lists found drifted by the last verify or rebuild the state database records, by its kind",
            drift.clone(),
        );
        registry.register(
            "rollcall_held_lists",
            "Lists the last finished run held (left exactly as they were), by reason",
            held.clone(),
        );
        registry.register(
            "rollcall_members_in_grace",
            "Members the sources no longer name who stay on their lists until their family's remove_after ends, as of the last finished run",
            leaving.clone(),
        );
        registry.register(
            "rollcall_last_success_timestamp_seconds",
            "When the last successful run, rebuild or apply finished (Unix time; 0 when none is recorded)",
            last_success.clone(),
        );
        registry.register(
            "rollcall_unresolved_members",
            "Member keys no account answers to, as of the last successful run",
            unresolved.clone(),
        );
        registry.register(
            "rollcall_pending_operations",
            "Journalled operations still pending across every run (resume or the next run finishes them)",
            pending.clone(),
        );
        registry.register(
            "rollcall_paused",
            "1 while rollcall is paused (scheduled runs skip), else 0",
            paused.clone(),
        );
        registry.register(
            "rollcall_credential_expiry_seconds",
            "Seconds until the certificate rollcall signs in with expires (negative once it has), by its SHA-1 thumbprint; absent for a client secret or federation",
            credential_expiry.clone(),
        );
        for guard in GuardKind::ALL {
            let _ = guard_trips.get_or_create(&GuardLabels {
                guard: guard.key().to_owned(),
            });
        }
        for kind in [RunKind::Run, RunKind::Rebuild] {
            for outcome in TickOutcome::ALL {
                let _ = runs.get_or_create(&RunLabels {
                    kind: kind.to_string(),
                    outcome: outcome.as_str().to_owned(),
                });
            }
        }
        Metrics {
            registry,
            runs,
            duration,
            operations,
            graph_requests,
            throttled,
            throttle_wait,
            guard_trips,
            drift,
            held,
            leaving,
            last_success,
            unresolved,
            pending,
            paused,
            credential_expiry,
            graph: RwLock::new(None),
        }
    }

    /// The `[graph]` section whose certificate the expiry gauge follows (set at start and on
    /// every reload).
    pub fn follow_credential(&self, graph: Option<GraphConfig>) {
        *self.graph.write().expect("graph lock") = graph;
    }

    /// Sets the expiry gauge from the certificate `[graph]` names now, if any.
    fn refresh_credential(&self) {
        let certificate = self
            .graph
            .read()
            .expect("graph lock")
            .as_ref()
            .and_then(GraphConfig::certificate);
        self.credential_expiry.clear();
        if let Some(certificate) = certificate {
            let left = certificate.expires_in(chrono::Utc::now());
            self.credential_expiry
                .get_or_create(&CertificateLabels {
                    thumbprint: certificate.thumbprints.sha1_hex(),
                })
                .set(left.num_milliseconds() as f64 / 1000.0);
        }
    }

    /// Counts one tick.
    pub fn record(&self, kind: RunKind, outcome: TickOutcome, took: Duration, record: &TickRecord) {
        self.runs
            .get_or_create(&RunLabels {
                kind: kind.to_string(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
        if outcome != TickOutcome::Skipped {
            self.duration
                .get_or_create(&KindLabels {
                    kind: kind.to_string(),
                })
                .observe(took.as_secs_f64());
        }
        for &(op, status, n) in &record.operations {
            self.operations
                .get_or_create(&OperationLabels {
                    kind: op_label(op).to_owned(),
                    outcome: status.to_string(),
                })
                .inc_by(n);
        }
        if let Some(graph) = &record.graph {
            for (status, n) in [
                ("2xx", graph.status_2xx),
                ("4xx", graph.status_4xx),
                ("5xx", graph.status_5xx),
                ("no_reply", graph.no_reply),
            ] {
                self.graph_requests
                    .get_or_create(&StatusLabels {
                        status: status.to_owned(),
                    })
                    .inc_by(n);
            }
            self.throttled.inc_by(graph.throttled);
            self.throttle_wait.inc_by(graph.throttle_wait.as_secs_f64());
        }
        for guard in &record.tripped {
            self.guard_trips
                .get_or_create(&GuardLabels {
                    guard: guard.key().to_owned(),
                })
                .inc();
        }
    }

    /// Reads the gauges from the state store (last success, unresolved members, drift,
    /// pending operations and the pause flag) and the certificate's expiry.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        self.refresh_credential();
        let success = store
            .last_finished_run(RECONCILING, RunStatus::Succeeded)
            .await?;
        let at = success.as_ref().and_then(|run| run.finished_at);
        self.last_success
            .set(at.map_or(0.0, |at| at.timestamp_millis() as f64 / 1000.0));
        self.unresolved.set(
            success
                .as_ref()
                .and_then(RunReport::of)
                .map_or(0, |r| i64::try_from(r.unresolved).unwrap_or(i64::MAX)),
        );
        self.drift.clear();
        if let Some((kind, lists)) = read_last_drift(store).await? {
            self.drift
                .get_or_create(&KindLabels {
                    kind: kind.to_string(),
                })
                .set(i64::try_from(lists).unwrap_or(i64::MAX));
        }
        let last = store
            .last_finished_run(RECONCILING, RunStatus::Succeeded)
            .await?;
        let mut held: BTreeMap<String, i64> = HoldReason::KEYS
            .iter()
            .map(|key| ((*key).to_owned(), 0))
            .collect();
        let report = last.as_ref().and_then(RunReport::of).unwrap_or_default();
        self.leaving
            .set(i64::try_from(report.totals.leaving).unwrap_or(i64::MAX));
        for list in report.held {
            *held.entry(list.reason).or_default() += 1;
        }
        for (reason, lists) in held {
            self.held.get_or_create(&HoldLabels { reason }).set(lists);
        }
        self.pending.set(store.pending_everywhere().await?);
        self.paused
            .set(i64::from(store.pause_state().await?.paused));
        Ok(())
    }

    /// The metrics in the OpenMetrics text format Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            let _ = writeln!(out, "# encoding failed: {e}");
        }
        out
    }
}

/// The `kind` label of a journalled operation.
fn op_label(kind: OpKind) -> &'static str {
    match kind {
        OpKind::AddMember => "add",
        OpKind::RemoveMember => "remove",
        OpKind::CreateGroup => "create",
        OpKind::TagGroup => "tag",
        OpKind::UpdateGroup => "retitle",
        OpKind::AddOwner => "add_owner",
        OpKind::RemoveOwner => "remove_owner",
    }
}

/// [`last_drift`] of the last successful verify and rebuild the store records.
pub(super) async fn read_last_drift(store: &Store) -> Result<Option<(RunKind, u64)>, StoreError> {
    let verify = store
        .last_finished_run(&[RunKind::Verify], RunStatus::Succeeded)
        .await?;
    let rebuild = store
        .last_finished_run(&[RunKind::Rebuild], RunStatus::Succeeded)
        .await?;
    Ok(last_drift(verify.as_ref(), rebuild.as_ref()))
}

/// Lists drifted as the newer of the last verify and the last rebuild saw it: a verify counts
/// its drifted lists; a rebuild, the lists it had to change.
fn last_drift(verify: Option<&Run>, rebuild: Option<&Run>) -> Option<(RunKind, u64)> {
    let finished = |run: Option<&Run>| run.and_then(|r| r.finished_at);
    let newest = match (finished(verify), finished(rebuild)) {
        (Some(v), Some(r)) if r > v => rebuild,
        (Some(_), _) => verify,
        (None, _) => rebuild,
    }?;
    let report = RunReport::of(newest)?;
    let lists = match newest.kind {
        RunKind::Verify => report.drift?,
        _ => report
            .lists
            .iter()
            .filter(|l| l.created || l.added > 0 || l.removed > 0 || l.failed > 0 || l.pending > 0)
            .count() as u64,
    };
    Some((newest.kind, lists))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn a_tick_is_counted_by_kind_outcome_operation_status_and_guard() {
        let metrics = Metrics::new();
        let record = TickRecord {
            operations: vec![
                (OpKind::AddMember, OpStatus::Done, 40),
                (OpKind::CreateGroup, OpStatus::Done, 2),
                (OpKind::RemoveMember, OpStatus::Failed, 1),
            ],
            graph: Some(GraphStats {
                status_2xx: 10,
                status_4xx: 3,
                throttled: 2,
                throttle_wait: Duration::from_millis(1500),
                ..GraphStats::default()
            }),
            tripped: vec![GuardKind::MaxRemovalsPerRun],
        };
        metrics.record(
            RunKind::Run,
            TickOutcome::Success,
            Duration::from_secs(3),
            &record,
        );
        metrics.record(
            RunKind::Run,
            TickOutcome::Skipped,
            Duration::ZERO,
            &TickRecord::default(),
        );
        let text = metrics.render();
        let expected = [
            (r#"rollcall_runs_total{kind="run",outcome="success"}"#, 1.0),
            (r#"rollcall_runs_total{kind="run",outcome="skipped"}"#, 1.0),
            (
                r#"rollcall_runs_total{kind="rebuild",outcome="failed"}"#,
                0.0,
            ),
            (r#"rollcall_run_duration_seconds_count{kind="run"}"#, 1.0),
            (
                r#"rollcall_operations_total{kind="add",outcome="done"}"#,
                40.0,
            ),
            (
                r#"rollcall_operations_total{kind="create",outcome="done"}"#,
                2.0,
            ),
            (
                r#"rollcall_operations_total{kind="remove",outcome="failed"}"#,
                1.0,
            ),
            (r#"rollcall_graph_requests_total{status="4xx"}"#, 3.0),
            ("rollcall_graph_throttled_total", 2.0),
            ("rollcall_graph_throttle_wait_seconds_total", 1.5),
            (
                r#"rollcall_guard_trips_total{guard="max_removals_per_run"}"#,
                1.0,
            ),
        ];
        for (prefix, value) in expected {
            let at = sample(&text, prefix).unwrap_or_else(|| panic!("{prefix}:\n{text}"));
            assert_eq!(at, value, "{prefix}");
        }
        assert!(text.contains("# HELP rollcall_paused "), "{text}");
    }

    #[test]
    fn certificate_expiry_is_a_gauge_labelled_with_its_thumbprint() {
        use crate::config::AssertionAlgorithm;
        use crate::config::test_certificates::{Validity, make};
        let made = make(Validity::ExpiringSoon, AssertionAlgorithm::RS256);
        let graph: GraphConfig = toml::from_str(&format!(
            "tenant_id = \"t\"\nclient_id = \"c\"\ncertificate_path = {:?}\n",
            made.combined.display().to_string()
        ))
        .unwrap();
        let thumbprint = made.load().thumbprints.sha1_hex();
        let metrics = Metrics::new();
        metrics.refresh_credential();
        assert!(
            !metrics
                .render()
                .contains("rollcall_credential_expiry_seconds{"),
            "no sample without a certificate"
        );
        metrics.follow_credential(Some(graph));
        metrics.refresh_credential();
        let text = metrics.render();
        let left = sample(
            &text,
            &format!("rollcall_credential_expiry_seconds{{thumbprint=\"{thumbprint}\"}}"),
        )
        .unwrap_or_else(|| panic!("{text}"));
        let ten_days = 10.0 * 86_400.0;
        assert!((ten_days - 120.0..=ten_days).contains(&left), "{left}");
    }

    #[test]
    fn sample_names_are_exactly_what_is_rendered_with_every_family_filled() {
        let metrics = Metrics::new();
        metrics.record(
            RunKind::Run,
            TickOutcome::Success,
            Duration::from_secs(1),
            &TickRecord {
                operations: vec![(OpKind::AddMember, OpStatus::Done, 1)],
                graph: Some(GraphStats::default()),
                tripped: vec![GuardKind::MaxRemovalsPerRun],
            },
        );
        metrics
            .drift
            .get_or_create(&KindLabels {
                kind: "verify".to_owned(),
            })
            .set(1);
        metrics
            .held
            .get_or_create(&HoldLabels {
                reason: "guard".to_owned(),
            })
            .set(1);
        metrics
            .credential_expiry
            .get_or_create(&CertificateLabels {
                thumbprint: "AB".to_owned(),
            })
            .set(1.0);
        let text = metrics.render();
        let rendered: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let listed: std::collections::BTreeSet<&str> = SAMPLE_NAMES.into_iter().collect();
        assert_eq!(rendered, listed, "{text}");
    }

    #[test]
    fn exit_codes_map_to_outcomes() {
        assert_eq!(TickOutcome::of(Exit::Success), TickOutcome::Success);
        assert_eq!(TickOutcome::of(Exit::Failed), TickOutcome::Failed);
        assert_eq!(TickOutcome::of(Exit::Usage), TickOutcome::Failed);
        assert_eq!(TickOutcome::of(Exit::Stopped), TickOutcome::Stopped);
        assert_eq!(TickOutcome::of(Exit::Interrupted), TickOutcome::Interrupted);
        assert_eq!(TickOutcome::of(Exit::Skipped), TickOutcome::Skipped);
    }
}
