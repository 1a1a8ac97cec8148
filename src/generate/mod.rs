//! A deterministic synthetic university: people, departments, modules and enrolments,
//! written as rollcall source CSVs with control files and as a sandbox seed.
//!
//! Every list has owners: the service account [`SERVICE_ACCOUNT`] (the families' fixed owner)
//! and, from the sources, a module's leader or a department's head (see `owners`).
//!
//! The same [`GenerateOptions`] always give the same university, byte for byte, on any
//! machine: draws come from seeded ChaCha8 streams (see `draw`), collections iterate in a
//! fixed order, and nothing reads the clock or the locale.

mod churn;
mod command;
mod draw;
mod names;
mod owners;
mod population;
mod seed;
mod write;

use std::collections::BTreeSet;

pub use churn::Churn;
pub use command::{GenerateArgs, run};
pub use names::is_valid_mail_nickname;
pub use owners::{OwnerCounts, SERVICE_ACCOUNT};
pub use write::{FILE_NAMES, Written, WrittenFile};

use draw::{Draw, Stream};
use population::{departments, enrol, modules, new_module, people};

/// The mail domain of every generated account.
pub const DOMAIN: &str = "example.ac.uk";

/// The academic year module lists belong to.
pub const YEAR: u16 = 2026;

/// Staff per student: 5,000 staff for 40,000 students.
const STUDENTS_PER_STAFF: f64 = 8.0;
/// Lists (modules and departments) per student: 3,000 lists for 40,000 students.
const LISTS_PER_STUDENT: f64 = 0.075;
/// Modules a student takes.
const MODULES_PER_STUDENT: (usize, usize) = (4, 8);
/// Staff teaching one module.
const TEACHERS_PER_MODULE: (usize, usize) = (3, 7);
/// The chance that one of a student's modules is an elective from another department.
const ELECTIVE_CHANCE: f64 = 0.3;
/// The share of people without an account yet (new arrivals not yet provisioned).
const UNPROVISIONED_SHARE: f64 = 0.005;

/// A named university size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Size {
    /// About 1,000 students and 125 staff.
    Small,
    /// About 10,000 students and 1,250 staff.
    Medium,
    /// About 40,000 students, 5,000 staff, 3,000 lists and 300,000 memberships.
    Large,
}

impl Size {
    /// The number of students this size stands for.
    pub fn students(self) -> u32 {
        match self {
            Size::Small => 1_000,
            Size::Medium => 10_000,
            Size::Large => 40_000,
        }
    }
}

/// What to generate; everything else is derived from the number of students.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Students; staff, departments and modules scale from it.
    pub students: u32,
    /// The seed of every random draw.
    pub seed: u64,
    /// Whether the sandbox seed also holds pre-existing drifted groups and unmanaged groups.
    pub drift: bool,
}

impl GenerateOptions {
    /// The options for a named size, without drift.
    pub fn for_size(size: Size, seed: u64) -> Self {
        Self {
            students: size.students(),
            seed,
            drift: false,
        }
    }

    /// Staff for this many students (at least one).
    pub fn staff(&self) -> usize {
        (f64::from(self.students) / STUDENTS_PER_STAFF)
            .ceil()
            .max(1.0) as usize
    }

    /// Departments: grows with the square root of the size, from 3 up to 40.
    pub fn departments(&self) -> usize {
        ((f64::from(self.students).sqrt() / 5.0).round() as usize)
            .clamp(3, names::DEPARTMENTS.len())
    }

    /// Modules: the lists that are not departments, at least one per department.
    pub fn modules(&self) -> usize {
        let lists = (f64::from(self.students) * LISTS_PER_STUDENT).round() as usize;
        lists
            .saturating_sub(self.departments())
            .max(self.departments())
    }
}

/// Whether a person studies or works at the university.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A student, with an id like `S2600001`.
    Student,
    /// A member of staff, with an id like `E000001`.
    Staff,
}

/// One person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Student or staff.
    pub role: Role,
    /// The name shown in address books (may hold non-ASCII letters).
    pub display_name: String,
    /// The sign-in name, `firstname.lastname<n>@example.ac.uk`, lower-case ASCII; also the mail.
    pub upn: String,
    /// The student-record or HR number.
    pub employee_id: String,
    /// The directory object id (a lower-case GUID).
    pub object_id: String,
    /// Index into [`University::departments`].
    pub department: usize,
    /// False for a new arrival whose account is not provisioned yet: in the CSVs, not in the
    /// sandbox seed.
    pub has_account: bool,
}

/// One department; its list holds all its staff and students.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// The list key, e.g. `dept-computer-science`.
    pub key: String,
    /// The name, e.g. `Computer Science`.
    pub name: String,
    /// The module code prefix, e.g. `CS`.
    pub code: String,
    /// Index into [`University::people`] of the head of department, one of its staff with an
    /// account; `None` when it has none (its list is owned by the service account alone).
    pub head: Option<usize>,
}

