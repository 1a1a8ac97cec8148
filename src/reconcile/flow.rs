//! The commands' flows over one engine: plan, run, resume, verify, rebuild.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::actual::{self, ActualState, Conflict, ReadMode};
use super::apply::{Apply, PlannedGroup};
use super::identity::{self, Refresh};
use super::lease::{LeaseError, RunLease};
use super::progress::Progress;
use super::report::{Approval, Durations, FailedCheck, RunReport};
use super::saved::{Change, SavedPlan};
use super::{Stop, StopSignal};
use crate::config::Config;
use crate::exit::{CommandError, Exit};
use crate::graph::GraphClient;
use crate::plan::{
    self, Approvals, Desired, ListChange, Plan, Policies, Verdicts, tripped_message,
};
use crate::source::{self, SourceError, SourceSummary, completeness};
use crate::store::{NewOp, NewSnapshot, OpKind, Run, RunId, RunKind, RunStatus, Store};

/// Longest displayName Microsoft 365 accepts.
const MAX_DISPLAY_NAME: usize = 256;

/// The state store and Microsoft Graph, opened for one command.
#[derive(Debug)]
pub struct Engine {
    /// The configuration.
    pub config: Config,
    /// The state store, migrated.
    pub store: Store,
    /// Microsoft Graph, with a token in hand.
    pub graph: GraphClient,
    /// Signals and the like.
    pub stop: StopSignal,
    /// Progress shown to the operator.
    pub progress: Progress,
    /// Sources whose shrink the operator accepted for this command (`--accept-shrink`).
    pub accepted_shrinks: BTreeSet<String>,
}

/// Everything a run decides before its first change.
#[derive(Debug)]
pub struct Planned {
    /// The sources as read.
    pub sources: Vec<SourceSummary>,
    /// The directory refresh.
    pub directory: Refresh,
    /// Member keys no account answers to, per list.
    pub unresolved: BTreeMap<String, Vec<String>>,
    /// The actual side.
    pub actual: ActualState,
    /// The plan.
    pub plan: Plan,
    /// The guards' verdicts.
    pub verdicts: Verdicts,
    /// Snapshot warnings.
    pub warnings: Vec<String>,
    /// How long reading and planning took, phase by phase.
    pub durations: Durations,
}

/// Where a run's plan comes from.
#[derive(Debug, Clone, Copy)]
enum PlanSource<'a> {
    /// Planned afresh; the guards judge it with the operator's approvals.
    Fresh(&'a Approvals),
    /// A saved plan the operator approved (`apply FILE`): planned again, and applied only if
    /// nothing it was computed from changed since it was saved.
    Saved {
        /// The saved plan.
        saved: &'a SavedPlan,
        /// When the run started, the moment the plan's age is taken at.
        now: DateTime<Utc>,
    },
}

/// One list's drift, as `verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The list key.
    pub list: String,
    /// Members the sources want that the group lacks.
    pub missing: u64,
    /// Members the group has that the sources do not want.
    pub extra: u64,
    /// The list has no managed group (not created yet, or its nickname is taken).
    pub group_missing: bool,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Lists compared.
    pub checked: u64,
    /// Lists that differ.
    pub drift: Vec<Drift>,
    /// Member keys no account answers to (not drift: nobody can add them).
    pub unresolved: u64,
}

impl Engine {
    /// Opens the state store (migrating it) and connects to Microsoft Graph.
    pub async fn open(config: Config, progress: Progress) -> Result<Engine, CommandError> {
        let url = config.state.database_url().map_err(|e| {
            CommandError::usage(anyhow::anyhow!("{}: [state]: {e}", config.path.display()))
        })?;
        let graph_config = config.graph()?.clone();
        let store = Store::open(&url).await.map_err(CommandError::failed)?;
        let graph = GraphClient::connect(&graph_config).await.map_err(|e| {
            CommandError::failed(
                anyhow::Error::new(e).context("could not connect to Microsoft Graph"),
            )
        })?;
        Ok(Engine {
            config,
            store,
            graph,
            stop: StopSignal::default(),
            progress,
            accepted_shrinks: BTreeSet::new(),
        })
    }

