//! "A typical day": a deterministic share of enrolments changes, a module opens, and a few
//! modules change leader.

use super::draw::{Draw, Stream};
use super::{
    ELECTIVE_CHANCE, MODULES_PER_STUDENT, Role, TEACHERS_PER_MODULE, University, new_module,
};

/// What [`University::apply_churn`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Churn {
    /// Students who left a module.
    pub withdrawals: usize,
    /// Students who joined a module, including the new one.
    pub enrolments: usize,
    /// The list keys of modules that opened.
    pub new_modules: Vec<String>,
    /// The list keys of modules whose leader (an owner of the list) changed; the former
    /// leader still teaches, so only the list's owners change.
    pub leader_changes: Vec<String>,
}

impl University {
    /// Changes about `fraction` of the enrolments, half withdrawals and half new enrolments,
    /// opens one new module in a random department, and hands about one module in fifty (at
    /// least one, at most 25) to a new leader; `seed` picks which (use a different one per simulated
    /// day). Every student keeps four to eight modules.
    pub fn apply_churn(&mut self, fraction: f64, seed: u64) -> Churn {
        let mut draw = Draw::new(seed, Stream::Churn);
        let students: Vec<usize> = (0..self.people.len())
            .filter(|&i| self.people[i].role == Role::Student)
            .collect();
        let mut taking: Vec<Vec<usize>> = vec![Vec::new(); self.people.len()];
        for (m, module) in self.modules.iter().enumerate() {
            for &s in &module.students {
                taking[s].push(m);
            }
        }
        let mut by_department: Vec<Vec<usize>> = vec![Vec::new(); self.departments.len()];
        for (m, module) in self.modules.iter().enumerate() {
            by_department[module.department].push(m);
        }
        let enrolled: usize = self.modules.iter().map(|m| m.students.len()).sum();
        let changes = (enrolled as f64 * fraction.clamp(0.0, 1.0)).round() as usize;
        let mut churn = Churn {
            withdrawals: 0,
            enrolments: 0,
            new_modules: Vec::new(),
            leader_changes: Vec::new(),
        };
        if changes == 0 || students.is_empty() {
            return churn;
        }
        // Bounded attempts: a student already at the limit is skipped, and a university where
        // everybody is at the limit must not loop for ever.
        let attempts = changes * 20;

        for _ in 0..attempts {
            if churn.withdrawals == changes / 2 {
                break;
            }
            let s = *draw.pick(&students);
            if taking[s].len() > MODULES_PER_STUDENT.0 {
                let k = draw.below(taking[s].len());
                let m = taking[s].swap_remove(k);
                self.modules[m].students.remove(&s);
                churn.withdrawals += 1;
            }
        }

        for _ in 0..attempts {
            if churn.enrolments == changes - changes / 2 {
                break;
            }
            let s = *draw.pick(&students);
            if taking[s].len() >= MODULES_PER_STUDENT.1 {
                continue;
            }
            let department = self.people[s].department;
            // Every department runs at least one module (see `GenerateOptions::modules`).
            let m = if draw.chance(ELECTIVE_CHANCE) {
                draw.below(self.modules.len())
            } else {
                *draw.pick(&by_department[department])
            };
            if !taking[s].contains(&m) {
                taking[s].push(m);
                self.modules[m].students.insert(s);
                churn.enrolments += 1;
            }
        }

        churn.enrolments += self.open_module(&mut draw, &students, &mut taking, enrolled);
        let opened = self.modules.len() - 1;
        churn.new_modules.push(self.modules[opened].key.clone());
        // Leaders come from a stream of their own, so that they change no enrolment.
        let mut owners = Draw::new(seed, Stream::OwnerChurn);
        churn.leader_changes = self.change_leaders(&mut owners, opened);
        self.appoint_leader(&mut owners, opened);
        churn
    }

