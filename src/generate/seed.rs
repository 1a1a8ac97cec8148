//! The sandbox tenant a university starts from: its accounts (and the service account that
//! owns the lists) and, with drift, the groups a previous membership updater and other teams
//! left behind, each with its owners.

use std::collections::BTreeSet;

use super::draw::{Draw, Stream};
use super::owners::SERVICE_ACCOUNT_NAME;
use super::{DOMAIN, List, SERVICE_ACCOUNT, University, names};
use crate::sandbox::{Seed, SeedGroup, SeedUser};

/// The share of lists that already have a group (with drifted members) in a drifted tenant.
const PRE_EXISTING_SHARE: f64 = 0.05;
/// The chance that a member of a pre-existing group has gone missing from it.
const MISSING_CHANCE: f64 = 0.1;
/// Extra (wrong) members of a pre-existing group, as a share of its true size.
const EXTRA_SHARE: f64 = 0.05;
/// Members of an unmanaged group.
const UNMANAGED_MEMBERS: (usize, usize) = (5, 60);

impl University {
    /// The sandbox directory this university starts from: one user per person with an
    /// account, then the service account [`SERVICE_ACCOUNT`], and, when generated with
    /// drift, pre-existing and unmanaged groups.
    pub fn sandbox_seed(&self) -> Seed {
        let mut users: Vec<SeedUser> = self
            .people
            .iter()
            .filter(|p| p.has_account)
            .map(|p| SeedUser {
                id: p.object_id.clone(),
                user_principal_name: p.upn.clone(),
                mail: Some(p.upn.clone()),
                employee_id: Some(p.employee_id.clone()),
                display_name: p.display_name.clone(),
                // HR attributes as Entra Connect syncs them, for `entra` sources.
                department: Some(self.departments[p.department].name.clone()),
                job_title: None,
                employee_type: Some(
                    match p.role {
                        super::Role::Student => "Student",
                        super::Role::Staff => "Staff",
                    }
                    .to_owned(),
                ),
                account_enabled: None,
            })
            .collect();
        // Last, so that every person keeps their place among the users. No HR attributes:
        // no `entra` source selecting people by department or type picks it up.
        users.push(SeedUser {
            id: self.service_account_id(),
            user_principal_name: SERVICE_ACCOUNT.to_owned(),
            mail: Some(SERVICE_ACCOUNT.to_owned()),
            display_name: SERVICE_ACCOUNT_NAME.to_owned(),
            ..SeedUser::default()
        });
        let groups = if self.options.drift {
            let mut draw = Draw::new(self.options.seed, Stream::Drift);
            let with_account: Vec<usize> = (0..self.people.len())
                .filter(|&i| self.people[i].has_account)
                .collect();
            let mut groups = self.pre_existing_groups(&mut draw, &with_account);
            groups.extend(self.unmanaged_groups(&mut draw, &with_account));
            groups
        } else {
            Vec::new()
        };
        Seed { users, groups }
    }

