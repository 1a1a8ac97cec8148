//! The delta read: the mirror and the owner mirror brought up to date by one `/groups/delta`
//! round, and the round after a run's writes that keeps them current.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{
    ActualState, GROUPS_SCOPE, ReadMode, actual_list, actual_of, claim, gone, read_groups,
    record_read, tagged, titles,
};
use crate::config::Config;
use crate::graph::{GraphClient, GroupsDelta};
use crate::plan::{DesiredList, ObjectId};
use crate::reconcile::stop::Stop;
use crate::store::{GroupOrigin, ManagedGroup, MirrorChange, Store};

/// The delta read: the managed groups the store records, their mirror and owner mirror
/// brought up to date by `round`; the nicknames of desired lists without a group looked up
/// (batched) for adoption, conflicts and groups rollcall tagged but never recorded. Groups
/// read in full here (found by nickname) have their owners read too.
pub(super) async fn read_delta(
    config: &Config,
    store: &Store,
    graph: &GraphClient,
    desired: &[DesiredList],
    repair: bool,
    round: GroupsDelta,
) -> Result<ActualState, Stop> {
    let mut state = ActualState {
        read: Some(ReadMode::Delta),
        ..ActualState::default()
    };
    let recorded = store.groups().await.map_err(Stop::store)?;
    let mut mirror = store.mirror().await.map_err(Stop::store)?;
    let mut owner_mirror = store.owner_mirror().await.map_err(Stop::store)?;
    let (changes, forget) = changes_of(&round, &recorded);
    state.titles = store.titles().await.map_err(Stop::store)?;
    let retitled = titles::of_round(&round, &recorded, &state.titles);
    state.titles.extend(retitled.iter().cloned());
    let nicknames_now: HashMap<&str, &String> = round
        .groups
        .iter()
        .filter_map(|c| Some((c.id.as_str(), c.mail_nickname.as_ref()?)))
        .collect();
    for mut group in recorded {
        if forget.contains(&group.list) {
            tracing::warn!(list = %group.list, group = %group.group_id, "the list's group was deleted in Microsoft 365; it is forgotten");
            state.warnings.push(gone(&group));
            mirror.remove(&group.list);
            owner_mirror.remove(&group.list);
            continue;
        }
        if let Some(nickname) = nicknames_now.get(group.group_id.to_ascii_lowercase().as_str()) {
            group.mail_nickname.clone_from(nickname);
        }
        state.managed.insert(group.list.clone(), group);
    }
    let changed_groups = changes.len();

    // Lists without a group: is their nickname free, ours, adoptable or someone else's?
    let missing: Vec<&DesiredList> = desired
        .iter()
        .filter(|l| !state.managed.contains_key(&l.key))
        .collect();
    let nicknames: Vec<String> = missing.iter().map(|l| l.mail_nickname.clone()).collect();
    let mut fresh: Vec<ManagedGroup> = Vec::new();
    for (list, found) in missing.iter().zip(graph.find_groups(&nicknames).await) {
        let found = found
            .map_err(|e| Stop::graph(format!("look up the nickname of list `{}`", list.key), e))?;
        let Some(group) = found else { continue };
        if state.managed.values().any(|m| m.group_id == group.id) {
            continue;
        }
        state
            .titles
            .insert(list.key.clone(), titles::of_group(&group));
        match &group.tag {
            Some(tag) if tag.list.eq_ignore_ascii_case(&list.key) => {
                // Rollcall's own group, unknown to the store (a create never recorded).
                let managed = tagged(&tag.list, &tag.family, &group);
                fresh.push(managed.clone());
                state.managed.insert(managed.list.clone(), managed);
            }
            _ => {
                let adopted = state.adopted.len();
                claim(config, list, &group, &mut state);
                fresh.extend(state.adopted.get(adopted).cloned());
            }
        }
    }
    let fresh_refs: Vec<&ManagedGroup> = fresh.iter().collect();
    let mut read = read_groups(graph, &fresh_refs, &mut state.refused).await?;

    let mut lists = Vec::with_capacity(state.managed.len());
    let fresh_lists: HashSet<&str> = fresh.iter().map(|g| g.list.as_str()).collect();
    let by_list: HashMap<&str, &MirrorChange> =
        changes.iter().map(|c| (c.list.as_str(), c)).collect();
    for group in state.managed.values() {
        if fresh_lists.contains(group.list.as_str()) {
            continue;
        }
        let change = by_list.get(group.list.as_str());
        let members = brought_up_to_date(
            mirror.remove(&group.list),
            change.map(|c| (&c.adds, &c.removes)),
        )
        .map_err(|e| no_object_id(&group.list, "mirror", "member", &e))?;
        let owners = brought_up_to_date(
            owner_mirror.remove(&group.list),
            change.map(|c| (&c.owner_adds, &c.owner_removes)),
        )
        .map_err(|e| no_object_id(&group.list, "owner mirror", "owner", &e))?;
        lists.push(actual_list(group, members, owners));
    }
    if repair {
        // The round first: it may forget a list whose group was deleted, and a group found
        // for that list since must not be forgotten with it.
        store
            .apply_delta_round(&changes, &forget, GROUPS_SCOPE, &round.delta_link)
            .await
            .map_err(Stop::store)?;
        store.set_titles(&retitled).await.map_err(Stop::store)?;
        let recovered = fresh.iter().filter(|g| g.origin == GroupOrigin::Created);
        for (group, list) in
            recovered.filter_map(|g| Some((g, read.iter().find(|l| l.key == g.list)?)))
        {
            store.upsert_group(group).await.map_err(Stop::store)?;
            record_read(store, list).await?;
        }
    }
    tracing::info!(
        changed_groups,
        gone = forget.len(),
        looked_up = nicknames.len(),
        read_in_full = fresh.len(),
        "managed groups brought up to date by a delta round"
    );
    lists.append(&mut read);
    state.actual = actual_of(lists, &state.titles)?;
    Ok(state)
}

