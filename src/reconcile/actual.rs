//! Actual membership: which groups rollcall manages (created, tagged, adopted), found again
//! in Microsoft 365, and every member of each, read completely.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::Stop;
use crate::config::Config;
use crate::graph::{DirectoryGroup, GraphClient};
use crate::plan::{Actual, ActualList, DesiredList, Members};
use crate::store::{GroupOrigin, ManagedGroup, Store};

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
    /// Things operators should know (a managed group deleted outside rollcall, …).
    pub warnings: Vec<String>,
}

/// Reads the managed groups and their members. The state store's record of managed groups is
/// checked against Microsoft 365: groups carrying rollcall's tag are managed even if the store
/// forgot them, groups that are gone are forgotten. With `repair`, the store is brought in
/// line (groups found, groups gone, the mirror); without, nothing is written.
pub async fn read(
    config: &Config,
    store: &Store,
    graph: &GraphClient,
    desired: &[DesiredList],
    repair: bool,
) -> Result<ActualState, Stop> {
    let mut state = ActualState::default();
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
                state.warnings.push(format!(
                    "the group of list `{}` ({}) no longer exists in Microsoft 365; it is \
                     forgotten and, if its family creates groups, created again",
                    group.list, group.group_id
                ));
                if repair {
                    store.delete_group(&group.list).await.map_err(Stop::store)?;
                }
            }
        }
    }
    for group in &groups {
        let Some(tag) = &group.tag else { continue };
        if state.managed.contains_key(&tag.list)
            || state.managed.values().any(|m| m.group_id == group.id)
        {
            continue;
        }
        // Tagged by rollcall but unknown to the store: a lost state database, or a create
        // whose outcome was never recorded.
        let managed = ManagedGroup {
            list: tag.list.clone(),
            group_id: group.id.clone(),
            family: tag.family.clone(),
            origin: GroupOrigin::Created,
            mail_nickname: group.mail_nickname.clone(),
            tagged: true,
        };
        if repair {
            store.upsert_group(&managed).await.map_err(Stop::store)?;
        }
        state.managed.insert(managed.list.clone(), managed);
    }

    for list in desired {
        if state.managed.contains_key(&list.key) {
            continue;
        }
        let Some(group) = by_nickname.get(&list.mail_nickname.to_lowercase()) else {
            continue;
        };
        let adopt = config
            .family(&list.family)
            .is_some_and(|family| family.adopt_existing);
        let refuse = |reason: &str| Conflict {
            list: list.key.clone(),
            mail_nickname: list.mail_nickname.clone(),
            group_id: group.id.clone(),
            reason: reason.to_owned(),
        };
        let conflict = if let Some(tag) = &group.tag {
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

    let managed: Vec<&ManagedGroup> = state.managed.values().collect();
    let ids: Vec<String> = managed.iter().map(|g| g.group_id.clone()).collect();
    let members = graph.members_of(&ids).await;
    let mut lists = Vec::with_capacity(managed.len());
    for (group, members) in managed.iter().zip(members) {
        let members = members.map_err(|e| {
            Stop::graph(
                format!(
                    "read the members of list `{}` ({})",
                    group.list, group.group_id
                ),
                e,
            )
        })?;
        lists.push(ActualList {
            key: group.list.clone(),
            family: group.family.clone(),
            group_id: group.group_id.clone(),
            members: Members::from(members),
        });
    }
    if repair {
        let unrecorded: Vec<&str> = state.adopted.iter().map(|g| g.list.as_str()).collect();
        mirror(store, &unrecorded, &lists).await?;
    }
    state.actual = Actual::new(lists).map_err(|e| Stop::failed(anyhow::anyhow!("{e}")))?;
    Ok(state)
}

/// Brings the mirror in line with what was just read, rewriting only lists that differ.
/// Groups adopted by this read are left out: they are recorded with the plan.
async fn mirror(store: &Store, unrecorded: &[&str], lists: &[ActualList]) -> Result<(), Stop> {
    let recorded = store.mirror().await.map_err(Stop::store)?;
    for list in lists {
        if unrecorded.contains(&list.key.as_str()) {
            continue;
        }
        let read: Vec<String> = list
            .members
            .as_slice()
            .iter()
            .map(|m| m.to_string())
            .collect();
        let same = recorded.get(&list.key).is_some_and(|have| {
            have.len() == read.len() && have.iter().zip(&read).all(|(a, b)| a == b)
        });
        if !same {
            store
                .replace_members(&list.key, &read)
                .await
                .map_err(Stop::store)?;
        }
    }
    Ok(())
}
