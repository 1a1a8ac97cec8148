//! Small builders for the plan's tests: lists named by key, members by small numbers.

use crate::config::OnVanish;

use super::{Actual, ActualList, Desired, DesiredList, Members, ObjectId, Policies, Policy};

/// The member with this number.
pub fn id(n: u128) -> ObjectId {
    ObjectId::from_u128(n)
}

/// Members by number, in the order given.
pub fn ids(ns: &[u128]) -> Vec<ObjectId> {
    ns.iter().copied().map(id).collect()
}

/// A desired list of family `modules`.
pub fn want(key: &str, members: &[u128]) -> DesiredList {
    DesiredList {
        key: key.into(),
        family: "modules".into(),
        mail_nickname: key.into(),
        display_name: format!("List {key}"),
        description: None,
        titled: true,
        members: Members::from(ids(members)),
        owners: None,
    }
}

/// A managed group of family `modules`, with group id `g-KEY`.
pub fn have(key: &str, members: &[u128]) -> ActualList {
    ActualList {
        key: key.into(),
        family: "modules".into(),
        group_id: format!("g-{key}"),
        title: None,
        members: Members::from(ids(members)),
        owners: Default::default(),
    }
}

/// Policies giving family `modules` this policy.
pub fn modules(create: bool, on_vanish: OnVanish) -> Policies {
    [(
        "modules".to_owned(),
        Policy {
            create,
            on_vanish,
            ..Policy::UNKNOWN_FAMILY
        },
    )]
    .into_iter()
    .collect()
}

/// Ordered desired lists; panics on a duplicate key, which a test never means.
pub fn desired(lists: Vec<DesiredList>) -> Desired {
    Desired::new(lists).unwrap()
}

/// Ordered actual lists; panics on a duplicate key, which a test never means.
pub fn actual(lists: Vec<ActualList>) -> Actual {
    Actual::new(lists).unwrap()
}
