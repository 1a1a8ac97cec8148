//! The diff: desired and actual lists in, a plan out. Pure: no I/O, no clock.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::config::{OnVanish, Visibility};

use super::merge::{Pair, member_changes, merge_by_key};
use super::visibility::{self, VisibilityDrift};
use super::{
    Actual, ActualList, Desired, DesiredList, HoldReason, Leaving, ObjectId, OwnerChange, Policies,
    Title, owner_changes,
};

/// What to do to every list that needs something done, plus totals over all lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Lists with changes or something to report, ordered by key; unchanged lists are
    /// only counted in the totals.
    pub lists: Vec<ListPlan>,
    /// Counts over the whole plan.
    pub totals: Totals,
    /// Groups whose visibility differs from their family's in a way only a person can mend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visibility_drift: Vec<VisibilityDrift>,
}

/// Counts over a whole plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Lists considered: desired, managed, or both.
    pub lists: u64,
    /// Lists already as desired.
    pub unchanged: u64,
    /// Groups to create.
    pub creates: u64,
    /// Existing groups whose membership changes.
    pub updates: u64,
    /// Members to add, across all lists.
    pub adds: u64,
    /// Members to remove, across all lists (including emptied vanished lists).
    pub removes: u64,
    /// Managed groups no source mentions any more.
    pub vanished: u64,
    /// Desired lists without a group whose family does not create groups.
    pub not_created: u64,
    /// Groups whose title or description follows the sources.
    #[serde(default)]
    pub retitles: u64,
    /// Lists this run leaves exactly as they are, each for a reason of its own.
    #[serde(default)]
    pub held: u64,
    /// Owners to add, across all lists (new groups' owners included).
    #[serde(default)]
    pub owner_adds: u64,
    /// Owners to remove, across all lists.
    #[serde(default)]
    pub owner_removes: u64,
    /// Lists that keep an owner the sources no longer name, because it is the last one.
    #[serde(default)]
    pub owners_kept: u64,
    /// Members the sources no longer name who stay until their family's `remove_after`
    /// grace ends, across all lists.
    #[serde(default)]
    pub leaving: u64,
}

/// One list's part of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPlan {
    /// The list key.
    pub key: String,
    /// The list's family.
    pub family: String,
    /// What happens to it.
    #[serde(flatten)]
    pub change: ListChange,
}

/// What happens to one list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ListChange {
    /// No managed group and the family creates groups: create one, then add every member.
    Create {
        /// The group to create.
        group: NewGroup,
        /// Members to add once it exists.
        add: Vec<ObjectId>,
        /// Owners to give it (bound at creation, as far as the request's references go).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        owners: Vec<ObjectId>,
    },
    /// A managed group whose membership differs from the sources.
    Update {
        /// The group's directory object id.
        group_id: String,
        /// Its member count before the plan.
        current: u64,
        /// Members to add.
        add: Vec<ObjectId>,
        /// Members to remove.
        remove: Vec<ObjectId>,
        /// The title and description to set, when they no longer follow the sources.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retitle: Option<Title>,
        /// Members the sources no longer name who stay until their family's grace ends.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        leaving: Vec<Leaving>,
        /// Its owners' changes (adds sent before removes).
        #[serde(default, skip_serializing_if = "OwnerChange::is_unchanged")]
        owners: OwnerChange,
    },
    /// A managed group no source mentions any more; its family's `on_vanish` decides.
    Vanished {
        /// The group's directory object id.
        group_id: String,
        /// The family's choice: keep the members (reported only) or remove them all.
        on_vanish: OnVanish,
        /// Its member count before the plan.
        current: u64,
        /// Members to remove: all of them for `empty`, none for `keep`.
        remove: Vec<ObjectId>,
        /// Members who stay until their family's grace ends.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        leaving: Vec<Leaving>,
    },
    /// No managed group and the family does not create groups: reported, nothing done.
    NotCreated {
        /// How many members the list would have.
        desired: u64,
    },
    /// A problem that belongs to this list alone: it is left exactly as it is, and every
    /// other list goes on (DESIGN.md "Per-list isolation").
    Held {
        /// Why.
        hold: HoldReason,
        /// Its member count before the plan (zero without a group).
        current: u64,
        /// What the plan would have done to it, where it got that far.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        would: Option<Box<ListChange>>,
    },
}

