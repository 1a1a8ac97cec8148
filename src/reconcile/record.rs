//! Ending a run: the report folded from the plan and the journal, the exit code chosen,
//! the run's record written, old runs pruned, and the webhook told.

use super::engine::Engine;
use super::report::{FailedCheck, RunReport};
use super::stop::Stop;
use crate::exit::{CommandError, Exit};
use crate::source::SourceError;
use crate::store::{RunId, RunKind, RunStatus};

/// The exit code of a run that ended without a [`Stop`]: 7 when it held lists (every
/// other list was applied), 0 otherwise. `plan` uses the same rule.
pub fn exit_of(report: &RunReport) -> Exit {
    if report.held.is_empty() {
        Exit::Success
    } else {
        Exit::Held
    }
}

impl Engine {
    /// Ends a run's record: the journal's per-list counts, the status and exit code.
    pub(super) async fn finish(
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
                let exit = exit_of(&report);
                self.record_end(run, kind, RunStatus::Succeeded, exit, &report)
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
    pub(super) async fn record_end(
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

/// The source and check that stopped a run, when a source did.
pub(super) fn failed_check(stop: &Stop) -> Option<FailedCheck> {
    stop.error
        .downcast_ref::<SourceError>()
        .map(|e| FailedCheck {
            source: e.source_name().to_owned(),
            check: e.check().to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::HeldList;

    #[test]
    fn a_run_that_held_a_list_exits_7_and_one_that_held_none_exits_0() {
        let mut report = RunReport::default();
        assert_eq!(exit_of(&report), Exit::Success);
        report.held.push(HeldList::default());
        assert_eq!(exit_of(&report).code(), 7);
    }
}
