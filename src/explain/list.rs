//! `explain LIST`: the list's family, group, counts, holds and its last runs' changes.

use super::gather::{Facts, failed, same_list};
use super::{HoldAnswer, ListAnswer, RunChanges};
use crate::exit::CommandError;
use crate::reconcile::{HeldList, RunReport};
use crate::store::{OpKind, OpStatus, Run, RunKind};

/// How many of a list's latest changing runs `explain LIST` shows.
const LIST_RUNS: u32 = 5;

impl Facts<'_> {
    /// What the list is, how full, whether held, and its last runs' changes.
    pub(super) async fn list_answer(&self, list: &str) -> Result<ListAnswer, CommandError> {
        let desired = self.snapshot.lists.get(list);
        let group = self.groups.iter().find(|g| same_list(&g.list, list));
        let actual = match group {
            Some(group) => {
                Some(self.store.members(&group.list).await.map_err(failed)?.len() as u64)
            }
            None => None,
        };
        let mut held: Vec<HoldAnswer> = self
            .snapshot
            .held
            .iter()
            .filter(|(key, _)| same_list(key, list))
            .map(|(key, hold)| hold_answer("now".to_owned(), HeldList::new(key, &hold.reason)))
            .collect();
        let recent = self.store.recent_runs(200).await.map_err(failed)?;
        let last = recent.iter().find(|r| {
            matches!(r.kind, RunKind::Run | RunKind::Rebuild | RunKind::Apply)
                && r.exit_code.is_some()
        });
        if let Some(run) = last {
            held.extend(
                report(run)
                    .held
                    .into_iter()
                    .filter(|h| same_list(&h.list, list))
                    .map(|h| hold_answer(format!("run {}", run.id), h)),
            );
        }
        Ok(ListAnswer {
            list: list.to_owned(),
            family: desired
                .map(|d| d.family.clone())
                .or_else(|| group.map(|g| g.family.clone())),
            group_id: group.map(|g| g.group_id.clone()),
            title: desired.map(|d| d.display_name.clone()),
            // From the reads rather than the desired list, so that a held list names them too.
            sources: self
                .reads
                .iter()
                .filter(|r| r.lists.keys().any(|k| same_list(k, list)))
                .map(|r| r.name.clone())
                .collect(),
            desired: desired.map(|d| d.members.len() as u64),
            actual,
            held,
            runs: self.list_runs(list).await?,
        })
    }

    /// The list's changes in its latest runs, newest first.
    async fn list_runs(&self, list: &str) -> Result<Vec<RunChanges>, CommandError> {
        let changes = self
            .store
            .list_changes(list, LIST_RUNS)
            .await
            .map_err(failed)?;
        let mut runs: Vec<RunChanges> = Vec::new();
        for change in changes {
            if runs.last().is_none_or(|r| r.run != change.run.0) {
                let run = self.store.run(change.run).await.map_err(failed)?;
                runs.push(RunChanges {
                    run: change.run.0,
                    kind: run.as_ref().map(|r| r.kind.as_str().to_owned()),
                    started_at: run.as_ref().map(|r| r.started_at),
                    added: 0,
                    removed: 0,
                    failed: 0,
                    pending: 0,
                    superseded: 0,
                });
            }
            let Some(entry) = runs.last_mut() else {
                continue;
            };
            match (change.status, change.kind) {
                (OpStatus::Done, OpKind::AddMember) => entry.added += change.count,
                (OpStatus::Done, OpKind::RemoveMember) => entry.removed += change.count,
                (OpStatus::Done, _) => {}
                (OpStatus::Failed, _) => entry.failed += change.count,
                (OpStatus::Pending, _) => entry.pending += change.count,
                (OpStatus::Superseded, _) => entry.superseded += change.count,
            }
        }
        Ok(runs)
    }
}

fn hold_answer(seen: String, held: HeldList) -> HoldAnswer {
    HoldAnswer {
        seen,
        reason: held.reason,
        message: held.message,
        release: held.release,
    }
}

fn report(run: &Run) -> RunReport {
    run.report
        .as_ref()
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default()
}
