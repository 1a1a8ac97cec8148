//! Actual membership: which groups rollcall manages (created, tagged, adopted), found again
//! in Microsoft 365, and the members and owners of each.
//!
//! Two ways to read it. A *full* read lists every group with its tag and reads every managed
//! group's members and owners completely; it trusts nothing cached. A *delta* read starts
//! from the mirror and the owner mirror and brings them up to date with one `/groups/delta`
//! round from the link the last read stored; only the nicknames of lists without a group are
//! looked up. A full read takes a fresh delta link before it starts, and stores it once the
//! mirrors hold what it read, so changes made while it ran come again in the next round
//! (replays change nothing). A delta read is trusted only while the mirror it extends is
//! whole ([`trust`]): groups whose mirror lost its rows are read in full (owners too), and all
//! of them when most did. Lost owner rows alone are not detected: at worst the plan adds an
//! owner the group has already, and `rebuild --state-only` restores them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

mod delta;
mod titles;
mod trust;

pub use delta::settle;

use super::stop::Stop;
use crate::config::Config;
use crate::graph::{DirectoryGroup, GraphClient, GraphError};
use crate::plan::{Actual, ActualList, DesiredList, Hold, HoldReason, Members, ObjectId, Title};
use crate::store::{GroupOrigin, ManagedGroup, Store};

/// The state store's scope name for the groups delta link.
pub const GROUPS_SCOPE: &str = "groups";

/// How the actual side is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Every group listed and every managed group's members read afresh (`rebuild`,
    /// `verify`, and whenever there is no usable delta link).
    Full,
    /// The mirror, brought up to date by one `/groups/delta` round.
    Delta,
}

/// A list whose mailNickname belongs to a group rollcall must not touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The list key.
    pub list: String,
    /// The nickname it wants.
    pub mail_nickname: String,
    /// The group that has it.
    pub group_id: String,
    /// Why rollcall leaves it alone.
    pub reason: String,
}

/// What the actual side looks like, and what reading it decided.
#[derive(Debug, Default)]
pub struct ActualState {
    /// Managed groups with their members, for the diff.
    pub actual: Actual,
    /// Every managed group by list key (adopted ones included).
    pub managed: BTreeMap<String, ManagedGroup>,
    /// Groups this read adopts (not yet recorded in the state store).
    pub adopted: Vec<ManagedGroup>,
    /// Lists rollcall cannot create because their nickname is taken.
    pub conflicts: Vec<Conflict>,
    /// Lists the read holds: a group Microsoft Graph refused to read for good (gone, 403), or
    /// two groups carrying the list's tag.
    pub refused: BTreeMap<String, Hold>,
    /// The managed groups' titles, where known, by list key.
    pub titles: HashMap<String, Title>,
    /// Things operators should know (a managed group deleted outside rollcall, …).
    pub warnings: Vec<String>,
    /// How it was read (a delta read falls back to a full one when its link expired).
    pub read: Option<ReadMode>,
}

/// Reads the managed groups and their members, `mode` saying how (see the module's doc). The
/// state store's record of managed groups is checked against Microsoft 365: groups carrying
/// rollcall's tag are managed even if the store forgot them, groups that are gone are
/// forgotten. With `repair`, the store is brought in line (groups found, groups gone, the
/// mirror and its delta link); without, nothing is written.
pub async fn read(
    config: &Config,
    store: &Store,
    graph: &GraphClient,
    desired: &[DesiredList],
    repair: bool,
    mode: ReadMode,
) -> Result<ActualState, Stop> {
    if mode == ReadMode::Delta {
        if let Some(link) = store.delta_link(GROUPS_SCOPE).await.map_err(Stop::store)? {
            let trust = trust::check(store, repair).await?;
            if trust.distrusts_link() {
                let mut state = read_full(config, store, graph, desired, repair).await?;
                trust.explain_full_read(&mut state);
                return Ok(state);
            }
            match graph.groups_delta(&link).await {
                Ok(round) => {
                    let mut state =
                        delta::read_delta(config, store, graph, desired, repair, round).await?;
                    trust.reread(store, graph, repair, &mut state).await?;
                    return Ok(state);
                }
                Err(GraphError::DeltaExpired) => tracing::warn!(
                    "the groups delta link expired or is unknown to Microsoft Graph (410 Gone, \
                     syncStateNotFound or resyncRequired); reading every managed group in full"
                ),
                Err(e) => return Err(Stop::graph("read the groups' changes (/groups/delta)", e)),
            }
        } else {
            tracing::info!("no groups delta link yet; reading every managed group in full");
        }
    }
    read_full(config, store, graph, desired, repair).await
}