    /// Reads sources, the directory and Microsoft 365, then diffs and guards. With `repair`
    /// the state store's view of Microsoft 365 (groups found or gone, the mirror) is brought
    /// in line; without, the state store's groups and mirror are left alone. With `full`,
    /// the directory and every managed group are read afresh, no mirror or delta link
    /// trusted; otherwise both are brought up to date through delta rounds.
    pub async fn prepare(
        &self,
        approvals: &Approvals,
        repair: bool,
        full: bool,
    ) -> Result<Planned, Stop> {
        let mut durations = Durations::default();
        let mut phase = Instant::now();
        let snapshot = self.read_complete_sources().await?;
        check_names(&snapshot)?;
        durations.sources_ms = Durations::since(phase);
        phase = Instant::now();
        let directory = identity::refresh(&self.store, &self.graph, full).await?;
        let keys = snapshot.member_keys();
        let resolved = identity::resolve(&self.store, &self.graph, &keys).await?;
        tracing::info!(
            keys = keys.len(),
            resolved = resolved.len(),
            "member keys resolved"
        );
        durations.directory_ms = Durations::since(phase);
        phase = Instant::now();

        let wanted = snapshot.wanted();
        let mode = if full {
            ReadMode::Full
        } else {
            ReadMode::Delta
        };
        let actual = actual::read(
            &self.config,
            &self.store,
            &self.graph,
            &wanted,
            repair,
            mode,
        )
        .await?;
        durations.actual_ms = Durations::since(phase);
        phase = Instant::now();
        let conflicted: BTreeSet<&str> = actual.conflicts.iter().map(|c| c.list.as_str()).collect();

        let source::ResolvedLists { lists, unresolved } = snapshot.resolve(
            wanted,
            |key| conflicted.contains(key),
            |member| resolved.get(member),
        );
        let desired = Desired::new(lists).map_err(|e| Stop::failed(anyhow::anyhow!("{e}")))?;
        let policies = Policies::from_families(&self.config.families);
        let plan = plan::diff(&desired, &actual.actual, &policies);
        let verdicts = plan::guard(&plan, &self.config.guard, approvals);
        durations.plan_ms = Durations::since(phase);
        Ok(Planned {
            sources: snapshot.sources,
            directory,
            unresolved,
            actual,
            plan,
            verdicts,
            warnings: snapshot.warnings,
            durations,
        })
    }

    /// `run` (and `rebuild`): resumes an interrupted run first, then plans and applies.
    pub async fn run(
        &self,
        kind: RunKind,
        approvals: &Approvals,
        approvals_record: &serde_json::Value,
    ) -> Result<(RunId, RunReport), CommandError> {
        self.locked_run(kind, PlanSource::Fresh(approvals), approvals_record)
            .await
    }

    /// `apply FILE`: resumes an interrupted run first, then plans again and applies the
    /// saved plan, its guards approved, if nothing it was computed from changed since.
    pub async fn apply(
        &self,
        saved: &SavedPlan,
        approvals_record: &serde_json::Value,
    ) -> Result<(RunId, RunReport), CommandError> {
        self.locked_run(
            RunKind::Apply,
            PlanSource::Saved {
                saved,
                now: Utc::now(),
            },
            approvals_record,
        )
        .await
    }

    /// A run under the lease: resumes an interrupted run, then reconciles from `source`.
    async fn locked_run(
        &self,
        kind: RunKind,
        source: PlanSource<'_>,
        approvals_record: &serde_json::Value,
    ) -> Result<(RunId, RunReport), CommandError> {
        self.under_lease(kind, Some(approvals_record), async |lease| {
            if let Some(resumed) = self.resume_interrupted(lease).await? {
                tracing::info!(run = %resumed, "the interrupted run is finished");
            }
            if kind == RunKind::Rebuild {
                self.store
                    .clear_delta_links()
                    .await
                    .map_err(CommandError::failed)?;
            }
            let run = self
                .store
                .begin_run(kind, Some(&lease.current()), Some(approvals_record))
                .await
                .map_err(CommandError::failed)?;
            let span = tracing::info_span!("run", run_id = %run, kind = %kind);
            let _enter = span.enter();
            let started = Instant::now();
            let mut report = RunReport::default();
            let result = self
                .reconcile(run, lease, source, kind == RunKind::Rebuild, &mut report)
                .await;
            report.approval = Approval::from_record(approvals_record);
            report.durations.total_ms = Durations::since(started);
            let report = self.finish(run, kind, result, report).await?;
            Ok((run, report))
        })
        .await
    }

