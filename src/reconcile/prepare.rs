//! Everything a run does before its first write, ending in [`Planned`]: the sources and
//! their completeness, the directory, the actual side, the diff and the guards. A problem
//! that belongs to one list becomes that list's hold here; only a problem about the whole
//! tenant is a [`Stop`].

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::actual::{self, ActualState, ReadMode};
use super::engine::Engine;
use super::identity;
use super::planned::{Durations, Planned};
use super::stop::Stop;
use crate::clock;
use crate::config::Visibility;
use crate::graph::permissions;
use crate::plan::{self, Approvals, Desired, Hold, HoldReason, ListName, Policies};
use crate::source::{self, completeness};

impl Engine {
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
        let mut snapshot = self.read_complete_sources().await?;
        let recorded: Vec<String> = self
            .store
            .groups()
            .await
            .map_err(Stop::store)?
            .into_iter()
            .map(|g| g.list)
            .collect();
        let renamed = keep_recorded_spelling(&mut snapshot, &recorded);
        snapshot.warnings.extend(renamed);
        let mut holds = std::mem::take(&mut snapshot.held);
        holds.extend(name_holds(&snapshot));
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
        let looked_up: Vec<plan::DesiredList> = wanted
            .iter()
            .filter(|l| !holds.contains_key(&l.key))
            .cloned()
            .collect();
        let mode = if full {
            ReadMode::Full
        } else {
            ReadMode::Delta
        };
        let actual = actual::read(
            &self.config,
            &self.store,
            &self.graph,
            &looked_up,
            repair,
            mode,
        )
        .await?;
        durations.actual_ms = Durations::since(phase);

        phase = Instant::now();
        for conflict in &actual.conflicts {
            let family = snapshot
                .lists
                .get(&conflict.list)
                .map(|l| l.family.clone())
                .unwrap_or_default();
            holds.entry(conflict.list.clone()).or_insert(Hold {
                family,
                reason: HoldReason::NicknameTaken {
                    mail_nickname: conflict.mail_nickname.clone(),
                    group_id: conflict.group_id.clone(),
                    why: conflict.reason.clone(),
                },
            });
        }
        for (list, hold) in &actual.refused {
            holds.entry(list.clone()).or_insert_with(|| hold.clone());
        }
        // A token may lack Member.Read.Hidden when no family asks for HiddenMembership, yet
        // a group adopted or changed by hand can be hidden: its member read came back empty
        // and says nothing, so the list is held rather than "filled" from nothing.
        let roles = self.graph.granted_roles().await.ok().flatten();
        for (list, hold) in hidden_holds(&actual, roles.as_deref()) {
            holds.entry(list).or_insert(hold);
        }
        let source::ResolvedLists { lists, unresolved } = snapshot.resolve(
            wanted,
            |key| holds.contains_key(key),
            |member| resolved.get(member),
        );
        let desired = Desired::new(lists).map_err(|e| Stop::failed(anyhow::anyhow!("{e}")))?;
        let policies = Policies::from_families(&self.config.families);
        let mut plan = plan::diff_holding(&desired, &actual.actual, &policies, &holds);
        let recorded = self.store.first_absent().await.map_err(Stop::store)?;
        let absent = plan::defer_removals(&mut plan, &recorded, &policies, &holds, clock::now());
        let absences = plan::AbsenceChanges::between(&recorded, &absent);
        let max_members: BTreeMap<String, u64> = self
            .config
            .families
            .iter()
            .filter_map(|f| Some((f.name.clone(), f.max_members?)))
            .collect();
        let verdicts = plan::guard_holding(&mut plan, &self.config.guard, &max_members, approvals);
        for (list, hold) in plan.held() {
            tracing::warn!(list = %list.key, reason = hold.key(), "list held: {hold}");
        }
        for drift in &plan.visibility_drift {
            tracing::warn!(list = %drift.list, "visibility differs and needs a person: {drift}");
        }
        let visibility_warnings = plan.visibility_drift.iter().map(ToString::to_string);
        snapshot.warnings.extend(visibility_warnings);
        durations.plan_ms = Durations::since(phase);
        Ok(Planned {
            sources: snapshot.sources,
            directory,
            unresolved,
            actual,
            plan,
            verdicts,
            absences,
            exceptions_applied: snapshot.exceptions_applied,
            warnings: snapshot
                .warnings
                .into_iter()
                .chain(directory.warning())
                .collect(),
            durations,
        })
    }

    /// Reads every source and checks each for completeness against its last accepted
    /// snapshot, before the directory or Microsoft 365 is touched. Shrinks the operator
    /// accepted go ahead with a warning in the snapshot.
    pub(super) async fn read_complete_sources(&self) -> Result<source::Snapshot, Stop> {
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
}