/// A list held before the diff, with the family it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The list's family.
    pub family: String,
    /// Why it is held.
    pub reason: HoldReason,
}

/// The properties of a group to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGroup {
    /// Its mailNickname.
    pub mail_nickname: String,
    /// Its display name.
    pub display_name: String,
    /// Its description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One step of a plan, as the journal stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The list key.
    pub list: String,
    /// What to do.
    pub kind: OperationKind,
    /// The member added or removed; none for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<ObjectId>,
}

/// The kinds of step a plan is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Create the list's group.
    CreateGroup,
    /// Add a member to the list's group.
    AddMember,
    /// Remove a member from the list's group.
    RemoveMember,
    /// Set the group's title and description.
    UpdateGroup,
    /// Add an owner to the list's group.
    AddOwner,
    /// Remove an owner from the list's group.
    RemoveOwner,
}

impl Plan {
    /// Whether the plan changes nothing in Microsoft 365.
    pub fn is_noop(&self) -> bool {
        self.totals.creates == 0
            && self.totals.adds == 0
            && self.totals.removes == 0
            && self.totals.retitles == 0
            && self.totals.owner_adds == 0
            && self.totals.owner_removes == 0
    }

    /// The lists this plan holds, with why.
    pub fn held(&self) -> impl Iterator<Item = (&ListPlan, &HoldReason)> {
        self.lists.iter().filter_map(|list| match &list.change {
            ListChange::Held { hold, .. } => Some((list, hold)),
            _ => None,
        })
    }

    /// Holds list `key` for `reason`: whatever the plan would have done to it is kept aside
    /// in the hold and leaves the totals. A key the plan does not list (unchanged) is held
    /// with nothing it would have done.
    pub fn hold(&mut self, key: &str, family: &str, reason: HoldReason) {
        let at = self.lists.binary_search_by(|l| l.key.as_str().cmp(key));
        let list = match at {
            Ok(i) => {
                let list = &mut self.lists[i];
                if matches!(list.change, ListChange::Held { .. }) {
                    return;
                }
                self.totals.adds -= list.adds().len() as u64;
                self.totals.removes -= list.removes().len() as u64;
                self.totals.owner_adds -= list.owner_adds().len() as u64;
                self.totals.owner_removes -= list.owner_removes().len() as u64;
                self.totals.owners_kept -= u64::from(list.owner_kept().is_some());
                match &list.change {
                    ListChange::Create { .. } => self.totals.creates -= 1,
                    ListChange::Update { retitle, .. } => {
                        self.totals.updates -= 1;
                        self.totals.retitles -= u64::from(retitle.is_some());
                    }
                    ListChange::Vanished { .. } => self.totals.vanished -= 1,
                    ListChange::NotCreated { .. } => self.totals.not_created -= 1,
                    ListChange::Held { .. } => {}
                }
                let current = list.current_size();
                let would =
                    std::mem::replace(&mut list.change, ListChange::NotCreated { desired: 0 });
                list.change = ListChange::Held {
                    hold: reason,
                    current,
                    would: Some(Box::new(would)),
                };
                self.totals.held += 1;
                return;
            }
            Err(i) => i,
        };
        self.totals.unchanged = self.totals.unchanged.saturating_sub(1);
        self.totals.held += 1;
        self.lists.insert(
            list,
            ListPlan {
                key: key.to_owned(),
                family: family.to_owned(),
                change: ListChange::Held {
                    hold: reason,
                    current: 0,
                    would: None,
                },
            },
        );
    }

    /// The plan's operations in journal order: lists by key; per list its create, then its
    /// adds, then its removes, members by id.
    pub fn operations(&self) -> impl Iterator<Item = Operation> + '_ {
        self.lists.iter().flat_map(ListPlan::operations)
    }
}

