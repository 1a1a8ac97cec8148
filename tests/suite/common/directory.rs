//! What the tenant should hold, worked out from the generated university and the sandbox's
//! accounts, and comparisons of that against the sandbox's true state (`SandboxHandle::state`).
//!
//! Every assertion here names the lists that differ and by how much, so that a failing
//! end-to-end test says what rollcall got wrong rather than only that it did.

use std::collections::{BTreeMap, BTreeSet};

use rollcall::generate::{Family, University};
use rollcall::sandbox::{Seed, SeedGroup};
use serde_json::Value;

/// The extension that marks a group as managed by rollcall.
pub const MANAGED_EXTENSION: &str = "org.rollcall.managed";

/// How many differing lists a failure message shows in full.
const SHOWN: usize = 12;

/// The membership every list should have.
#[derive(Debug, Clone)]
pub struct Desired {
    /// List key → object ids of its members that have an account.
    pub lists: BTreeMap<String, BTreeSet<String>>,
    /// List key → member keys (as the sources name them) without an account; lists where
    /// everybody resolves are absent.
    pub unresolved: BTreeMap<String, BTreeSet<String>>,
    /// List key → family name.
    pub families: BTreeMap<String, &'static str>,
    /// List key → object ids of its group's owners: the family's fixed owner (the service
    /// account) and the module's leader or the department's head, where they have an account.
    pub owners: BTreeMap<String, BTreeSet<String>>,
}

impl Desired {
    /// The desired membership of `university`'s lists, resolved against the accounts in `state`
    /// (module members by UPN, department members by employee id, as the generated sources
    /// name them).
    pub fn of(university: &University, state: &Seed) -> Desired {
        let by_upn: BTreeMap<String, &str> = state
            .users
            .iter()
            .map(|u| (u.user_principal_name.to_lowercase(), u.id.as_str()))
            .collect();
        let by_employee_id: BTreeMap<&str, &str> = state
            .users
            .iter()
            .filter_map(|u| Some((u.employee_id.as_deref()?, u.id.as_str())))
            .collect();
        let mut desired = Desired {
            lists: BTreeMap::new(),
            unresolved: BTreeMap::new(),
            families: BTreeMap::new(),
            owners: BTreeMap::new(),
        };
        for list in university.lists() {
            let owners = list
                .owners
                .iter()
                .filter_map(|&index| by_upn.get(&university.people[index].upn.to_lowercase()))
                .map(|id| (*id).to_owned())
                .chain(std::iter::once(university.service_account_id()))
                .collect();
            desired.owners.insert(list.key.to_owned(), owners);
            let mut members = BTreeSet::new();
            let mut unresolved = BTreeSet::new();
            for &index in &list.members {
                let person = &university.people[index];
                let (key, id) = match list.family {
                    Family::Modules => (
                        person.upn.to_lowercase(),
                        by_upn.get(&person.upn.to_lowercase()).copied(),
                    ),
                    Family::Departments => (
                        person.employee_id.clone(),
                        by_employee_id.get(person.employee_id.as_str()).copied(),
                    ),
                };
                match id {
                    Some(id) => {
                        members.insert(id.to_owned());
                    }
                    None => {
                        unresolved.insert(key);
                    }
                }
            }
            let family = match list.family {
                Family::Modules => "modules",
                Family::Departments => "departments",
            };
            desired.families.insert(list.key.to_owned(), family);
            if !unresolved.is_empty() {
                desired.unresolved.insert(list.key.to_owned(), unresolved);
            }
            desired.lists.insert(list.key.to_owned(), members);
        }
        desired
    }

    /// `(list, member)` pairs with an account, across every list.
    pub fn memberships(&self) -> usize {
        self.lists.values().map(BTreeSet::len).sum()
    }

    /// `(list, member)` pairs without an account, across every list.
    pub fn unresolved_pairs(&self) -> usize {
        self.unresolved.values().map(BTreeSet::len).sum()
    }

