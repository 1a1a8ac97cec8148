//! Reads what `explain` needs once (the sources with a witness, the overrides, the state
//! database, Microsoft 365 with `--live`) and answers each form from it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::matching::{self, Asked};
use super::{Answer, IdentityAnswer};
use crate::config::{Config, MemberKey, SourceKind};
use crate::exit::{CommandError, Exit};
use crate::graph::GraphClient;
use crate::plan::ObjectId;
use crate::source::{Exception, Member, Snapshot, SourceRead, Witness};
use crate::store::{ManagedGroup, Store};

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
pub(super) fn source_kinds(config: &Config) -> BTreeSet<MemberKey> {
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
pub(super) struct Facts<'a> {
    pub(super) config: &'a Config,
    pub(super) now: DateTime<Utc>,
    pub(super) live: bool,
    /// Each source's read, with the witnessed rows.
    pub(super) reads: Vec<SourceRead>,
    pub(super) exceptions: Vec<Exception>,
    pub(super) snapshot: Snapshot,
    pub(super) groups: Vec<ManagedGroup>,
    pub(super) store: Store,
    pub(super) graph: Option<GraphClient>,
    /// The member asked about, with the person's other keys.
    pub(super) asked: Option<Asked>,
    /// How the member's key resolved.
    pub(super) identity: Option<IdentityAnswer>,
}

/// A state database, Graph or other unexpected fault: exit 1.
pub(super) fn failed(error: impl Into<anyhow::Error>) -> CommandError {
    CommandError::failed(error)
}

/// `a` and `b` name one list (list keys compare without case).
pub(super) fn same_list(a: &str, b: &str) -> bool {
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
                    answer.nearest =
                        matching::nearest(&self.asked()?.value, self.members_of(Some(&list)));
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
    pub(super) fn list_key(&self, asked: &str) -> Result<String, CommandError> {
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
    pub(super) fn asked(&self) -> Result<&Asked, CommandError> {
        self.asked.as_ref().ok_or_else(|| {
            CommandError::usage(anyhow::anyhow!("this form of explain needs a member"))
        })
    }

    /// Every source as `name (kind)`.
    pub(super) fn sources_read(&self) -> Vec<String> {
        self.reads
            .iter()
            .map(|r| format!("{} ({})", r.name, r.kind.as_str()))
            .collect()
    }

    /// Every member value the sources put on `list` (or on any list), once each.
    pub(super) fn members_of(&self, list: Option<&str>) -> BTreeSet<&str> {
        self.reads
            .iter()
            .flat_map(|r| r.lists.iter())
            .filter(|(key, _)| list.is_none_or(|l| same_list(key, l)))
            .flat_map(|(_, rows)| rows.members.iter().map(String::as_str))
            .collect()
    }
}