/// The full read: every group in the tenant with its tag, every managed group's members.
async fn read_full(
    config: &Config,
    store: &Store,
    graph: &GraphClient,
    desired: &[DesiredList],
    repair: bool,
) -> Result<ActualState, Stop> {
    let mut state = ActualState {
        read: Some(ReadMode::Full),
        ..ActualState::default()
    };
    // Taken first: whatever changes while the read runs comes in the next round.
    let link = if repair {
        Some(
            graph
                .groups_delta_start()
                .await
                .map_err(|e| Stop::graph("start a groups delta link", e))?,
        )
    } else {
        None
    };
    let groups = graph
        .groups()
        .await
        .map_err(|e| Stop::graph("list the tenant's groups", e))?;
    let by_id: HashMap<&str, &DirectoryGroup> = groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let by_nickname: HashMap<String, &DirectoryGroup> = groups
        .iter()
        .map(|g| (g.mail_nickname.to_lowercase(), g))
        .collect();

    let recorded = store.groups().await.map_err(Stop::store)?;
    for mut group in recorded {
        match by_id.get(group.group_id.as_str()) {
            Some(found) => {
                group.tagged = found.tag.as_ref().is_some_and(|t| t.list == group.list);
                group.mail_nickname.clone_from(&found.mail_nickname);
                state.managed.insert(group.list.clone(), group);
            }
            None => {
                state.warnings.push(gone(&group));
                if repair {
                    store.delete_group(&group.list).await.map_err(Stop::store)?;
                }
            }
        }
    }
    for group in &groups {
        let Some(tag) = &group.tag else { continue };
        if state.managed.values().any(|m| m.group_id == group.id) {
            continue;
        }
        if let Some(first) = state.managed.get(&tag.list) {
            // A second group carries this list's tag (copied by hand, or a create made twice
            // outside rollcall): which one the list means is a person's call.
            tracing::warn!(list = %tag.list, first = %first.group_id, second = %group.id, "two groups carry rollcall's tag for one list; the list is held");
            let hold = Hold {
                family: tag.family.clone(),
                reason: HoldReason::TwoGroupsTagged {
                    first: first.group_id.clone(),
                    second: group.id.clone(),
                },
            };
            state.refused.insert(tag.list.clone(), hold);
            continue;
        }
        // Tagged by rollcall but unknown to the store: a lost state database, or a create
        // whose outcome was never recorded.
        let managed = tagged(&tag.list, &tag.family, group);
        if repair {
            store.upsert_group(&managed).await.map_err(Stop::store)?;
        }
        state.managed.insert(managed.list.clone(), managed);
    }

    for list in desired {
        if state.managed.contains_key(&list.key) {
            continue;
        }
        if let Some(group) = by_nickname.get(&list.mail_nickname.to_lowercase()) {
            claim(config, list, group, &mut state);
        }
    }

    let seen = titles::of_listing(&state.managed, &by_id);
    if repair {
        store.set_titles(&seen).await.map_err(Stop::store)?;
    }
    state.titles = seen.into_iter().collect();
    let managed: Vec<&ManagedGroup> = state.managed.values().collect();
    let mut refused = BTreeMap::new();
    let lists = read_groups(graph, &managed, &mut refused).await?;
    state.refused.extend(refused);
    if repair {
        let unrecorded: Vec<&str> = state.adopted.iter().map(|g| g.list.as_str()).collect();
        mirror(store, &unrecorded, &lists).await?;
        if let Some(link) = link {
            store
                .set_delta_link(GROUPS_SCOPE, &link)
                .await
                .map_err(Stop::store)?;
        }
    }
    state.actual = actual_of(lists, &state.titles)?;
    Ok(state)
}

/// The actual side of the diff: the lists read, each with its title where known.
fn actual_of(mut lists: Vec<ActualList>, titles: &HashMap<String, Title>) -> Result<Actual, Stop> {
    for list in &mut lists {
        list.title = titles.get(&list.key).cloned();
    }
    Actual::new(lists).map_err(|e| Stop::failed(anyhow::anyhow!("{e}")))
}

/// Records a group this run adopts, with the members and owners it was read with, so that
/// the next delta read starts from its whole membership.
pub async fn record_adoption(
    store: &Store,
    group: &ManagedGroup,
    actual: &Actual,
) -> Result<(), Stop> {
    store.upsert_group(group).await.map_err(Stop::store)?;
    if let Some(list) = actual.lists().iter().find(|l| l.key == group.list) {
        record_read(store, list).await?;
    }
    Ok(())
}

/// Replaces a list's mirror and owner mirror with what a full read of its group found.
async fn record_read(store: &Store, list: &ActualList) -> Result<(), Stop> {
    store
        .replace_members(&list.key, &ids(&list.members))
        .await
        .map_err(Stop::store)?;
    store
        .replace_owners(&list.key, &ids(&list.owners))
        .await
        .map_err(Stop::store)
}

/// The warning for a managed group that no longer exists.
fn gone(group: &ManagedGroup) -> String {
    format!(
        "the group of list `{}` ({}) no longer exists in Microsoft 365; it is forgotten and, if \
         its family creates groups, created again",
        group.list, group.group_id
    )
}

/// A group carrying rollcall's tag, as a managed group.
fn tagged(list: &str, family: &str, group: &DirectoryGroup) -> ManagedGroup {
    ManagedGroup {
        list: list.to_owned(),
        group_id: group.id.clone(),
        family: family.to_owned(),
        origin: GroupOrigin::Created,
        mail_nickname: group.mail_nickname.clone(),
        tagged: true,
    }
}