    /// `resume`: finishes the pending operations of the last interrupted run, then stops.
    pub async fn resume(&self) -> Result<Option<RunId>, CommandError> {
        self.under_lease(RunKind::Resume, None, async |lease| {
            self.resume_interrupted(lease).await
        })
        .await
    }

    /// `verify`: reads desired and actual afresh and reports drift; changes nothing.
    pub async fn verify(&self) -> Result<(RunId, Verification), CommandError> {
        let started = Instant::now();
        let run = self
            .store
            .begin_run(RunKind::Verify, None, None)
            .await
            .map_err(CommandError::failed)?;
        let planned = match self.prepare(&Approvals::default(), false, true).await {
            Ok(planned) => planned,
            Err(stop) => {
                let report = RunReport {
                    error: Some(format!("{:#}", stop.error)),
                    failed_check: failed_check(&stop),
                    durations: Durations {
                        total_ms: Durations::since(started),
                        ..Durations::default()
                    },
                    ..RunReport::default()
                };
                self.record_end(run, RunKind::Verify, stop.status, stop.exit, &report)
                    .await;
                return Err(stop.into());
            }
        };
        let verification = verification(&planned);
        let mut report = RunReport::planned(&planned);
        report.drift = Some(verification.drift.len() as u64);
        report.drifted = verification.drift.clone();
        report.graph = self.graph.stats().into();
        report.durations.total_ms = Durations::since(started);
        let exit = if verification.drift.is_empty() {
            Exit::Success
        } else {
            Exit::Drift
        };
        self.record_end(run, RunKind::Verify, RunStatus::Succeeded, exit, &report)
            .await;
        Ok((run, verification))
    }

    /// `rebuild --state-only`: group ids, mirror and identities rebuilt from Microsoft 365 and
    /// the last accepted snapshots from the sources (after the completeness checks);
    /// membership is not changed.
    pub async fn rebuild_state(
        &self,
        approvals_record: &serde_json::Value,
    ) -> Result<(RunId, RunReport), CommandError> {
        self.under_lease(
            RunKind::StateRebuild,
            Some(approvals_record),
            async |lease| {
                let run = self
                    .store
                    .begin_run(
                        RunKind::StateRebuild,
                        Some(&lease.current()),
                        Some(approvals_record),
                    )
                    .await
                    .map_err(CommandError::failed)?;
                let started = Instant::now();
                let mut report = RunReport::default();
                let result = async {
                    let snapshot = self.read_complete_sources().await?;
                    let repaired = self.store.remove_orphans().await.map_err(Stop::store)?;
                    if repaired > 0 {
                        tracing::warn!(rows = repaired, "orphaned rows repaired");
                    }
                    self.store.clear_delta_links().await.map_err(Stop::store)?;
                    let directory = identity::refresh(&self.store, &self.graph, true).await?;
                    let state = actual::read(
                        &self.config,
                        &self.store,
                        &self.graph,
                        &[],
                        true,
                        ReadMode::Full,
                    )
                    .await?;
                    self.accept_snapshots(run, &snapshot.sources).await?;
                    report.sources = snapshot.sources;
                    report.directory = Some(directory);
                    report.warnings = snapshot.warnings;
                    report.warnings.extend(state.warnings);
                    report.managed_groups = Some(state.managed.len() as u64);
                    report.orphans_repaired = Some(repaired);
                    Ok(())
                }
                .await;
                report.approval = Approval::from_record(approvals_record);
                report.durations.total_ms = Durations::since(started);
                let report = self
                    .finish(run, RunKind::StateRebuild, result, report)
                    .await?;
                Ok((run, report))
            },
        )
        .await
    }

