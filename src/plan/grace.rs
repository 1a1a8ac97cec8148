//! Removal grace (DESIGN.md "The academic year"): a member whom a list's sources no longer
//! name stays on it until they have been absent for their family's `remove_after`, counted
//! from the first run that found them absent. Pure: the recorded first-absent times and the
//! moment come in, the plan is changed in place and the times to record come out.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Hold, ListChange, ObjectId, Plan, Policies};

/// When each member was first found absent from each list, by list key then member.
pub type FirstAbsent = BTreeMap<String, BTreeMap<ObjectId, DateTime<Utc>>>;

/// A member who stays on a list until their grace ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaving {
    /// The member's directory object id.
    pub member: ObjectId,
    /// When the first run found them absent.
    pub since: DateTime<Utc>,
    /// When their removal falls due: the first run at or after it removes them.
    pub due: DateTime<Utc>,
}

/// Moves each removal whose family's grace has not run out from the plan's removals to the
/// list's `leaving`, and returns the first-absent times to record from now on: every member
/// a list would lose (in grace or due), with the time already recorded or `now`. A member no
/// longer absent drops out, and so does a member removed (the next plan no longer sees
/// them). Lists in `holds` keep what was recorded, untouched like the rest of them.
///
/// A member already due stays a removal, counted by the guards like any other; a member in
/// grace is not a removal at all.
pub fn defer_removals(
    plan: &mut Plan,
    recorded: &FirstAbsent,
    policies: &Policies,
    holds: &BTreeMap<String, Hold>,
    now: DateTime<Utc>,
) -> FirstAbsent {
    let mut absent = FirstAbsent::new();
    for key in holds.keys() {
        if let Some(times) = recorded.get(key) {
            absent.insert(key.clone(), times.clone());
        }
    }
    let none = BTreeMap::new();
    for list in &mut plan.lists {
        let grace = policies.get(&list.family).remove_after;
        let Ok(grace) = chrono::Duration::from_std(grace) else {
            continue;
        };
        if grace.is_zero() {
            continue;
        }
        let (remove, leaving) = match &mut list.change {
            ListChange::Update {
                remove, leaving, ..
            }
            | ListChange::Vanished {
                remove, leaving, ..
            } => (remove, leaving),
            _ => continue,
        };
        if remove.is_empty() {
            continue;
        }
        let seen = recorded.get(&list.key).unwrap_or(&none);
        let times = absent.entry(list.key.clone()).or_default();
        let before = remove.len();
        remove.retain(|&member| {
            let since = seen.get(&member).copied().unwrap_or(now);
            times.insert(member, since);
            let due = since + grace;
            if due <= now {
                return true;
            }
            leaving.push(Leaving { member, since, due });
            false
        });
        let deferred = (before - remove.len()) as u64;
        plan.totals.removes -= deferred;
        plan.totals.leaving += deferred;
        let idle = matches!(
            &list.change,
            ListChange::Update { add, remove, retitle: None, .. } if add.is_empty() && remove.is_empty()
        );
        if idle {
            // Nothing to write: the list stays in the plan for its report only.
            plan.totals.updates -= 1;
            plan.totals.unchanged += 1;
        }
    }
    absent.retain(|_, times| !times.is_empty());
    absent
}

/// What recording `next` over `recorded` takes: the times to insert, and the members to
/// forget, by list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AbsenceChanges {
    /// `(list, member, first absent)` to record.
    pub insert: Vec<(String, ObjectId, DateTime<Utc>)>,
    /// `(list, member)` to forget: back on the list's sources, or removed.
    pub forget: Vec<(String, ObjectId)>,
}

impl AbsenceChanges {
    /// The changes that turn `recorded` into `next`.
    pub fn between(recorded: &FirstAbsent, next: &FirstAbsent) -> Self {
        let mut changes = Self::default();
        let none = BTreeMap::new();
        for (list, times) in next {
            let had = recorded.get(list).unwrap_or(&none);
            for (&member, &since) in times {
                if had.get(&member) != Some(&since) {
                    changes.insert.push((list.clone(), member, since));
                }
            }
        }
        for (list, times) in recorded {
            let has = next.get(list).unwrap_or(&none);
            for &member in times.keys() {
                if !has.contains_key(&member) {
                    changes.forget.push((list.clone(), member));
                }
            }
        }
        changes
    }

    /// Whether there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty() && self.forget.is_empty()
    }
}