    /// Opens a module in a random department, with as many of its students as an average
    /// module has (among those with room for one more) and its usual number of teachers.
    /// Returns the students enrolled.
    fn open_module(
        &mut self,
        draw: &mut Draw,
        students: &[usize],
        taking: &mut [Vec<usize>],
        enrolled: usize,
    ) -> usize {
        let department = draw.below(self.departments.len());
        let ordinal = self
            .modules
            .iter()
            .filter(|m| m.department == department)
            .count()
            + 1;
        let mut module = new_module(draw, &self.departments[department], department, ordinal);
        let index = self.modules.len();
        let size = enrolled / self.modules.len().max(1);
        let with_room: Vec<usize> = students
            .iter()
            .copied()
            .filter(|&s| {
                self.people[s].department == department && taking[s].len() < MODULES_PER_STUDENT.1
            })
            .collect();
        for s in draw.sample(&with_room, size) {
            taking[s].push(index);
            module.students.insert(s);
        }
        let staff: Vec<usize> = (0..self.people.len())
            .filter(|&i| {
                self.people[i].role == Role::Staff && self.people[i].department == department
            })
            .collect();
        let teachers = draw.between(TEACHERS_PER_MODULE.0, TEACHERS_PER_MODULE.1);
        module.teachers.extend(draw.sample(&staff, teachers));
        let joined = module.students.len();
        self.modules.push(module);
        joined
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::{GenerateOptions, Size, generate};
    use super::*;

    fn pairs(university: &University) -> BTreeSet<(String, usize)> {
        university
            .modules
            .iter()
            .flat_map(|m| m.students.iter().map(|&s| (m.key.clone(), s)))
            .collect()
    }

    #[test]
    fn churn_changes_about_the_requested_share_of_enrolments() {
        let mut university = generate(&GenerateOptions::for_size(Size::Small, 42));
        let before = pairs(&university);
        let churn = university.apply_churn(0.02, 1);
        let after = pairs(&university);
        let wanted = (before.len() as f64 * 0.02).round() as usize;
        assert_eq!(churn.withdrawals, wanted / 2);
        assert_eq!(before.difference(&after).count(), churn.withdrawals);
        assert_eq!(after.difference(&before).count(), churn.enrolments);
        assert!(
            churn.enrolments > wanted - wanted / 2,
            "the new module enrols students too"
        );
    }

    #[test]
    fn churn_opens_a_module_with_a_fresh_key_and_teachers() {
        let mut university = generate(&GenerateOptions::for_size(Size::Small, 42));
        let keys: BTreeSet<String> = university.modules.iter().map(|m| m.key.clone()).collect();
        let churn = university.apply_churn(0.01, 1);
        assert_eq!(churn.new_modules.len(), 1);
        assert!(!keys.contains(&churn.new_modules[0]));
        let opened = university.modules.last().unwrap();
        assert!(!opened.students.is_empty() && !opened.teachers.is_empty());
    }

    #[test]
    fn churn_keeps_four_to_eight_modules_per_student() {
        let mut university = generate(&GenerateOptions::for_size(Size::Small, 42));
        university.apply_churn(0.2, 9);
        let mut taken = vec![0usize; university.people.len()];
        for module in &university.modules {
            for &s in &module.students {
                taken[s] += 1;
            }
        }
        for (person, count) in university.people.iter().zip(taken) {
            if person.role == Role::Student {
                assert!((4..=8).contains(&count), "{}: {count}", person.upn);
            }
        }
    }

    #[test]
    fn churn_hands_a_few_modules_to_another_teacher_and_leads_the_new_one() {
        let before = generate(&GenerateOptions::for_size(Size::Small, 42));
        let mut after = before.clone();
        let churn = after.apply_churn(0.01, 1);
        let wanted = ((before.modules.len() as f64 / 50.0).round() as usize).max(1);
        assert_eq!(churn.leader_changes.len(), wanted);
        for (old, new) in before.modules.iter().zip(&after.modules) {
            let changed = churn.leader_changes.contains(&old.key);
            assert_eq!(old.leader != new.leader, changed, "{}", old.key);
            assert_eq!(
                old.teachers, new.teachers,
                "the former leader keeps teaching"
            );
            let leader = new.leader.unwrap();
            assert!(new.teachers.contains(&leader) && after.people[leader].has_account);
        }
        let opened = after.modules.last().unwrap();
        assert!(opened.teachers.contains(&opened.leader.unwrap()));
    }

    #[test]
    fn churn_is_deterministic_and_depends_on_its_seed() {
        let base = generate(&GenerateOptions::for_size(Size::Small, 42));
        let (mut a, mut b, mut c) = (base.clone(), base.clone(), base);
        a.apply_churn(0.01, 5);
        b.apply_churn(0.01, 5);
        c.apply_churn(0.01, 6);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