/// The lists whose group is HiddenMembership while the token's `roles` (when it lists them)
/// lack Member.Read.Hidden: Graph answers their member reads with nobody.
fn hidden_holds(actual: &ActualState, roles: Option<&[String]>) -> BTreeMap<String, Hold> {
    let Some(roles) = roles else {
        return BTreeMap::new();
    };
    if permissions::missing(&[permissions::MEMBER_READ_HIDDEN], roles).is_empty() {
        return BTreeMap::new();
    }
    actual
        .titles
        .iter()
        .filter(|(_, title)| title.visibility == Some(Visibility::HiddenMembership))
        .filter_map(|(list, _)| {
            let family = actual.managed.get(list)?.family.clone();
            let reason = HoldReason::Refused {
                status: 403,
                code: "Authorization_RequestDenied".to_owned(),
                message: "the group is HiddenMembership and the app lacks Member.Read.Hidden, \
                          so its members read as none, which is no evidence that it is empty"
                    .to_owned(),
            };
            Some((list.clone(), Hold { family, reason }))
        })
        .collect()
}

/// The lists whose rendered names Microsoft 365 would refuse or that share a nickname, each
/// with its family.
fn name_holds(snapshot: &source::Snapshot) -> BTreeMap<String, Hold> {
    let names = snapshot.lists.values().map(|l| ListName {
        key: &l.key,
        mail_nickname: &l.mail_nickname,
        display_name: &l.display_name,
        sources: &l.sources,
    });
    plan::check_names(names)
        .into_iter()
        .map(|(key, reason)| {
            let family = snapshot.lists[&key].family.clone();
            (key, Hold { family, reason })
        })
        .collect()
}

/// Renames each desired list whose key the state store records under another spelling to
/// that spelling, so a list whose source changed the case of its key keeps its group.
/// Returns a warning per list renamed.
fn keep_recorded_spelling(snapshot: &mut source::Snapshot, recorded: &[String]) -> Vec<String> {
    let by_folded: HashMap<String, &String> =
        recorded.iter().map(|k| (k.to_lowercase(), k)).collect();
    let renames: Vec<(String, String)> = snapshot
        .lists
        .keys()
        .filter_map(|key| {
            let stored = by_folded.get(&key.to_lowercase())?;
            (*stored != key).then(|| (key.clone(), (*stored).clone()))
        })
        .collect();
    let mut warnings = Vec::with_capacity(renames.len());
    for (from, to) in renames {
        if let Some(mut list) = snapshot.lists.remove(&from) {
            warnings.push(format!(
                "the sources name list `{to}` as `{from}` now; list keys ignore case, so it \
                 keeps its group under `{to}`"
            ));
            list.key.clone_from(&to);
            snapshot.lists.insert(to, list);
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn snapshot(lists: &[(&str, &str)]) -> source::Snapshot {
        source::Snapshot {
            sources: Vec::new(),
            lists: lists
                .iter()
                .map(|(key, nickname)| {
                    let list = source::DesiredList {
                        key: (*key).to_owned(),
                        family: "modules".to_owned(),
                        sources: vec!["enrolments".to_owned()],
                        members: BTreeSet::new(),
                        owners: None,
                        display_name: (*key).to_owned(),
                        mail_nickname: (*nickname).to_owned(),
                        description: None,
                        titled: true,
                    };
                    ((*key).to_owned(), list)
                })
                .collect(),
            held: BTreeMap::new(),
            warnings: Vec::new(),
            exceptions_applied: 0,
        }
    }

    #[test]
    fn a_bad_name_holds_its_list_only_naming_the_source() {
        let holds = name_holds(&snapshot(&[("mod-x", "mod-x"), ("mod y", "mod y")]));
        assert_eq!(holds.keys().collect::<Vec<_>>(), ["mod y"]);
        assert_eq!(holds["mod y"].family, "modules");
        let text = holds["mod y"].reason.to_string();
        assert!(text.contains("enrolments"), "{text}");
    }

    #[test]
    fn a_recorded_spelling_wins_over_a_new_one() {
        let mut snapshot = snapshot(&[("mod-x", "mod-x"), ("mod-y", "mod-y")]);
        let warnings = keep_recorded_spelling(&mut snapshot, &["MOD-X".to_owned()]);
        assert_eq!(
            snapshot.lists.keys().collect::<Vec<_>>(),
            ["MOD-X", "mod-y"]
        );
        assert_eq!(snapshot.lists["MOD-X"].key, "MOD-X");
        assert_eq!(warnings.len(), 1);
    }
}
