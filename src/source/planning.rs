//! From a snapshot to the plan's desired lists: each list's metadata first (the actual
//! read needs the groups' names), then its members as directory object ids.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{Member, Snapshot};
use crate::plan::{self, Members, ObjectId};

/// Desired lists with their members resolved, and the member keys that did not resolve.
#[derive(Debug, Default)]
pub struct ResolvedLists {
    /// The lists, in key order, each with the members that resolved.
    pub lists: Vec<plan::DesiredList>,
    /// By list key, the member values the directory does not know, in member order.
    pub unresolved: BTreeMap<String, Vec<String>>,
}

impl Snapshot {
    /// Every member key the lists name, each once. (Most people are on several lists: the
    /// hash set takes every membership cheaply, the ordered set only the distinct people.)
    pub fn member_keys(&self) -> BTreeSet<&Member> {
        let distinct: HashSet<&Member> = self
            .lists
            .values()
            .flat_map(|l| l.members.iter().chain(l.owners.iter().flatten()))
            .collect();
        distinct.into_iter().collect()
    }

    /// The lists as the plan names them, in key order, with no members yet.
    pub fn wanted(&self) -> Vec<plan::DesiredList> {
        self.lists
            .values()
            .map(|list| plan::DesiredList {
                key: list.key.clone(),
                family: list.family.clone(),
                mail_nickname: list.mail_nickname.clone(),
                display_name: list.display_name.clone(),
                description: list.description.clone(),
                titled: list.titled,
                members: Members::default(),
                owners: None,
            })
            .collect()
    }

    /// Fills the members and owners of `wanted` (from [`Snapshot::wanted`]) through
    /// `resolve`, leaving out the lists `skip` names; people `resolve` does not know are
    /// reported (an owner as `value (owner)` when it is not also an unknown member).
    pub fn resolve(
        &self,
        wanted: Vec<plan::DesiredList>,
        skip: impl Fn(&str) -> bool,
        resolve: impl Fn(&Member) -> Option<ObjectId>,
    ) -> ResolvedLists {
        let mut resolved = ResolvedLists {
            lists: Vec::with_capacity(wanted.len()),
            unresolved: BTreeMap::new(),
        };
        for (mut list, source) in wanted.into_iter().zip(self.lists.values()) {
            if skip(&list.key) {
                continue;
            }
            let mut ids = Vec::with_capacity(source.members.len());
            for member in &source.members {
                match resolve(member) {
                    Some(id) => ids.push(id),
                    None => resolved
                        .unresolved
                        .entry(list.key.clone())
                        .or_default()
                        .push(member.value.clone()),
                }
            }
            list.members = Members::from(ids);
            if let Some(owners) = &source.owners {
                let mut ids = Vec::with_capacity(owners.len());
                for owner in owners {
                    match resolve(owner) {
                        Some(id) => ids.push(id),
                        None if source.members.contains(owner) => {}
                        None => resolved
                            .unresolved
                            .entry(list.key.clone())
                            .or_default()
                            .push(format!("{} (owner)", owner.value)),
                    }
                }
                list.owners = Some(Members::from(ids));
            }
            resolved.lists.push(list);
        }
        resolved
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::MemberKey;
    use crate::source::DesiredList;

    fn upn(value: &str) -> Member {
        Member {
            key: MemberKey::Upn,
            value: value.to_owned(),
        }
    }

    fn list(key: &str, members: &[&str]) -> DesiredList {
        DesiredList {
            key: key.to_owned(),
            family: "modules".to_owned(),
            sources: vec!["enrolments".to_owned()],
            members: members.iter().map(|m| upn(m)).collect::<BTreeSet<_>>(),
            owners: None,
            display_name: format!("Module {key}"),
            mail_nickname: key.to_owned(),
            description: Some("Year 1".to_owned()),
            titled: true,
        }
    }

    fn snapshot(lists: &[DesiredList]) -> Snapshot {
        Snapshot {
            sources: Vec::new(),
            lists: lists.iter().map(|l| (l.key.clone(), l.clone())).collect(),
            held: BTreeMap::new(),
            warnings: Vec::new(),
            exceptions_applied: 0,
        }
    }

    fn id(n: u128) -> ObjectId {
        ObjectId::from_u128(n)
    }

    /// Resolves `a@x` to 1, `b@x` to 2 and `c@x` to 3; nobody else.
    fn directory(member: &Member) -> Option<ObjectId> {
        let n = match member.value.as_str() {
            "a@x" => 1,
            "b@x" => 2,
            "c@x" => 3,
            _ => return None,
        };
        Some(id(n))
    }

    #[test]
    fn member_keys_are_each_named_once() {
        let snapshot = snapshot(&[list("m-1", &["a@x", "b@x"]), list("m-2", &["b@x"])]);
        let keys: Vec<&str> = snapshot
            .member_keys()
            .into_iter()
            .map(|m| m.value.as_str())
            .collect();
        assert_eq!(keys, ["a@x", "b@x"]);
    }

    #[test]
    fn wanted_carries_the_rendered_names_in_key_order_without_members() {
        let snapshot = snapshot(&[list("m-2", &["a@x"]), list("m-1", &["b@x"])]);
        let wanted = snapshot.wanted();
        let keys: Vec<&str> = wanted.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["m-1", "m-2"]);
        assert_eq!(wanted[0].display_name, "Module m-1");
        assert_eq!(wanted[0].mail_nickname, "m-1");
        assert_eq!(wanted[0].description.as_deref(), Some("Year 1"));
        assert!(wanted.iter().all(|l| l.members.is_empty()));
    }

    #[test]
    fn resolve_maps_members_and_reports_the_unknown() {
        let snapshot = snapshot(&[
            list("m-1", &["c@x", "zed@x", "a@x", "yan@x"]),
            list("m-2", &["b@x"]),
        ]);
        let resolved = snapshot.resolve(snapshot.wanted(), |_| false, directory);
        assert_eq!(resolved.lists.len(), 2);
        assert_eq!(resolved.lists[0].members.as_slice(), &[id(1), id(3)]);
        assert_eq!(resolved.lists[1].members.as_slice(), &[id(2)]);
        assert_eq!(
            resolved.unresolved,
            BTreeMap::from([(
                "m-1".to_owned(),
                vec!["yan@x".to_owned(), "zed@x".to_owned()]
            )])
        );
    }

    #[test]
    fn skipped_lists_are_left_out_and_report_nothing() {
        let snapshot = snapshot(&[list("m-1", &["nobody@x"]), list("m-2", &["a@x"])]);
        let resolved = snapshot.resolve(snapshot.wanted(), |key| key == "m-1", directory);
        let keys: Vec<&str> = resolved.lists.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["m-2"]);
        assert!(resolved.unresolved.is_empty());
    }
}