/// The earliest due date of each list's members in grace, by list key, with how many.
pub fn leaving_by_list(plan: &Plan) -> HashMap<&str, (u64, DateTime<Utc>)> {
    plan.lists
        .iter()
        .filter_map(|list| {
            let leaving = list.leaving();
            let first = leaving.iter().map(|l| l.due).min()?;
            Some((list.key.as_str(), (leaving.len() as u64, first)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::OnVanish;
    use crate::plan::fixtures::{actual, desired, have, id, want};
    use crate::plan::{Policy, diff};

    fn at(day: u32) -> DateTime<Utc> {
        format!("2026-10-{day:02}T06:00:00Z").parse().unwrap()
    }

    fn policies(days: u64) -> Policies {
        [(
            "modules".to_owned(),
            Policy {
                create: true,
                on_vanish: OnVanish::Empty,
                remove_after: Duration::from_secs(days * 86_400),
                visibility: None,
            },
        )]
        .into_iter()
        .collect()
    }

    /// `defer_removals` with no list held, a grace of `days` and now at `day`.
    fn defer(plan: &mut Plan, recorded: &FirstAbsent, days: u64, day: u32) -> FirstAbsent {
        defer_removals(plan, recorded, &policies(days), &BTreeMap::new(), at(day))
    }

    fn plan_of(want_members: &[u128], have_members: &[u128], days: u64) -> Plan {
        diff(
            &desired(vec![want("a", want_members)]),
            &actual(vec![have("a", have_members)]),
            &policies(days),
        )
    }

    #[test]
    fn a_new_absence_waits_its_grace_and_writes_nothing() {
        let mut plan = plan_of(&[1], &[1, 2, 3], 3);
        let next = defer(&mut plan, &FirstAbsent::new(), 3, 5);
        assert!(plan.is_noop(), "{plan:?}");
        assert_eq!(plan.totals.removes, 0);
        assert_eq!(plan.totals.leaving, 2);
        assert_eq!(plan.totals.updates, 0);
        assert_eq!(plan.totals.unchanged, 1);
        let leaving = plan.lists[0].leaving();
        assert_eq!(leaving.len(), 2);
        assert!(leaving.iter().all(|l| l.since == at(5) && l.due == at(8)));
        assert_eq!(next["a"].len(), 2);
        assert_eq!(next["a"][&id(2)], at(5));
    }

    #[test]
    fn a_removal_falls_due_exactly_at_the_end_of_its_grace() {
        let recorded: FirstAbsent = [("a".to_owned(), [(id(2), at(5)), (id(3), at(6))].into())]
            .into_iter()
            .collect();
        let mut plan = plan_of(&[1], &[1, 2, 3], 3);
        let next = defer(&mut plan, &recorded, 3, 8);
        assert_eq!(plan.lists[0].removes(), [id(2)]);
        assert_eq!(plan.totals.removes, 1);
        assert_eq!(plan.totals.updates, 1);
        assert_eq!(plan.lists[0].leaving()[0].due, at(9));
        // The due member keeps its time until the removal is done.
        assert_eq!(next, recorded);
    }

    #[test]
    fn a_member_named_again_is_forgotten() {
        let recorded: FirstAbsent = [("a".to_owned(), [(id(2), at(5))].into())]
            .into_iter()
            .collect();
        let mut plan = plan_of(&[1, 2], &[1, 2], 3);
        let next = defer(&mut plan, &recorded, 3, 6);
        assert!(next.is_empty());
        let changes = AbsenceChanges::between(&recorded, &next);
        assert_eq!(changes.forget, [("a".to_owned(), id(2))]);
        assert!(changes.insert.is_empty());
    }

    #[test]
    fn no_grace_removes_at_once_and_records_nothing() {
        let mut plan = plan_of(&[1], &[1, 2], 0);
        let next = defer(&mut plan, &FirstAbsent::new(), 0, 5);
        assert_eq!(plan.lists[0].removes(), [id(2)]);
        assert!(next.is_empty());
    }

    #[test]
    fn a_held_list_keeps_its_times() {
        let recorded: FirstAbsent = [("h".to_owned(), [(id(7), at(1))].into())]
            .into_iter()
            .collect();
        let holds: BTreeMap<String, Hold> = [(
            "h".to_owned(),
            Hold {
                family: "modules".to_owned(),
                reason: crate::plan::HoldReason::Refused {
                    status: 403,
                    code: "Authorization_RequestDenied".to_owned(),
                    message: "no".to_owned(),
                },
            },
        )]
        .into_iter()
        .collect();
        let mut plan = plan_of(&[1], &[1], 3);
        let next = defer_removals(&mut plan, &recorded, &policies(3), &holds, at(9));
        assert_eq!(next, recorded);
    }

    #[test]
    fn a_vanished_list_is_emptied_only_once_the_grace_ends() {
        let mut plan = diff(
            &desired(vec![]),
            &actual(vec![have("a", &[1, 2])]),
            &policies(3),
        );
        let next = defer(&mut plan, &FirstAbsent::new(), 3, 5);
        assert!(plan.lists[0].removes().is_empty());
        assert_eq!(plan.totals.leaving, 2);
        assert_eq!(plan.totals.vanished, 1);
        let mut later = diff(
            &desired(vec![]),
            &actual(vec![have("a", &[1, 2])]),
            &policies(3),
        );
        defer(&mut later, &next, 3, 8);
        assert_eq!(later.lists[0].removes(), [id(1), id(2)]);
    }
}
