//! What the diff compares: desired lists (from sources), actual lists (managed groups in
//! Microsoft 365), and each family's policy.
//!
//! The constructors establish the invariants the diff relies on (members sorted and
//! unique, one list per key) so that callers cannot get them wrong and the diff can be a
//! linear merge with no hashing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{FamilyConfig, OnVanish, Visibility};

use super::ObjectId;

/// A list's members: sorted ascending, no duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members(Vec<ObjectId>);

impl Members {
    /// The members as a sorted, duplicate-free slice.
    pub fn as_slice(&self) -> &[ObjectId] {
        &self.0
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<ObjectId>> for Members {
    fn from(mut ids: Vec<ObjectId>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        Self(ids)
    }
}

impl FromIterator<ObjectId> for Members {
    fn from_iter<I: IntoIterator<Item = ObjectId>>(ids: I) -> Self {
        Self::from(ids.into_iter().collect::<Vec<_>>())
    }
}

/// A list as the sources want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredList {
    /// The list key (e.g. `mod-cs10120-2026`).
    pub key: String,
    /// The family whose source produced it.
    pub family: String,
    /// The group's mailNickname, from the family's template.
    pub mail_nickname: String,
    /// The group's display name, from the family's template.
    pub display_name: String,
    /// The group's description, when the family's template yields one.
    pub description: Option<String>,
    /// Whether the display name follows the sources: false when it only fell back to the
    /// list key because no source gave one (an empty value never retitles a group).
    pub titled: bool,
    /// Who should be a member.
    pub members: Members,
    /// Who should own the group, when rollcall manages the list's owners (its family names
    /// fixed owners, one of its sources carries owner rows, or an override names owners);
    /// `None`: the group's owners are left as they are.
    pub owners: Option<Members>,
}

/// A managed group (created or adopted by rollcall) as Microsoft 365 has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualList {
    /// The list key from the group's `org.rollcall.managed` tag.
    pub key: String,
    /// The family from the group's tag; decides what happens when the list vanishes.
    pub family: String,
    /// The group's directory object id, as Graph spells it.
    pub group_id: String,
    /// The group's title and description as last read, when known.
    pub title: Option<Title>,
    /// Who is a member now.
    pub members: Members,
    /// Who owns the group now (users or service principals).
    pub owners: Members,
}

/// A group's title and description, and its visibility: as last seen (`None`: not known),
/// or, in a retitle, to set (`None`: left as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Title {
    /// displayName.
    pub display_name: String,
    /// description; `None` when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
}

/// Two lists share a key, so the diff could not tell which one a group should follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuplicateList {
    /// Two desired lists have the same key.
    #[error(
        "list `{key}` comes from both family `{first}` and family `{second}`; a list belongs \
         to one family: change the `list` value in one of their sources"
    )]
    Desired {
        /// The shared list key.
        key: String,
        /// One family that produced it.
        first: String,
        /// The other family that produced it.
        second: String,
    },
    /// Two managed groups carry the same list key in their tags.
    #[error(
        "groups {first} and {second} both carry rollcall's tag for list `{key}`; remove the \
         `org.rollcall.managed` extension from the group rollcall should not manage, then run \
         `rollcall rebuild --state-only`"
    )]
    Actual {
        /// The shared list key.
        key: String,
        /// One group's id.
        first: String,
        /// The other group's id.
        second: String,
    },
}

/// Desired lists, one per key, ordered by key.
#[derive(Debug, Clone, Default)]
pub struct Desired(Vec<DesiredList>);

impl Desired {
    /// Orders the lists by key; two lists with one key are an error naming both families.
    pub fn new(mut lists: Vec<DesiredList>) -> Result<Self, DuplicateList> {
        lists.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        if let Some(pair) = lists.windows(2).find(|pair| pair[0].key == pair[1].key) {
            return Err(DuplicateList::Desired {
                key: pair[0].key.clone(),
                first: pair[0].family.clone(),
                second: pair[1].family.clone(),
            });
        }
        Ok(Self(lists))
    }

    /// The lists, ordered by key.
    pub fn lists(&self) -> &[DesiredList] {
        &self.0
    }
}

/// Managed groups, one per list key, ordered by key.
#[derive(Debug, Clone, Default)]
pub struct Actual(Vec<ActualList>);

impl Actual {
    /// Orders the groups by list key; two groups tagged with one key are an error naming both.
    pub fn new(mut lists: Vec<ActualList>) -> Result<Self, DuplicateList> {
        lists.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        if let Some(pair) = lists.windows(2).find(|pair| pair[0].key == pair[1].key) {
            return Err(DuplicateList::Actual {
                key: pair[0].key.clone(),
                first: pair[0].group_id.clone(),
                second: pair[1].group_id.clone(),
            });
        }
        Ok(Self(lists))
    }