/// After a run's writes: one more delta round into the mirror, so that the next run's round
/// does not carry this run's own changes again. Best effort: on any failure the stored link
/// stays and the next run replays from it.
pub async fn settle(store: &Store, graph: &GraphClient) {
    let outcome = async {
        let Some(link) = store.delta_link(GROUPS_SCOPE).await? else {
            return Ok(0);
        };
        let round = graph.groups_delta(&link).await?;
        let recorded = store.groups().await?;
        let (changes, forget) = changes_of(&round, &recorded);
        for list in &forget {
            tracing::warn!(list = %list, "the list's group was deleted in Microsoft 365; it is forgotten");
        }
        store
            .apply_delta_round(&changes, &forget, GROUPS_SCOPE, &round.delta_link)
            .await?;
        let known = store.titles().await?;
        store
            .set_titles(&titles::of_round(&round, &recorded, &known))
            .await?;
        anyhow::Ok(changes.len())
    }
    .await;
    match outcome {
        Ok(groups) => tracing::debug!(groups, "mirror settled after the run's writes"),
        Err(e) => tracing::warn!(
            error = %format!("{e:#}"),
            "could not bring the mirror up to date after the run's writes; the next run reads the changes again"
        ),
    }
}

/// A delta round's changes to managed groups, by list, and the lists whose group is gone.
fn changes_of(round: &GroupsDelta, recorded: &[ManagedGroup]) -> (Vec<MirrorChange>, Vec<String>) {
    let by_id: HashMap<String, &str> = recorded
        .iter()
        .map(|g| (g.group_id.to_ascii_lowercase(), g.list.as_str()))
        .collect();
    let mut changes = Vec::new();
    let mut forget = Vec::new();
    for change in &round.groups {
        let Some(&list) = by_id.get(&change.id) else {
            continue;
        };
        let texts = |ids: &BTreeSet<ObjectId>| ids.iter().map(ToString::to_string).collect();
        if change.deleted {
            forget.push(list.to_owned());
        } else if !change.added.is_empty()
            || !change.removed.is_empty()
            || !change.owners_added.is_empty()
            || !change.owners_removed.is_empty()
        {
            changes.push(MirrorChange {
                list: list.to_owned(),
                adds: texts(&change.added),
                removes: texts(&change.removed),
                owner_adds: texts(&change.owners_added),
                owner_removes: texts(&change.owners_removed),
            });
        }
    }
    (changes, forget)
}

/// A list's mirrored ids with a round's adds and removes applied.
fn brought_up_to_date(
    mirrored: Option<Vec<String>>,
    change: Option<(&Vec<String>, &Vec<String>)>,
) -> Result<Vec<ObjectId>, crate::plan::ParseObjectIdError> {
    let mut ids: HashSet<String> = mirrored.unwrap_or_default().into_iter().collect();
    if let Some((adds, removes)) = change {
        ids.extend(adds.iter().cloned());
        for gone in removes {
            ids.remove(gone);
        }
    }
    ids.iter().map(|m| m.parse::<ObjectId>()).collect()
}

/// The stop for a mirror row that holds no object id.
fn no_object_id(list: &str, mirror: &str, what: &str, error: &dyn std::fmt::Display) -> Stop {
    Stop::failed(anyhow::anyhow!(
        "the {mirror} of list `{list}` holds a {what} that is no object id ({error}); \
         `rollcall rebuild --state-only` reads it afresh"
    ))
}