    /// Runs `work` under the run lease, taken for a `kind` run, and gives the lease up
    /// whatever the outcome.
    async fn under_lease<T>(
        &self,
        kind: RunKind,
        approvals: Option<&serde_json::Value>,
        work: impl AsyncFnOnce(&RunLease) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let lease = self.take_lease(kind, approvals).await?;
        let outcome = work(&lease).await;
        lease.release().await;
        outcome
    }

    /// Reads every source and checks each for completeness against its last accepted
    /// snapshot, before the directory or Microsoft 365 is touched. Shrinks the operator
    /// accepted go ahead with a warning in the snapshot.
    async fn read_complete_sources(&self) -> Result<source::Snapshot, Stop> {
        let mut snapshot = source::read_all_with(&self.config, Some(&self.graph))
            .await
            .map_err(Stop::source)?;
        let accepted_rows: BTreeMap<String, u64> = self
            .store
            .last_accepted_snapshots()
            .await
            .map_err(Stop::store)?
            .into_iter()
            .map(|s| (s.summary.source, u64::try_from(s.summary.rows).unwrap_or(0)))
            .collect();
        let warnings = completeness::check_all(
            &self.config,
            &snapshot.sources,
            &accepted_rows,
            &self.accepted_shrinks,
        )
        .map_err(Stop::source)?;
        for warning in &warnings {
            tracing::warn!(%warning, "source shrink accepted");
        }
        snapshot.warnings.extend(warnings);
        Ok(snapshot)
    }

    /// Takes the lease; a paused rollcall or a held lease is a skipped run (exit 6).
    async fn take_lease(
        &self,
        kind: RunKind,
        approvals: Option<&serde_json::Value>,
    ) -> Result<RunLease, CommandError> {
        let pause = self
            .store
            .pause_state()
            .await
            .map_err(CommandError::failed)?;
        let skip = |why: anyhow::Error| async move {
            let report = RunReport {
                error: Some(format!("{why:#}")),
                ..RunReport::default()
            };
            if let Ok(run) = self.store.begin_run(kind, None, approvals).await {
                self.record_end(run, kind, RunStatus::Skipped, Exit::Skipped, &report)
                    .await;
            }
            CommandError::new(Exit::Skipped, why)
        };
        if pause.paused {
            let until = pause
                .until
                .map_or_else(String::new, |u| format!(" until {u}"));
            return Err(skip(anyhow::anyhow!(
                "rollcall is paused{until} ({}); `rollcall unpause` lifts it",
                pause.reason.unwrap_or_default()
            ))
            .await);
        }
        match RunLease::take(&self.store).await {
            Ok(lease) => {
                let stuck = self
                    .store
                    .interrupt_stuck_runs(&lease.current())
                    .await
                    .map_err(CommandError::failed)?;
                for run in stuck {
                    tracing::warn!(run = %run, "a run died without finishing; it is marked interrupted");
                }
                Ok(lease)
            }
            Err(LeaseError::Held(held)) => Err(skip(held.into()).await),
            Err(LeaseError::Store(e)) => Err(CommandError::failed(e)),
        }
    }

    /// Finishes the last interrupted run's pending operations, if there is one.
    async fn resume_interrupted(&self, lease: &RunLease) -> Result<Option<RunId>, CommandError> {
        let Some(run) = self
            .store
            .last_interrupted_run()
            .await
            .map_err(CommandError::failed)?
        else {
            return Ok(None);
        };
        let span = tracing::info_span!("resume", run_id = %run.id);
        let _enter = span.enter();
        tracing::info!("resuming the interrupted run");
        let creates = planned_groups(&run);
        self.store
            .set_run_status(run.id, RunStatus::Applying)
            .await
            .map_err(CommandError::failed)?;
        let apply = Apply {
            store: &self.store,
            graph: &self.graph,
            lease,
            run: run.id,
            creates: &creates,
            stop: &self.stop,
            progress: &self.progress,
        };
        let mut report: RunReport = run
            .report
            .as_ref()
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        let started = Instant::now();
        let result = apply.run().await.map(|applied| {
            report.resumed += 1;
            report.applied = applied;
        });
        report.durations.apply_ms += Durations::since(started);
        report.durations.total_ms += Durations::since(started);
        let report = self.finish(run.id, run.kind, result, report).await?;
        tracing::info!(done = report.applied.done, "interrupted run finished");
        Ok(Some(run.id))
    }

