//! Microsoft Graph, as rollcall uses it: the directory behind a small client.
//!
//! INTERFACE SKELETON: the engine (`src/reconcile/`) is written against exactly these
//! signatures; the graph branch replaces every body.

use crate::config::{GraphConfig, MemberKey};
use crate::plan::ObjectId;

/// The name of the open extension that marks a group as managed by rollcall.
pub const MANAGED_EXTENSION: &str = "org.rollcall.managed";

/// A failure talking to Microsoft Graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
    /// The stored delta link expired: start over with a full read.
    #[error("delta link expired")]
    DeltaExpired,
}

impl GraphError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        unimplemented!()
    }

    /// Whether Graph said the group (or member) does not exist.
    pub fn is_not_found(&self) -> bool {
        unimplemented!()
    }
}

/// The `org.rollcall.managed` extension's custom properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedTag {
    /// The list key.
    pub list: String,
    /// The family.
    pub family: String,
    /// When rollcall took the group on (RFC 3339).
    pub since: String,
}

/// A group as rollcall reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGroup {
    /// Its object id (text, as Graph gives it).
    pub id: String,
    /// Its mailNickname.
    pub mail_nickname: String,
    /// Its display name.
    pub display_name: String,
    /// Whether it is a Microsoft 365 (unified) group.
    pub unified: bool,
    /// The `org.rollcall.managed` extension, when it carries one.
    pub tag: Option<ManagedTag>,
}

/// A group to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// mailNickname.
    pub mail_nickname: String,
    /// displayName.
    pub display_name: String,
    /// description.
    pub description: Option<String>,
}

/// A user as the directory (or a delta round) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// Object id.
    pub id: ObjectId,
    /// userPrincipalName.
    pub user_principal_name: Option<String>,
    /// mail.
    pub mail: Option<String>,
    /// employeeId.
    pub employee_id: Option<String>,
    /// Delta only: the user was deleted (or left the scope).
    pub removed: bool,
}

/// One `/users/delta` round, every page followed.
#[derive(Debug, Clone)]
pub struct UsersDelta {
    /// Users (all of them on a full read; changed ones otherwise).
    pub users: Vec<DirectoryUser>,
    /// The link for the next round.
    pub delta_link: String,
    /// Whether this was a full read.
    pub full: bool,
}

/// Whether a group was found by its nickname or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// It already existed (a create whose reply was lost, or a race).
    Found,
    /// This call created it.
    Created,
}

/// One membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Add `member` to `group`.
    Add {
        /// Group object id.
        group: String,
        /// User object id.
        member: ObjectId,
    },
    /// Remove `member` from `group` (always `…/$ref`).
    Remove {
        /// Group object id.
        group: String,
        /// User object id.
        member: ObjectId,
    },
    /// Write the managed tag on `group`.
    Tag {
        /// Group object id.
        group: String,
        /// The tag.
        tag: ManagedTag,
    },
}

/// Counters of what the client sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphStats {
    /// HTTP requests sent.
    pub requests: u64,
    /// Requests retried.
    pub retries: u64,
    /// 429s received.
    pub throttled: u64,
}

/// The Microsoft Graph client.
#[derive(Debug, Clone)]
pub struct GraphClient;

impl GraphClient {
    /// Connects: checks endpoint and authority, reads the secret, fetches a first token.
    pub async fn connect(_config: &GraphConfig) -> Result<GraphClient, GraphError> {
        unimplemented!()
    }

    /// What the client sent so far.
    pub fn stats(&self) -> GraphStats {
        unimplemented!()
    }

    /// One `/users/delta` round: from `link`, or a full read when `None`.
    pub async fn users_delta(&self, _link: Option<&str>) -> Result<UsersDelta, GraphError> {
        unimplemented!()
    }

    /// Looks people up one key at a time (batched); keys with no account are absent.
    pub async fn find_users(
        &self,
        _kind: MemberKey,
        _values: &[String],
    ) -> Result<Vec<DirectoryUser>, GraphError> {
        unimplemented!()
    }

    /// Every group in the tenant with its tag.
    pub async fn groups(&self) -> Result<Vec<DirectoryGroup>, GraphError> {
        unimplemented!()
    }

    /// The group with this mailNickname, if any.
    pub async fn find_group(
        &self,
        _mail_nickname: &str,
    ) -> Result<Option<DirectoryGroup>, GraphError> {
        unimplemented!()
    }

    /// Finds the group by nickname, or creates it.
    pub async fn ensure_group(
        &self,
        _spec: &GroupSpec,
    ) -> Result<(DirectoryGroup, Ensured), GraphError> {
        unimplemented!()
    }

    /// Every user member of each group, every page read; one result per group, same order.
    pub async fn members_of(&self, _groups: &[String]) -> Vec<Result<Vec<ObjectId>, GraphError>> {
        unimplemented!()
    }

    /// Sends writes packed into `$batch`; one outcome per write, in input order.
    pub async fn write(&self, _writes: &[Write]) -> Vec<Result<(), GraphError>> {
        unimplemented!()
    }
}
