//! `/groups/delta` and `/users/delta`: a full first round, then only what changed.
//!
//! A delta token is the change log position the round read up to (plus the directory epoch,
//! which `POST /_sandbox/delta/expire` and reseeding bump). A round in progress carries its
//! position in a `$skiptoken`. Large groups are split across pages; the same group then
//! appears more than once and clients merge by id (GRAPH.md "Delta").

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::groups::group_json;
use super::request::{Input, MAX_PAGE, Reply, context, decode_token, encode_token, parse_filter};
use super::users::user_json;
use super::{Tenant, roles};
use crate::sandbox::directory::{Change, Directory, GroupIx, UserIx};
use crate::sandbox::error::GraphError;

/// Groups per delta page.
const GROUPS_PER_PAGE: usize = 100;
/// `members@delta` entries per page; a larger group continues on the next page.
pub const MEMBERS_PER_PAGE: usize = 500;
/// Most ids a delta `$filter` may name.
const MAX_FILTER_IDS: usize = 50;

/// Graph answers an expired or unknown delta token with 410 Gone or 400; the sandbox picks 410
/// `syncStateNotFound`, which GRAPH.md lists first, so clients must handle the rarer status.
fn expired() -> GraphError {
    GraphError::new(
        410,
        "syncStateNotFound",
        "The delta token has expired or is not known. Start again with a full delta read.",
    )
}

/// Which round and where in it.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// `None` for the first (full) round, else the log position the last round read up to.
    from: Option<usize>,
    /// The log position this round reads up to.
    to: usize,
    /// Group index (full round) or index into the changed groups (later rounds).
    at: usize,
    /// Last member emitted for the group at `at`, when it was split.
    after: Option<UserIx>,
}

impl Position {
    fn encode(&self, epoch: u64) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        encode_token(&format!(
            "gr:{epoch}:{}:{}:{}:{}",
            opt(self.from.map(|f| f.to_string())),
            self.to,
            self.at,
            opt(self.after.map(|a| a.to_string()))
        ))
    }

    fn decode(token: &str, epoch: u64) -> Result<Position, GraphError> {
        let fields = decode_token(token, "gr").ok_or_else(GraphError::bad_page_token)?;
        let [token_epoch, from, to, at, after] = fields.as_slice() else {
            return Err(GraphError::bad_page_token());
        };
        if token_epoch.parse::<u64>().ok() != Some(epoch) {
            return Err(expired());
        }
        let optional = |s: &str| -> Result<Option<usize>, GraphError> {
            if s == "-" {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| GraphError::bad_page_token())
            }
        };
        Ok(Position {
            from: optional(from)?,
            to: to.parse().map_err(|_| GraphError::bad_page_token())?,
            at: at.parse().map_err(|_| GraphError::bad_page_token())?,
            after: optional(after)?.map(|a| a as UserIx),
        })
    }
}

/// One group's changes in a later round.
#[derive(Debug)]
struct Changed {
    group: GroupIx,
    /// Member → added (true) or removed (false), the last change winning.
    members: BTreeMap<UserIx, bool>,
    /// Owner → added (true) or removed (false), the last change winning.
    owners: BTreeMap<UserIx, bool>,
    /// The group was deleted in the round.
    deleted: bool,
}

/// The changes of the round served last, keyed by epoch and log range. Every page of a round
/// needs the same fold of the change log; without this a round of P pages over a log of N
/// entries costs P × N, which a full build's settle round (hundreds of pages over the build's
/// own hundreds of thousands of adds) turns into most of the run.
#[derive(Debug, Default)]
pub(super) struct RoundCache(Mutex<Option<CachedRound>>);

#[derive(Debug)]
struct CachedRound {
    epoch: u64,
    from: usize,
    to: usize,
    changed: Arc<Vec<Changed>>,
}

