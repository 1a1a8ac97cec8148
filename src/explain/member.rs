//! The per-member answers: the rows, the mirror or a live read, the history with reasons,
//! and every list of a person.

use std::collections::{BTreeSet, HashMap};

use super::gather::{Facts, failed, same_list, source_kinds};
use super::matching::{self, Asked};
use super::reason::reason;
use super::{HistoryEntry, IdentityAnswer, MemberAnswer, OverrideHit, PersonAnswer, SourceRow};
use chrono::{DateTime, Utc};

use crate::exit::CommandError;
use crate::plan::ObjectId;
use crate::store::{OpKind, OpStatus, Run, RunId};

impl Facts<'_> {
    /// Each source row naming `asked` on `list`; a source that names them without a traced
    /// row gives one row without a place.
    fn rows(&self, list: &str, asked: &Asked) -> Vec<SourceRow> {
        let mut rows = Vec::new();
        for read in &self.reads {
            let witnessed: Vec<SourceRow> = read
                .sightings
                .iter()
                .filter(|s| same_list(&s.list, list))
                .map(|s| SourceRow {
                    source: read.name.clone(),
                    kind: read.kind.as_str().to_owned(),
                    list: s.list.clone(),
                    place: Some(s.place.clone()),
                    values: s.values.clone(),
                })
                .collect();
            if witnessed.is_empty() {
                let member = asked
                    .members(&BTreeSet::from([read.member_key]))
                    .into_iter()
                    .next();
                let named = read.lists.iter().find(|(key, rows)| {
                    same_list(key, list)
                        && member
                            .as_ref()
                            .is_some_and(|m| rows.members.contains(&m.value))
                });
                if let Some((key, _)) = named {
                    rows.push(SourceRow {
                        source: read.name.clone(),
                        kind: read.kind.as_str().to_owned(),
                        list: key.clone(),
                        place: None,
                        values: Vec::new(),
                    });
                }
            }
            rows.extend(witnessed);
        }
        rows
    }

    /// Whether Microsoft 365 has `object_id` in the group of `list`: the mirror, or a live
    /// read.
    async fn in_microsoft_365(
        &self,
        list: &str,
        object_id: Option<&str>,
    ) -> Result<Option<bool>, CommandError> {
        let (Some(group), Some(id)) = (
            self.groups.iter().find(|g| same_list(&g.list, list)),
            object_id,
        ) else {
            return Ok(None);
        };
        if let (true, Some(graph)) = (self.live, &self.graph) {
            let mut read = graph
                .members_of(std::slice::from_ref(&group.group_id))
                .await;
            let members = read
                .pop()
                .unwrap_or_else(|| Ok(Vec::new()))
                .map_err(failed)?;
            return Ok(Some(members.iter().any(|m| m.to_string() == id)));
        }
        let members = self.store.members(&group.list).await.map_err(failed)?;
        Ok(Some(members.iter().any(|m| m == id)))
    }

    pub(super) async fn member_answer(
        &self,
        list: &str,
        member: &str,
    ) -> Result<MemberAnswer, CommandError> {
        let asked = self.asked()?;
        let identity = &self.identity;
        let wanted = asked.members(&source_kinds(self.config));
        let desired = self
            .snapshot
            .lists
            .get(list)
            .is_some_and(|l| wanted.iter().any(|m| l.members.contains(m)));
        let object_id = identity.as_ref().and_then(|i| i.object_id.as_deref());
        let in_microsoft_365 = self.in_microsoft_365(list, object_id).await?;
        let overrides =
            matching::overrides(self.config, &self.exceptions, Some(list), asked, self.now);
        let history = match object_id {
            Some(id) => self.history(list, id, &overrides).await?,
            None => Vec::new(),
        };
        let excluded = overrides.iter().any(|o| !o.include && o.applies_now);
        let held = self.snapshot.held.keys().any(|k| same_list(k, list));
        let state = if held {
            format!("the list is held and runs leave it as it is (`rollcall explain {list}`)")
        } else if !desired && excluded {
            "kept off the list by an override".to_owned()
        } else {
            state(desired, in_microsoft_365, identity.as_ref())
        };
        Ok(MemberAnswer {
            list: list.to_owned(),
            member: member.trim().to_owned(),
            state,
            desired,
            in_microsoft_365,
            live: self.live,
            rows: self.rows(list, asked),
            overrides,
            identity: identity.clone(),
            history,
            removal_due: self
                .removal_due(list, object_id, desired, in_microsoft_365)
                .await?,
            sources_read: Vec::new(),
            nearest: Vec::new(),
        })
    }

    /// When a member the sources no longer name but Microsoft 365 still has falls due for
    /// removal under their family's `remove_after`: from the first run that found them
    /// absent, or from now when no run has yet. `None` without a grace.
    async fn removal_due(
        &self,
        list: &str,
        object_id: Option<&str>,
        desired: bool,
        in_microsoft_365: Option<bool>,
    ) -> Result<Option<DateTime<Utc>>, CommandError> {
        if desired || in_microsoft_365 != Some(true) {
            return Ok(None);
        }
        let (Some(group), Some(id)) = (
            self.groups.iter().find(|g| same_list(&g.list, list)),
            object_id.and_then(|id| id.parse::<ObjectId>().ok()),
        ) else {
            return Ok(None);
        };
        let grace = self
            .config
            .family(&group.family)
            .and_then(|f| chrono::Duration::from_std(f.remove_after).ok())
            .filter(|grace| !grace.is_zero());
        let Some(grace) = grace else {
            return Ok(None);
        };
        let absent = self.store.first_absent().await.map_err(failed)?;
        let since = absent
            .get(&group.list)
            .and_then(|members| members.get(&id))
            .copied()
            .unwrap_or(self.now);
        Ok(Some(since + grace))
    }

    /// The member's adds and removes on `list`, each with its reason.
    async fn history(
        &self,
        list: &str,
        object_id: &str,
        overrides: &[OverrideHit],
    ) -> Result<Vec<HistoryEntry>, CommandError> {
        let ops = self
            .store
            .member_ops(object_id, Some(list))
            .await
            .map_err(failed)?;
        let mut runs: HashMap<RunId, Option<Run>> = HashMap::new();
        let mut history = Vec::new();
        for traced in ops {
            let kind = traced.op.op.kind;
            if !matches!(kind, OpKind::AddMember | OpKind::RemoveMember) {
                continue;
            }
            let id = traced.op.run;
            if let std::collections::hash_map::Entry::Vacant(slot) = runs.entry(id) {
                slot.insert(self.store.run(id).await.map_err(failed)?);
            }
            let run = runs.get(&id).and_then(Option::as_ref);
            let at = match traced.op.status {
                OpStatus::Pending => traced.planned_at,
                _ => traced.updated_at,
            };
            history.push(HistoryEntry {
                run: id.0,
                at,
                operation: kind.as_str().to_owned(),
                status: traced.op.status.as_str().to_owned(),
                reason: reason(kind, list, run, overrides),
                error: traced.op.last_error,
            });
        }
        Ok(history)
    }

    pub(super) async fn person_answer(&self, member: &str) -> Result<PersonAnswer, CommandError> {
        let asked = self.asked()?;
        let identity = self.identity.clone();
        let wanted = asked.members(&source_kinds(self.config));
        let mut lists: BTreeSet<String> = self
            .snapshot
            .lists
            .values()
            .filter(|l| wanted.iter().any(|m| l.members.contains(m)))
            .map(|l| l.key.clone())
            .collect();
        for read in &self.reads {
            lists.extend(
                read.sightings
                    .iter()
                    .filter_map(|s| self.list_key(&s.list).ok()),
            );
        }
        if let Some(id) = identity.as_ref().and_then(|i| i.object_id.as_deref()) {
            for list in self.store.lists_of_member(id).await.map_err(failed)? {
                lists.insert(self.list_key(&list).unwrap_or(list));
            }
        }
        let mut answers = Vec::with_capacity(lists.len());
        for list in &lists {
            answers.push(self.member_answer(list, member).await?);
        }
        let (sources_read, nearest) = if answers.is_empty() {
            (
                self.sources_read(),
                matching::nearest(&asked.value, self.members_of(None)),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(PersonAnswer {
            member: member.trim().to_owned(),
            identity,
            lists: answers,
            sources_read,
            nearest,
        })
    }
}

/// The member's standing on a list in a few words.
fn state(desired: bool, in_365: Option<bool>, identity: Option<&IdentityAnswer>) -> String {
    let resolved = identity.is_some_and(|i| i.object_id.is_some());
    match (desired, in_365) {
        (true, Some(true)) => "on the list".to_owned(),
        (true, Some(false)) => {
            "wanted, not in Microsoft 365 yet: the next run adds them".to_owned()
        }
        (true, None) if identity.is_some() && !resolved => {
            "wanted, but the key names no account in the directory: nobody is added".to_owned()
        }
        (true, None) => "wanted: the next run adds them".to_owned(),
        (false, Some(true)) => {
            "in Microsoft 365 but no longer wanted: the next run removes them".to_owned()
        }
        (false, _) => "not on the list".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_desired_and_actual() {
        assert_eq!(state(true, Some(true), None), "on the list");
        assert!(state(true, Some(false), None).contains("adds"));
        assert!(state(false, Some(true), None).contains("removes"));
        assert_eq!(state(false, Some(false), None), "not on the list");
        let unresolved = IdentityAnswer {
            key_kind: "upn".into(),
            key: "x@y".into(),
            object_id: None,
            display_name: None,
            resolved_at: None,
        };
        assert!(state(true, None, Some(&unresolved)).contains("no account"));
    }
}