    /// The groups, ordered by list key.
    pub fn lists(&self) -> &[ActualList] {
        &self.0
    }
}

/// What a family lets rollcall do with its lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Create a group for a list that has none.
    pub create: bool,
    /// What happens to a managed group whose list no source mentions any more.
    pub on_vanish: OnVanish,
    /// How long a member the sources no longer name stays (zero: removed at once).
    pub remove_after: std::time::Duration,
    /// The visibility the family sets explicitly, which existing groups follow; `None`: new
    /// groups are Private and existing ones are left as they are.
    pub visibility: Option<Visibility>,
}

impl Policy {
    /// The policy for a family the configuration does not know (e.g. a group tagged by a
    /// family since removed): create nothing, remove nothing.
    pub const UNKNOWN_FAMILY: Policy = Policy {
        create: false,
        on_vanish: OnVanish::Keep,
        remove_after: std::time::Duration::ZERO,
        visibility: None,
    };
}

impl From<&FamilyConfig> for Policy {
    fn from(family: &FamilyConfig) -> Self {
        Self {
            create: family.create,
            on_vanish: family.on_vanish,
            remove_after: family.remove_after,
            visibility: family.visibility,
        }
    }
}

/// Each family's policy, by family name.
#[derive(Debug, Clone, Default)]
pub struct Policies(BTreeMap<String, Policy>);

impl Policies {
    /// The policies of the configured families.
    pub fn from_families(families: &[FamilyConfig]) -> Self {
        families
            .iter()
            .map(|family| (family.name.clone(), Policy::from(family)))
            .collect()
    }

    /// The family's policy, or [`Policy::UNKNOWN_FAMILY`] when it is not configured.
    pub fn get(&self, family: &str) -> Policy {
        self.0
            .get(family)
            .copied()
            .unwrap_or(Policy::UNKNOWN_FAMILY)
    }
}

impl FromIterator<(String, Policy)> for Policies {
    fn from_iter<I: IntoIterator<Item = (String, Policy)>>(pairs: I) -> Self {
        Self(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> ObjectId {
        ObjectId::from_u128(n)
    }

    fn desired(key: &str, family: &str) -> DesiredList {
        DesiredList {
            key: key.into(),
            family: family.into(),
            mail_nickname: key.into(),
            display_name: key.into(),
            description: None,
            titled: true,
            members: Members::default(),
            owners: None,
        }
    }

    fn actual(key: &str, group_id: &str) -> ActualList {
        ActualList {
            key: key.into(),
            family: "modules".into(),
            group_id: group_id.into(),
            title: None,
            members: Members::default(),
            owners: Default::default(),
        }
    }

    #[test]
    fn members_are_sorted_and_unique() {
        let members = Members::from(vec![id(3), id(1), id(3), id(2), id(1)]);
        assert_eq!(members.as_slice(), &[id(1), id(2), id(3)]);
        assert_eq!(members.len(), 3);
        let collected: Members = [id(9), id(9)].into_iter().collect();
        assert_eq!(collected.as_slice(), &[id(9)]);
    }

    #[test]
    fn desired_lists_are_ordered_by_key() {
        let lists = Desired::new(vec![desired("b", "modules"), desired("a", "modules")]).unwrap();
        let keys: Vec<_> = lists.lists().iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn duplicate_desired_key_names_both_families() {
        let error =
            Desired::new(vec![desired("x", "modules"), desired("x", "departments")]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`x`"), "{message}");
        assert!(message.contains("modules") && message.contains("departments"));
    }

    #[test]
    fn duplicate_actual_key_names_both_groups() {
        let error = Actual::new(vec![actual("x", "g-1"), actual("x", "g-2")]).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("g-1") && message.contains("g-2"),
            "{message}"
        );
    }

    #[test]
    fn policies_follow_the_family_config() {
        let family: FamilyConfig =
            toml::from_str("name = \"departments\"\ncreate = false\non_vanish = \"empty\"")
                .unwrap();
        let policies = Policies::from_families(&[family]);
        assert_eq!(
            policies.get("departments"),
            Policy {
                create: false,
                on_vanish: OnVanish::Empty,
                ..Policy::UNKNOWN_FAMILY
            }
        );
    }

    #[test]
    fn unknown_family_neither_creates_nor_empties() {
        let policies = Policies::from_families(&[]);
        assert_eq!(
            policies.get("gone"),
            Policy {
                create: false,
                on_vanish: OnVanish::Keep,
                ..Policy::UNKNOWN_FAMILY
            }
        );
    }
}
