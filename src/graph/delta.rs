//! `/groups/delta`: a link from now (`$deltatoken=latest`) to start from after a full read,
//! and rounds from a stored link, every page followed and a group spread over several pages
//! merged by id (GRAPH.md "Delta").

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::error::GraphError;
use super::groups::object_id;
use super::pages::follow;
use super::transport::{Request, Transport};
use super::{GroupChange, GroupsDelta};
use crate::plan::ObjectId;

/// What a groups delta round reads: members, owners, and the names a managed group is known
/// by.
const GROUPS_DELTA_SELECT: &str = "mailNickname,displayName,description,visibility,members,owners";

/// A groups delta link that starts from now: one request, no group read. Taken before a full
/// read of the groups, so that changes made while the read runs come in the next round.
pub(crate) async fn groups_delta_start(transport: &Transport) -> Result<String, GraphError> {
    let first = Request::get(transport.url(
        &["groups", "delta"],
        &[("$select", GROUPS_DELTA_SELECT), ("$deltatoken", "latest")],
    ));
    let request = first.describe();
    let reply = transport.send(&first).await?;
    follow(transport, first, reply, |_| Ok(()))
        .await?
        .ok_or_else(|| no_delta_link(&request))
}

/// One groups delta round from `link`: every group that changed since, merged by id.
pub(crate) async fn groups_delta(
    transport: &Transport,
    link: &str,
) -> Result<GroupsDelta, GraphError> {
    // A link that is not for this endpoint (the configuration changed since it was stored)
    // cannot be used: start over, as for an expired one.
    let first = Request::get(transport.link(link).ok_or(GraphError::DeltaExpired)?);
    let request = first.describe();
    let reply = transport.send(&first).await?;
    let mut merged = Merged::default();
    let delta_link = follow(transport, first, reply, |items| {
        for item in &items {
            merged.take(item, &request)?;
        }
        Ok(())
    })
    .await?
    .ok_or_else(|| no_delta_link(&request))?;
    Ok(GroupsDelta {
        groups: merged.groups,
        delta_link,
    })
}

fn no_delta_link(request: &str) -> GraphError {
    GraphError::Other(format!(
        "{request}: the last page has no @odata.deltaLink; the round is incomplete"
    ))
}

/// Groups of a round, merged by id in the order first seen.
#[derive(Debug, Default)]
struct Merged {
    groups: Vec<GroupChange>,
    by_id: HashMap<String, usize>,
}

impl Merged {
    /// Takes one group object of a page. The same group may come again on a later page with
    /// more of its members or owners; one seen twice counts as its last appearance says.
    fn take(&mut self, item: &Value, request: &str) -> Result<(), GraphError> {
        let id = item["id"].as_str().unwrap_or_default().to_ascii_lowercase();
        if id.is_empty() {
            return Err(GraphError::Other(format!(
                "{request}: a group without an `id` in the reply"
            )));
        }
        let slot = *self.by_id.entry(id.clone()).or_insert_with(|| {
            self.groups.push(GroupChange {
                id,
                mail_nickname: None,
                display_name: None,
                description: None,
                visibility: None,
                added: BTreeSet::new(),
                removed: BTreeSet::new(),
                owners_added: BTreeSet::new(),
                owners_removed: BTreeSet::new(),
                deleted: false,
            });
            self.groups.len() - 1
        });
        let group = &mut self.groups[slot];
        if item.get("@removed").is_some() {
            group.deleted = true;
            return Ok(());
        }
        if let Some(nickname) = item["mailNickname"].as_str() {
            group.mail_nickname = Some(nickname.to_owned());
        }
        if let Some(name) = item["displayName"].as_str() {
            group.display_name = Some(name.to_owned());
        }
        if let Some(description) = item.get("description") {
            group.description = Some(
                description
                    .as_str()
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned),
            );
        }
        if let Ok(visibility) = serde_json::from_value(item["visibility"].clone()) {
            group.visibility = Some(visibility);
        }
        // Owners may be users or service principals (an app that owns the group): every one
        // is an owner, whatever its type.
        for entry in item["owners@delta"].as_array().into_iter().flatten() {
            let owner: ObjectId = object_id(entry, request)?;
            let removed = entry.get("@removed").is_some();
            note(
                &mut group.owners_added,
                &mut group.owners_removed,
                owner,
                removed,
            );
        }
        let Some(members) = item["members@delta"].as_array() else {
            return Ok(());
        };
        for member in members {
            // Microsoft 365 groups hold only users; anything else is no member of a list.
            let kind = member["@odata.type"]
                .as_str()
                .unwrap_or("#microsoft.graph.user");
            if !kind.eq_ignore_ascii_case("#microsoft.graph.user") {
                continue;
            }
            let user: ObjectId = object_id(member, request)?;
            let removed = member.get("@removed").is_some();
            note(&mut group.added, &mut group.removed, user, removed);
        }
        Ok(())
    }
}