impl Department {
    /// The list's display name, e.g. `Department of Computer Science`.
    pub fn display_name(&self) -> String {
        format!("Department of {}", self.name)
    }

    /// The list's description.
    pub fn description(&self) -> String {
        format!("Staff and students of the Department of {}", self.name)
    }
}

/// One module; its list holds the students enrolled and the staff teaching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The list key, e.g. `mod-cs10120-2026`.
    pub key: String,
    /// The module code, e.g. `CS10120`.
    pub code: String,
    /// The title, e.g. `Foundations of Design`.
    pub title: String,
    /// Index into [`University::departments`] of the department that runs it.
    pub department: usize,
    /// Indexes into [`University::people`] of the students enrolled.
    pub students: BTreeSet<usize>,
    /// Indexes into [`University::people`] of the staff teaching it.
    pub teachers: BTreeSet<usize>,
    /// Index into [`University::people`] of the module leader, one of its teachers with an
    /// account; `None` when none has one (its list is owned by the service account alone).
    pub leader: Option<usize>,
}

impl Module {
    /// The list's display name, e.g. `CS10120 Foundations of Design (2026)`.
    pub fn display_name(&self) -> String {
        format!("{} {} ({YEAR})", self.code, self.title)
    }

    /// The list's description.
    pub fn description(&self) -> String {
        format!(
            "Students and teaching staff of {}, {} ({YEAR})",
            self.code, self.title
        )
    }

    /// Everyone on the list (students and teachers), in person order.
    pub fn members(&self) -> impl Iterator<Item = usize> + '_ {
        // Students and staff are disjoint, so a merge of the two ordered sets is their union.
        let mut students = self.students.iter().copied().peekable();
        let mut teachers = self.teachers.iter().copied().peekable();
        std::iter::from_fn(move || match (students.peek(), teachers.peek()) {
            (Some(s), Some(t)) if t < s => teachers.next(),
            (Some(_), _) => students.next(),
            (None, _) => teachers.next(),
        })
    }

    /// The number of people on the list.
    pub fn len(&self) -> usize {
        self.students.len() + self.teachers.len()
    }

    /// Whether nobody is on the list.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Head counts of a university.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Students.
    pub students: usize,
    /// Staff.
    pub staff: usize,
    /// People with an account (in the sandbox seed).
    pub accounts: usize,
    /// Departments (one list each).
    pub departments: usize,
    /// Modules (one list each).
    pub modules: usize,
    /// All lists: departments and modules.
    pub lists: usize,
    /// `(list, member)` pairs across all lists: the source rows.
    pub memberships: usize,
}

/// A generated university.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct University {
    /// The options it was generated from.
    pub options: GenerateOptions,
    /// Students first, then staff.
    pub people: Vec<Person>,
    /// Departments.
    pub departments: Vec<Department>,
    /// Modules, grouped by department in creation order.
    pub modules: Vec<Module>,
}

/// Generates the university `options` describe.
pub fn generate(options: &GenerateOptions) -> University {
    let mut departments = departments(options.departments());
    let people = people(options, departments.len());
    let mut modules = modules(options, &departments);
    enrol(options, &people, &mut modules);
    owners::appoint(options, &people, &mut departments, &mut modules);
    University {
        options: *options,
        people,
        departments,
        modules,
    }
}

impl University {
    /// Head counts.
    pub fn counts(&self) -> Counts {
        let students = self
            .people
            .iter()
            .filter(|p| p.role == Role::Student)
            .count();
        let module_memberships: usize = self.modules.iter().map(Module::len).sum();
        Counts {
            students,
            staff: self.people.len() - students,
            accounts: self.people.iter().filter(|p| p.has_account).count(),
            departments: self.departments.len(),
            modules: self.modules.len(),
            lists: self.departments.len() + self.modules.len(),
            // Everybody belongs to exactly one department.
            memberships: module_memberships + self.people.len(),
        }
    }

    /// The people of department `index`, in person order.
    pub fn department_members(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.people
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.department == index)
            .map(|(i, _)| i)
    }

    /// Every list with its metadata and members: module lists, then department lists, in
    /// the order the CSVs hold them.
    pub fn lists(&self) -> impl Iterator<Item = List<'_>> + '_ {
        let modules = self.modules.iter().map(|module| List {
            family: Family::Modules,
            key: &module.key,
            display_name: module.display_name(),
            description: module.description(),
            members: module.members().collect(),
            owners: module.leader.into_iter().collect(),
        });
        let mut by_department: Vec<Vec<usize>> = vec![Vec::new(); self.departments.len()];
        for (i, person) in self.people.iter().enumerate() {
            by_department[person.department].push(i);
        }
        let departments =
            self.departments
                .iter()
                .zip(by_department)
                .map(|(department, members)| List {
                    family: Family::Departments,
                    key: &department.key,
                    display_name: department.display_name(),
                    description: department.description(),
                    members,
                    owners: department.head.into_iter().collect(),
                });
        modules.chain(departments)
    }

    /// Every `(list key, member)` pair, in the order the CSVs hold them.
    pub fn memberships(&self) -> impl Iterator<Item = (&str, &Person)> + '_ {
        self.lists().flat_map(move |list| {
            let key = list.key;
            list.members
                .into_iter()
                .map(move |m| (key, &self.people[m]))
        })
    }
}

