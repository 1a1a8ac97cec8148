//! Who owns the lists: the service account on every list (each family's fixed owner), the
//! leader of each module (one of its teachers) and the head of each department (one of its
//! staff).
//!
//! Only people with an account are appointed: an owner must be a directory user, and a
//! new arrival whose account is not provisioned yet could not be made one. A list whose
//! staff all lack an account has no leader or head; the service account still owns it.

use std::collections::BTreeSet;

use super::draw::{Draw, Stream};
use super::{Department, GenerateOptions, List, Module, Person, Role, University};

/// The service account rollcall runs as: the fixed owner of every generated list (`owners`
/// of each `[[family]]` in the generated config) and a user of the sandbox seed.
pub const SERVICE_ACCOUNT: &str = "rollcall.lists@example.ac.uk";

/// The service account's name in the address book.
pub(super) const SERVICE_ACCOUNT_NAME: &str = "Rollcall Lists (service account)";

/// Modules whose leader changes in a day of churn: one in fifty, at least one.
const LEADER_CHANGE_SHARE: f64 = 0.02;

/// The most leader changes in a day of churn: half the default `max_owner_removals_per_run`
/// (50), so that a typical day never trips that guard (a large university's one in fifty
/// would be 59).
const MOST_LEADER_CHANGES: usize = 25;

/// Every how many pre-existing groups (in a drifted tenant) one is still owned by a former
/// leader or head rather than the current one: the earlier script set owners at creation
/// and never followed a change. One in five keeps a large university's first run (150
/// pre-existing groups, 30 former owners) under the default `max_owner_removals_per_run`.
const STALE_OWNER_EVERY: usize = 5;

/// What a generated university's owners come to: what a plan should show and what a
/// converged tenant should hold. Owners are counted as `(list, owner)` pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerCounts {
    /// Lists with an owner: every list, since every family has a fixed owner.
    pub lists_with_owners: usize,
    /// Modules with a leader (an owner row in `modules.csv`).
    pub module_leaders: usize,
    /// Departments with a head (an owner row in `departments.csv`).
    pub department_heads: usize,
    /// `role = owner` rows across both CSVs: one per leader and head.
    pub owner_rows: usize,
    /// Owner pairs of the converged tenant: the service account on every list, plus every
    /// leader and head.
    pub owner_pairs: usize,
    /// Distinct owners: the service account and every leader and head.
    pub owners: usize,
    /// Owner pairs the first run adds to the tenant of [`University::sandbox_seed`]: all of
    /// them without drift; with drift, less those the pre-existing groups already have
    /// (the generated config adopts them).
    pub first_run_adds: usize,
    /// Owner pairs the first run removes from that tenant: the former leaders and heads who
    /// still own pre-existing groups (none without drift).
    pub first_run_removes: usize,
}

impl University {
    /// The leader of the module whose list key is `module`: `None` for an unknown key or a
    /// module none of whose teachers has an account.
    pub fn leader_of(&self, module: &str) -> Option<&Person> {
        let module = self.modules.iter().find(|m| m.key == module)?;
        module.leader.map(|i| &self.people[i])
    }

    /// The head of the department whose list key is `department`: `None` for an unknown
    /// key or a department none of whose staff has an account.
    pub fn head_of(&self, department: &str) -> Option<&Person> {
        let department = self.departments.iter().find(|d| d.key == department)?;
        department.head.map(|i| &self.people[i])
    }

    /// The object id of [`SERVICE_ACCOUNT`] in the sandbox seed.
    pub fn service_account_id(&self) -> String {
        Draw::new(self.options.seed, Stream::ServiceAccount).guid()
    }

    /// What the owners come to, from the sources and the sandbox seed; pure, for tests and
    /// benchmarks that check a plan or a converged tenant.
    pub fn owner_counts(&self) -> OwnerCounts {
        let module_leaders = self.modules.iter().filter(|m| m.leader.is_some()).count();
        let department_heads = self.departments.iter().filter(|d| d.head.is_some()).count();
        let lists = self.modules.len() + self.departments.len();
        let owner_rows = module_leaders + department_heads;
        let owner_pairs = lists + owner_rows;
        let distinct: BTreeSet<usize> = self
            .modules
            .iter()
            .filter_map(|m| m.leader)
            .chain(self.departments.iter().filter_map(|d| d.head))
            .collect();
        let (mut kept, mut stale) = (0, 0);
        for (k, list) in self.pre_existing_lists().into_iter().enumerate() {
            let seeded = self.seeded_owners(&list, k);
            kept += 1 + seeded.iter().filter(|o| list.owners.contains(o)).count();
            stale += seeded.iter().filter(|o| !list.owners.contains(o)).count();
        }
        OwnerCounts {
            lists_with_owners: lists,
            module_leaders,
            department_heads,
            owner_rows,
            owner_pairs,
            owners: 1 + distinct.len(),
            first_run_adds: owner_pairs - kept,
            first_run_removes: stale,
        }
    }

