//! The directory's writes: creating, changing and deleting groups and their members, each
//! recorded in the change log that delta and replication lag read.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::super::error::GraphError;
use super::{Change, Directory, Group, GroupIx, LogEntry, NewGroup, RecentChange, UserIx};

impl Directory {
    fn record(&mut self, group: GroupIx, change: Change, now: Instant, lag: Duration) {
        self.log.push(LogEntry {
            at: now,
            group,
            change,
        });
        if let Change::MemberAdded(user) | Change::MemberRemoved(user) = change {
            let recent = &mut self.groups[group as usize].recent;
            while recent
                .front()
                .is_some_and(|c| now.saturating_duration_since(c.at) > lag)
            {
                recent.pop_front();
            }
            if !lag.is_zero() {
                recent.push_back(RecentChange {
                    at: now,
                    user,
                    added: matches!(change, Change::MemberAdded(_)),
                });
            }
        }
    }

    /// Resolves member ids for an add, all or nothing: every id must be a user (404 naming the
    /// first unknown one) and none may be a member already (400).
    fn resolve_new_members(
        &self,
        group: Option<GroupIx>,
        ids: &[String],
    ) -> Result<Vec<UserIx>, GraphError> {
        let mut seen = HashSet::with_capacity(ids.len());
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(user) = self.user_by_id(id) else {
                if self.group_by_id.contains_key(&id.to_ascii_lowercase()) {
                    return Err(GraphError::bad_request(
                        "Microsoft 365 groups take only users as members.",
                    ));
                }
                return Err(GraphError::not_found(id));
            };
            let present = group.is_some_and(|g| self.groups[g as usize].members.contains(&user));
            if present || !seen.insert(user) {
                return Err(GraphError::already_member());
            }
            users.push(user);
        }
        Ok(users)
    }

    /// Creates a group (with up to 20 members bound); nickname unique in the whole tenant.
    pub fn create_group(
        &mut self,
        new: NewGroup,
        now: Instant,
        lag: Duration,
    ) -> Result<GroupIx, GraphError> {
        let nickname = new.properties.mail_nickname.to_lowercase();
        if self.group_by_nickname.contains_key(&nickname) {
            return Err(GraphError::bad_request(
                "Another object with the same value for property mailNickname already exists.",
            ));
        }
        let members = self.resolve_new_members(None, &new.members)?;
        let mut owners = BTreeSet::new();
        for owner in &new.owners {
            owners.insert(
                self.user_by_id(owner)
                    .ok_or_else(|| GraphError::not_found(owner))?,
            );
        }
        let ix = self.groups.len() as GroupIx;
        let id = uuid::Uuid::new_v4().to_string();
        self.group_by_id.insert(id.clone(), ix);
        self.group_by_nickname.insert(nickname, ix);
        self.groups.push(Group {
            id,
            properties: new.properties,
            created_date_time: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            extensions: Vec::new(),
            members: BTreeSet::new(),
            owners: BTreeSet::new(),
            created_at: now,
            recent: VecDeque::new(),
            deleted: false,
        });
        self.record(ix, Change::Created, now, lag);
        for user in members {
            self.groups[ix as usize].members.insert(user);
            self.record(ix, Change::MemberAdded(user), now, lag);
        }
        for user in owners {
            self.groups[ix as usize].owners.insert(user);
            self.record(ix, Change::OwnerAdded(user), now, lag);
        }
        Ok(ix)
    }

    /// Looks a group up by id for a write (true state, no lag), refusing read-only groups for
    /// member changes.
    fn writable_group(&self, id: &str, members: bool) -> Result<GroupIx, GraphError> {
        let group = self
            .group_by_id
            .get(&id.to_ascii_lowercase())
            .copied()
            .ok_or_else(|| GraphError::not_found(id))?;
        if members && self.groups[group as usize].is_read_only() {
            return Err(GraphError::read_only_group());
        }
        Ok(group)
    }

    /// Adds members, all or nothing; returns how many were added.
    pub fn add_members(
        &mut self,
        group_id: &str,
        ids: &[String],
        now: Instant,
        lag: Duration,
    ) -> Result<usize, GraphError> {
        let group = self.writable_group(group_id, true)?;
        // GRAPH.md "Changing members": right after creation, member adds fail with this 400
        // until replication catches up; with lag configured, the sandbox does the same.
        if !lag.is_zero()
            && now.saturating_duration_since(self.groups[group as usize].created_at) < lag
        {
            return Err(GraphError::bad_request(
                "The source resource object or one of the objects being referenced do not exist.",
            ));
        }
        let users = self.resolve_new_members(Some(group), ids)?;
        for &user in &users {
            self.groups[group as usize].members.insert(user);
            self.record(group, Change::MemberAdded(user), now, lag);
        }
        Ok(users.len())
    }

    /// Adds owners, all or nothing: every id must be a user (404 naming the first unknown
    /// one) and none may be an owner already (400, as for members; GRAPH.md "Owners").
    pub fn add_owners(
        &mut self,
        group_id: &str,
        ids: &[String],
        now: Instant,
        lag: Duration,
    ) -> Result<usize, GraphError> {
        let group = self.writable_group(group_id, false)?;
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            let user = self
                .user_by_id(id)
                .ok_or_else(|| GraphError::not_found(id))?;
            if self.groups[group as usize].owners.contains(&user) || users.contains(&user) {
                return Err(GraphError::bad_request(
                    "One or more added object references already exist for the following modified properties: 'owners'.",
                ));
            }
            users.push(user);
        }
        for &user in &users {
            self.groups[group as usize].owners.insert(user);
            self.record(group, Change::OwnerAdded(user), now, lag);
        }
        Ok(users.len())
    }

    /// Removes one owner: a non-owner is a 404 naming the group; the last owner of a group
    /// is refused with Graph's 400 (GRAPH.md "Owners").
    pub fn remove_owner(
        &mut self,
        group_id: &str,
        user_id: &str,
        now: Instant,
        lag: Duration,
    ) -> Result<(), GraphError> {
        let group = self.writable_group(group_id, false)?;
        let owners = &self.groups[group as usize].owners;
        let user = self
            .user_by_id(user_id)
            .filter(|u| owners.contains(u))
            .ok_or_else(|| GraphError::not_found(&self.groups[group as usize].id))?;
        if owners.len() == 1 {
            return Err(GraphError::new(
                400,
                "Request_BadRequest",
                "The group must have at least one owner, hence this owner cannot be removed.",
            ));
        }
        self.groups[group as usize].owners.remove(&user);
        self.record(group, Change::OwnerRemoved(user), now, lag);
        Ok(())
    }

    /// Removes one member; a non-member is a 404 naming the group (GRAPH.md).
    pub fn remove_member(
        &mut self,
        group_id: &str,
        user_id: &str,
        now: Instant,
        lag: Duration,
    ) -> Result<(), GraphError> {
        let group = self.writable_group(group_id, true)?;
        let user = self
            .user_by_id(user_id)
            .filter(|u| self.groups[group as usize].members.contains(u))
            .ok_or_else(|| GraphError::not_found(&self.groups[group as usize].id))?;
        self.groups[group as usize].members.remove(&user);
        self.record(group, Change::MemberRemoved(user), now, lag);
        Ok(())
    }

    /// Deletes a group: it disappears from reads and lookups at once, its nickname is free
    /// again, and the next delta round reports it `@removed`.
    pub fn delete_group(
        &mut self,
        group_id: &str,
        now: Instant,
        lag: Duration,
    ) -> Result<(), GraphError> {
        let ix = self.writable_group(group_id, false)?;
        let group = &mut self.groups[ix as usize];
        group.deleted = true;
        let (id, nickname) = (
            group.id.to_ascii_lowercase(),
            group.properties.mail_nickname.to_lowercase(),
        );
        self.group_by_id.remove(&id);
        self.group_by_nickname.remove(&nickname);
        self.record(ix, Change::Deleted, now, lag);
        Ok(())
    }

    /// Changes a group's display name or description.
    pub fn update_group(
        &mut self,
        group_id: &str,
        display_name: Option<String>,
        description: Option<Option<String>>,
        now: Instant,
        lag: Duration,
    ) -> Result<(), GraphError> {
        let ix = self.writable_group(group_id, false)?;
        let group = &mut self.groups[ix as usize];
        if let Some(name) = display_name {
            group.properties.display_name = name;
        }
        if let Some(description) = description {
            group.properties.description = description;
        }
        self.record(ix, Change::Updated, now, lag);
        Ok(())
    }

    /// Sets a Microsoft 365 group's visibility (Public or Private; the caller refuses
    /// HiddenMembership, which only creation sets).
    pub fn set_visibility(
        &mut self,
        group_id: &str,
        visibility: String,
        now: Instant,
        lag: Duration,
    ) -> Result<(), GraphError> {
        let ix = self.writable_group(group_id, false)?;
        self.groups[ix as usize].properties.visibility = Some(visibility);
        self.record(ix, Change::Updated, now, lag);
        Ok(())
    }

    /// Adds an open extension: at most two per app per group, names unique.
    pub fn add_extension(
        &mut self,
        group_id: &str,
        extension: Map<String, Value>,
    ) -> Result<(), GraphError> {
        let ix = self.writable_group(group_id, false)?;
        let group = &mut self.groups[ix as usize];
        let name = extension.get("extensionName").and_then(Value::as_str);
        if group
            .extensions
            .iter()
            .any(|e| e.get("extensionName").and_then(Value::as_str) == name)
        {
            return Err(GraphError::new(
                409,
                "NameAlreadyExists",
                "An extension already exists with given id.",
            ));
        }
        if group.extensions.len() >= 2 {
            return Err(GraphError::bad_request(
                "An application can add at most 2 open extensions to one resource instance.",
            ));
        }
        group.extensions.push(extension);
        Ok(())
    }
}