/// The plan that turns `actual` into `desired`, as far as each family's policy allows.
///
/// Both sides are ordered by key and their members by id, so this is a merge join over the
/// lists and a linear merge per list: no hashing, and no allocation per member beyond the
/// vectors of adds and removes.
pub fn diff(desired: &Desired, actual: &Actual, policies: &Policies) -> Plan {
    diff_holding(desired, actual, policies, &BTreeMap::new())
}

/// [`diff`], with the lists in `holds` held: whatever either side says of them, the plan
/// does nothing to them (a held list with a group never reads as vanished).
pub fn diff_holding(
    desired: &Desired,
    actual: &Actual,
    policies: &Policies,
    holds: &BTreeMap<String, Hold>,
) -> Plan {
    let mut plan = Plan::default();
    let held = |key: &str| holds.contains_key(key);
    let want = desired.lists().iter().filter(|l| !held(&l.key));
    let have = actual.lists().iter().filter(|l| !held(&l.key));
    let sizes: BTreeMap<&str, u64> = actual
        .lists()
        .iter()
        .filter(|l| held(&l.key))
        .map(|l| (l.key.as_str(), l.members.len() as u64))
        .collect();
    for pair in merge_by_key(want, have) {
        plan.totals.lists += 1;
        let (key, family, change) = match pair {
            Pair::Both(want, have) => {
                let (add, remove) =
                    member_changes(want.members.as_slice(), have.members.as_slice());
                let policy = policies.get(&want.family);
                let retitle = retitle(want, have, policy.visibility);
                let owners = want
                    .owners
                    .as_ref()
                    .map(|owners| owner_changes(owners.as_slice(), have.owners.as_slice()))
                    .unwrap_or_default();
                let have_visibility = have.title.as_ref().and_then(|t| t.visibility);
                plan.visibility_drift.extend(visibility::drift(
                    &want.key,
                    policy.visibility,
                    have_visibility,
                ));
                if add.is_empty() && remove.is_empty() && retitle.is_none() && owners.is_unchanged()
                {
                    plan.totals.unchanged += 1;
                    continue;
                }
                let change = ListChange::Update {
                    group_id: have.group_id.clone(),
                    current: have.members.len() as u64,
                    add,
                    remove,
                    retitle,
                    leaving: Vec::new(),
                    owners,
                };
                (&want.key, &want.family, change)
            }
            Pair::DesiredOnly(want) => {
                let change = if policies.get(&want.family).create {
                    ListChange::Create {
                        group: NewGroup {
                            mail_nickname: want.mail_nickname.clone(),
                            display_name: want.display_name.clone(),
                            description: want.description.clone(),
                        },
                        add: want.members.as_slice().to_vec(),
                        owners: want
                            .owners
                            .as_ref()
                            .map(|o| o.as_slice().to_vec())
                            .unwrap_or_default(),
                    }
                } else {
                    ListChange::NotCreated {
                        desired: want.members.len() as u64,
                    }
                };
                (&want.key, &want.family, change)
            }
            Pair::ActualOnly(have) => {
                let on_vanish = policies.get(&have.family).on_vanish;
                let remove = match on_vanish {
                    OnVanish::Keep => Vec::new(),
                    OnVanish::Empty => have.members.as_slice().to_vec(),
                };
                let change = ListChange::Vanished {
                    group_id: have.group_id.clone(),
                    on_vanish,
                    current: have.members.len() as u64,
                    remove,
                    leaving: Vec::new(),
                };
                (&have.key, &have.family, change)
            }
        };
        let list = ListPlan {
            key: key.clone(),
            family: family.clone(),
            change,
        };
        plan.totals.adds += list.adds().len() as u64;
        plan.totals.removes += list.removes().len() as u64;
        plan.totals.owner_adds += list.owner_adds().len() as u64;
        plan.totals.owner_removes += list.owner_removes().len() as u64;
        plan.totals.owners_kept += u64::from(list.owner_kept().is_some());
        match &list.change {
            ListChange::Create { .. } => plan.totals.creates += 1,
            ListChange::Update { retitle, .. } => {
                plan.totals.updates += 1;
                plan.totals.retitles += u64::from(retitle.is_some());
            }
            ListChange::Vanished { .. } => plan.totals.vanished += 1,
            ListChange::NotCreated { .. } => plan.totals.not_created += 1,
            ListChange::Held { .. } => plan.totals.held += 1,
        }
        plan.lists.push(list);
    }
    for (key, hold) in holds {
        plan.totals.lists += 1;
        plan.totals.held += 1;
        plan.lists.push(ListPlan {
            key: key.clone(),
            family: hold.family.clone(),
            change: ListChange::Held {
                hold: hold.reason.clone(),
                current: sizes.get(key.as_str()).copied().unwrap_or(0),
                would: None,
            },
        });
    }
    plan.lists.sort_by(|a, b| a.key.cmp(&b.key));
    plan
}

