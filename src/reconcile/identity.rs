//! Identity resolution: member keys (upn, mail, employee_id, object_id) to directory object
//! ids, through a mirror of the directory in the state store kept fresh by `/users/delta`,
//! with per-user lookups only for keys the mirror does not know.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Utc;

use super::stop::Stop;
use crate::config::MemberKey;
use crate::graph::{DirectoryUser, GraphClient, GraphError};
use crate::plan::ObjectId;
use crate::source::Member;
use crate::store::{Identity, Store};

/// The state store's scope name for the users delta link.
const USERS_SCOPE: &str = "users";

/// What a refresh of the directory mirror read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refresh {
    /// Users in the delta round (all of them on a full read).
    pub users: usize,
    /// Whether it was a full read.
    pub full: bool,
    /// Whether a stored delta link was not trusted because the identities it extends were
    /// lost (none left), so the whole directory was read instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost_rows: bool,
}

impl Refresh {
    /// What operators should know about this refresh, for the run's warnings.
    pub fn warning(&self) -> Option<String> {
        self.lost_rows.then(|| LOST_IDENTITIES.to_owned())
    }
}

/// The warning for a users delta link found without the identities it extends.
const LOST_IDENTITIES: &str = "the directory mirror (identities) was empty although the users \
     delta link says it is up to date (rows lost from the state database); the link was not \
     trusted and the whole directory was read again";

/// Brings the directory mirror up to date: one delta round from the stored link, or a full
/// read when there is none, when it expired, when `full` asks for one, or when the
/// identities the link extends are gone (DESIGN.md: a run trusts a delta link only while
/// the state it extends is whole).
pub async fn refresh(store: &Store, graph: &GraphClient, full: bool) -> Result<Refresh, Stop> {
    let mut lost_rows = false;
    let link = if full {
        None
    } else {
        store.delta_link(USERS_SCOPE).await.map_err(Stop::store)?
    };
    let link = match link {
        Some(_) if !store.has_identities().await.map_err(Stop::store)? => {
            tracing::warn!("{LOST_IDENTITIES}");
            lost_rows = true;
            None
        }
        link => link,
    };
    let delta = match graph.users_delta(link.as_deref()).await {
        Err(GraphError::DeltaExpired) => {
            tracing::info!("the users delta link expired; reading the whole directory again");
            graph.users_delta(None).await
        }
        other => other,
    }
    .map_err(|e| Stop::graph("read the directory's users", e))?;
    let rows: Vec<Identity> = delta
        .users
        .iter()
        .filter(|u| !u.removed)
        .flat_map(identities_of)
        .collect();
    if delta.full {
        store.replace_identities(&rows).await.map_err(Stop::store)?;
    } else {
        // A changed user may have a new UPN or mail: forget the old keys before recording
        // the current ones, and forget deleted users altogether.
        let changed: Vec<String> = delta.users.iter().map(|u| u.id.to_string()).collect();
        store.forget_objects(&changed).await.map_err(Stop::store)?;
        store.upsert_identities(&rows).await.map_err(Stop::store)?;
    }
    store
        .set_delta_link(USERS_SCOPE, &delta.delta_link)
        .await
        .map_err(Stop::store)?;
    Ok(Refresh {
        users: delta.users.len(),
        full: delta.full,
        lost_rows,
    })
}

/// Every key a user can be named by, each resolving to the user.
fn identities_of(user: &DirectoryUser) -> Vec<Identity> {
    let checked_at = Utc::now();
    let id = user.id.to_string();
    let keys = [
        (MemberKey::ObjectId, Some(id.clone())),
        (MemberKey::Upn, user.user_principal_name.clone()),
        (MemberKey::Mail, user.mail.clone()),
        (MemberKey::EmployeeId, user.employee_id.clone()),
    ];
    keys.into_iter()
        .filter_map(|(kind, value)| {
            let value = kind.normalize(value.as_deref()?);
            (!value.is_empty()).then(|| Identity {
                kind,
                value,
                object_id: Some(id.clone()),
                checked_at,
            })
        })
        .collect()
}

/// Member keys resolved to object ids.
#[derive(Debug, Default)]
pub struct Resolved {
    ids: HashMap<Member, ObjectId>,
}

impl Resolved {
    /// The member's object id, if the directory knows them.
    pub fn get(&self, member: &Member) -> Option<ObjectId> {
        self.ids.get(member).copied()
    }

    /// How many keys resolved.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Resolves every member key from the mirror; keys it does not know are looked up one by
/// one (in batches) and recorded, found or not. Keys still unknown are left out: the caller
/// reports them as unresolved and the next run tries again.
pub async fn resolve(
    store: &Store,
    graph: &GraphClient,
    members: &BTreeSet<&Member>,
) -> Result<Resolved, Stop> {
    let mut by_kind: BTreeMap<MemberKey, Vec<String>> = BTreeMap::new();
    for member in members {
        by_kind
            .entry(member.key)
            .or_default()
            .push(member.value.clone());
    }
    let mut resolved = Resolved::default();
    for (kind, values) in by_kind {
        let known = store
            .lookup_identities(kind, &values)
            .await
            .map_err(Stop::store)?;
        let mut found: HashMap<String, ObjectId> = HashMap::new();
        for identity in known {
            if let Some(id) = identity.object_id.as_deref().and_then(|id| id.parse().ok()) {
                found.insert(identity.value, id);
            }
        }
        let missing: Vec<String> = values
            .iter()
            .filter(|v| !found.contains_key(*v))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let looked_up = lookup(store, graph, kind, &missing).await?;
            found.extend(looked_up);
        }
        for value in values {
            if let Some(id) = found.get(&value) {
                resolved.ids.insert(Member { key: kind, value }, *id);
            }
        }
    }
    Ok(resolved)
}

/// Per-user lookups for keys the mirror does not know; records the answers.
async fn lookup(
    store: &Store,
    graph: &GraphClient,
    kind: MemberKey,
    values: &[String],
) -> Result<HashMap<String, ObjectId>, Stop> {
    let users = graph.find_users(kind, values).await.map_err(|e| {
        Stop::graph(
            format!("look up {} {} keys", values.len(), kind.as_str()),
            e,
        )
    })?;
    let mut rows: Vec<Identity> = users.iter().flat_map(identities_of).collect();
    let found: HashMap<String, ObjectId> = rows
        .iter()
        .filter(|i| i.kind == kind)
        .filter_map(|i| Some((i.value.clone(), i.object_id.as_deref()?.parse().ok()?)))
        .collect();
    let checked_at = Utc::now();
    rows.extend(
        values
            .iter()
            .filter(|v| !found.contains_key(*v))
            .map(|value| Identity {
                kind,
                value: value.clone(),
                object_id: None,
                checked_at,
            }),
    );
    store.upsert_identities(&rows).await.map_err(Stop::store)?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_known_by_every_key_it_has_normalised() {
        let user = DirectoryUser {
            id: "00000000-0000-0000-0000-0000000000aa".parse().unwrap(),
            user_principal_name: Some(" A.Student@Example.AC.UK ".into()),
            mail: None,
            employee_id: Some("E123".into()),
            removed: false,
        };
        let keys: Vec<(MemberKey, String)> = identities_of(&user)
            .into_iter()
            .map(|i| (i.kind, i.value))
            .collect();
        assert_eq!(
            keys,
            vec![
                (
                    MemberKey::ObjectId,
                    "00000000-0000-0000-0000-0000000000aa".to_owned()
                ),
                (MemberKey::Upn, "a.student@example.ac.uk".to_owned()),
                (MemberKey::EmployeeId, "E123".to_owned()),
            ]
        );
    }
}
