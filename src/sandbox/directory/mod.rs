//! The tenant's directory: users, groups, memberships, and the change log behind delta and lag.
//!
//! Users and groups live in vectors and are referred to by index, so that a membership is a
//! `u32` in a `BTreeSet` (300,000 of them fit in a few megabytes) and member pages are cursor
//! ranges over that set, never copies of a whole group. Writes always act on the true state;
//! reads pass a `horizon` (now − replication lag) and see the state as of that instant.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use serde_json::{Map, Value};

mod seeding;
mod writes;

/// A user's position in the directory.
pub type UserIx = u32;
/// A group's position in the directory.
pub type GroupIx = u32;

/// A user account.
#[derive(Debug, Clone)]
pub struct User {
    /// Object id.
    pub id: String,
    /// Sign-in name.
    pub user_principal_name: String,
    /// Primary SMTP address.
    pub mail: Option<String>,
    /// HR or student-record number.
    pub employee_id: Option<String>,
    /// Name shown in address books.
    pub display_name: String,
    /// Department.
    pub department: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// Employee type.
    pub employee_type: Option<String>,
    /// Whether the account may sign in.
    pub account_enabled: bool,
}

/// One membership change, kept while it is younger than the replication lag.
#[derive(Debug, Clone, Copy)]
struct RecentChange {
    at: Instant,
    user: UserIx,
    added: bool,
}

/// A group's own properties: what a create sets and a read shows.
#[derive(Debug, Clone)]
pub struct GroupProperties {
    /// Name shown in address books.
    pub display_name: String,
    /// Alias, unique in the tenant.
    pub mail_nickname: String,
    /// Free text.
    pub description: Option<String>,
    /// `["Unified"]` for a Microsoft 365 group.
    pub group_types: Vec<String>,
    /// Whether the group has a mailbox address.
    pub mail_enabled: bool,
    /// Whether the group is a security group.
    pub security_enabled: bool,
    /// Options set at creation (e.g. `WelcomeEmailDisabled`).
    pub resource_behavior_options: Vec<String>,
    /// `Public`, `Private` or `HiddenMembership` (Microsoft 365 groups; none for others).
    pub visibility: Option<String>,
}

/// A group with its direct members.
#[derive(Debug)]
pub struct Group {
    /// Object id.
    pub id: String,
    /// Its properties.
    pub properties: GroupProperties,
    /// Creation time as Graph prints it.
    pub created_date_time: String,
    /// Open extensions, each with `extensionName`.
    pub extensions: Vec<Map<String, Value>>,
    /// Direct members (users), in index order.
    pub members: BTreeSet<UserIx>,
    /// Owners (users), in index order.
    pub owners: BTreeSet<UserIx>,
    created_at: Instant,
    recent: VecDeque<RecentChange>,
    deleted: bool,
}

impl Group {
    /// Whether Graph refuses member changes: mail-enabled security groups and distribution lists.
    pub fn is_read_only(&self) -> bool {
        self.properties.mail_enabled && !self.properties.group_types.iter().any(|t| t == "Unified")
    }

    /// Whether a read at `horizon` can see this group yet.
    pub fn visible_at(&self, horizon: Option<Instant>) -> bool {
        !self.deleted && horizon.is_none_or(|h| self.created_at <= h)
    }
}

/// What happened to a group, in the order it happened (the delta log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The group was created.
    Created,
    /// Its properties changed.
    Updated,
    /// A member was added.
    MemberAdded(UserIx),
    /// A member was removed.
    MemberRemoved(UserIx),
    /// An owner was added.
    OwnerAdded(UserIx),
    /// An owner was removed.
    OwnerRemoved(UserIx),
    /// The group was deleted.
    Deleted,
}

/// One entry of the change log; its sequence number is its position + 1.
#[derive(Debug, Clone, Copy)]
pub struct LogEntry {
    /// When the change was accepted.
    pub at: Instant,
    /// The group it concerns.
    pub group: GroupIx,
    /// What changed.
    pub change: Change,
}

/// A group to create, already parsed from the request body.
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// Its properties.
    pub properties: GroupProperties,
    /// Object ids from `members@odata.bind`.
    pub members: Vec<String>,
    /// Object ids from `owners@odata.bind`.
    pub owners: Vec<String>,
}

/// The whole directory.
#[derive(Debug, Default)]
pub struct Directory {
    users: Vec<User>,
    user_by_id: HashMap<String, UserIx>,
    user_by_upn: HashMap<String, UserIx>,
    user_by_mail: HashMap<String, Vec<UserIx>>,
    user_by_employee_id: HashMap<String, Vec<UserIx>>,
    groups: Vec<Group>,
    group_by_id: HashMap<String, GroupIx>,
    group_by_nickname: HashMap<String, GroupIx>,
    log: Vec<LogEntry>,
    /// Bumped when every outstanding delta token must stop working.
    pub epoch: u64,
}