    /// The people (besides the service account) who own the `k`-th pre-existing group, made
    /// for `list` by an earlier script: its leader or head, except that every
    /// [`STALE_OWNER_EVERY`]th still has a former one, another of its staff with an account.
    pub(super) fn seeded_owners(&self, list: &List<'_>, k: usize) -> Vec<usize> {
        let Some(&current) = list.owners.first() else {
            return Vec::new();
        };
        let former = (k % STALE_OWNER_EVERY == 1)
            .then(|| {
                list.members
                    .iter()
                    .copied()
                    .find(|&i| i != current && can_own(&self.people[i]))
            })
            .flatten();
        vec![former.unwrap_or(current)]
    }

    /// Hands the leadership of about one module in fifty (at least one, at most
    /// [`MOST_LEADER_CHANGES`]) to another of its teachers with an account; the former leader
    /// keeps teaching. Modules from `first` on (opened today) keep theirs. Returns the list
    /// keys of the modules that changed, in module order.
    pub(super) fn change_leaders(&mut self, draw: &mut Draw, first: usize) -> Vec<String> {
        let wanted =
            ((first as f64 * LEADER_CHANGE_SHARE).round() as usize).clamp(1, MOST_LEADER_CHANGES);
        // Only a module with a second teacher who could own it can change hands.
        let changeable: Vec<usize> = (0..first)
            .filter(|&m| successors(&self.people, &self.modules[m]).next().is_some())
            .collect();
        let mut chosen = draw.sample(&changeable, wanted);
        chosen.sort_unstable();
        for &m in &chosen {
            let successors: Vec<usize> = successors(&self.people, &self.modules[m]).collect();
            self.modules[m].leader = Some(*draw.pick(&successors));
        }
        chosen
            .into_iter()
            .map(|m| self.modules[m].key.clone())
            .collect()
    }

    /// Appoints the leader of module `index` (just opened) from among its teachers.
    pub(super) fn appoint_leader(&mut self, draw: &mut Draw, index: usize) {
        let teachers = self.modules[index].teachers.iter().copied();
        let leader = pick_owner(draw, &self.people, teachers);
        self.modules[index].leader = leader;
    }
}

/// Appoints every module's leader and every department's head, from their own stream after
/// every other draw, so that the members come out exactly as they did before owners.
pub(super) fn appoint(
    options: &GenerateOptions,
    people: &[Person],
    departments: &mut [Department],
    modules: &mut [Module],
) {
    let mut draw = Draw::new(options.seed, Stream::Owners);
    for module in modules.iter_mut() {
        module.leader = pick_owner(&mut draw, people, module.teachers.iter().copied());
    }
    for (index, department) in departments.iter_mut().enumerate() {
        let staff = (0..people.len())
            .filter(|&i| people[i].role == Role::Staff && people[i].department == index);
        department.head = pick_owner(&mut draw, people, staff);
    }
}

/// Whether `person` could own a list: staff with an account.
fn can_own(person: &Person) -> bool {
    person.role == Role::Staff && person.has_account
}

/// One of `candidates` who could own a list, or `None` (and no draw) when none could.
fn pick_owner(
    draw: &mut Draw,
    people: &[Person],
    candidates: impl Iterator<Item = usize>,
) -> Option<usize> {
    let eligible: Vec<usize> = candidates.filter(|&i| can_own(&people[i])).collect();
    (!eligible.is_empty()).then(|| *draw.pick(&eligible))
}