/// The two kinds of list, each its own family in rollcall.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `modules`: students enrolled and staff teaching; members named by UPN.
    Modules,
    /// `departments`: all staff and students of a department; members named by employee id.
    Departments,
}

/// One list: its key (the mailNickname), metadata and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<'a> {
    /// The family it belongs to.
    pub family: Family,
    /// The list key, e.g. `mod-cs10120-2026`.
    pub key: &'a str,
    /// The display name.
    pub display_name: String,
    /// The description.
    pub description: String,
    /// Indexes into [`University::people`], in person order.
    pub members: Vec<usize>,
    /// Indexes into [`University::people`] of the owners the sources name (the module's
    /// leader or the department's head), in person order; each is also in `members`. The
    /// family's fixed owner, [`SERVICE_ACCOUNT`], comes on top.
    pub owners: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> University {
        generate(&GenerateOptions::for_size(Size::Small, 42))
    }

    #[test]
    fn same_options_generate_the_same_university() {
        assert_eq!(small(), small());
    }

    #[test]
    fn different_seeds_generate_different_universities() {
        let other = generate(&GenerateOptions::for_size(Size::Small, 43));
        assert_ne!(small().people, other.people);
    }

    #[test]
    fn every_student_takes_four_to_eight_modules() {
        let university = small();
        let mut taken = vec![0usize; university.people.len()];
        for module in &university.modules {
            for &s in &module.students {
                taken[s] += 1;
            }
        }
        for (person, count) in university.people.iter().zip(taken) {
            match person.role {
                Role::Student => assert!((4..=8).contains(&count), "{}: {count}", person.upn),
                Role::Staff => assert_eq!(count, 0),
            }
        }
    }

    #[test]
    fn upns_and_object_ids_are_unique_lower_case_ascii() {
        let university = small();
        let upns: BTreeSet<&str> = university.people.iter().map(|p| p.upn.as_str()).collect();
        let ids: BTreeSet<&str> = university
            .people
            .iter()
            .map(|p| p.object_id.as_str())
            .collect();
        assert_eq!(upns.len(), university.people.len());
        assert_eq!(ids.len(), university.people.len());
        for upn in upns {
            let (local, domain) = upn.split_once('@').unwrap();
            assert_eq!(domain, DOMAIN);
            assert!(
                local
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.'),
                "{upn}"
            );
        }
    }

    #[test]
    fn employee_ids_follow_the_record_formats() {
        let university = small();
        assert_eq!(university.people[0].employee_id, "S2600001");
        let first_staff = university
            .people
            .iter()
            .find(|p| p.role == Role::Staff)
            .unwrap();
        assert_eq!(first_staff.employee_id, "E000001");
    }

    #[test]
    fn list_keys_are_unique_valid_mail_nicknames() {
        let university = generate(&GenerateOptions::for_size(Size::Medium, 7));
        let keys: Vec<&str> = university
            .departments
            .iter()
            .map(|d| d.key.as_str())
            .chain(university.modules.iter().map(|m| m.key.as_str()))
            .collect();
        let unique: BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(unique.len(), keys.len());
        assert!(keys.iter().all(|k| is_valid_mail_nickname(k)));
    }

    #[test]
    fn a_few_people_have_no_account_yet() {
        let counts = small().counts();
        let people = counts.students + counts.staff;
        assert!(counts.accounts < people);
        assert!(people - counts.accounts <= people / 100, "{counts:?}");
    }

    #[test]
    fn memberships_cover_every_list_and_match_the_counts() {
        let university = small();
        let counts = university.counts();
        assert_eq!(university.memberships().count(), counts.memberships);
        assert_eq!(university.lists().count(), counts.lists);
        let departments = university
            .lists()
            .filter(|l| l.family == Family::Departments)
            .map(|l| l.members.len())
            .sum::<usize>();
        assert_eq!(departments, university.people.len());
    }

    #[test]
    fn module_members_merge_students_and_teachers_in_order() {
        let module = Module {
            key: "mod-x".into(),
            code: "X".into(),
            title: "T".into(),
            department: 0,
            students: [1, 4, 9].into(),
            teachers: [2, 10].into(),
            leader: Some(2),
        };
        assert_eq!(module.members().collect::<Vec<_>>(), [1, 2, 4, 9, 10]);
    }

    #[test]
    fn tiny_universities_still_have_every_part() {
        let university = generate(&GenerateOptions {
            students: 1,
            seed: 1,
            drift: false,
        });
        let counts = university.counts();
        assert_eq!((counts.students, counts.staff), (1, 1));
        assert_eq!(counts.departments, 3);
        assert_eq!(counts.modules, 3);
    }
}