/// Records one delta entry: the last word on an id (added or removed) is the one kept.
fn note(
    added: &mut BTreeSet<ObjectId>,
    removed: &mut BTreeSet<ObjectId>,
    id: ObjectId,
    gone: bool,
) {
    let (from, to) = if gone {
        (added, removed)
    } else {
        (removed, added)
    };
    from.remove(&id);
    to.insert(id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(n: u128) -> String {
        ObjectId::from_u128(n).to_string()
    }

    fn merged(items: &[Value]) -> Vec<GroupChange> {
        let mut merged = Merged::default();
        for item in items {
            merged.take(item, "GET /groups/delta").unwrap();
        }
        merged.groups
    }

    #[test]
    fn a_group_spread_over_pages_is_merged_by_id() {
        let groups = merged(&[
            json!({"id": "G1", "mailNickname": "a", "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": user(1)},
                {"@odata.type": "#microsoft.graph.user", "id": user(2), "@removed": {"reason": "deleted"}},
            ]}),
            json!({"id": "g2", "members@delta": []}),
            json!({"id": "g1", "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": user(3)},
                {"@odata.type": "#microsoft.graph.group", "id": user(9)},
            ]}),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].id, "g1");
        assert_eq!(groups[0].mail_nickname.as_deref(), Some("a"));
        let ids =
            |set: &BTreeSet<ObjectId>| set.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(ids(&groups[0].added), vec![user(1), user(3)]);
        assert_eq!(ids(&groups[0].removed), vec![user(2)]);
        assert!(!groups[0].deleted);
    }

    #[test]
    fn a_member_seen_twice_counts_as_last_seen_and_replays_change_nothing() {
        let page = json!({"id": "g", "members@delta": [
            {"id": user(1)},
            {"id": user(1), "@removed": {"reason": "deleted"}},
            {"id": user(2), "@removed": {"reason": "deleted"}},
            {"id": user(2)},
        ]});
        let once = merged(std::slice::from_ref(&page));
        let twice = merged(&[page.clone(), page]);
        assert_eq!(once, twice);
        assert_eq!(
            once[0].added.iter().copied().collect::<Vec<_>>(),
            vec![ObjectId::from_u128(2)]
        );
        assert_eq!(
            once[0].removed.iter().copied().collect::<Vec<_>>(),
            vec![ObjectId::from_u128(1)]
        );
    }

    #[test]
    fn owners_of_any_type_are_merged_across_pages_beside_members() {
        let groups = merged(&[
            json!({"id": "g1", "owners@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": user(1)},
                {"@odata.type": "#microsoft.graph.servicePrincipal", "id": user(2)},
                {"@odata.type": "#microsoft.graph.user", "id": user(3), "@removed": {"reason": "deleted"}},
            ], "members@delta": [{"id": user(7)}]}),
            json!({"id": "g2", "members@delta": [{"id": user(8)}]}),
            json!({"id": "G1", "owners@delta": [
                {"id": user(4)},
                {"@odata.type": "#microsoft.graph.servicePrincipal", "id": user(2), "@removed": {"reason": "deleted"}},
                {"id": user(3)},
            ]}),
        ]);
        let ids =
            |set: &BTreeSet<ObjectId>| set.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(groups.len(), 2);
        assert_eq!(
            ids(&groups[0].owners_added),
            vec![user(1), user(3), user(4)]
        );
        assert_eq!(ids(&groups[0].owners_removed), vec![user(2)]);
        assert_eq!(ids(&groups[0].added), vec![user(7)]);
        // Owners are not members, nor members owners.
        assert!(groups[0].removed.is_empty());
        assert!(groups[1].owners_added.is_empty() && groups[1].owners_removed.is_empty());
        assert_eq!(ids(&groups[1].added), vec![user(8)]);
    }

    #[test]
    fn an_owner_change_alone_comes_without_members_and_replays_change_nothing() {
        let page = json!({"id": "g", "owners@delta": [
            {"@odata.type": "#microsoft.graph.servicePrincipal", "id": user(5)},
            {"id": user(6), "@removed": {"reason": "deleted"}},
        ]});
        let once = merged(std::slice::from_ref(&page));
        assert_eq!(once, merged(&[page.clone(), page]));
        assert_eq!(
            once[0].owners_added.iter().copied().collect::<Vec<_>>(),
            vec![ObjectId::from_u128(5)]
        );
        assert_eq!(
            once[0].owners_removed.iter().copied().collect::<Vec<_>>(),
            vec![ObjectId::from_u128(6)]
        );
        assert!(once[0].added.is_empty() && once[0].removed.is_empty());
        let mut bad = Merged::default();
        assert!(
            bad.take(&json!({"id": "g", "owners@delta": [{"id": "nope"}]}), "GET")
                .is_err()
        );
    }

    #[test]
    fn the_round_selects_owners() {
        assert!(GROUPS_DELTA_SELECT.split(',').any(|p| p == "owners"));
        assert!(GROUPS_DELTA_SELECT.split(',').any(|p| p == "members"));
    }

    #[test]
    fn a_removed_group_is_deleted_and_bad_ids_are_errors() {
        let groups = merged(&[json!({"id": "g", "@removed": {"reason": "changed"}})]);
        assert!(groups[0].deleted);
        let mut merged = Merged::default();
        assert!(merged.take(&json!({"displayName": "x"}), "GET").is_err());
        assert!(
            merged
                .take(
                    &json!({"id": "g", "members@delta": [{"id": "not-an-id"}]}),
                    "GET"
                )
                .is_err()
        );
    }
}