impl RoundCache {
    /// The groups changed in the log between `from` and `to`, folded once per round.
    fn changes(&self, directory: &Directory, from: usize, to: usize) -> Arc<Vec<Changed>> {
        let mut cached = self.0.lock().expect("delta cache lock");
        if let Some(round) = cached.as_ref()
            && (round.epoch, round.from, round.to) == (directory.epoch, from, to)
        {
            return Arc::clone(&round.changed);
        }
        let changed = Arc::new(changes(directory, from, to));
        *cached = Some(CachedRound {
            epoch: directory.epoch,
            from,
            to,
            changed: Arc::clone(&changed),
        });
        changed
    }
}

fn changes(directory: &Directory, from: usize, to: usize) -> Vec<Changed> {
    let mut order: Vec<Changed> = Vec::new();
    let mut slot: BTreeMap<GroupIx, usize> = BTreeMap::new();
    for entry in directory.log().get(from..to).unwrap_or_default() {
        let i = *slot.entry(entry.group).or_insert_with(|| {
            order.push(Changed {
                group: entry.group,
                members: BTreeMap::new(),
                owners: BTreeMap::new(),
                deleted: false,
            });
            order.len() - 1
        });
        match entry.change {
            Change::MemberAdded(user) => {
                order[i].members.insert(user, true);
            }
            Change::MemberRemoved(user) => {
                order[i].members.insert(user, false);
            }
            Change::OwnerAdded(user) => {
                order[i].owners.insert(user, true);
            }
            Change::OwnerRemoved(user) => {
                order[i].owners.insert(user, false);
            }
            Change::Deleted => order[i].deleted = true,
            Change::Created | Change::Updated => {}
        }
    }
    order
}

fn member_entry(directory: &Directory, user: UserIx, added: bool) -> Value {
    let mut entry = json!({
        "@odata.type": "#microsoft.graph.user",
        "id": directory.user(user).id,
    });
    if !added {
        entry["@removed"] = json!({"reason": "deleted"});
    }
    entry
}