    /// Plans (or checks a saved plan against what it was computed from), guards, journals
    /// and applies one run.
    async fn reconcile(
        &self,
        run: RunId,
        lease: &RunLease,
        source: PlanSource<'_>,
        full: bool,
        report: &mut RunReport,
    ) -> Result<(), Stop> {
        let (approvals, saved) = match source {
            PlanSource::Fresh(approvals) => (*approvals, None),
            PlanSource::Saved { saved, now } => {
                (Approvals::whole_plan(&saved.plan), Some((saved, now)))
            }
        };
        let planned = self.prepare(&approvals, true, full).await?;
        *report = RunReport::planned(&planned);
        if let Some((saved, now)) = saved {
            let current = SavedPlan::of(&planned, &self.config.path, Vec::new(), now);
            let changes = saved.changes_since(&current, now, self.config.guard.plan_ttl);
            if !changes.is_empty() {
                return Err(Stop::stopped(stale_plan(&changes)));
            }
        }
        if let Some(tripped) = planned.verdicts.tripped().next() {
            return Err(Stop::stopped(anyhow::anyhow!(
                "{}",
                tripped_message(tripped, planned.plan.totals.removes)
            )));
        }
        self.accept_snapshots(run, &planned.sources).await?;
        for group in &planned.actual.adopted {
            tracing::info!(list = %group.list, group = %group.group_id, "adopting the existing group");
            actual::record_adoption(&self.store, group, &planned.actual.actual).await?;
        }
        let ops = journal_ops(&planned);
        let summary = serde_json::json!({
            "totals": planned.plan.totals,
            "verdicts": planned.verdicts,
            "creates": planned_groups_of(&planned.plan),
            "operations": ops.len(),
        });
        self.store
            .insert_plan(&lease.current(), run, &summary, &ops)
            .await
            .map_err(Stop::store)?;
        if ops.is_empty() {
            return Ok(());
        }
        self.store
            .set_run_status(run, RunStatus::Applying)
            .await
            .map_err(Stop::lost_store)?;
        let apply = Apply {
            store: &self.store,
            graph: &self.graph,
            lease,
            run,
            creates: &planned_groups_of(&planned.plan),
            stop: &self.stop,
            progress: &self.progress,
        };
        let started = Instant::now();
        let result = apply.run().await;
        report.durations.apply_ms = Durations::since(started);
        if let Ok(applied) = &result {
            report.applied = *applied;
            if applied.done > 0 {
                actual::settle(&self.store, &self.graph).await;
            }
        }
        result.map(|_| ())
    }

    /// Records each source's snapshot as accepted: the plan went ahead on it.
    async fn accept_snapshots(&self, run: RunId, sources: &[SourceSummary]) -> Result<(), Stop> {
        for source in sources {
            let id = self
                .store
                .record_snapshot(
                    run,
                    &NewSnapshot {
                        source: source.name.clone(),
                        rows: source.rows as i64,
                        distinct: source.distinct as i64,
                        checksum: source.checksum.clone(),
                    },
                )
                .await
                .map_err(Stop::store)?;
            self.store.accept_snapshot(id).await.map_err(Stop::store)?;
        }
        Ok(())
    }

    /// Ends a run's record: the journal's per-list counts, the status and exit code.
    async fn finish(
        &self,
        run: RunId,
        kind: RunKind,
        result: Result<(), Stop>,
        mut report: RunReport,
    ) -> Result<RunReport, CommandError> {
        report.graph = self.graph.stats().into();
        if let Ok(journal) = self.store.journal(run).await {
            report.count_journal(&journal);
        }
        match result {
            Ok(()) => {
                self.record_end(run, kind, RunStatus::Succeeded, Exit::Success, &report)
                    .await;
                Ok(report)
            }
            Err(stop) => {
                report.error = Some(format!("{:#}", stop.error));
                report.failed_check = failed_check(&stop);
                self.record_end(run, kind, stop.status, stop.exit, &report)
                    .await;
                Err(stop.into())
            }
        }
    }

