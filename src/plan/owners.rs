//! Owner changes for one list (issue 15, DESIGN.md "Owners"): the owners the sources and the
//! family want against the owners the group has, never leaving a managed group ownerless.
//! Pure; the apply sends a list's owner adds before its owner removes, so the group passes
//! through no moment without an owner either.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::ObjectId;

/// What one list's owners need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerChange {
    /// Owners to add, by id.
    pub add: Vec<ObjectId>,
    /// Owners to remove, by id (sent after every add of the list).
    pub remove: Vec<ObjectId>,
    /// The owner kept against the sources because removing it would leave the group
    /// without one (no source row and no family owner names anybody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<ObjectId>,
}

impl OwnerChange {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// Whether there is nothing to write and nothing to report (no owner kept back).
    pub fn is_unchanged(&self) -> bool {
        self.is_empty() && self.kept.is_none()
    }
}

/// The owner changes that turn `have` into `want` (both sorted, duplicate-free), except that
/// a group is never left without an owner: when `want` is empty, the group keeps one of the
/// owners it has (the first by id) and `kept` names it.
pub fn owner_changes(want: &[ObjectId], have: &[ObjectId]) -> OwnerChange {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < want.len() || j < have.len() {
        match (want.get(i), have.get(j)) {
            (Some(w), Some(h)) => match w.cmp(h) {
                Ordering::Less => {
                    add.push(*w);
                    i += 1;
                }
                Ordering::Greater => {
                    remove.push(*h);
                    j += 1;
                }
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
            },
            (Some(w), None) => {
                add.push(*w);
                i += 1;
            }
            (None, Some(h)) => {
                remove.push(*h);
                j += 1;
            }
            (None, None) => break,
        }
    }
    let kept = (want.is_empty() && !remove.is_empty()).then(|| remove.remove(0));
    OwnerChange { add, remove, kept }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ns: &[u128]) -> Vec<ObjectId> {
        ns.iter().map(|&n| ObjectId::from_u128(n)).collect()
    }

    #[test]
    fn a_new_leader_is_added_and_the_old_one_removed() {
        let change = owner_changes(&ids(&[1, 3]), &ids(&[1, 2]));
        assert_eq!(change.add, ids(&[3]));
        assert_eq!(change.remove, ids(&[2]));
        assert_eq!(change.kept, None);
        assert!(owner_changes(&ids(&[1]), &ids(&[1])).is_empty());
    }

    #[test]
    fn a_group_is_never_left_without_an_owner() {
        let sorted = owner_changes(&[], &ids(&[2, 4, 9]));
        assert_eq!(sorted.kept, Some(ObjectId::from_u128(2)));
        assert_eq!(sorted.remove, ids(&[4, 9]));
        assert!(sorted.add.is_empty());
        // A group without owners that the sources want none for stays as it is.
        assert!(owner_changes(&[], &[]).is_empty());
        // Replacing every owner adds first (the apply's order), so nothing is kept back.
        let replaced = owner_changes(&ids(&[7]), &ids(&[2]));
        assert_eq!(
            (replaced.add, replaced.remove, replaced.kept),
            (ids(&[7]), ids(&[2]), None)
        );
    }

    mod in_the_diff {
        use crate::config::OnVanish;
        use crate::plan::fixtures::{actual, desired, have, ids, modules, want};
        use crate::plan::{DesiredList, ListChange, Members, OperationKind, diff};

        fn owned(key: &str, members: &[u128], owners: &[u128]) -> DesiredList {
            DesiredList {
                owners: Some(Members::from(ids(owners))),
                ..want(key, members)
            }
        }

        #[test]
        fn owners_are_planned_apart_from_members_and_only_where_managed() {
            let mut managed = have("a", &[1, 2]);
            managed.owners = Members::from(ids(&[8]));
            let mut unmanaged = have("b", &[1]);
            unmanaged.owners = Members::from(ids(&[8, 9]));
            let plan = diff(
                &desired(vec![
                    owned("a", &[1, 2], &[7]),
                    want("b", &[1]),
                    owned("c", &[3], &[7]),
                ]),
                &actual(vec![managed, unmanaged]),
                &modules(true, OnVanish::Keep),
            );
            // `b` does not manage its owners: unchanged whatever its group has.
            assert_eq!(plan.totals.unchanged, 1);
            assert_eq!((plan.totals.owner_adds, plan.totals.owner_removes), (2, 1));
            let a = &plan.lists[0];
            assert_eq!((a.adds().len(), a.removes().len()), (0, 0));
            assert_eq!(a.owner_adds(), ids(&[7]));
            assert_eq!(a.owner_removes(), ids(&[8]));
            let kinds: Vec<OperationKind> = a.operations().map(|o| o.kind).collect();
            assert_eq!(kinds, [OperationKind::AddOwner, OperationKind::RemoveOwner]);
            let c = &plan.lists[1];
            assert!(matches!(&c.change, ListChange::Create { owners, .. } if *owners == ids(&[7])));
            assert!(!plan.is_noop());
        }

        #[test]
        fn the_last_owner_is_kept_and_reported_and_a_hold_takes_owners_out() {
            let mut group = have("a", &[1]);
            group.owners = Members::from(ids(&[5, 6]));
            let mut plan = diff(
                &desired(vec![owned("a", &[1], &[])]),
                &actual(vec![group]),
                &modules(true, OnVanish::Keep),
            );
            assert_eq!(plan.totals.owners_kept, 1);
            assert_eq!(plan.totals.owner_removes, 1);
            assert_eq!(plan.lists[0].owner_kept(), Some(ids(&[5])[0]));
            assert_eq!(plan.lists[0].owner_removes(), ids(&[6]));
            plan.hold(
                "a",
                "modules",
                crate::plan::HoldReason::Refused {
                    status: 403,
                    code: "x".into(),
                    message: "y".into(),
                },
            );
            assert_eq!((plan.totals.owner_removes, plan.totals.owners_kept), (0, 0));
            assert!(plan.is_noop());
        }
    }
}
