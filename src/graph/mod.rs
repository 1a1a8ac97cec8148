//! Microsoft Graph, as rollcall uses it: the directory behind a small client.
//!
//! Requests travel through graph-rs-sdk; everything GRAPH.md says graph-rs-sdk does not do
//! is rollcall's own and lives here: signing in against the configured authority
//! (`auth`), one retry policy and the shared throttle (`retry`), bounded concurrency and
//! the retry loop (`transport`), `$batch` packing with per-request retries (`batch`),
//! paging (`pages`), and the membership writes (`write`).

mod assertion;
mod auth;
mod batch;
mod counters;
mod delta;
mod entra;
mod error;
mod groups;
mod pages;
pub mod permissions;
mod retry;
mod transport;
mod users;
mod write;

use std::collections::BTreeSet;
use std::sync::Arc;

pub use error::GraphError;
pub use retry::RetryPolicy;
pub use write::MAX_BINDS;

use crate::config::{GraphConfig, MemberKey, Visibility};
use crate::plan::ObjectId;
use auth::{Credentials, SignIn};
use transport::Transport;

/// The name of the open extension that marks a group as managed by rollcall.
pub const MANAGED_EXTENSION: &str = "org.rollcall.managed";

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
    /// Its description, if it has one.
    pub description: Option<String>,
    /// Its visibility, when Graph gives one (Microsoft 365 groups).
    pub visibility: Option<Visibility>,
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
    /// `visibility` (`Private`, `Public`, `HiddenMembership`); Graph's default (Public) when
    /// absent.
    pub visibility: Option<String>,
    /// `resourceBehaviorOptions`, settable only at creation; none sent when empty.
    pub behaviors: Vec<String>,
    /// Members bound in the create itself: a new group's first members cost no write of
    /// their own. Owners and members together take at most [`MAX_BINDS`] references.
    pub members: Vec<ObjectId>,
    /// Owners bound in the create itself (`owners@odata.bind`), before any member.
    pub owners: Vec<ObjectId>,
}

/// A user as the directory (or a delta round) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// Object id.
    pub id: ObjectId,
    /// userPrincipalName, lower-case (as `MemberKey::normalize` makes it).
    pub user_principal_name: Option<String>,
    /// mail, lower-case.
    pub mail: Option<String>,
    /// employeeId, trimmed.
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

/// One group's changes in a `/groups/delta` round, its pages merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    /// Its object id, lower-case.
    pub id: String,
    /// Its mailNickname, when the round shows it.
    pub mail_nickname: Option<String>,
    /// Its display name, when the round shows it.
    pub display_name: Option<String>,
    /// Its description, when the round shows it (`Some(None)`: it has none).
    pub description: Option<Option<String>>,
    /// Its visibility, when the round shows it.
    pub visibility: Option<Visibility>,
    /// Users that are members now (added, or replayed).
    pub added: BTreeSet<ObjectId>,
    /// Users that are no longer members.
    pub removed: BTreeSet<ObjectId>,
    /// Owners now (added, or replayed): users or service principals.
    pub owners_added: BTreeSet<ObjectId>,
    /// Owners no longer.
    pub owners_removed: BTreeSet<ObjectId>,
    /// The group is gone (`@removed`): deleted in Microsoft 365.
    pub deleted: bool,
}

/// One `/groups/delta` round, every page followed.
#[derive(Debug, Clone)]
pub struct GroupsDelta {
    /// Groups that changed, each once.
    pub groups: Vec<GroupChange>,
    /// The link for the next round.
    pub delta_link: String,
}

/// Whether a group was found by its nickname or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// It already existed (a create whose reply was lost, or a race).
    Found,
    /// This call created it, with every member of its spec.
    Created,
    /// This call created it without members: Graph refused a member of the spec (unknown
    /// or not yet replicated), so the members are still to be added one write at a time.
    CreatedEmpty,
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
    /// Make `owner` an owner of `group` (`POST …/owners/$ref`); an existing owner is done.
    AddOwner {
        /// Group object id.
        group: String,
        /// User object id.
        owner: ObjectId,
    },
    /// Remove `owner` from `group`'s owners (`DELETE …/owners/{id}/$ref`); an absent owner
    /// is done. Graph refuses to remove a group's last owner: send the adds first.
    RemoveOwner {
        /// Group object id.
        group: String,
        /// User object id.
        owner: ObjectId,
    },
    /// Write the managed tag on `group`.
    Tag {
        /// Group object id.
        group: String,
        /// The tag.
        tag: ManagedTag,
    },
    /// Set `group`'s displayName and, when given, its description (`PATCH /groups/{id}`).
    Retitle {
        /// Group object id.
        group: String,
        /// The new displayName.
        display_name: String,
        /// The new description; `None` leaves it as it is.
        description: Option<String>,
        /// The new visibility (Public or Private); `None` leaves it as it is.
        visibility: Option<Visibility>,
    },
}

/// Counters of what the client sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphStats {
    /// HTTP requests sent (a `$batch` counts once; token requests included).
    pub requests: u64,
    /// Requests retried (outer and batch-inner ones).
    pub retries: u64,
    /// 429s received (outer and batch-inner ones).
    pub throttled: u64,
    /// Requests carried inside `$batch`es.
    pub batched: u64,
    /// Token requests sent to the authority.
    pub token_requests: u64,
    /// Replies with a 1xx–3xx status (a `$batch` counts once, by its own status).
    pub status_2xx: u64,
    /// Replies with a 4xx status, 429s included.
    pub status_4xx: u64,
    /// Replies with a 5xx status.
    pub status_5xx: u64,
    /// Requests that got no reply (dropped connection, timeout, reply cut short).
    pub no_reply: u64,
    /// Time requests spent held back by throttling (summed over concurrent requests).
    pub throttle_wait: std::time::Duration,
}