    /// Writes a run's end (when the state store is gone, says so in the log instead), prunes
    /// old runs, and notifies on a change of state. Every command's run ends here.
    async fn record_end(
        &self,
        run: RunId,
        kind: RunKind,
        status: RunStatus,
        exit: Exit,
        report: &RunReport,
    ) {
        let value = serde_json::to_value(report).unwrap_or_default();
        match self
            .store
            .finish_run(run, status, i32::from(exit.code()), &value)
            .await
        {
            Ok(()) if status != RunStatus::Skipped => self.prune().await,
            Ok(()) => {}
            Err(e) => {
                tracing::error!(run = %run, error = %e, "could not record the end of the run")
            }
        }
        let ended = crate::notify::Ended {
            run,
            kind,
            status,
            exit,
            report,
        };
        crate::notify::notify(&self.config, &self.store, &ended).await;
    }

    /// Prunes runs older than `[state].keep_runs_days`; a failure is only logged.
    async fn prune(&self) {
        let days = self.config.state.keep_runs_days;
        match self.store.prune_runs(days).await {
            Ok(0) => {}
            Ok(runs) => tracing::info!(runs, days, "old runs pruned"),
            Err(e) => tracing::warn!(error = %e, "could not prune old runs"),
        }
    }
}

/// Why a saved plan is not applied, and what to do instead.
fn stale_plan(changes: &[Change]) -> anyhow::Error {
    let reasons: Vec<String> = changes.iter().map(ToString::to_string).collect();
    anyhow::anyhow!(
        "the saved plan was not applied: {}. Nothing was changed. Make a new plan with \
         `rollcall plan --out FILE`, review it, and apply that one",
        reasons.join("; ")
    )
}

/// The source and check that stopped a run, when a source did.
fn failed_check(stop: &Stop) -> Option<FailedCheck> {
    stop.error
        .downcast_ref::<SourceError>()
        .map(|e| FailedCheck {
            source: e.source_name().to_owned(),
            check: e.check().to_owned(),
        })
}

/// Each list's drift, from a plan made without approvals.
fn verification(planned: &Planned) -> Verification {
    let mut drift: Vec<Drift> = planned
        .plan
        .lists
        .iter()
        .filter_map(|list| {
            let (missing, extra, group_missing) = match &list.change {
                ListChange::Create { add, .. } => (add.len(), 0, true),
                ListChange::Update { add, remove, .. } => (add.len(), remove.len(), false),
                ListChange::Vanished { remove, .. } => (0, remove.len(), false),
                ListChange::NotCreated { .. } => return None,
            };
            (group_missing || missing > 0 || extra > 0).then(|| Drift {
                list: list.key.clone(),
                missing: missing as u64,
                extra: extra as u64,
                group_missing,
            })
        })
        .collect();
    drift.extend(planned.actual.conflicts.iter().map(|c: &Conflict| Drift {
        list: c.list.clone(),
        missing: 0,
        extra: 0,
        group_missing: true,
    }));
    drift.sort_by(|a, b| a.list.cmp(&b.list));
    Verification {
        checked: planned.plan.totals.lists,
        drift,
        unresolved: planned.unresolved.values().map(|v| v.len() as u64).sum(),
    }
}

/// The journal of a plan: tags for managed groups that lack one, then per list its create
/// (followed by its tag), adds and removes.
fn journal_ops(planned: &Planned) -> Vec<NewOp> {
    let mut ops: Vec<NewOp> = planned
        .actual
        .managed
        .values()
        .filter(|g| !g.tagged)
        .map(|g| NewOp {
            list: g.list.clone(),
            kind: OpKind::TagGroup,
            member: None,
        })
        .collect();
    for op in planned.plan.operations() {
        let kind = match op.kind {
            plan::OperationKind::CreateGroup => OpKind::CreateGroup,
            plan::OperationKind::AddMember => OpKind::AddMember,
            plan::OperationKind::RemoveMember => OpKind::RemoveMember,
        };
        let create = kind == OpKind::CreateGroup;
        ops.push(NewOp {
            list: op.list.clone(),
            kind,
            member: op.member.map(|m| m.to_string()),
        });
        if create {
            ops.push(NewOp {
                list: op.list,
                kind: OpKind::TagGroup,
                member: None,
            });
        }
    }
    ops
}