/// `GET /groups/delta` (also `/groups/delta()`).
pub fn groups(tenant: &Tenant, input: &Input<'_>) -> Result<Reply, GraphError> {
    let select = input.query.select();
    let selects = |name: &str| {
        select
            .as_ref()
            .is_some_and(|s| s.iter().any(|p| p.eq_ignore_ascii_case(name)))
    };
    let (with_members, with_owners) = (selects("members"), selects("owners"));
    let properties: Option<Vec<String>> = select.map(|s| {
        let mut props: Vec<String> = s
            .into_iter()
            .filter(|p| !p.eq_ignore_ascii_case("members") && !p.eq_ignore_ascii_case("owners"))
            .collect();
        if !props.iter().any(|p| p == "id") {
            props.insert(0, "id".to_owned());
        }
        props
    });
    let only: Option<HashSet<String>> = match input.query.get("$filter") {
        None => None,
        Some(filter) => {
            let clauses = parse_filter(filter)?;
            if clauses
                .iter()
                .any(|c| !c.property.eq_ignore_ascii_case("id"))
            {
                return Err(GraphError::unsupported_query(
                    "Delta queries on groups can filter only on id (id eq '…' or id eq '…').",
                ));
            }
            let ids: HashSet<String> = clauses
                .into_iter()
                .flat_map(|c| c.values)
                .map(|id| id.to_ascii_lowercase())
                .collect();
            if ids.len() > MAX_FILTER_IDS {
                return Err(GraphError::unsupported_query(format!(
                    "A delta $filter can name at most {MAX_FILTER_IDS} ids; got {}.",
                    ids.len()
                )));
            }
            Some(ids)
        }
    };
    let horizon = tenant.horizon();
    let directory = tenant.directory();
    let epoch = directory.epoch;
    let upto = match horizon {
        Some(h) => directory.log().partition_point(|e| e.at <= h),
        None => directory.log().len(),
    };
    let position = if let Some(token) = input.query.get("$deltatoken") {
        if token == "latest" {
            return Ok(page(input, Vec::new(), None, epoch, upto));
        }
        let fields = decode_token(token, "gd").ok_or_else(expired)?;
        match fields.as_slice() {
            [token_epoch, from] if token_epoch.parse::<u64>().ok() == Some(epoch) => Position {
                from: Some(from.parse().map_err(|_| expired())?),
                to: upto,
                at: 0,
                after: None,
            },
            _ => return Err(expired()),
        }
    } else if let Some(token) = input.query.get("$skiptoken") {
        Position::decode(token, epoch)?
    } else {
        Position {
            from: None,
            to: upto,
            at: 0,
            after: None,
        }
    };
    let eligible = |group: GroupIx| {
        let group = directory.group(group);
        group.visible_at(horizon) && only.as_ref().is_none_or(|ids| ids.contains(&group.id))
    };
    let render = |group: GroupIx| group_json(directory.group(group), properties.as_deref(), false);
    // Without Member.Read.Hidden a HiddenMembership group comes without its members, as a
    // member listing does (GRAPH.md "Groups").
    let sees_hidden = roles::sees_hidden_members(input.roles);
    let members_shown = |group: GroupIx| {
        sees_hidden
            || directory.group(group).properties.visibility.as_deref() != Some("HiddenMembership")
    };
    let mut objects: Vec<Value> = Vec::new();
    let mut members_left = MEMBERS_PER_PAGE;
    let mut next: Option<Position> = None;
    let mut at = position.at;
    let mut after = position.after;
    match position.from {
        None => {
            while at < directory.group_count() {
                if objects.len() == GROUPS_PER_PAGE || (with_members && members_left == 0) {
                    next = Some(Position {
                        at,
                        after,
                        ..position
                    });
                    break;
                }
                let group = at as GroupIx;
                if eligible(group) {
                    let mut object = render(group)?;
                    if with_owners && after.is_none() {
                        let owners = directory.group(group).owners.iter();
                        let entries = owners.map(|&u| member_entry(&directory, u, true));
                        object.insert("owners@delta".to_owned(), entries.collect());
                    }
                    if with_members {
                        let (chunk, more) = if members_shown(group) {
                            directory.member_page(group, horizon, after, members_left)
                        } else {
                            (Vec::new(), false)
                        };
                        members_left -= chunk.len();
                        let entries = chunk
                            .iter()
                            .map(|&user| member_entry(&directory, user, true))
                            .collect();
                        object.insert("members@delta".to_owned(), Value::Array(entries));
                        objects.push(Value::Object(object));
                        if more {
                            next = Some(Position {
                                at,
                                after: chunk.last().copied(),
                                ..position
                            });
                            break;
                        }
                    } else {
                        objects.push(Value::Object(object));
                    }
                }
                at += 1;
                after = None;
            }
        }
        Some(from) => {
            let changed =
                tenant
                    .delta_rounds
                    .changes(&directory, from.min(position.to), position.to);
            while at < changed.len() {
                if objects.len() == GROUPS_PER_PAGE || (with_members && members_left == 0) {
                    next = Some(Position {
                        at,
                        after,
                        ..position
                    });
                    break;
                }
                let change = &changed[at];
                let id = &directory.group(change.group).id;
                if change.deleted {
                    // GRAPH.md "Delta": a deleted object comes back as its id and `@removed`.
                    if only.as_ref().is_none_or(|ids| ids.contains(id)) {
                        objects.push(json!({"id": id, "@removed": {"reason": "changed"}}));
                    }
                } else if eligible(change.group) {
                    let mut object = render(change.group)?;
                    if with_owners && after.is_none() {
                        let entries = change
                            .owners
                            .iter()
                            .map(|(&u, &added)| member_entry(&directory, u, added));
                        object.insert("owners@delta".to_owned(), entries.collect());
                    }
                    if with_members {
                        let start = after.map_or(0, |a| a + 1);
                        let entries: Vec<(UserIx, bool)> = if members_shown(change.group) {
                            change
                                .members
                                .range(start..)
                                .take(members_left + 1)
                                .map(|(&u, &added)| (u, added))
                                .collect()
                        } else {
                            Vec::new()
                        };
                        let more = entries.len() > members_left;
                        let entries = &entries[..entries.len().min(members_left)];
                        members_left -= entries.len();
                        object.insert(
                            "members@delta".to_owned(),
                            entries
                                .iter()
                                .map(|&(user, added)| member_entry(&directory, user, added))
                                .collect(),
                        );
                        objects.push(Value::Object(object));
                        if more {
                            next = Some(Position {
                                at,
                                after: entries.last().map(|&(u, _)| u),
                                ..position
                            });
                            break;
                        }
                    } else {
                        objects.push(Value::Object(object));
                    }
                }
                at += 1;
                after = None;
            }
        }
    }
    Ok(page(input, objects, next, epoch, position.to))
}

