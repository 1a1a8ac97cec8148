//! Committing a plan before its first write: the sources' snapshots accepted, adopted groups
//! recorded, and the plan's operations journalled with its summary, in that order. Held
//! lists have no operations: the journal never touches them.

use std::collections::HashMap;

use super::actual;
use super::engine::Engine;
use super::lease::RunLease;
use super::planned::Planned;
use super::planned_group::PlannedGroup;
use super::saved::Change;
use super::stop::Stop;
use crate::config::FamilyConfig;
use crate::plan::{self, ListChange, Plan, Title};
use crate::source::SourceSummary;
use crate::store::{NewOp, NewSnapshot, OpKind, Run, RunId};

impl Engine {
    /// Accepts the snapshots, records adoptions and journals the plan's operations with its
    /// summary. Returns how many operations were journalled.
    pub(super) async fn journal_plan(
        &self,
        run: RunId,
        lease: &RunLease,
        planned: &Planned,
    ) -> Result<usize, Stop> {
        self.accept_snapshots(run, &planned.sources).await?;
        for group in &planned.actual.adopted {
            tracing::info!(list = %group.list, group = %group.group_id, "adopting the existing group");
            actual::record_adoption(&self.store, group, &planned.actual.actual).await?;
        }
        self.store
            .record_absences(&lease.current(), &planned.absences)
            .await
            .map_err(Stop::store)?;
        let ops = journal_ops(planned);
        let summary = serde_json::json!({
            "totals": planned.plan.totals,
            "verdicts": planned.verdicts,
            "creates": planned_groups_of(&planned.plan, &self.config.families),
            "retitles": planned.retitles(),
            "held": planned.plan.held().map(|(list, hold)| serde_json::json!({
                "list": list.key, "reason": hold.key(), "message": hold.to_string(),
            })).collect::<Vec<_>>(),
            "operations": ops.len(),
        });
        self.store
            .insert_plan(&lease.current(), run, &summary, &ops)
            .await
            .map_err(Stop::store)?;
        Ok(ops.len())
    }

    /// Records each source's snapshot as accepted: the plan went ahead on it.
    pub(super) async fn accept_snapshots(
        &self,
        run: RunId,
        sources: &[SourceSummary],
    ) -> Result<(), Stop> {
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
}

/// Why a saved plan is not applied, and what to do instead.
pub(super) fn stale_plan(changes: &[Change]) -> anyhow::Error {
    let reasons: Vec<String> = changes.iter().map(ToString::to_string).collect();
    anyhow::anyhow!(
        "the saved plan was not applied: {}. Nothing was changed. Make a new plan with \
         `rollcall plan --out FILE`, review it, and apply that one",
        reasons.join("; ")
    )
}

/// The journal of a plan: tags for managed groups that lack one, then per list its create
/// (followed by its tag) or its new title, adds and removes. Held lists have none.
pub(super) fn journal_ops(planned: &Planned) -> Vec<NewOp> {
    let held: std::collections::HashSet<&str> =
        planned.plan.held().map(|(l, _)| l.key.as_str()).collect();
    let mut ops: Vec<NewOp> = planned
        .actual
        .managed
        .values()
        .filter(|g| !g.tagged && !held.contains(g.list.as_str()))
        .map(|g| NewOp {
            list: g.list.clone(),
            kind: OpKind::TagGroup,
            member: None,
        })
        .collect();
    for op in planned.plan.operations() {
        let kind = match op.kind {
            plan::OperationKind::CreateGroup => OpKind::CreateGroup,
            plan::OperationKind::UpdateGroup => OpKind::UpdateGroup,
            plan::OperationKind::AddMember => OpKind::AddMember,
            plan::OperationKind::RemoveMember => OpKind::RemoveMember,
            plan::OperationKind::AddOwner => OpKind::AddOwner,
            plan::OperationKind::RemoveOwner => OpKind::RemoveOwner,
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

/// The groups a plan creates, by list key, with what creating them takes: the family's
/// visibility (Private unless it says otherwise) and behaviours.
pub(super) fn planned_groups_of(
    plan: &Plan,
    families: &[FamilyConfig],
) -> HashMap<String, PlannedGroup> {
    plan.lists
        .iter()
        .filter_map(|list| match &list.change {
            ListChange::Create { group, .. } => {
                let family = families.iter().find(|f| f.name == list.family);
                let planned = PlannedGroup {
                    family: list.family.clone(),
                    mail_nickname: group.mail_nickname.clone(),
                    display_name: group.display_name.clone(),
                    description: group.description.clone(),
                    visibility: family
                        .and_then(|f| f.visibility)
                        .unwrap_or_default()
                        .as_str()
                        .to_owned(),
                    behaviors: family.map(|f| f.behaviors.clone()).unwrap_or_default(),
                };
                Some((list.key.clone(), planned))
            }
            _ => None,
        })
        .collect()
}

/// What an interrupted run planned, from its plan summary: the groups to create and the
/// titles to set, by list key.
pub(super) fn planned_of(run: &Run) -> (HashMap<String, PlannedGroup>, HashMap<String, Title>) {
    let part = |name: &str| {
        run.plan_summary
            .as_ref()
            .and_then(|s| s.get(name))
            .cloned()
            .unwrap_or_default()
    };
    (
        serde_json::from_value(part("creates")).unwrap_or_default(),
        serde_json::from_value(part("retitles")).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnVanish;
    use crate::plan::{HoldReason, Title};
    use crate::reconcile::planned::tests::{have, planned, want};
    use crate::reconcile::verify::verification;

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
        assert_eq!(
            ops[3].member.as_deref(),
            Some("00000000-0000-0000-0000-000000000001")
        );
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
    fn a_held_list_journals_nothing_not_even_its_tag() {
        let mut planned = planned(
            vec![want("a", &[1]), want("b", &[2])],
            vec![have("b", &[3])],
            OnVanish::Empty,
            &["b"],
        );
        let reason = HoldReason::Refused {
            status: 403,
            code: "Authorization_RequestDenied".to_owned(),
            message: "no".to_owned(),
        };
        planned.plan.hold("b", "modules", reason);
        assert_eq!(
            kinds(&journal_ops(&planned)),
            vec![
                ("a".to_owned(), OpKind::CreateGroup),
                ("a".to_owned(), OpKind::TagGroup),
                ("a".to_owned(), OpKind::AddMember),
            ]
        );
    }

    #[test]
    fn a_new_title_is_one_update_before_the_lists_member_changes() {
        let mut wanted = want("a", &[1, 2]);
        wanted.display_name = "New".to_owned();
        let mut current = have("a", &[1]);
        current.title = Some(Title {
            display_name: "Old".to_owned(),
            description: None,
            visibility: None,
        });
        let planned = planned(vec![wanted], vec![current], OnVanish::Keep, &[]);
        assert_eq!(
            kinds(&journal_ops(&planned)),
            vec![
                ("a".to_owned(), OpKind::UpdateGroup),
                ("a".to_owned(), OpKind::AddMember),
            ]
        );
        assert_eq!(planned.retitles()["a"].display_name, "New");
    }
}