/// The Microsoft Graph client. Clones share one connection pool, token, throttle and
/// concurrency limit.
#[derive(Debug, Clone)]
pub struct GraphClient {
    transport: Arc<Transport>,
}

impl GraphClient {
    /// Connects: checks endpoint and authority, reads the secret, fetches a first token.
    pub async fn connect(config: &GraphConfig) -> Result<GraphClient, GraphError> {
        let policy = RetryPolicy {
            max_elapsed: config.max_retry_time,
            ..RetryPolicy::default()
        };
        GraphClient::connect_with(config, policy).await
    }

    /// Connects with a retry policy other than the production default (tests, rehearsals).
    pub async fn connect_with(
        config: &GraphConfig,
        policy: RetryPolicy,
    ) -> Result<GraphClient, GraphError> {
        let credentials = Credentials::from_config(config)?;
        let sign_in = SignIn::new(credentials, &policy)?;
        let transport = Transport::new(sign_in, policy, config.max_concurrency);
        transport.sign_in().await?;
        Ok(GraphClient {
            transport: Arc::new(transport),
        })
    }

    /// The application permissions the access token says were granted (its `roles`
    /// claim); `None` when the token does not say.
    pub async fn granted_roles(&self) -> Result<Option<Vec<String>>, GraphError> {
        self.transport.roles().await
    }

    /// What the client sent so far.
    pub fn stats(&self) -> GraphStats {
        self.transport.counters.snapshot()
    }

    /// One `/users/delta` round: from `link`, or a full read when `None`.
    pub async fn users_delta(&self, link: Option<&str>) -> Result<UsersDelta, GraphError> {
        users::users_delta(&self.transport, link).await
    }

    /// Looks people up one key at a time (batched); keys with no account are absent.
    pub async fn find_users(
        &self,
        kind: MemberKey,
        values: &[String],
    ) -> Result<Vec<DirectoryUser>, GraphError> {
        users::find_users(&self.transport, kind, values).await
    }

    /// The display name of user `id` (`None`: no such user), for `explain --live`.
    pub async fn user_display_name(&self, id: &ObjectId) -> Result<Option<String>, GraphError> {
        users::display_name(&self.transport, id).await
    }

    /// Every user matching a Graph `$filter` (an advanced query), with the `$select`ed
    /// properties, page by page into `take`.
    pub async fn users_where(
        &self,
        filter: &str,
        select: &str,
        take: impl FnMut(Vec<serde_json::Value>) -> Result<(), GraphError>,
    ) -> Result<(), GraphError> {
        entra::users_where(&self.transport, filter, select, take).await
    }

    /// The id of the group an object id or mailNickname names, if the directory has it.
    pub async fn group_id(&self, key: &str) -> Result<Option<String>, GraphError> {
        entra::group_id(&self.transport, key).await
    }

    /// The user members of a group, with the `$select`ed properties, page by page.
    pub async fn group_users(
        &self,
        group_id: &str,
        select: &str,
        take: impl FnMut(Vec<serde_json::Value>) -> Result<(), GraphError>,
    ) -> Result<(), GraphError> {
        entra::group_users(&self.transport, group_id, select, take).await
    }

    /// Every group in the tenant with its tag.
    pub async fn groups(&self) -> Result<Vec<DirectoryGroup>, GraphError> {
        groups::groups(&self.transport).await
    }

    /// The group with this mailNickname, if any.
    pub async fn find_group(
        &self,
        mail_nickname: &str,
    ) -> Result<Option<DirectoryGroup>, GraphError> {
        groups::find_group(&self.transport, mail_nickname).await
    }

    /// Looks each nickname up (lookups 20 to a `$batch`); one outcome per nickname, in order.
    pub async fn find_groups(
        &self,
        mail_nicknames: &[String],
    ) -> Vec<Result<Option<DirectoryGroup>, GraphError>> {
        groups::find_groups(&self.transport, mail_nicknames).await
    }

    /// A `/groups/delta` link from now, without reading any group: taken before a full read,
    /// so that the next round brings whatever changed while it ran.
    pub async fn groups_delta_start(&self) -> Result<String, GraphError> {
        delta::groups_delta_start(&self.transport).await
    }

    /// One `/groups/delta` round from a stored link (members, nickname, display name).
    pub async fn groups_delta(&self, link: &str) -> Result<GroupsDelta, GraphError> {
        delta::groups_delta(&self.transport, link).await
    }

    /// Finds each group by nickname, or creates it; one outcome per spec, in order. The
    /// lookups are carried 20 to a `$batch`, and a create whose reply was lost never makes a
    /// second group.
    pub async fn ensure_groups(
        &self,
        specs: &[GroupSpec],
    ) -> Vec<Result<(DirectoryGroup, Ensured), GraphError>> {
        groups::ensure_groups(&self.transport, specs).await
    }

    /// Every user member of each group, every page read; one result per group, same order.
    pub async fn members_of(&self, groups: &[String]) -> Vec<Result<Vec<ObjectId>, GraphError>> {
        groups::members_of(&self.transport, groups).await
    }

    /// Every owner of each group, every page read; one result per group, same order.
    pub async fn owners_of(&self, groups: &[String]) -> Vec<Result<Vec<ObjectId>, GraphError>> {
        groups::owners_of(&self.transport, groups).await
    }

    /// Sends writes packed into `$batch`; one outcome per write, in input order.
    pub async fn write(&self, writes: &[Write]) -> Vec<Result<(), GraphError>> {
        write::write(&self.transport, writes).await
    }
}
