//! Drawing the university's population: its departments, people and modules, and who
//! enrols on which module.

use std::collections::{BTreeSet, HashMap};

use super::{
    DOMAIN, Department, Draw, ELECTIVE_CHANCE, GenerateOptions, MODULES_PER_STUDENT, Module,
    Person, Role, Stream, TEACHERS_PER_MODULE, UNPROVISIONED_SHARE, YEAR, names,
};

pub(super) fn departments(count: usize) -> Vec<Department> {
    names::DEPARTMENTS[..count]
        .iter()
        .map(|(name, code)| Department {
            key: format!("dept-{}", names::slug(name)),
            name: (*name).to_owned(),
            code: (*code).to_owned(),
            head: None,
        })
        .collect()
}

pub(super) fn people(options: &GenerateOptions, departments: usize) -> Vec<Person> {
    let mut draw = Draw::new(options.seed, Stream::People);
    let students = options.students as usize;
    let total = students + options.staff();
    // How many people already hold each `first.last`, so the next one gets a number.
    let mut taken: HashMap<String, u32> = HashMap::with_capacity(total);
    let mut people = Vec::with_capacity(total);
    for i in 0..total {
        let (role, employee_id) = if i < students {
            (Role::Student, format!("S{}{:05}", YEAR % 100, i + 1))
        } else {
            (Role::Staff, format!("E{:06}", i - students + 1))
        };
        let given = *draw.pick(names::GIVEN_NAMES);
        let family = *draw.pick(names::FAMILY_NAMES);
        let local = format!("{}.{}", names::ascii_fold(given), names::ascii_fold(family));
        let seen = taken.entry(local.clone()).or_insert(0);
        *seen += 1;
        let upn = match *seen {
            1 => format!("{local}@{DOMAIN}"),
            n => format!("{local}{n}@{DOMAIN}"),
        };
        people.push(Person {
            role,
            display_name: format!("{given} {family}"),
            upn,
            employee_id,
            object_id: draw.guid(),
            department: draw.below(departments),
            has_account: true,
        });
    }
    let mut accounts = Draw::new(options.seed, Stream::Accounts);
    let indexes: Vec<usize> = (0..total).collect();
    let unprovisioned = ((total as f64 * UNPROVISIONED_SHARE).round() as usize).max(1);
    for i in accounts.sample(&indexes, unprovisioned) {
        people[i].has_account = false;
    }
    people
}

pub(super) fn modules(options: &GenerateOptions, departments: &[Department]) -> Vec<Module> {
    let mut draw = Draw::new(options.seed, Stream::Modules);
    let count = options.modules();
    // Departments take turns, so each runs `count / departments` modules, give or take one.
    let mut per_department = vec![0usize; departments.len()];
    let mut modules: Vec<Module> = (0..count)
        .map(|i| {
            let department = i % departments.len();
            per_department[department] += 1;
            new_module(
                &mut draw,
                &departments[department],
                department,
                per_department[department],
            )
        })
        .collect();
    modules.sort_by_key(|m| m.department);
    modules
}

/// Module number `ordinal` (from 1) of a department: codes never repeat within a department
/// because the ordinal is part of them.
pub(super) fn new_module(
    draw: &mut Draw,
    department: &Department,
    index: usize,
    ordinal: usize,
) -> Module {
    let level = draw.between(1, 3);
    let code = format!(
        "{}{level}{:04}",
        department.code,
        ordinal * 10 + draw.below(10)
    );
    let title = format!(
        "{} {}",
        draw.pick(names::TITLE_OPENINGS),
        draw.pick(names::TITLE_SUBJECTS)
    );
    Module {
        key: format!("mod-{}-{YEAR}", code.to_ascii_lowercase()),
        code,
        title,
        department: index,
        students: BTreeSet::new(),
        teachers: BTreeSet::new(),
        leader: None,
    }
}

pub(super) fn enrol(options: &GenerateOptions, people: &[Person], modules: &mut [Module]) {
    let mut draw = Draw::new(options.seed, Stream::Enrolments);
    let departments = options.departments();
    let mut by_department: Vec<Vec<usize>> = vec![Vec::new(); departments];
    for (i, module) in modules.iter().enumerate() {
        by_department[module.department].push(i);
    }
    let mut staff_by_department: Vec<Vec<usize>> = vec![Vec::new(); departments];
    for (i, person) in people.iter().enumerate() {
        if person.role == Role::Staff {
            staff_by_department[person.department].push(i);
        }
    }
    for (i, person) in people.iter().enumerate() {
        if person.role == Role::Student {
            for module in
                choose_modules(&mut draw, &by_department[person.department], modules.len())
            {
                modules[module].students.insert(i);
            }
        }
    }
    let all_staff: Vec<usize> = staff_by_department.concat();
    for module in modules.iter_mut() {
        let home = &staff_by_department[module.department];
        // A department without staff borrows from the whole university.
        let pool = if home.is_empty() { &all_staff } else { home };
        let count = draw.between(TEACHERS_PER_MODULE.0, TEACHERS_PER_MODULE.1);
        module.teachers.extend(draw.sample(pool, count));
    }
}

/// A student's modules: mostly from their own department (`home`), sometimes one elective
/// from anywhere; between four and eight of them when the university has that many.
fn choose_modules(draw: &mut Draw, home: &[usize], all: usize) -> Vec<usize> {
    let wanted = draw
        .between(MODULES_PER_STUDENT.0, MODULES_PER_STUDENT.1)
        .min(all);
    let electives = usize::from(draw.chance(ELECTIVE_CHANCE));
    let mut chosen = draw.sample(home, wanted - electives);
    while chosen.len() < wanted {
        let module = draw.below(all);
        if !chosen.contains(&module) {
            chosen.push(module);
        }
    }
    chosen
}