    /// The lists that have a group in the drifted tenant of [`University::sandbox_seed`], in
    /// list order; none without drift.
    pub(super) fn pre_existing_lists(&self) -> Vec<List<'_>> {
        if !self.options.drift {
            return Vec::new();
        }
        self.choose_pre_existing(&mut Draw::new(self.options.seed, Stream::Drift))
    }

    /// ~5 % of the lists, the drift stream's first draw.
    fn choose_pre_existing(&self, draw: &mut Draw) -> Vec<List<'_>> {
        let lists = self.departments.len() + self.modules.len();
        let count = ((lists as f64 * PRE_EXISTING_SHARE).round() as usize).max(1);
        let indexes: Vec<usize> = (0..lists).collect();
        let chosen: BTreeSet<usize> = draw.sample(&indexes, count).into_iter().collect();
        self.lists()
            .enumerate()
            .filter(|(i, _)| chosen.contains(i))
            .map(|(_, list)| list)
            .collect()
    }

    /// Groups for ~5 % of the lists, named as rollcall would name them, whose members have
    /// drifted: some are missing, some should not be there. The earlier script ran as the
    /// service account, so it owns them, with the leader or head it knew (see
    /// `seeded_owners`): adopting them leaves the service account where it is.
    fn pre_existing_groups(&self, draw: &mut Draw, with_account: &[usize]) -> Vec<SeedGroup> {
        let service_account = self.service_account_id();
        self.choose_pre_existing(draw)
            .into_iter()
            .enumerate()
            .map(|(k, list)| {
                let mut owners = vec![service_account.clone()];
                owners.extend(self.object_ids(self.seeded_owners(&list, k).into_iter().collect()));
                let desired: BTreeSet<usize> = list
                    .members
                    .into_iter()
                    .filter(|&i| self.people[i].has_account)
                    .collect();
                let mut actual: BTreeSet<usize> = desired
                    .iter()
                    .copied()
                    .filter(|_| !draw.chance(MISSING_CHANCE))
                    .collect();
                // Drift always shows: at least one member is missing from a non-empty group.
                if actual.len() == desired.len()
                    && let Some(&gone) = desired.iter().next()
                {
                    actual.remove(&gone);
                }
                let strangers: Vec<usize> = with_account
                    .iter()
                    .copied()
                    .filter(|i| !desired.contains(i))
                    .collect();
                let extras = ((desired.len() as f64 * EXTRA_SHARE).round() as usize).max(1);
                actual.extend(draw.sample(&strangers, extras));
                SeedGroup {
                    id: Some(draw.guid()),
                    display_name: list.display_name,
                    mail_nickname: list.key.to_owned(),
                    description: Some(list.description),
                    group_types: vec!["Unified".to_owned()],
                    mail_enabled: true,
                    security_enabled: false,
                    members: self.object_ids(actual),
                    extensions: Vec::new(),
                    owners,
                }
            })
            .collect()
    }

    /// Groups other teams run, with nicknames that are no list's key; rollcall must never
    /// touch them. Every fourth is a distribution list rather than a Microsoft 365 group. Each
    /// is owned by its first member, whoever set it up (no draw, so members stay as they were).
    fn unmanaged_groups(&self, draw: &mut Draw, with_account: &[usize]) -> Vec<SeedGroup> {
        names::UNMANAGED_GROUPS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let size = draw.between(UNMANAGED_MEMBERS.0, UNMANAGED_MEMBERS.1);
                let members: BTreeSet<usize> =
                    draw.sample(with_account, size).into_iter().collect();
                let distribution_list = i % 4 == 3;
                let nickname = names::slug(name);
                let owners = members.first().copied().into_iter().collect();
                SeedGroup {
                    id: Some(draw.guid()),
                    display_name: (*name).to_owned(),
                    description: Some(format!("{name} ({nickname}@{DOMAIN})")),
                    mail_nickname: nickname,
                    group_types: if distribution_list {
                        Vec::new()
                    } else {
                        vec!["Unified".to_owned()]
                    },
                    mail_enabled: true,
                    security_enabled: false,
                    members: self.object_ids(members),
                    extensions: Vec::new(),
                    owners: self.object_ids(owners),
                }
            })
            .collect()
    }

    fn object_ids(&self, people: BTreeSet<usize>) -> Vec<String> {
        people
            .into_iter()
            .map(|i| self.people[i].object_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{GenerateOptions, Size, generate};
    use super::*;

    fn drifted() -> University {
        generate(&GenerateOptions {
            drift: true,
            ..GenerateOptions::for_size(Size::Small, 42)
        })
    }

    #[test]
    fn seed_holds_every_account_and_no_groups_without_drift() {
        let university = generate(&GenerateOptions::for_size(Size::Small, 42));
        let seed = university.sandbox_seed();
        assert_eq!(seed.users.len(), university.counts().accounts + 1);
        assert!(seed.groups.is_empty());
        let user = &seed.users[0];
        assert_eq!(
            user.mail.as_deref(),
            Some(user.user_principal_name.as_str())
        );
        let service = seed.users.last().unwrap();
        assert_eq!(service.user_principal_name, SERVICE_ACCOUNT);
        assert_eq!(service.id, university.service_account_id());
        assert_eq!(service.employee_id, None);
    }

    #[test]
    fn every_owner_of_a_seeded_group_is_a_user_and_ours_are_the_service_accounts() {
        let university = drifted();
        let seed = university.sandbox_seed();
        let users: BTreeSet<&str> = seed.users.iter().map(|u| u.id.as_str()).collect();
        let lists: BTreeMap<&str, Vec<usize>> =
            university.lists().map(|l| (l.key, l.owners)).collect();
        for group in &seed.groups {
            assert!(!group.owners.is_empty(), "{}", group.mail_nickname);
            assert!(group.owners.iter().all(|o| users.contains(o.as_str())));
            match lists.get(group.mail_nickname.as_str()) {
                Some(owners) => {
                    assert_eq!(group.owners[0], university.service_account_id());
                    assert_eq!(
                        group.owners.len(),
                        1 + owners.len(),
                        "{}",
                        group.mail_nickname
                    );
                }
                None => assert!(group.members.contains(&group.owners[0])),
            }
        }
    }

    #[test]
    fn people_without_accounts_are_not_users() {
        let university = drifted();
        let seed = university.sandbox_seed();
        let ids: BTreeSet<&str> = seed.users.iter().map(|u| u.id.as_str()).collect();
        for person in &university.people {
            assert_eq!(ids.contains(person.object_id.as_str()), person.has_account);
        }
    }

    #[test]
    fn drift_adds_pre_existing_groups_with_wrong_members_and_unmanaged_groups() {
        let university = drifted();
        let seed = university.sandbox_seed();
        let users: BTreeSet<&str> = seed.users.iter().map(|u| u.id.as_str()).collect();
        let lists = university.counts().lists;
        let desired: BTreeMap<String, BTreeSet<String>> = university
            .lists()
            .map(|list| {
                let members = list
                    .members
                    .iter()
                    .map(|&m| university.people[m].object_id.clone())
                    .collect();
                (list.key.to_owned(), members)
            })
            .collect();
        let (managed, unmanaged): (Vec<_>, Vec<_>) = seed
            .groups
            .iter()
            .partition(|g| desired.contains_key(&g.mail_nickname));
        assert_eq!(managed.len(), (lists as f64 * 0.05).round() as usize);
        assert_eq!(unmanaged.len(), 20);
        for group in &managed {
            let want = &desired[&group.mail_nickname];
            let have: BTreeSet<String> = group.members.iter().cloned().collect();
            assert!(
                want.difference(&have).next().is_some(),
                "{}: nobody missing",
                group.mail_nickname
            );
            assert!(
                have.difference(want).next().is_some(),
                "{}: no extras",
                group.mail_nickname
            );
        }
        for group in seed.groups {
            assert!(group.members.iter().all(|m| users.contains(m.as_str())));
            assert!(group.owners.iter().all(|m| users.contains(m.as_str())));
            assert!(names::is_valid_mail_nickname(&group.mail_nickname));
        }
    }
}