    /// Whether `nickname` is one of the lists' keys.
    pub fn is_list(&self, nickname: &str) -> bool {
        self.lists.contains_key(nickname)
    }
}

/// Panics unless the group of every list of `desired` outside `skip` has exactly the owners
/// `desired` gives it, naming the lists that differ.
#[track_caller]
pub fn assert_owners(state: &Seed, desired: &Desired, skip: &BTreeSet<String>, when: &str) {
    let groups = groups_by_nickname(state);
    let differ: Vec<String> = desired
        .owners
        .iter()
        .filter(|(list, _)| !skip.contains(*list))
        .filter_map(|(list, want)| {
            let group = groups.get(list.as_str())?.first()?;
            let have: BTreeSet<String> = group.owners.iter().cloned().collect();
            (have != *want).then(|| format!("  {list}: owners {have:?}, desired {want:?}"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{when}: {} lists' owners differ from their sources and families:\n{}",
        differ.len(),
        differ
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// How one list's group differs from its desired membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListDrift {
    /// Desired members the group lacks (the whole list when the group is missing).
    pub missing: usize,
    /// Members the group has that it should not.
    pub extra: usize,
    /// No group has the list's nickname.
    pub group_missing: bool,
}

/// The groups of `state` by mailNickname (more than one per nickname is a duplicate).
pub fn groups_by_nickname(state: &Seed) -> BTreeMap<&str, Vec<&SeedGroup>> {
    let mut groups: BTreeMap<&str, Vec<&SeedGroup>> = BTreeMap::new();
    for group in &state.groups {
        groups
            .entry(group.mail_nickname.as_str())
            .or_default()
            .push(group);
    }
    groups
}

/// The drift of every list of `desired` except those in `skip`, against `state`; lists in
/// step are absent.
pub fn drift(
    state: &Seed,
    desired: &Desired,
    skip: &BTreeSet<String>,
) -> BTreeMap<String, ListDrift> {
    let groups = groups_by_nickname(state);
    desired
        .lists
        .iter()
        .filter(|(list, _)| !skip.contains(*list))
        .filter_map(|(list, want)| {
            let drift = match groups.get(list.as_str()).and_then(|g| g.first()) {
                None => ListDrift {
                    missing: want.len(),
                    extra: 0,
                    group_missing: true,
                },
                Some(group) => {
                    let have: BTreeSet<&str> = group.members.iter().map(String::as_str).collect();
                    ListDrift {
                        missing: want.iter().filter(|m| !have.contains(m.as_str())).count(),
                        extra: have.iter().filter(|m| !want.contains(**m)).count(),
                        group_missing: false,
                    }
                }
            };
            (drift != ListDrift::default()).then(|| (list.clone(), drift))
        })
        .collect()
}

/// Panics, naming each list and how it differs, unless every list of `desired` outside `skip`
/// has a group holding exactly its desired members.
#[track_caller]
pub fn assert_converged(state: &Seed, desired: &Desired, skip: &BTreeSet<String>, when: &str) {
    let drift = drift(state, desired, skip);
    if drift.is_empty() {
        return;
    }
    let groups = groups_by_nickname(state);
    let mut lines = Vec::new();
    for (list, d) in drift.iter().take(SHOWN) {
        if d.group_missing {
            lines.push(format!("  {list}: no group (wants {} members)", d.missing));
            continue;
        }
        let have: BTreeSet<&str> = groups[list.as_str()][0]
            .members
            .iter()
            .map(String::as_str)
            .collect();
        let want = &desired.lists[list];
        let missing: Vec<&str> = want
            .iter()
            .map(String::as_str)
            .filter(|m| !have.contains(m))
            .take(3)
            .collect();
        let extra: Vec<&str> = have
            .iter()
            .copied()
            .filter(|m| !want.contains(*m))
            .take(3)
            .collect();
        lines.push(format!(
            "  {list}: {} missing (e.g. {missing:?}), {} extra (e.g. {extra:?}), {} members, {} desired",
            d.missing,
            d.extra,
            have.len(),
            want.len()
        ));
    }
    panic!(
        "{when}: {} of {} lists differ from their sources in the sandbox:\n{}{}",
        drift.len(),
        desired.lists.keys().filter(|l| !skip.contains(*l)).count(),
        lines.join("\n"),
        more(drift.len())
    );
}

/// Panics, naming the nicknames, if two groups share a mailNickname.
#[track_caller]
pub fn assert_no_duplicate_groups(state: &Seed, when: &str) {
    let duplicates: Vec<String> = groups_by_nickname(state)
        .into_iter()
        .filter(|(_, groups)| groups.len() > 1)
        .map(|(nickname, groups)| {
            let ids: Vec<&str> = groups.iter().filter_map(|g| g.id.as_deref()).collect();
            format!("  {nickname}: {} groups {ids:?}", groups.len())
        })
        .collect();
    assert!(
        duplicates.is_empty(),
        "{when}: {} nicknames are held by more than one group:\n{}",
        duplicates.len(),
        duplicates.join("\n")
    );
}

/// Panics, naming the lists, unless the group of every list in `lists` carries the managed
/// extension with its list key and family.
#[track_caller]
pub fn assert_tagged<'a>(
    state: &Seed,
    desired: &Desired,
    lists: impl IntoIterator<Item = &'a String>,
) {
    let groups = groups_by_nickname(state);
    let mut wrong = Vec::new();
    for list in lists {
        let Some(group) = groups.get(list.as_str()).and_then(|g| g.first()) else {
            wrong.push(format!("  {list}: no group"));
            continue;
        };
        let tags: Vec<_> = group
            .extensions
            .iter()
            .filter(|e| e.get("extensionName").and_then(Value::as_str) == Some(MANAGED_EXTENSION))
            .collect();
        let family = desired.families.get(list).copied().unwrap_or_default();
        match tags.as_slice() {
            [tag]
                if tag.get("list").and_then(Value::as_str) == Some(list.as_str())
                    && tag.get("family").and_then(Value::as_str) == Some(family) => {}
            [] => wrong.push(format!(
                "  {list}: no {MANAGED_EXTENSION} extension (extensions: {:?})",
                group.extensions
            )),
            tags => wrong.push(format!(
                "  {list}: expected one {MANAGED_EXTENSION} with list {list:?} and family {family:?}, found {tags:?}"
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} managed groups are not tagged as rollcall's:\n{}{}",
        wrong.len(),
        wrong
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        more(wrong.len())
    );
}

/// The groups of `state` rollcall must never touch: those whose nickname is no list's key,
/// plus those named in `also`, by id.
pub fn untouchable(
    state: &Seed,
    desired: &Desired,
    also: &BTreeSet<String>,
) -> BTreeMap<String, SeedGroup> {
    state
        .groups
        .iter()
        .filter(|g| !desired.is_list(&g.mail_nickname) || also.contains(&g.mail_nickname))
        .map(|g| (g.id.clone().unwrap_or_default(), g.clone()))
        .collect()
}

/// Panics, naming each group and what changed, unless every group of `before` is in `after`
/// byte for byte (same JSON).
#[track_caller]
pub fn assert_untouched(before: &BTreeMap<String, SeedGroup>, after: &Seed, when: &str) {
    let now: BTreeMap<&str, &SeedGroup> = after
        .groups
        .iter()
        .filter_map(|g| Some((g.id.as_deref()?, g)))
        .collect();
    let mut changed = Vec::new();
    for (id, group) in before {
        let Some(current) = now.get(id.as_str()) else {
            changed.push(format!("  {} ({id}): deleted", group.mail_nickname));
            continue;
        };
        let json = |g: &SeedGroup| serde_json::to_string(g).expect("a seed group serialises");
        if json(group) == json(current) {
            continue;
        }
        let was: BTreeSet<&String> = group.members.iter().collect();
        let is: BTreeSet<&String> = current.members.iter().collect();
        changed.push(format!(
            "  {} ({id}): {} members added, {} removed, extensions {} → {}, display name {:?} → {:?}",
            group.mail_nickname,
            is.difference(&was).count(),
            was.difference(&is).count(),
            group.extensions.len(),
            current.extensions.len(),
            group.display_name,
            current.display_name
        ));
    }
    assert!(
        changed.is_empty(),
        "{when}: rollcall changed {} groups it does not manage:\n{}",
        changed.len(),
        changed.join("\n")
    );
}

/// The plan totals `rollcall plan --output json` should report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanTotals {
    /// Lists in the sources.
    pub lists: u64,
    /// Lists already in step.
    pub unchanged: u64,
    /// Groups to create.
    pub creates: u64,
    /// Existing groups whose members change.
    pub updates: u64,
    /// Members to add.
    pub adds: u64,
    /// Members to remove.
    pub removes: u64,
    /// Lists gone from the sources (none in these scenarios).
    pub vanished: u64,
    /// Lists whose family may not create groups (none in these scenarios).
    pub not_created: u64,
}

/// Every total `plan.totals` holds.
pub const ALL_TOTALS: [&str; 8] = [
    "lists",
    "unchanged",
    "creates",
    "updates",
    "adds",
    "removes",
    "vanished",
    "not_created",
];

impl PlanTotals {
    /// The plan that takes `state` to `desired`, for every list outside `skip` (which count
    /// only in `lists`); a list's group is whichever group has its nickname.
    pub fn expected(state: &Seed, desired: &Desired, skip: &BTreeSet<String>) -> PlanTotals {
        let drift = drift(state, desired, skip);
        let mut totals = PlanTotals {
            lists: desired.lists.len() as u64,
            ..PlanTotals::default()
        };
        for d in drift.values() {
            if d.group_missing {
                totals.creates += 1;
            } else {
                totals.updates += 1;
            }
            totals.adds += d.missing as u64;
            totals.removes += d.extra as u64;
        }
        let planned = desired.lists.keys().filter(|l| !skip.contains(*l)).count();
        totals.unchanged = (planned - drift.len()) as u64;
        totals
    }

    /// Panics, naming each total that differs, unless the `fields` of `plan`'s
    /// `plan.totals` equal these.
    #[track_caller]
    pub fn assert_matches(&self, plan: &Value, fields: &[&str], when: &str) {
        let totals = &plan["plan"]["totals"];
        let wrong: Vec<String> = fields
            .iter()
            .filter_map(|&field| {
                let want = match field {
                    "lists" => self.lists,
                    "unchanged" => self.unchanged,
                    "creates" => self.creates,
                    "updates" => self.updates,
                    "adds" => self.adds,
                    "removes" => self.removes,
                    "vanished" => self.vanished,
                    "not_created" => self.not_created,
                    other => panic!("no plan total named {other}"),
                };
                let got = totals[field].as_u64();
                (got != Some(want))
                    .then(|| format!("  {field}: plan says {got:?}, expected {want}"))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{when}: the plan's totals differ from what the sandbox and sources imply:\n{}\nplan totals: {totals}",
            wrong.join("\n")
        );
    }
}

/// `plan.lists[]` entries by key.
#[track_caller]
pub fn plan_lists(plan: &Value) -> BTreeMap<String, Value> {
    plan["plan"]["lists"]
        .as_array()
        .unwrap_or_else(|| panic!("the plan JSON has no plan.lists array: {plan}"))
        .iter()
        .map(|entry| {
            let key = entry["key"]
                .as_str()
                .unwrap_or_else(|| panic!("a plan list entry has no key: {entry}"));
            (key.to_owned(), entry.clone())
        })
        .collect()
}

/// Panics, naming the lists, unless the plan's `unresolved` map holds exactly `desired`'s
/// unresolved member keys (compared case-insensitively; empty lists may be left out).
#[track_caller]
pub fn assert_unresolved_reported(plan: &Value, desired: &Desired) {
    let reported: BTreeMap<String, BTreeSet<String>> = plan["unresolved"]
        .as_object()
        .unwrap_or_else(|| panic!("the plan JSON has no `unresolved` object: {plan}"))
        .iter()
        .map(|(list, members)| {
            let members: BTreeSet<String> = members
                .as_array()
                .unwrap_or_else(|| panic!("unresolved[{list}] is not an array: {members}"))
                .iter()
                .map(|m| m.as_str().unwrap_or_default().to_lowercase())
                .collect();
            (list.clone(), members)
        })
        .filter(|(_, members)| !members.is_empty())
        .collect();
    let expected: BTreeMap<String, BTreeSet<String>> = desired
        .unresolved
        .iter()
        .map(|(list, keys)| {
            (
                list.clone(),
                keys.iter().map(|k| k.to_lowercase()).collect(),
            )
        })
        .collect();
    if reported == expected {
        return;
    }
    let lists: BTreeSet<&String> = reported.keys().chain(expected.keys()).collect();
    let lines: Vec<String> = lists
        .into_iter()
        .filter(|l| reported.get(*l) != expected.get(*l))
        .map(|l| {
            format!(
                "  {l}: reported {:?}, expected {:?}",
                reported.get(l),
                expected.get(l)
            )
        })
        .collect();
    panic!(
        "the plan's unresolved members differ from the people without an account:\n{}",
        lines.join("\n")
    );
}

/// Panics, naming each list, unless `verify --output json`'s `drift` holds exactly the lists
/// of `expected` with the same counts (only the flag is compared for a missing group).
#[track_caller]
pub fn assert_verify_reports(verify: &Value, expected: &BTreeMap<String, ListDrift>, when: &str) {
    let reported: BTreeMap<String, ListDrift> = verify["drift"]
        .as_array()
        .unwrap_or_else(|| panic!("{when}: the verify JSON has no `drift` array: {verify}"))
        .iter()
        .map(|entry| {
            let list = entry["list"]
                .as_str()
                .unwrap_or_else(|| panic!("a drift entry has no list: {entry}"))
                .to_owned();
            let count = |field: &str| {
                entry[field].as_u64().unwrap_or_else(|| {
                    panic!("drift entry {list} has no number `{field}`: {entry}")
                }) as usize
            };
            let drift = ListDrift {
                missing: count("missing"),
                extra: count("extra"),
                group_missing: entry["group_missing"].as_bool().unwrap_or_else(|| {
                    panic!("drift entry {list} has no `group_missing`: {entry}")
                }),
            };
            (list, drift)
        })
        .collect();
    let same = |a: &ListDrift, b: &ListDrift| {
        a.group_missing == b.group_missing && (a.group_missing || a == b)
    };
    let lists: BTreeSet<&String> = reported.keys().chain(expected.keys()).collect();
    let lines: Vec<String> = lists
        .into_iter()
        .filter(|l| match (reported.get(*l), expected.get(*l)) {
            (Some(a), Some(b)) => !same(a, b),
            _ => true,
        })
        .map(|l| {
            format!(
                "  {l}: verify says {:?}, the sandbox holds {:?}",
                reported.get(l),
                expected.get(l)
            )
        })
        .collect();
    assert!(
        lines.is_empty(),
        "{when}: verify's drift report differs from the sandbox's true state in {} lists:\n{}{}",
        lines.len(),
        lines
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        more(lines.len())
    );
}

fn more(count: usize) -> String {
    if count > SHOWN {
        format!("\n  … and {} more", count - SHOWN)
    } else {
        String::new()
    }
}