/// The teachers of `module` who could take over from its leader.
fn successors<'a>(people: &'a [Person], module: &'a Module) -> impl Iterator<Item = usize> + 'a {
    module
        .teachers
        .iter()
        .copied()
        .filter(move |&i| Some(i) != module.leader && can_own(&people[i]))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{Size, departments, enrol, generate, modules, people};
    use super::*;

    fn small(drift: bool) -> University {
        generate(&GenerateOptions {
            drift,
            ..GenerateOptions::for_size(Size::Small, 42)
        })
    }

    #[test]
    fn every_module_is_led_by_one_of_its_teachers_with_an_account() {
        let university = small(false);
        for module in &university.modules {
            let leader = module
                .leader
                .expect("a small university's modules all have one");
            assert!(module.teachers.contains(&leader), "{}", module.key);
            assert!(can_own(&university.people[leader]), "{}", module.key);
            assert_eq!(
                university.leader_of(&module.key),
                Some(&university.people[leader])
            );
        }
    }

    #[test]
    fn every_department_is_headed_by_one_of_its_staff_with_an_account() {
        let university = small(false);
        for (index, department) in university.departments.iter().enumerate() {
            let head = &university.people[department.head.expect("staff in every department")];
            assert!(can_own(head), "{}", department.key);
            assert_eq!(head.department, index, "{}", department.key);
            assert_eq!(university.head_of(&department.key), Some(head));
        }
        assert_eq!(university.head_of("mod-cs10012-2026"), None);
        assert_eq!(university.leader_of("dept-nowhere"), None);
    }

    #[test]
    fn appointing_owners_changes_no_member() {
        let options = GenerateOptions::for_size(Size::Small, 42);
        let departments = departments(options.departments());
        let people = people(&options, departments.len());
        let mut modules = modules(&options, &departments);
        enrol(&options, &people, &mut modules);
        let university = generate(&options);
        assert_eq!(university.people, people);
        for (appointed, before) in university.modules.iter().zip(&modules) {
            assert_eq!(appointed.key, before.key);
            assert_eq!(appointed.students, before.students);
            assert_eq!(appointed.teachers, before.teachers);
        }
    }

    #[test]
    fn without_staff_accounts_the_service_account_owns_every_list_alone() {
        let mut university = small(false);
        for person in &mut university.people {
            if person.role == Role::Staff {
                person.has_account = false;
            }
        }
        let options = university.options;
        appoint(
            &options,
            &university.people,
            &mut university.departments,
            &mut university.modules,
        );
        let counts = university.owner_counts();
        assert_eq!((counts.owner_rows, counts.owners), (0, 1));
        assert_eq!(counts.lists_with_owners, university.counts().lists);
        assert_eq!(counts.owner_pairs, counts.lists_with_owners);
        assert!(university.lists().all(|l| l.owners.is_empty()));
    }

    #[test]
    fn owner_counts_without_drift_add_every_owner_on_the_first_run() {
        let university = small(false);
        let counts = university.owner_counts();
        let lists = university.counts().lists;
        assert_eq!(counts.lists_with_owners, lists);
        assert_eq!(counts.module_leaders, university.modules.len());
        assert_eq!(counts.department_heads, university.departments.len());
        assert_eq!(counts.owner_rows, lists);
        assert_eq!(counts.owner_pairs, 2 * lists);
        assert_eq!(counts.first_run_adds, counts.owner_pairs);
        assert_eq!(counts.first_run_removes, 0);
        assert!(
            counts.owners > 1 && counts.owners <= 1 + lists,
            "{counts:?}"
        );
    }

    /// The counts agree with the groups `sandbox_seed` really writes: a pre-existing group's
    /// owners that the list should have stay, the others go, the rest are added.
    #[test]
    fn owner_counts_with_drift_match_the_seeded_groups() {
        let university = small(true);
        let counts = university.owner_counts();
        let desired: BTreeMap<&str, BTreeSet<String>> = university
            .lists()
            .map(|list| {
                let mut owners: BTreeSet<String> = list
                    .owners
                    .iter()
                    .map(|&i| university.people[i].object_id.clone())
                    .collect();
                owners.insert(university.service_account_id());
                (list.key, owners)
            })
            .collect();
        assert_eq!(
            desired.values().map(BTreeSet::len).sum::<usize>(),
            counts.owner_pairs
        );
        let (mut kept, mut stale) = (0, 0);
        for group in university.sandbox_seed().groups {
            let Some(want) = desired.get(group.mail_nickname.as_str()) else {
                continue;
            };
            kept += group.owners.iter().filter(|o| want.contains(*o)).count();
            stale += group.owners.iter().filter(|o| !want.contains(*o)).count();
        }
        assert!(stale > 0, "some pre-existing group has a former owner");
        assert_eq!(counts.first_run_removes, stale);
        assert_eq!(counts.first_run_adds, counts.owner_pairs - kept);
    }

    /// One in fifty of a large university's 2,960 modules would be 59 owner removals in one
    /// run, over the default `max_owner_removals_per_run`.
    #[test]
    fn a_day_changes_at_most_25_leaders() {
        let mut university = generate(&GenerateOptions::for_size(Size::Large, 42));
        let modules = university.modules.len();
        let changed = university.change_leaders(&mut Draw::new(7, Stream::OwnerChurn), modules);
        assert_eq!(changed.len(), MOST_LEADER_CHANGES);
    }

    #[test]
    fn the_service_account_has_a_stable_id_of_its_own() {
        let university = small(false);
        let id = university.service_account_id();
        assert_eq!(id, small(true).service_account_id());
        assert!(university.people.iter().all(|p| p.object_id != id));
        assert!(SERVICE_ACCOUNT.ends_with(&format!("@{}", super::super::DOMAIN)));
    }
}