impl Directory {
    /// Number of users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The user at an index.
    pub fn user(&self, ix: UserIx) -> &User {
        &self.users[ix as usize]
    }

    /// All users, in index order.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// A user by object id (any case).
    pub fn user_by_id(&self, id: &str) -> Option<UserIx> {
        self.user_by_id.get(&id.to_ascii_lowercase()).copied()
    }

    /// A user by object id or sign-in name, as `GET /users/{id | userPrincipalName}` takes.
    pub fn user_by_key(&self, key: &str) -> Option<UserIx> {
        self.user_by_id(key)
            .or_else(|| self.user_by_upn.get(&key.to_lowercase()).copied())
    }

    /// Users whose property equals `value` (`userPrincipalName` and `mail` ignore case);
    /// `None` for a property the sandbox cannot filter on.
    pub fn find_users(&self, property: &str, value: &str) -> Option<Vec<UserIx>> {
        let found = match property.to_ascii_lowercase().as_str() {
            "id" => self.user_by_id(value).into_iter().collect(),
            "userprincipalname" => self
                .user_by_upn
                .get(&value.to_lowercase())
                .copied()
                .into_iter()
                .collect(),
            "mail" => self
                .user_by_mail
                .get(&value.to_lowercase())
                .cloned()
                .unwrap_or_default(),
            "employeeid" => self
                .user_by_employee_id
                .get(value)
                .cloned()
                .unwrap_or_default(),
            _ => return None,
        };
        Some(found)
    }

    /// The group at an index.
    pub fn group(&self, ix: GroupIx) -> &Group {
        &self.groups[ix as usize]
    }

    /// A group by object id, if a read at `horizon` can see it.
    pub fn group_by_id(&self, id: &str, horizon: Option<Instant>) -> Option<GroupIx> {
        self.group_by_id
            .get(&id.to_ascii_lowercase())
            .copied()
            .filter(|&g| self.groups[g as usize].visible_at(horizon))
    }

    /// A group by nickname (any case), if a read at `horizon` can see it.
    pub fn group_by_nickname(&self, nickname: &str, horizon: Option<Instant>) -> Option<GroupIx> {
        self.group_by_nickname
            .get(&nickname.to_lowercase())
            .copied()
            .filter(|&g| self.groups[g as usize].visible_at(horizon))
    }

    /// The change log (sequence number = position + 1).
    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    /// Up to `limit` members after `after`, as a read at `horizon` sees them, and whether more
    /// follow.
    pub fn member_page(
        &self,
        group: GroupIx,
        horizon: Option<Instant>,
        after: Option<UserIx>,
        limit: usize,
    ) -> (Vec<UserIx>, bool) {
        let group = &self.groups[group as usize];
        let start = after.map_or(0, |a| a.saturating_add(1));
        let (hidden, extra) = lagged_overrides(group, horizon);
        let mut current = group
            .members
            .range(start..)
            .copied()
            .filter(|m| !hidden.contains(m))
            .peekable();
        let mut past = extra.range(start..).copied().peekable();
        let mut page = Vec::with_capacity(limit.min(1_000));
        loop {
            let next = match (current.peek(), past.peek()) {
                (Some(&c), Some(&p)) if p < c => past.next(),
                (Some(_), _) => current.next(),
                (None, Some(_)) => past.next(),
                (None, None) => return (page, false),
            };
            if page.len() == limit {
                return (page, true);
            }
            page.extend(next);
        }
    }
}

