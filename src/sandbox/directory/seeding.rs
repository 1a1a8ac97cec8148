//! Loading a directory from a seed (`--seed`, `POST /_sandbox/seed`) and writing its true
//! state back as one (`GET /_sandbox/state`).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::{Directory, Group, GroupIx, GroupProperties, User, UserIx};
use crate::sandbox::seed::{Seed, SeedGroup, SeedUser};

impl Directory {
    /// Builds a directory from a seed, refusing duplicates and members that are not users.
    pub fn from_seed(seed: &Seed) -> Result<Directory, String> {
        let mut directory = Directory::default();
        for (n, user) in seed.users.iter().enumerate() {
            let ix = directory.users.len() as UserIx;
            let id = user.id.to_ascii_lowercase();
            if id.is_empty() {
                return Err(format!("users[{n}].id: must not be empty"));
            }
            if directory.user_by_id.insert(id.clone(), ix).is_some() {
                return Err(format!("users[{n}].id: duplicate user id '{}'", user.id));
            }
            if directory
                .user_by_upn
                .insert(user.user_principal_name.to_lowercase(), ix)
                .is_some()
            {
                return Err(format!(
                    "users[{n}].userPrincipalName: duplicate '{}'",
                    user.user_principal_name
                ));
            }
            if let Some(mail) = &user.mail {
                directory
                    .user_by_mail
                    .entry(mail.to_lowercase())
                    .or_default()
                    .push(ix);
            }
            if let Some(employee_id) = &user.employee_id {
                directory
                    .user_by_employee_id
                    .entry(employee_id.clone())
                    .or_default()
                    .push(ix);
            }
            directory.users.push(User {
                id,
                user_principal_name: user.user_principal_name.clone(),
                mail: user.mail.clone(),
                employee_id: user.employee_id.clone(),
                display_name: user.display_name.clone(),
                department: user.department.clone(),
                job_title: user.job_title.clone(),
                employee_type: user.employee_type.clone(),
                account_enabled: user.account_enabled.unwrap_or(true),
            });
        }
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(24 * 3600))
            .unwrap_or_else(Instant::now);
        for (n, group) in seed.groups.iter().enumerate() {
            let ix = directory.groups.len() as GroupIx;
            let id = match &group.id {
                Some(id) => id.to_ascii_lowercase(),
                None => uuid::Uuid::new_v4().to_string(),
            };
            if directory.group_by_id.contains_key(&id) || directory.user_by_id.contains_key(&id) {
                return Err(format!("groups[{n}].id: duplicate object id '{id}'"));
            }
            let nickname = group.mail_nickname.to_lowercase();
            if directory.group_by_nickname.contains_key(&nickname) {
                return Err(format!(
                    "groups[{n}].mailNickname: duplicate '{}'",
                    group.mail_nickname
                ));
            }
            let users = |ids: &[String], field: &str| -> Result<BTreeSet<UserIx>, String> {
                ids.iter()
                    .enumerate()
                    .map(|(m, id)| {
                        directory
                            .user_by_id
                            .get(&id.to_ascii_lowercase())
                            .copied()
                            .ok_or_else(|| {
                                format!(
                                    "groups[{n}].{field}[{m}]: '{id}' is not the id of a seeded user"
                                )
                            })
                    })
                    .collect()
            };
            let members = users(&group.members, "members")?;
            let owners = users(&group.owners, "owners")?;
            for (e, extension) in group.extensions.iter().enumerate() {
                if !extension
                    .get("extensionName")
                    .is_some_and(|name| name.is_string())
                {
                    return Err(format!(
                        "groups[{n}].extensions[{e}].extensionName: missing or not a string"
                    ));
                }
            }
            directory.group_by_id.insert(id.clone(), ix);
            directory.group_by_nickname.insert(nickname, ix);
            directory.groups.push(Group {
                id,
                properties: GroupProperties {
                    display_name: group.display_name.clone(),
                    mail_nickname: group.mail_nickname.clone(),
                    description: group.description.clone(),
                    group_types: group.group_types.clone(),
                    mail_enabled: group.mail_enabled,
                    security_enabled: group.security_enabled,
                    resource_behavior_options: Vec::new(),
                    // Microsoft 365 groups are Public unless told otherwise.
                    visibility: group
                        .group_types
                        .iter()
                        .any(|t| t == "Unified")
                        .then(|| "Public".to_owned()),
                },
                created_date_time: "2026-01-01T00:00:00Z".to_owned(),
                extensions: group.extensions.clone(),
                members,
                owners,
                created_at: long_ago,
                deleted: false,
                recent: VecDeque::new(),
            });
        }
        Ok(directory)
    }

    /// The true state as a seed: users, groups and members sorted by id.
    pub fn to_seed(&self) -> Seed {
        let mut users: Vec<SeedUser> = self
            .users
            .iter()
            .map(|u| SeedUser {
                id: u.id.clone(),
                user_principal_name: u.user_principal_name.clone(),
                mail: u.mail.clone(),
                employee_id: u.employee_id.clone(),
                display_name: u.display_name.clone(),
                department: u.department.clone(),
                job_title: u.job_title.clone(),
                employee_type: u.employee_type.clone(),
                account_enabled: (!u.account_enabled).then_some(false),
            })
            .collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        let mut groups: Vec<SeedGroup> = self
            .groups
            .iter()
            .filter(|g| !g.deleted)
            .map(|g| {
                let ids = |users: &BTreeSet<UserIx>| {
                    let mut ids: Vec<String> = users
                        .iter()
                        .map(|&m| self.users[m as usize].id.clone())
                        .collect();
                    ids.sort();
                    ids
                };
                let (members, owners) = (ids(&g.members), ids(&g.owners));
                SeedGroup {
                    id: Some(g.id.clone()),
                    display_name: g.properties.display_name.clone(),
                    mail_nickname: g.properties.mail_nickname.clone(),
                    description: g.properties.description.clone(),
                    group_types: g.properties.group_types.clone(),
                    mail_enabled: g.properties.mail_enabled,
                    security_enabled: g.properties.security_enabled,
                    members,
                    owners,
                    extensions: g.extensions.clone(),
                }
            })
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Seed { users, groups }
    }
}
