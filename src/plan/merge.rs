//! The merge joins under the diff: lists by key, and one list's members by id, both over
//! sorted, duplicate-free inputs, so the diff needs no hashing.

use std::cmp::Ordering;

use super::{ActualList, DesiredList, ObjectId};

/// A list key seen on one side or both.
pub(super) enum Pair<'a> {
    Both(&'a DesiredList, &'a ActualList),
    DesiredOnly(&'a DesiredList),
    ActualOnly(&'a ActualList),
}

/// Joins two key-ordered, key-unique sequences of lists by key, in key order.
pub(super) fn merge_by_key<'a>(
    desired: impl Iterator<Item = &'a DesiredList>,
    actual: impl Iterator<Item = &'a ActualList>,
) -> impl Iterator<Item = Pair<'a>> {
    let mut desired = desired.peekable();
    let mut actual = actual.peekable();
    std::iter::from_fn(move || {
        let order = match (desired.peek(), actual.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(want), Some(have)) => want.key.cmp(&have.key),
        };
        Some(match order {
            Ordering::Less => Pair::DesiredOnly(desired.next()?),
            Ordering::Greater => Pair::ActualOnly(actual.next()?),
            Ordering::Equal => Pair::Both(desired.next()?, actual.next()?),
        })
    })
}

/// The members to add (in `want`, not in `have`) and to remove (in `have`, not in `want`),
/// for two sorted, duplicate-free slices.
pub(super) fn member_changes(
    want: &[ObjectId],
    have: &[ObjectId],
) -> (Vec<ObjectId>, Vec<ObjectId>) {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    if want == have {
        return (add, remove);
    }
    let (mut i, mut j) = (0, 0);
    while i < want.len() && j < have.len() {
        match want[i].cmp(&have[j]) {
            Ordering::Less => {
                add.push(want[i]);
                i += 1;
            }
            Ordering::Greater => {
                remove.push(have[j]);
                j += 1;
            }
            Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    add.extend_from_slice(&want[i..]);
    remove.extend_from_slice(&have[j..]);
    (add, remove)
}