/// For a read at `horizon`: members that are present now but were not then (`hidden`), and
/// members that were present then but are gone now (`extra`). The earliest change after the
/// horizon tells what the state was at the horizon.
fn lagged_overrides(
    group: &Group,
    horizon: Option<Instant>,
) -> (HashSet<UserIx>, BTreeSet<UserIx>) {
    let mut hidden = HashSet::new();
    let mut extra = BTreeSet::new();
    let Some(horizon) = horizon else {
        return (hidden, extra);
    };
    let mut first_after: BTreeMap<UserIx, bool> = BTreeMap::new();
    for change in group.recent.iter().filter(|c| c.at > horizon) {
        first_after.entry(change.user).or_insert(change.added);
    }
    for (user, first_was_add) in first_after {
        let was_member = !first_was_add;
        let is_member = group.members.contains(&user);
        match (was_member, is_member) {
            (false, true) => {
                hidden.insert(user);
            }
            (true, false) => {
                extra.insert(user);
            }
            _ => {}
        }
    }
    (hidden, extra)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sandbox::error::GraphError;
    use crate::sandbox::seed::{Seed, SeedGroup, SeedUser};

    fn user(n: u32) -> SeedUser {
        SeedUser {
            id: format!("00000000-0000-0000-0000-{n:012}"),
            user_principal_name: format!("u{n}@example.ac.uk"),
            mail: None,
            employee_id: None,
            display_name: format!("User {n}"),
            ..SeedUser::default()
        }
    }

    fn group(nickname: &str, members: &[u32]) -> SeedGroup {
        SeedGroup {
            id: None,
            display_name: nickname.to_owned(),
            mail_nickname: nickname.to_owned(),
            description: None,
            group_types: vec!["Unified".to_owned()],
            mail_enabled: true,
            security_enabled: false,
            members: members.iter().map(|&n| user(n).id).collect(),
            extensions: Vec::new(),
            owners: Vec::new(),
        }
    }

    fn directory(users: u32, groups: Vec<SeedGroup>) -> Directory {
        Directory::from_seed(&Seed {
            users: (0..users).map(user).collect(),
            groups,
        })
        .unwrap()
    }

    #[test]
    fn seed_with_unknown_member_names_the_field() {
        let err = Directory::from_seed(&Seed {
            users: vec![user(1)],
            groups: vec![group("a", &[2])],
        })
        .unwrap_err();
        assert!(err.starts_with("groups[0].members[0]"), "{err}");
    }

    #[test]
    fn seed_with_duplicate_nickname_is_refused() {
        let err = Directory::from_seed(&Seed {
            users: vec![],
            groups: vec![group("a", &[]), group("A", &[])],
        })
        .unwrap_err();
        assert!(err.starts_with("groups[1].mailNickname"), "{err}");
    }

    #[test]
    fn member_pages_walk_the_whole_group_by_cursor() {
        let dir = directory(10, vec![group("a", &[1, 3, 5, 7, 9])]);
        let (first, more) = dir.member_page(0, None, None, 2);
        assert_eq!((first.clone(), more), (vec![1, 3], true));
        let (second, more) = dir.member_page(0, None, first.last().copied(), 2);
        assert_eq!((second.clone(), more), (vec![5, 7], true));
        let (third, more) = dir.member_page(0, None, second.last().copied(), 2);
        assert_eq!((third, more), (vec![9], false));
    }

    #[test]
    fn add_is_all_or_nothing() {
        let mut dir = directory(5, vec![group("a", &[1])]);
        let id = dir.group(0).id.clone();
        let ids = vec![user(2).id, user(1).id];
        let err = dir
            .add_members(&id, &ids, Instant::now(), Duration::ZERO)
            .unwrap_err();
        assert_eq!(err, GraphError::already_member());
        assert_eq!(dir.group(0).members.len(), 1);
    }

    #[test]
    fn lagged_read_sees_the_past() {
        let mut dir = directory(5, vec![group("a", &[1, 2])]);
        let id = dir.group(0).id.clone();
        let lag = Duration::from_secs(60);
        let now = Instant::now();
        dir.add_members(&id, &[user(3).id], now, lag).unwrap();
        dir.remove_member(&id, &user(1).id, now, lag).unwrap();
        let before = Some(now - Duration::from_secs(1));
        assert_eq!(dir.member_page(0, before, None, 10).0, vec![1, 2]);
        assert_eq!(dir.member_page(0, None, None, 10).0, vec![2, 3]);
    }

    #[test]
    fn adds_to_a_group_younger_than_the_lag_fail_until_it_replicates() {
        let mut dir = directory(3, vec![]);
        let lag = Duration::from_secs(60);
        let now = Instant::now();
        let new = NewGroup {
            properties: GroupProperties {
                display_name: "n".to_owned(),
                mail_nickname: "n".to_owned(),
                description: None,
                group_types: vec!["Unified".to_owned()],
                mail_enabled: true,
                security_enabled: false,
                resource_behavior_options: Vec::new(),
                visibility: None,
            },
            members: vec![user(0).id],
            owners: Vec::new(),
        };
        let group = dir.create_group(new, now, lag).unwrap();
        let id = dir.group(group).id.clone();
        let err = dir.add_members(&id, &[user(1).id], now, lag).unwrap_err();
        assert!(err.message.contains("do not exist"), "{err:?}");
        let later = now + Duration::from_secs(61);
        assert_eq!(dir.add_members(&id, &[user(1).id], later, lag), Ok(1));
    }

    #[test]
    fn remove_of_non_member_names_the_group() {
        let mut dir = directory(3, vec![group("a", &[1])]);
        let id = dir.group(0).id.clone();
        let err = dir
            .remove_member(&id, &user(2).id, Instant::now(), Duration::ZERO)
            .unwrap_err();
        assert_eq!(err, GraphError::not_found(&id));
    }
}
