//! Each command as a short list of stage calls over one [`Engine`]: run and apply (prepare →
//! journal → apply → record), resume, verify, and the state-only rebuild, each under the
//! run lease.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::actual::{self, ReadMode};
use super::apply::Apply;
use super::engine::Engine;
use super::identity;
use super::journal::{planned_groups_of, planned_of, stale_plan};
use super::lease::{LeaseError, RunLease};
use super::planned::Durations;
use super::record::failed_check;
use super::report::{Approval, RunReport};
use super::saved::SavedPlan;
use super::stop::Stop;
use super::verify::{Verification, verification};
use crate::exit::{CommandError, Exit};
use crate::plan::{Approvals, tripped_message};
use crate::store::{RunId, RunKind, RunStatus};

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
        /// Lists the operator releases as they apply it (`apply FILE --accept-list`).
        accept: &'a Approvals,
        /// When the run started, the moment the plan's age is taken at.
        now: DateTime<Utc>,
    },
}

impl Engine {
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
        accept: &Approvals,
        approvals_record: &serde_json::Value,
    ) -> Result<(RunId, RunReport), CommandError> {
        self.locked_run(
            RunKind::Apply,
            PlanSource::Saved {
                saved,
                accept,
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
        self.check_permissions().await?;
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
        self.check_permissions().await?;
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
        let (creates, retitles) = planned_of(&run);
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
            retitles: &retitles,
            stop: &self.stop,
            progress: &self.progress,
            paused_at_commit: Mutex::default(),
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
            PlanSource::Fresh(approvals) => (approvals.clone(), None),
            PlanSource::Saved { saved, accept, now } => {
                let mut approvals = Approvals::whole_plan(&saved.plan);
                approvals.accept_lists.clone_from(&accept.accept_lists);
                (approvals, Some((saved, now)))
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
        if self.journal_plan(run, lease, &planned).await? == 0 {
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
            creates: &planned_groups_of(&planned.plan, &self.config.families),
            retitles: &planned.retitles(),
            stop: &self.stop,
            progress: &self.progress,
            paused_at_commit: Mutex::default(),
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
}