/// The title and description a group is to get, when the sources say otherwise than it has.
/// An unknown current title (never read) changes nothing, and neither does a list whose
/// sources give no title or description: an empty value never blanks a group's.
fn retitle(want: &DesiredList, have: &ActualList, family: Option<Visibility>) -> Option<Title> {
    let current = have.title.as_ref()?;
    let display_name = if want.titled {
        want.display_name.clone()
    } else {
        current.display_name.clone()
    };
    let description = want
        .description
        .clone()
        .or_else(|| current.description.clone());
    let visibility = visibility::patch(family, current.visibility);
    let renamed = display_name != current.display_name || description != current.description;
    (renamed || visibility.is_some()).then_some(Title {
        display_name,
        description,
        visibility,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use rstest::rstest;

    use super::*;
    use crate::plan::fixtures::{actual, desired, have, id, ids, modules, want};
    use crate::plan::{Members, Policy};

    fn update(key: &str, current: u64, add: &[u128], remove: &[u128]) -> ListPlan {
        ListPlan {
            key: key.into(),
            family: "modules".into(),
            change: ListChange::Update {
                group_id: format!("g-{key}"),
                current,
                add: ids(add),
                remove: ids(remove),
                retitle: None,
                leaving: Vec::new(),
                owners: Default::default(),
            },
        }
    }

    fn create(key: &str, add: &[u128]) -> ListPlan {
        ListPlan {
            key: key.into(),
            family: "modules".into(),
            change: ListChange::Create {
                group: NewGroup {
                    mail_nickname: key.into(),
                    display_name: format!("List {key}"),
                    description: None,
                },
                add: ids(add),
                owners: Default::default(),
            },
        }
    }

    fn vanished(key: &str, on_vanish: OnVanish, current: u64, remove: &[u128]) -> ListPlan {
        ListPlan {
            key: key.into(),
            family: "modules".into(),
            change: ListChange::Vanished {
                group_id: format!("g-{key}"),
                on_vanish,
                current,
                remove: ids(remove),
                leaving: Vec::new(),
            },
        }
    }

    fn not_created(key: &str, members: u64) -> ListPlan {
        ListPlan {
            key: key.into(),
            family: "modules".into(),
            change: ListChange::NotCreated { desired: members },
        }
    }

    const KEEP: (bool, OnVanish) = (true, OnVanish::Keep);
    const EMPTY: (bool, OnVanish) = (true, OnVanish::Empty);
    const NO_CREATE: (bool, OnVanish) = (false, OnVanish::Keep);

    #[rstest]
    #[case::empty_on_both_sides(vec![], vec![], KEEP, vec![], Totals::default())]
    #[case::missing_group_is_created_with_all_members(
        vec![want("a", &[3, 1, 2])], vec![], KEEP,
        vec![create("a", &[1, 2, 3])],
        Totals { lists: 1, creates: 1, adds: 3, ..Totals::default() })]
    #[case::missing_members_are_added(
        vec![want("a", &[1, 2, 3])], vec![have("a", &[2])], KEEP,
        vec![update("a", 1, &[1, 3], &[])],
        Totals { lists: 1, updates: 1, adds: 2, ..Totals::default() })]
    #[case::extra_members_are_removed(
        vec![want("a", &[2])], vec![have("a", &[1, 2, 3])], KEEP,
        vec![update("a", 3, &[], &[1, 3])],
        Totals { lists: 1, updates: 1, removes: 2, ..Totals::default() })]
    #[case::update_adds_and_removes(
        vec![want("a", &[1, 2, 4])], vec![have("a", &[2, 3, 5])], KEEP,
        vec![update("a", 3, &[1, 4], &[3, 5])],
        Totals { lists: 1, updates: 1, adds: 2, removes: 2, ..Totals::default() })]
    #[case::equal_lists_are_counted_not_listed(
        vec![want("a", &[1, 2]), want("b", &[])], vec![have("a", &[2, 1]), have("b", &[])], KEEP,
        vec![],
        Totals { lists: 2, unchanged: 2, ..Totals::default() })]
    #[case::vanished_keep_is_reported_without_removals(
        vec![], vec![have("a", &[1, 2])], KEEP,
        vec![vanished("a", OnVanish::Keep, 2, &[])],
        Totals { lists: 1, vanished: 1, ..Totals::default() })]
    #[case::vanished_empty_removes_every_member(
        vec![], vec![have("a", &[1, 2])], EMPTY,
        vec![vanished("a", OnVanish::Empty, 2, &[1, 2])],
        Totals { lists: 1, vanished: 1, removes: 2, ..Totals::default() })]
    #[case::no_create_family_reports_missing_group(
        vec![want("a", &[1, 2])], vec![], NO_CREATE,
        vec![not_created("a", 2)],
        Totals { lists: 1, not_created: 1, ..Totals::default() })]
    #[case::no_create_family_still_updates_existing_group(
        vec![want("a", &[1])], vec![have("a", &[2])], NO_CREATE,
        vec![update("a", 1, &[1], &[2])],
        Totals { lists: 1, updates: 1, adds: 1, removes: 1, ..Totals::default() })]
    #[case::desired_list_without_members_empties_its_group(
        vec![want("a", &[])], vec![have("a", &[1, 2])], KEEP,
        vec![update("a", 2, &[], &[1, 2])],
        Totals { lists: 1, updates: 1, removes: 2, ..Totals::default() })]
    #[case::desired_list_without_members_still_gets_a_group(
        vec![want("a", &[])], vec![], KEEP,
        vec![create("a", &[])],
        Totals { lists: 1, creates: 1, ..Totals::default() })]
    #[case::lists_are_ordered_by_key(
        vec![want("c", &[1]), want("a", &[1])], vec![have("b", &[1]), have("c", &[2])], EMPTY,
        vec![create("a", &[1]), vanished("b", OnVanish::Empty, 1, &[1]), update("c", 1, &[1], &[2])],
        Totals { lists: 3, creates: 1, updates: 1, vanished: 1, adds: 2, removes: 2, ..Totals::default() })]
    fn diff_table(
        #[case] want: Vec<DesiredList>,
        #[case] have: Vec<ActualList>,
        #[case] (create, on_vanish): (bool, OnVanish),
        #[case] lists: Vec<ListPlan>,
        #[case] totals: Totals,
    ) {
        let plan = diff(&desired(want), &actual(have), &modules(create, on_vanish));
        assert_eq!(
            plan,
            Plan {
                lists,
                totals,
                visibility_drift: Vec::new()
            }
        );
    }

    fn refused() -> HoldReason {
        HoldReason::Refused {
            status: 403,
            code: "Authorization_RequestDenied".to_owned(),
            message: "no".to_owned(),
        }
    }

    #[test]
    fn a_held_list_yields_no_operation_and_never_reads_as_vanished() {
        let holds: BTreeMap<String, Hold> = ["b", "c"]
            .into_iter()
            .map(|key| {
                let hold = Hold {
                    family: "modules".to_owned(),
                    reason: refused(),
                };
                (key.to_owned(), hold)
            })
            .collect();
        let plan = diff_holding(
            &desired(vec![want("a", &[1]), want("b", &[2])]),
            &actual(vec![have("b", &[3]), have("c", &[4, 5])]),
            &modules(true, OnVanish::Empty),
            &holds,
        );
        assert_eq!(plan.totals.held, 2);
        assert_eq!((plan.totals.adds, plan.totals.removes), (1, 0));
        assert!(plan.operations().all(|op| op.list == "a"));
        let held: Vec<(&str, u64)> = plan
            .held()
            .map(|(list, _)| (list.key.as_str(), list.current_size()))
            .collect();
        assert_eq!(held, [("b", 1), ("c", 2)]);
        assert_eq!(plan.totals.lists, 3);
    }

    #[test]
    fn holding_a_planned_list_takes_its_changes_out_of_the_totals() {
        let mut plan = diff(
            &desired(vec![want("a", &[1]), want("b", &[])]),
            &actual(vec![have("b", &[2, 3])]),
            &modules(true, OnVanish::Keep),
        );
        plan.hold("b", "modules", refused());
        plan.hold("z", "modules", refused());
        assert_eq!(
            (plan.totals.updates, plan.totals.removes, plan.totals.held),
            (0, 0, 2)
        );
        assert_eq!(
            plan.lists
                .iter()
                .map(|l| l.key.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "z"]
        );
        assert!(matches!(
            &plan.lists[1].change,
            ListChange::Held {
                would: Some(_),
                current: 2,
                ..
            }
        ));
        assert!(plan.operations().all(|op| op.list == "a"));
    }

    fn titled(key: &str, display: &str, description: Option<&str>) -> ActualList {
        ActualList {
            title: Some(Title {
                display_name: display.to_owned(),
                description: description.map(str::to_owned),
                visibility: None,
            }),
            ..have(key, &[1])
        }
    }

    #[rstest]
    #[case::same_title_is_unchanged(want("a", &[1]), titled("a", "List a", None), None)]
    #[case::unknown_title_is_left_alone(want("a", &[1]), have("a", &[1]), None)]
    #[case::a_retitle_follows(want("a", &[1]), titled("a", "Old", None), Some(("List a", None)))]
    #[case::a_key_fallback_never_retitles(DesiredList { titled: false, ..want("a", &[1]) }, titled("a", "Old", Some("d")), None)]
    #[case::a_new_description_follows(DesiredList { description: Some("new".into()), ..want("a", &[1]) }, titled("a", "List a", Some("old")), Some(("List a", Some("new"))))]
    #[case::an_empty_description_never_blanks(want("a", &[1]), titled("a", "Old", Some("kept")), Some(("List a", Some("kept"))))]
    fn titles_follow_the_sources_and_an_empty_value_never_blanks_them(
        #[case] wanted: DesiredList,
        #[case] current: ActualList,
        #[case] expected: Option<(&str, Option<&str>)>,
    ) {
        let plan = diff(
            &desired(vec![wanted]),
            &actual(vec![current]),
            &modules(true, OnVanish::Keep),
        );
        let retitle = plan.lists.first().and_then(ListPlan::retitle);
        let got = retitle.map(|t| (t.display_name.as_str(), t.description.as_deref()));
        assert_eq!(got, expected);
        assert_eq!(plan.totals.retitles, u64::from(expected.is_some()));
        let updates = plan
            .operations()
            .filter(|op| op.kind == OperationKind::UpdateGroup)
            .count();
        assert_eq!(updates, usize::from(expected.is_some()));
    }

    #[test]
    fn vanished_group_of_unconfigured_family_is_kept() {
        let mut orphan = have("a", &[1, 2]);
        orphan.family = "retired".into();
        let plan = diff(
            &desired(vec![]),
            &actual(vec![orphan]),
            &modules(true, OnVanish::Empty),
        );
        assert_eq!(plan.totals.removes, 0);
        assert!(matches!(
            plan.lists[0].change,
            ListChange::Vanished {
                on_vanish: OnVanish::Keep,
                ..
            }
        ));
    }

    #[test]
    fn input_order_does_not_change_the_plan() {
        let forwards = diff(
            &desired(vec![
                want("a", &[1, 2, 3]),
                want("b", &[4]),
                want("c", &[9]),
            ]),
            &actual(vec![have("a", &[3, 5]), have("d", &[7])]),
            &modules(true, OnVanish::Empty),
        );
        let backwards = diff(
            &desired(vec![
                want("c", &[9]),
                want("b", &[4]),
                want("a", &[3, 2, 1, 2]),
            ]),
            &actual(vec![have("d", &[7]), have("a", &[5, 3])]),
            &modules(true, OnVanish::Empty),
        );
        assert_eq!(forwards, backwards);
    }

    #[test]
    fn operations_go_create_then_adds_then_removes_per_list() {
        let plan = diff(
            &desired(vec![want("a", &[2, 1]), want("b", &[1, 4])]),
            &actual(vec![have("b", &[3, 4]), have("c", &[5])]),
            &modules(true, OnVanish::Empty),
        );
        let steps: Vec<_> = plan
            .operations()
            .map(|op| (op.list, op.kind, op.member))
            .collect();
        use OperationKind::*;
        let step = |list: &str, kind, member: Option<u128>| (list.to_owned(), kind, member.map(id));
        assert_eq!(
            steps,
            [
                step("a", CreateGroup, None),
                step("a", AddMember, Some(1)),
                step("a", AddMember, Some(2)),
                step("b", AddMember, Some(1)),
                step("b", RemoveMember, Some(3)),
                step("c", RemoveMember, Some(5)),
            ]
        );
    }

    #[test]
    fn plan_round_trips_through_json() {
        let plan = diff(
            &desired(vec![want("a", &[1]), want("b", &[1, 2])]),
            &actual(vec![have("b", &[3]), have("c", &[4])]),
            &modules(true, OnVanish::Empty),
        );
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains(r#""action":"create""#), "{json}");
        assert!(json.contains(r#""on_vanish":"empty""#), "{json}");
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
        let op = plan.operations().next().unwrap();
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"list":"a","kind":"create_group"}"#
        );
    }

    #[test]
    fn noop_plan_is_one_that_changes_nothing() {
        let policies = modules(false, OnVanish::Keep);
        let quiet = diff(
            &desired(vec![want("a", &[1]), want("new", &[2])]),
            &actual(vec![have("a", &[1]), have("gone", &[3])]),
            &policies,
        );
        assert!(quiet.is_noop());
        assert_eq!(quiet.operations().count(), 0);
        let busy = diff(
            &desired(vec![want("a", &[1])]),
            &actual(vec![]),
            &modules(true, OnVanish::Keep),
        );
        assert!(!busy.is_noop());
    }

    /// Applies a plan's operations to actual membership, refusing any step that would be
    /// redundant (creating an existing group, adding a present member, removing an absent one).
    fn apply(plan: &Plan, have: &Actual) -> BTreeMap<String, BTreeSet<ObjectId>> {
        let mut groups: BTreeMap<_, BTreeSet<_>> = have
            .lists()
            .iter()
            .map(|l| {
                (
                    l.key.clone(),
                    l.members.as_slice().iter().copied().collect(),
                )
            })
            .collect();
        for op in plan.operations() {
            match op.kind {
                OperationKind::CreateGroup => {
                    assert!(
                        groups.insert(op.list.clone(), BTreeSet::new()).is_none(),
                        "{op:?}"
                    );
                }
                OperationKind::AddMember => {
                    let group = groups.get_mut(&op.list).expect("add to a missing group");
                    assert!(group.insert(op.member.unwrap()), "redundant {op:?}");
                }
                OperationKind::RemoveMember => {
                    let group = groups
                        .get_mut(&op.list)
                        .expect("remove from a missing group");
                    assert!(group.remove(&op.member.unwrap()), "redundant {op:?}");
                }
                OperationKind::UpdateGroup
                | OperationKind::AddOwner
                | OperationKind::RemoveOwner => {
                    assert!(groups.contains_key(&op.list), "{op:?} of a missing group");
                }
            }
        }
        groups
    }

    const FAMILIES: [(&str, Policy); 4] = [
        (
            "create-keep",
            Policy {
                create: true,
                on_vanish: OnVanish::Keep,
                ..Policy::UNKNOWN_FAMILY
            },
        ),
        (
            "create-empty",
            Policy {
                create: true,
                on_vanish: OnVanish::Empty,
                ..Policy::UNKNOWN_FAMILY
            },
        ),
        (
            "fixed-keep",
            Policy {
                create: false,
                on_vanish: OnVanish::Keep,
                ..Policy::UNKNOWN_FAMILY
            },
        ),
        (
            "fixed-empty",
            Policy {
                create: false,
                on_vanish: OnVanish::Empty,
                ..Policy::UNKNOWN_FAMILY
            },
        ),
    ];

    /// Lists keyed `l0`…`l5`, each of a random family, with members from a universe of 12
    /// so that desired and actual overlap often.
    fn lists() -> impl Strategy<Value = BTreeMap<String, (usize, Vec<u128>)>> {
        prop::collection::btree_map(
            (0..6u8).prop_map(|n| format!("l{n}")),
            (0..FAMILIES.len(), prop::collection::vec(0..12u128, 0..10)),
            0..6,
        )
    }

    proptest! {
        #[test]
        fn applying_the_plan_to_actual_yields_desired(wanted in lists(), held in lists()) {
            let policies: Policies = FAMILIES.iter().map(|(name, p)| ((*name).to_owned(), *p)).collect();
            let family = |f: usize| FAMILIES[f].0.to_owned();
            let want_lists = desired(wanted.iter().map(|(key, (f, members))| DesiredList {
                family: family(*f),
                ..want(key, members)
            }).collect());
            let have_lists = actual(held.iter().map(|(key, (f, members))| ActualList {
                family: family(*f),
                ..have(key, members)
            }).collect());

            let plan = diff(&want_lists, &have_lists, &policies);
            let after = apply(&plan, &have_lists);

            for list in want_lists.lists() {
                let before = have_lists.lists().iter().find(|l| l.key == list.key);
                let wanted: BTreeSet<_> = list.members.as_slice().iter().copied().collect();
                if before.is_some() || policies.get(&list.family).create {
                    prop_assert_eq!(&after[&list.key], &wanted, "list {}", list.key);
                } else {
                    prop_assert!(!after.contains_key(&list.key), "list {} created", list.key);
                }
                if before.is_some_and(|b| b.members == list.members) {
                    prop_assert!(plan.operations().all(|op| op.list != list.key), "list {} is equal", list.key);
                }
            }
            for list in have_lists.lists() {
                if want_lists.lists().iter().any(|l| l.key == list.key) {
                    continue;
                }
                let expected: BTreeSet<_> = match policies.get(&list.family).on_vanish {
                    OnVanish::Keep => list.members.as_slice().iter().copied().collect(),
                    OnVanish::Empty => BTreeSet::new(),
                };
                prop_assert_eq!(&after[&list.key], &expected, "vanished list {}", list.key);
            }

            let count = |kind| plan.operations().filter(|op| op.kind == kind).count() as u64;
            prop_assert_eq!(count(OperationKind::CreateGroup), plan.totals.creates);
            prop_assert_eq!(count(OperationKind::AddMember), plan.totals.adds);
            prop_assert_eq!(count(OperationKind::RemoveMember), plan.totals.removes);
            prop_assert_eq!(
                plan.totals.lists,
                plan.totals.unchanged + plan.lists.len() as u64
            );
        }

        #[test]
        fn members_constructor_accepts_any_order(members in prop::collection::vec(0..50u128, 0..40)) {
            let mut shuffled = members.clone();
            shuffled.reverse();
            let (a, b) = (Members::from(ids(&members)), Members::from(ids(&shuffled)));
            prop_assert_eq!(&a, &b);
            prop_assert!(a.as_slice().windows(2).all(|w| w[0] < w[1]));
        }
    }
}
