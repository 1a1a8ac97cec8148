//! Reads what `explain` needs once (the sources with a witness, the overrides, the state
//! database, Microsoft 365 with `--live`) and answers each form from it.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::matching::{self, Asked};
use super::reason::reason;
use super::{
    Answer, HistoryEntry, HoldAnswer, IdentityAnswer, ListAnswer, MemberAnswer, PersonAnswer,
    RunChanges, SourceRow,
};
use crate::config::{Config, MemberKey, SourceKind};
use crate::exit::{CommandError, Exit};
use crate::graph::GraphClient;
use crate::plan::ObjectId;
use crate::reconcile::{HeldList, RunReport};
use crate::source::{Exception, Member, Snapshot, SourceRead, Witness};
use crate::store::{ManagedGroup, OpKind, OpStatus, Run, RunId, RunKind, Store};

/// How many of a list's latest changing runs `explain LIST` shows.
const LIST_RUNS: u32 = 5;

/// What was asked: `LIST MEMBER`, `LIST`, or `--member KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The list key (any case).
    pub list: Option<String>,
    /// The member key, `kind:value` or bare.
    pub member: Option<String>,
    /// Read list membership from Microsoft 365 now rather than from the mirror.
    pub live: bool,
}

/// Answers `question` under `config` at `now`. Changes nothing anywhere.
pub async fn explain(
    config: &Config,
    question: &Question,
    now: DateTime<Utc>,
) -> Result<Answer, CommandError> {
    if question.list.is_none() && question.member.is_none() {
        return Err(CommandError::usage(anyhow::anyhow!(
            "explain needs a LIST, a LIST and a MEMBER, or --member KEY"
        )));
    }
    let store = open_store(config).await?;
    let facts = Facts::read(config, question, store, now).await?;
    let answer = facts.answer(question).await;
    facts.store.close().await;
    answer
}

/// Opens the state database without migrating or creating it: explain only reads.
async fn open_store(config: &Config) -> Result<Store, CommandError> {
    let url = config.state.database_url().map_err(|e| {
        CommandError::usage(anyhow::anyhow!("{}: [state]: {e}", config.path.display()))
    })?;
    if let Some(path) = crate::store::sqlite_file(&url)
        && !path.exists()
    {
        return Err(CommandError::failed(anyhow::anyhow!(
            "the state database {} does not exist: no run has recorded anything yet (`rollcall run` creates it)",
            path.display()
        )));
    }
    let store = Store::connect(&url).await.map_err(CommandError::failed)?;
    let version = store.schema_version().await.map_err(CommandError::failed)?;
    if version < store.latest_known_version() {
        return Err(CommandError::failed(anyhow::anyhow!(
            "the state database {} is at schema version {} and this rollcall expects {}: run `rollcall migrate` first",
            store.url(),
            version.map_or_else(|| "none".to_owned(), |v| v.to_string()),
            store
                .latest_known_version()
                .map_or_else(|| "none".to_owned(), |v| v.to_string()),
        )));
    }
    Ok(store)
}

/// The member keys the configured sources use, and object ids (which name anyone).
fn source_kinds(config: &Config) -> BTreeSet<MemberKey> {
    let mut kinds: BTreeSet<MemberKey> = config.sources.iter().map(|s| s.member_key).collect();
    kinds.insert(MemberKey::ObjectId);
    kinds
}

/// How the asked key resolved: the first kind the identities table knows (one with an
/// object id before one the directory did not know), else an object id asked directly.
async fn resolve(
    store: &Store,
    asked: &Asked,
    kinds: &BTreeSet<MemberKey>,
) -> Result<Option<IdentityAnswer>, CommandError> {
    let mut found = None;
    for member in asked.members(kinds) {
        let known = store
            .lookup_identities(member.key, std::slice::from_ref(&member.value))
            .await
            .map_err(failed)?;
        if let Some(identity) = known.into_iter().next() {
            let resolved = identity.object_id.is_some();
            found = Some(IdentityAnswer {
                key_kind: identity.kind.as_str().to_owned(),
                key: identity.value,
                object_id: identity.object_id,
                display_name: None,
                resolved_at: Some(identity.checked_at),
            });
            if resolved {
                return Ok(found);
            }
        }
    }
    if found.is_none()
        && asked.kind.is_none_or(|k| k == MemberKey::ObjectId)
        && let Ok(id) = asked.value.parse::<ObjectId>()
    {
        found = Some(IdentityAnswer {
            key_kind: MemberKey::ObjectId.as_str().to_owned(),
            key: id.to_string(),
            object_id: Some(id.to_string()),
            display_name: None,
            resolved_at: None,
        });
    }
    Ok(found)
}

/// Everything read once for one question.
struct Facts<'a> {
    config: &'a Config,
    now: DateTime<Utc>,
    live: bool,
    /// Each source's read, with the witnessed rows.
    reads: Vec<SourceRead>,
    exceptions: Vec<Exception>,
    snapshot: Snapshot,
    groups: Vec<ManagedGroup>,
    store: Store,
    graph: Option<GraphClient>,
    /// The member asked about, with the person's other keys.
    asked: Option<Asked>,
    /// How the member's key resolved.
    identity: Option<IdentityAnswer>,
}

fn failed(error: impl Into<anyhow::Error>) -> CommandError {
    CommandError::failed(error)
}

