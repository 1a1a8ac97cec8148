//! One scheduled tick: an engine opened for it, one `run` or `rebuild` under the lease, and
//! what the tick did read back from the state store for the metrics.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::metrics::{TickOutcome, TickRecord};
use crate::config::Config;
use crate::exit::Exit;
use crate::plan::Approvals;
use crate::reconcile::{Engine, Progress, RunReport, StopSignal, holder_name};
use crate::store::{OpKind, OpStatus, Run, RunId, RunKind, RunStatus, Store, StoreError};

/// How many of the newest runs are searched for the ones a tick recorded: a tick records one
/// (or one skipped run), and another instance a few more at most.
const RECENT_RUNS: u32 = 50;

/// Operations of one run by kind and status.
type OpCounts = HashMap<(OpKind, OpStatus), u64>;

/// The ticks of one `serve` process.
#[derive(Debug, Default)]
pub struct Ticker {
    /// Journal counts of runs this process saw interrupted, so that a resume counts only the
    /// operations it settles itself.
    seen: HashMap<RunId, OpCounts>,
}

/// How a tick ended.
#[derive(Debug)]
pub struct Ticked {
    /// The outcome label.
    pub outcome: TickOutcome,
    /// How long it took.
    pub took: Duration,
    /// What it did, for the metrics.
    pub record: TickRecord,
}