fn page(
    input: &Input<'_>,
    objects: Vec<Value>,
    next: Option<Position>,
    epoch: u64,
    to: usize,
) -> Reply {
    let link = match next {
        Some(next) => DeltaLink::NextPage(next.encode(epoch)),
        None => DeltaLink::NextRound(encode_token(&format!("gd:{epoch}:{to}"))),
    };
    delta_page(input, "groups", "/groups/delta", link, objects)
}

/// Where a delta page sends the client next.
enum DeltaLink {
    /// `@odata.nextLink` with this `$skiptoken`: the round goes on.
    NextPage(String),
    /// `@odata.deltaLink` with this `$deltatoken`: the round is over.
    NextRound(String),
}

/// A delta page: its values and the link to the next page or round, built from the request's
/// own query options and host.
fn delta_page(
    input: &Input<'_>,
    entity: &str,
    path: &str,
    link: DeltaLink,
    value: Vec<Value>,
) -> Reply {
    let mut pairs = input.query.without(&["$skiptoken", "$deltatoken"]);
    let (option, property, token) = match link {
        DeltaLink::NextPage(token) => ("$skiptoken", "@odata.nextLink", token),
        DeltaLink::NextRound(token) => ("$deltatoken", "@odata.deltaLink", token),
    };
    pairs.push((option.to_owned(), token));
    let mut body = Map::new();
    body.insert("@odata.context".to_owned(), json!(context(entity)));
    body.insert(property.to_owned(), json!(input.origin.link(path, &pairs)));
    body.insert("value".to_owned(), Value::Array(value));
    Reply::ok(Value::Object(body))
}

/// `GET /users/delta`: every user in pages of 999, then (users never change through the
/// sandbox's Graph surface) empty rounds until the directory is reseeded.
pub fn users(tenant: &Tenant, input: &Input<'_>) -> Result<Reply, GraphError> {
    let select = input.query.select();
    let directory = tenant.directory();
    let epoch = directory.epoch;
    let start = if let Some(token) = input.query.get("$deltatoken") {
        if token != "latest" {
            let fields = decode_token(token, "ud").ok_or_else(expired)?;
            if fields.first().and_then(|e| e.parse::<u64>().ok()) != Some(epoch) {
                return Err(expired());
            }
        }
        directory.user_count()
    } else if let Some(token) = input.query.get("$skiptoken") {
        let fields = decode_token(token, "ur").ok_or_else(GraphError::bad_page_token)?;
        let [token_epoch, start] = fields.as_slice() else {
            return Err(GraphError::bad_page_token());
        };
        if token_epoch.parse::<u64>().ok() != Some(epoch) {
            return Err(expired());
        }
        start.parse().map_err(|_| GraphError::bad_page_token())?
    } else {
        0
    };
    let end = (start + MAX_PAGE).min(directory.user_count());
    let value = directory
        .users()
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|u| user_json(u, select.as_deref()).map(Value::Object))
        .collect::<Result<Vec<_>, _>>()?;
    let link = if end < directory.user_count() {
        DeltaLink::NextPage(encode_token(&format!("ur:{epoch}:{end}")))
    } else {
        DeltaLink::NextRound(encode_token(&format!("ud:{epoch}")))
    };
    Ok(delta_page(input, "users", "/users/delta", link, value))
}