/// The groups a plan creates, by list key, with what creating them takes.
fn planned_groups_of(plan: &Plan) -> HashMap<String, PlannedGroup> {
    plan.lists
        .iter()
        .filter_map(|list| match &list.change {
            ListChange::Create { group, .. } => Some((
                list.key.clone(),
                PlannedGroup {
                    family: list.family.clone(),
                    mail_nickname: group.mail_nickname.clone(),
                    display_name: group.display_name.clone(),
                    description: group.description.clone(),
                },
            )),
            _ => None,
        })
        .collect()
}

/// The groups an interrupted run planned to create, from its plan summary.
fn planned_groups(run: &Run) -> HashMap<String, PlannedGroup> {
    run.plan_summary
        .as_ref()
        .and_then(|s| s.get("creates"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default()
}

/// Refuses lists whose rendered names Microsoft 365 would reject, before anything is planned.
fn check_names(snapshot: &source::Snapshot) -> Result<(), Stop> {
    for list in snapshot.lists.values() {
        if !crate::generate::is_valid_mail_nickname(&list.mail_nickname) {
            return Err(Stop::stopped(anyhow::anyhow!(
                "list `{}` (from {}) renders the mailNickname `{}`, which Microsoft 365 refuses: \
                 1 to 64 ASCII characters without spaces or any of @()\\[]\";:<>, — fix the \
                 source rows or the family's mail_nickname template",
                list.key,
                list.sources.join(", "),
                list.mail_nickname
            )));
        }
        if list.display_name.chars().count() > MAX_DISPLAY_NAME {
            return Err(Stop::stopped(anyhow::anyhow!(
                "list `{}` (from {}) renders a displayName of {} characters; Microsoft 365 takes \
                 at most {MAX_DISPLAY_NAME}",
                list.key,
                list.sources.join(", "),
                list.display_name.chars().count()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnVanish;
    use crate::plan::{Actual, ActualList, DesiredList, ObjectId, Policy};
    use crate::store::{GroupOrigin, ManagedGroup};

    fn id(n: u128) -> ObjectId {
        ObjectId::from_u128(n)
    }

    fn want(key: &str, members: &[u128]) -> DesiredList {
        DesiredList {
            key: key.to_owned(),
            family: "modules".to_owned(),
            mail_nickname: key.to_owned(),
            display_name: key.to_owned(),
            description: None,
            members: members.iter().copied().map(id).collect(),
        }
    }

    fn have(key: &str, members: &[u128]) -> ActualList {
        ActualList {
            key: key.to_owned(),
            family: "modules".to_owned(),
            group_id: format!("g-{key}"),
            members: members.iter().copied().map(id).collect(),
        }
    }

    fn managed(key: &str, tagged: bool) -> ManagedGroup {
        ManagedGroup {
            list: key.to_owned(),
            group_id: format!("g-{key}"),
            family: "modules".to_owned(),
            origin: GroupOrigin::Created,
            mail_nickname: key.to_owned(),
            tagged,
        }
    }

    /// A plan over `desired` and `actual` with every `actual` list managed (tagged as given).
    fn planned(
        desired: Vec<DesiredList>,
        actual: Vec<ActualList>,
        on_vanish: OnVanish,
        untagged: &[&str],
    ) -> Planned {
        let policies: Policies = [(
            "modules".to_owned(),
            Policy {
                create: true,
                on_vanish,
            },
        )]
        .into_iter()
        .collect();
        let managed = actual
            .iter()
            .map(|l| {
                (
                    l.key.clone(),
                    managed(&l.key, !untagged.contains(&l.key.as_str())),
                )
            })
            .collect();
        let plan = plan::diff(
            &Desired::new(desired).unwrap(),
            &Actual::new(actual.clone()).unwrap(),
            &policies,
        );
        Planned {
            sources: Vec::new(),
            directory: Refresh::default(),
            unresolved: BTreeMap::new(),
            actual: ActualState {
                actual: Actual::new(actual).unwrap(),
                managed,
                ..ActualState::default()
            },
            plan,
            verdicts: Verdicts::default(),
            warnings: Vec::new(),
            durations: Durations::default(),
        }
    }

    fn kinds(ops: &[NewOp]) -> Vec<(String, OpKind)> {
        ops.iter().map(|op| (op.list.clone(), op.kind)).collect()
    }

    #[test]
    fn journal_tags_untagged_groups_first_and_every_create_right_after_it() {
        let planned = planned(
            vec![want("a", &[1]), want("b", &[2, 3])],
            vec![have("b", &[3, 4])],
            OnVanish::Keep,
            &["b"],
        );
        let ops = journal_ops(&planned);
        assert_eq!(
            kinds(&ops),
            vec![
                ("b".to_owned(), OpKind::TagGroup),
                ("a".to_owned(), OpKind::CreateGroup),
                ("a".to_owned(), OpKind::TagGroup),
                ("a".to_owned(), OpKind::AddMember),
                ("b".to_owned(), OpKind::AddMember),
                ("b".to_owned(), OpKind::RemoveMember),
            ]
        );
        assert_eq!(ops[3].member.as_deref(), Some(id(1).to_string().as_str()));
        assert_eq!(ops[5].member.as_deref(), Some(id(4).to_string().as_str()));
    }

    #[test]
    fn a_converged_tenant_journals_nothing() {
        let planned = planned(
            vec![want("a", &[1, 2])],
            vec![have("a", &[1, 2])],
            OnVanish::Keep,
            &[],
        );
        assert!(journal_ops(&planned).is_empty());
        assert!(verification(&planned).drift.is_empty());
    }

    #[test]
    fn verify_counts_missing_and_extra_members_and_missing_groups() {
        let mut planned = planned(
            vec![want("a", &[1, 2, 3]), want("new", &[5, 6])],
            vec![have("a", &[1, 9])],
            OnVanish::Keep,
            &[],
        );
        planned.actual.conflicts.push(Conflict {
            list: "taken".to_owned(),
            mail_nickname: "taken".to_owned(),
            group_id: "g-other".to_owned(),
            reason: "not managed".to_owned(),
        });
        let found = verification(&planned);
        assert_eq!(found.checked, 2);
        assert_eq!(
            found.drift,
            vec![
                Drift {
                    list: "a".to_owned(),
                    missing: 2,
                    extra: 1,
                    group_missing: false
                },
                Drift {
                    list: "new".to_owned(),
                    missing: 2,
                    extra: 0,
                    group_missing: true
                },
                Drift {
                    list: "taken".to_owned(),
                    missing: 0,
                    extra: 0,
                    group_missing: true
                },
            ]
        );
    }

    #[test]
    fn a_vanished_list_is_drift_only_when_its_family_empties_it() {
        let keep = planned(Vec::new(), vec![have("old", &[1])], OnVanish::Keep, &[]);
        assert!(verification(&keep).drift.is_empty());
        let empty = planned(Vec::new(), vec![have("old", &[1])], OnVanish::Empty, &[]);
        assert_eq!(verification(&empty).drift[0].extra, 1);
    }

    fn snapshot_with(nickname: &str, display_name: &str) -> source::Snapshot {
        let list = source::DesiredList {
            key: "mod-x".to_owned(),
            family: "modules".to_owned(),
            sources: vec!["enrolments".to_owned()],
            members: BTreeSet::new(),
            display_name: display_name.to_owned(),
            mail_nickname: nickname.to_owned(),
            description: None,
        };
        source::Snapshot {
            sources: Vec::new(),
            lists: [("mod-x".to_owned(), list)].into_iter().collect(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn names_microsoft_365_would_refuse_stop_the_run_naming_the_list() {
        assert!(check_names(&snapshot_with("mod-x", "Module X")).is_ok());
        let stop = check_names(&snapshot_with("mod x", "Module X")).unwrap_err();
        assert_eq!(stop.exit, Exit::Stopped);
        let message = format!("{:#}", stop.error);
        assert!(
            message.contains("mod-x") && message.contains("enrolments"),
            "{message}"
        );
        let long = "x".repeat(MAX_DISPLAY_NAME + 1);
        assert!(check_names(&snapshot_with("mod-x", &long)).is_err());
    }
}