/// `a` and `b` name one list (list keys compare without case).
fn same_list(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

impl<'a> Facts<'a> {
    async fn read(
        config: &'a Config,
        question: &Question,
        store: Store,
        now: DateTime<Utc>,
    ) -> Result<Facts<'a>, CommandError> {
        let kinds = source_kinds(config);
        let mut asked = question.member.as_deref().map(Asked::parse);
        let mut identity = None;
        if let Some(member) = &asked {
            identity = resolve(&store, member, &kinds).await?;
            if let Some(id) = identity.as_ref().and_then(|i| i.object_id.as_deref()) {
                let aliases = store.identities_of(id).await.map_err(failed)?;
                asked = asked.map(|a| {
                    a.with_aliases(
                        aliases
                            .into_iter()
                            .map(|i| Member {
                                key: i.kind,
                                value: i.value,
                            })
                            .collect(),
                    )
                });
            }
        }
        let needs_graph =
            question.live || config.sources.iter().any(|s| s.kind == SourceKind::Entra);
        let graph = if needs_graph {
            let graph_config = config.graph()?;
            Some(GraphClient::connect(graph_config).await.map_err(failed)?)
        } else {
            None
        };
        let reads = futures::future::try_join_all(config.sources.iter().map(|source| {
            let key = BTreeSet::from([source.member_key]);
            let witness = asked
                .as_ref()
                .and_then(|a| a.members(&key).into_iter().next())
                .and_then(|m| {
                    let member = format!("{}:{}", m.key, m.value);
                    Witness::new(question.list.as_deref(), &member, source.member_key)
                });
            crate::source::read_source_witnessed(source, graph.as_ref(), witness)
        }))
        .await
        .map_err(|e| CommandError::new(Exit::Stopped, e))?;
        let exceptions = crate::source::read_exceptions(config)
            .await
            .map_err(|e| CommandError::new(Exit::Stopped, e))?;
        let snapshot = crate::source::assemble(config, reads.clone(), &exceptions, now)
            .map_err(|e| CommandError::new(Exit::Stopped, e))?;
        let groups = store.groups().await.map_err(failed)?;
        if let (Some(graph), Some(identity)) = (&graph, identity.as_mut())
            && question.live
            && let Some(id) = identity.object_id.as_deref().and_then(|i| i.parse().ok())
        {
            identity.display_name = graph.user_display_name(&id).await.map_err(failed)?;
        }
        Ok(Facts {
            config,
            now,
            live: question.live,
            reads,
            exceptions,
            snapshot,
            groups,
            store,
            graph,
            asked,
            identity,
        })
    }

    async fn answer(&self, question: &Question) -> Result<Answer, CommandError> {
        match (&question.list, &question.member) {
            (Some(list), Some(member)) => {
                let list = self.list_key(list)?;
                let mut answer = self.member_answer(&list, member).await?;
                if answer.rows.is_empty() && !answer.desired {
                    answer.sources_read = self.sources_read();
                    answer.nearest = matching::nearest(member, self.members_of(Some(&list)));
                }
                Ok(Answer::Member(answer))
            }
            (Some(list), None) => Ok(Answer::List(self.list_answer(&self.list_key(list)?).await?)),
            (None, Some(member)) => Ok(Answer::Person(self.person_answer(member).await?)),
            (None, None) => Err(CommandError::usage(anyhow::anyhow!(
                "explain needs a LIST, a LIST and a MEMBER, or --member KEY"
            ))),
        }
    }

    /// The list's key as the sources (or the state) spell it; an unknown list is a usage
    /// error naming the nearest keys.
    fn list_key(&self, asked: &str) -> Result<String, CommandError> {
        let asked = asked.trim();
        let known = self
            .snapshot
            .lists
            .keys()
            .chain(self.snapshot.held.keys())
            .chain(self.groups.iter().map(|g| &g.list));
        let mut all = Vec::new();
        for key in known {
            if same_list(key, asked) {
                return Ok(key.clone());
            }
            all.push(key.as_str());
        }
        let near = matching::nearest(asked, all);
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!("; near keys: {}", near.join(", "))
        };
        Err(CommandError::usage(anyhow::anyhow!(
            "no source feeds a list `{asked}` and rollcall manages no group for one{hint}"
        )))
    }

    /// The member asked about (`explain` checked that one was).
    fn asked(&self) -> Result<&Asked, CommandError> {
        self.asked.as_ref().ok_or_else(|| {
            CommandError::usage(anyhow::anyhow!("this form of explain needs a member"))
        })
    }

    /// Every source as `name (kind)`.
    fn sources_read(&self) -> Vec<String> {
        self.reads
            .iter()
            .map(|r| format!("{} ({})", r.name, r.kind.as_str()))
            .collect()
    }

    /// Every member value the sources put on `list` (or on any list), once each.
    fn members_of(&self, list: Option<&str>) -> BTreeSet<&str> {
        self.reads
            .iter()
            .flat_map(|r| r.lists.iter())
            .filter(|(key, _)| list.is_none_or(|l| same_list(key, l)))
            .flat_map(|(_, rows)| rows.members.iter().map(String::as_str))
            .collect()
    }

    /// Each source row naming `asked` on `list`; a source that names them but kept no row
    /// (ODBC) gives one row without a place.
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

    async fn member_answer(&self, list: &str, member: &str) -> Result<MemberAnswer, CommandError> {
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
        let state = if !desired && excluded {
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
            removal_due: None,
            sources_read: Vec::new(),
            nearest: Vec::new(),
        })
    }

    /// The member's adds and removes on `list`, each with its reason.
    async fn history(
        &self,
        list: &str,
        object_id: &str,
        overrides: &[super::OverrideHit],
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
            if !runs.contains_key(&id) {
                let run = self.store.run(id).await.map_err(failed)?;
                runs.insert(id, run);
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

    async fn person_answer(&self, member: &str) -> Result<PersonAnswer, CommandError> {
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

    async fn list_answer(&self, list: &str) -> Result<ListAnswer, CommandError> {
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
            sources: desired.map(|d| d.sources.clone()).unwrap_or_default(),
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