/// Decides about a group that holds a list's nickname and is not the list's managed group:
/// adopted when the family says so and it may be, else a conflict.
fn claim(config: &Config, list: &DesiredList, group: &DirectoryGroup, state: &mut ActualState) {
    let adopt = config
        .family(&list.family)
        .is_some_and(|family| family.adopt_existing);
    let refuse = |reason: &str| Conflict {
        list: list.key.clone(),
        mail_nickname: list.mail_nickname.clone(),
        group_id: group.id.clone(),
        reason: reason.to_owned(),
    };
    let conflict = if let Some(tag) = group
        .tag
        .as_ref()
        .filter(|t| !t.list.eq_ignore_ascii_case(&list.key))
    {
        Some(refuse(&format!(
            "it is tagged as rollcall's list `{}`",
            tag.list
        )))
    } else if !group.unified {
        Some(refuse(
            "it is not a Microsoft 365 group (a security group or distribution list)",
        ))
    } else if !adopt {
        Some(refuse(&format!(
            "it exists and is not managed; set adopt_existing = true on family `{}` to take it over",
            list.family
        )))
    } else {
        None
    };
    match conflict {
        Some(conflict) => state.conflicts.push(conflict),
        None => {
            let adopted = ManagedGroup {
                list: list.key.clone(),
                group_id: group.id.clone(),
                family: list.family.clone(),
                origin: GroupOrigin::Adopted,
                mail_nickname: group.mail_nickname.clone(),
                tagged: false,
            };
            state.managed.insert(adopted.list.clone(), adopted.clone());
            state.adopted.push(adopted);
        }
    }
}

/// A managed group's list, with its members and owners.
fn actual_list(group: &ManagedGroup, members: Vec<ObjectId>, owners: Vec<ObjectId>) -> ActualList {
    ActualList {
        key: group.list.clone(),
        family: group.family.clone(),
        group_id: group.group_id.clone(),
        title: None,
        members: Members::from(members),
        owners: Members::from(owners),
    }
}

/// Every member and every owner of each group, read completely (the members' and the owners'
/// listings side by side). A group Microsoft Graph refuses for good (404: deleted since it
/// was listed; 403) holds its list, in `refused`; any other failure stops the run, since a
/// read cut short is never "fewer members" or "fewer owners".
async fn read_groups(
    graph: &GraphClient,
    managed: &[&ManagedGroup],
    refused: &mut BTreeMap<String, Hold>,
) -> Result<Vec<ActualList>, Stop> {
    let ids: Vec<String> = managed.iter().map(|g| g.group_id.clone()).collect();
    let (members, owners) = futures::join!(graph.members_of(&ids), graph.owners_of(&ids));
    let mut lists = Vec::with_capacity(managed.len());
    for ((group, members), owners) in managed.iter().zip(members).zip(owners) {
        let read = members
            .map_err(|e| ("members", e))
            .and_then(|members| Ok((members, owners.map_err(|e| ("owners", e))?)));
        match read {
            Ok((members, owners)) => lists.push(actual_list(group, members, owners)),
            Err((
                what,
                GraphError::Status {
                    status: status @ (403 | 404),
                    code,
                    message,
                    ..
                },
            )) => {
                tracing::warn!(list = %group.list, group = %group.group_id, status, "the group's {what} cannot be read; the list is held");
                refused.insert(
                    group.list.clone(),
                    Hold {
                        family: group.family.clone(),
                        reason: HoldReason::Refused {
                            status,
                            code,
                            message,
                        },
                    },
                );
            }
            Err((what, e)) => {
                return Err(Stop::graph(
                    format!(
                        "read the {what} of list `{}` ({})",
                        group.list, group.group_id
                    ),
                    e,
                ));
            }
        }
    }
    Ok(lists)
}

/// A list's members or owners as the mirror and the owner mirror store them.
fn ids(people: &Members) -> Vec<String> {
    people.as_slice().iter().map(|m| m.to_string()).collect()
}

/// Brings the mirror and the owner mirror in line with what was just read, rewriting only
/// lists that differ. Groups adopted by this read are left out: they are recorded with the
/// plan.
async fn mirror(store: &Store, unrecorded: &[&str], lists: &[ActualList]) -> Result<(), Stop> {
    let members = store.mirror().await.map_err(Stop::store)?;
    let owners = store.owner_mirror().await.map_err(Stop::store)?;
    // A list without rows is missing from what the store returns: the same as an empty one.
    let differs = |recorded: &HashMap<String, Vec<String>>, key: &str, read: &[String]| {
        recorded.get(key).map_or(&[][..], Vec::as_slice) != read
    };
    for list in lists {
        if unrecorded.contains(&list.key.as_str()) {
            continue;
        }
        let read = ids(&list.members);
        if differs(&members, &list.key, &read) {
            store
                .replace_members(&list.key, &read)
                .await
                .map_err(Stop::store)?;
        }
        let read = ids(&list.owners);
        if differs(&owners, &list.key, &read) {
            store
                .replace_owners(&list.key, &read)
                .await
                .map_err(Stop::store)?;
        }
    }
    Ok(())
}