impl Ticker {
    /// Runs one `kind` run due `at` with `config`; `stop` ends it at a batch boundary.
    pub async fn tick(
        &mut self,
        config: Config,
        kind: RunKind,
        at: DateTime<Utc>,
        stop: StopSignal,
    ) -> Ticked {
        let started = Instant::now();
        let schedule = match kind {
            RunKind::Rebuild => config.schedule.rebuild.clone().unwrap_or_default(),
            _ => config.schedule.run.clone(),
        };
        let mut engine = match Engine::open(config, Progress::silent()).await {
            Ok(engine) => engine,
            Err(e) => {
                tracing::error!(kind = %kind, error = %e, "the scheduled run could not start");
                return Ticked {
                    outcome: TickOutcome::Failed,
                    took: started.elapsed(),
                    record: TickRecord::default(),
                };
            }
        };
        engine.stop = stop;
        let instance = holder_name();
        let due = at.to_rfc3339();
        match taken_by(&engine.store, kind, &due).await {
            Ok(Some(holder)) => {
                tracing::info!(kind = %kind, due = %due, by = %holder, "scheduled run skipped: another instance ran this tick");
                engine.store.close().await;
                return Ticked {
                    outcome: TickOutcome::Skipped,
                    took: started.elapsed(),
                    record: TickRecord::default(),
                };
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not check whether another instance ran this tick")
            }
        }
        let before = match self.before(&engine.store).await {
            Ok(before) => Some(before),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the runs before the tick; its operations go uncounted");
                None
            }
        };
        let approvals = serde_json::json!({
            "operator": "serve",
            "reason": format!("scheduled {kind} (`{schedule}`, due {at})"),
            "instance": instance,
            "tick": due,
        });
        let result = engine.run(kind, &Approvals::default(), &approvals).await;
        let took = started.elapsed();
        let exit = match &result {
            Ok((run, report)) => {
                tracing::info!(
                    kind = %kind, run = %run, done = report.applied.done,
                    failed = report.applied.failed, took_ms = took.as_millis() as u64,
                    "scheduled run succeeded"
                );
                Exit::Success
            }
            Err(e) if e.exit == Exit::Skipped => {
                tracing::info!(kind = %kind, reason = %e, "scheduled run skipped");
                e.exit
            }
            Err(e) => {
                tracing::error!(kind = %kind, exit = e.exit.code(), error = %e, "scheduled run did not succeed");
                e.exit
            }
        };
        let mut record = TickRecord {
            graph: Some(engine.graph.stats()),
            ..TickRecord::default()
        };
        if let Some((last, resumable)) = before
            && let Err(e) = self
                .after(&engine.store, &instance, last, resumable, &mut record)
                .await
        {
            tracing::warn!(error = %e, "could not read what the tick did; its operations go uncounted");
        }
        engine.store.close().await;
        Ticked {
            outcome: TickOutcome::of(exit),
            took,
            record,
        }
    }

    /// The newest run id before the tick, and the interrupted run the tick will resume, its
    /// journal counted now unless this process already knows it.
    async fn before(&mut self, store: &Store) -> Result<(i64, Option<RunId>), StoreError> {
        let last = store
            .recent_runs(1)
            .await?
            .first()
            .map_or(0, |run| run.id.0);
        let resumable = store.last_interrupted_run().await?.map(|run| run.id);
        if let Some(run) = resumable
            && !self.seen.contains_key(&run)
        {
            let counts = store.journal_tally(run).await?;
            self.seen.insert(run, counts);
        }
        Ok((last, resumable))
    }

    /// Fills `record` with the operations the tick settled and the guards its run tripped.
    async fn after(
        &mut self,
        store: &Store,
        instance: &str,
        last: i64,
        resumable: Option<RunId>,
        record: &mut TickRecord,
    ) -> Result<(), StoreError> {
        let mine: Vec<Run> = store
            .recent_runs(RECENT_RUNS)
            .await?
            .into_iter()
            .filter(|run| run.id.0 > last && ran_here(run, instance))
            .collect();
        let mut settled = OpCounts::new();
        let mut touched: Vec<(RunId, RunStatus)> = Vec::new();
        if let Some(run) = resumable
            && let Some(now) = store.run(run).await?
        {
            touched.push((run, now.status));
        }
        for run in &mine {
            touched.push((run.id, run.status));
            let report: Option<RunReport> = run
                .report
                .clone()
                .and_then(|r| serde_json::from_value(r).ok());
            if let Some(report) = report {
                record
                    .tripped
                    .extend(report.tripped.iter().map(|verdict| verdict.guard));
            }
        }
        for (run, status) in touched {
            let now = store.journal_tally(run).await?;
            let earlier = self.seen.remove(&run).unwrap_or_default();
            for (key, n) in &now {
                let delta = n.saturating_sub(earlier.get(key).copied().unwrap_or(0));
                *settled.entry(*key).or_default() += delta;
            }
            if status == RunStatus::Interrupted {
                self.seen.insert(run, now);
            }
        }
        let mut operations: Vec<(OpKind, OpStatus, u64)> = settled
            .into_iter()
            .filter(|((_, status), n)| {
                *n > 0 && matches!(status, OpStatus::Done | OpStatus::Failed)
            })
            .map(|((kind, status), n)| (kind, status, n))
            .collect();
        operations.sort_by_key(|&(kind, status, _)| (kind.as_str(), status.as_str()));
        record.operations = operations;
        Ok(())
    }
}

/// The instance that already ran (or is running) the `kind` tick due at `due`, if any.
/// Instances sharing a state database wake at slightly different moments (jitter, clocks); a
/// run short enough to end before a later instance wakes would otherwise leave the lease
/// free for a second run of the same tick.
async fn taken_by(store: &Store, kind: RunKind, due: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .recent_runs(RECENT_RUNS)
        .await?
        .into_iter()
        .find(|run| {
            run.kind == kind
                && run.status != RunStatus::Skipped
                && run
                    .approvals
                    .as_ref()
                    .and_then(|a| a.get("tick"))
                    .and_then(serde_json::Value::as_str)
                    == Some(due)
        })
        .map(|run| run.holder.unwrap_or_default()))
}

/// Whether this process's scheduler recorded `run`.
fn ran_here(run: &Run, instance: &str) -> bool {
    run.approvals
        .as_ref()
        .and_then(|a| a.get("instance"))
        .and_then(serde_json::Value::as_str)
        == Some(instance)
}
