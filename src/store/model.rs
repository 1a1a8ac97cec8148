//! The values the store reads and writes: runs, snapshots, groups, identities, journal
//! operations, the lease and the pause flag.

use std::fmt;

use chrono::{DateTime, Utc};

use super::StoreError;

/// Declares a closed set of names stored as text, with `as_str` and a checked parse.
macro_rules! stored_names {
    ($(#[$meta:meta])* $name:ident, $place:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads a stored name; anything else means the database is newer or damaged.
            pub(crate) fn parse(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(StoreError::Unknown { place: $place, value: other.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_names! {
    /// What started a run.
    RunKind, "runs.kind" {
        /// A scheduled or manual `run`.
        Run = "run",
        /// `resume`.
        Resume = "resume",
        /// `rebuild`.
        Rebuild = "rebuild",
        /// `apply` of a saved plan.
        Apply = "apply",
        /// `verify`.
        Verify = "verify",
        /// `rebuild --state-only`.
        StateRebuild = "state-rebuild",
    }
}

stored_names! {
    /// Where a run is in its life.
    RunStatus, "runs.status" {
        /// Reading sources and Microsoft 365, diffing, guarding.
        Planning = "planning",
        /// Sending the journalled operations.
        Applying = "applying",
        /// Stopped mid-apply (lost database, signal, pause); resumable.
        Interrupted = "interrupted",
        /// Every planned change applied.
        Succeeded = "succeeded",
        /// Failed; anything done is journalled.
        Failed = "failed",
        /// Stopped before any change by a faulty source or a tripped guard.
        Stopped = "stopped",
        /// Skipped because of the lease or the pause flag.
        Skipped = "skipped",
    }
}

impl RunStatus {
    /// Whether the run is still going (or died without saying so).
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Planning | RunStatus::Applying)
    }
}

stored_names! {
    /// How a managed group came under rollcall's care.
    GroupOrigin, "managed_groups.origin" {
        /// rollcall created it.
        Created = "created",
        /// rollcall adopted an existing group.
        Adopted = "adopted",
    }
}

stored_names! {
    /// A journalled operation's kind.
    OpKind, "journal.kind" {
        /// Create the list's group (looked up by mailNickname first).
        CreateGroup = "create_group",
        /// Write the `org.rollcall.managed` extension.
        TagGroup = "tag_group",
        /// Add a member.
        AddMember = "add_member",
        /// Remove a member.
        RemoveMember = "remove_member",
        /// Set the group's title and description.
        UpdateGroup = "update_group",
        /// Add an owner.
        AddOwner = "add_owner",
        /// Remove an owner.
        RemoveOwner = "remove_owner",
    }
}

stored_names! {
    /// A journalled operation's state.
    OpStatus, "journal.status" {
        /// Not yet known to be done.
        Pending = "pending",
        /// Done at Microsoft 365.
        Done = "done",
        /// Failed permanently.
        Failed = "failed",
        /// Replaced by a later plan.
        Superseded = "superseded",
    }
}

/// A run's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One run as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// What started it.
    pub kind: RunKind,
    /// Where it is.
    pub status: RunStatus,
    /// The lease holder it ran under, if it took the lease.
    pub holder: Option<String>,
    /// The lease's fencing token it ran under.
    pub lease_token: Option<i64>,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The process exit code it ended with.
    pub exit_code: Option<i32>,
    /// The plan's summary and guard verdicts, committed with the journal.
    pub plan_summary: Option<serde_json::Value>,
    /// The final report.
    pub report: Option<serde_json::Value>,
    /// Operator approvals (operator, reason, accept flags).
    pub approvals: Option<serde_json::Value>,
}

/// What a source looked like when a run read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSnapshot {
    /// The source's name.
    pub source: String,
    /// Rows read.
    pub rows: i64,
    /// Distinct `(list, member)` pairs.
    pub distinct: i64,
    /// A checksum of the normalised rows.
    pub checksum: String,
}

/// A recorded source snapshot summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its id.
    pub id: i64,
    /// The run that read it (gone if that run was pruned).
    pub run: Option<RunId>,
    /// The summary.
    pub summary: NewSnapshot,
    /// When it was accepted as complete, if it was.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// A group rollcall manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedGroup {
    /// The list key.
    pub list: String,
    /// The directory object id of the group.
    pub group_id: String,
    /// The family the list belongs to.
    pub family: String,
    /// Created or adopted.
    pub origin: GroupOrigin,
    /// The group's mailNickname.
    pub mail_nickname: String,
    /// Whether the `org.rollcall.managed` extension is written.
    pub tagged: bool,
}

/// A member key resolved (or not) to a directory object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// How the source names the person.
    pub kind: crate::config::MemberKey,
    /// The normalised key.
    pub value: String,
    /// The object id, or `None` when the directory has no such person.
    pub object_id: Option<String>,
    /// When it was looked up.
    pub checked_at: DateTime<Utc>,
}

/// An operation to journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOp {
    /// The list it changes.
    pub list: String,
    /// What it does.
    pub kind: OpKind,
    /// The member's object id, for member operations.
    pub member: Option<String>,
}

/// A journalled operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOp {
    /// The run that planned it.
    pub run: RunId,
    /// Its position in the plan, from 1.
    pub seq: i64,
    /// The operation.
    pub op: NewOp,
    /// Its state.
    pub status: OpStatus,
    /// How many times it was sent.
    pub attempts: i32,
    /// The last error, if any.
    pub last_error: Option<String>,
}

#[cfg(test)]
impl JournalOp {
    /// An operation of run 1 on `list`, never failed, for unit tests.
    pub(crate) fn sample(
        seq: i64,
        list: &str,
        kind: OpKind,
        member: Option<String>,
        status: OpStatus,
    ) -> JournalOp {
        JournalOp {
            run: RunId(1),
            seq,
            op: NewOp {
                list: list.to_owned(),
                kind,
                member,
            },
            status,
            attempts: i32::from(status != OpStatus::Pending),
            last_error: None,
        }
    }
}

/// Counts of a run's journal by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalCounts {
    /// Pending operations.
    pub pending: i64,
    /// Done operations.
    pub done: i64,
    /// Failed operations.
    pub failed: i64,
    /// Superseded operations.
    pub superseded: i64,
}

/// What happened to one sent operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done at Microsoft 365; member operations update the mirror.
    Done,
    /// Failed for good: the operation leaves the pending set.
    Failed(String),
    /// Failed for now (throttled past the budget, timed out): it stays pending for resume.
    Retry(String),
    /// Not sent, and never to be: its list was held during the apply (why, as text).
    Superseded(String),
}

/// One batch's results, committed together before the next batch is sent.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The run whose journal the outcomes belong to.
    pub run: RunId,
    /// Each sent operation (as read from the journal) with its outcome. Done member and
    /// owner operations change the mirrors.
    pub outcomes: &'a [(&'a JournalOp, Outcome)],
    /// Groups created, adopted or tagged in this batch, written before the mirror changes.
    pub groups: &'a [ManagedGroup],
    /// The titles this batch gave groups (created or retitled), by list key, recorded as
    /// [`super::Store::set_titles`] does.
    pub titles: &'a [(String, crate::plan::Title)],
}

/// The run lease as held by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it (e.g. `host:pid`).
    pub holder: String,
    /// The fencing token: larger for every takeover.
    pub token: i64,
    /// When it expires unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// The lease as anyone sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// Who holds it, or `None` when released.
    pub holder: Option<String>,
    /// The current fencing token.
    pub token: i64,
    /// When the current holder took it.
    pub acquired_at: DateTime<Utc>,
    /// The last renewal.
    pub heartbeat_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl LeaseState {
    /// Whether someone holds it and it has not expired at `now`.
    pub fn is_held(&self, now: DateTime<Utc>) -> bool {
        self.holder.is_some() && self.expires_at > now
    }
}

/// Why the lease could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the run lease is held by `{holder}` since {since} until {expires}; another run is in progress (exit 6), or wait for it to expire"
)]
pub struct Held {
    /// The current holder.
    pub holder: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Until when, unless renewed.
    pub expires: DateTime<Utc>,
}

/// The pause flag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PauseState {
    /// Whether scheduled runs skip now.
    pub paused: bool,
    /// Why.
    pub reason: Option<String>,
    /// When the pause ends by itself.
    pub until: Option<DateTime<Utc>>,
    /// Who paused.
    pub by: Option<String>,
    /// When it was set.
    pub at: Option<DateTime<Utc>>,
}

/// Milliseconds since the epoch, the one time representation in every backend.
pub(crate) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// The inverse of [`millis`]; out-of-range values clamp to the epoch rather than fail a read.
pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_name_reads_back() {
        for kind in RunKind::ALL {
            assert_eq!(RunKind::parse(kind.as_str()).unwrap(), *kind);
        }
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()).unwrap(), *status);
        }
        for kind in OpKind::ALL {
            assert_eq!(OpKind::parse(kind.as_str()).unwrap(), *kind);
        }
        for status in OpStatus::ALL {
            assert_eq!(OpStatus::parse(status.as_str()).unwrap(), *status);
        }
    }

    #[test]
    fn unknown_stored_name_names_its_column() {
        let e = OpStatus::parse("exploded").unwrap_err();
        assert!(e.to_string().contains("journal.status"), "{e}");
    }

    #[test]
    fn released_or_expired_lease_is_not_held() {
        let now = Utc::now();
        let mut state = LeaseState {
            holder: Some("a".into()),
            token: 1,
            acquired_at: now,
            heartbeat_at: now,
            expires_at: now + chrono::Duration::seconds(30),
        };
        assert!(state.is_held(now));
        state.expires_at = now;
        assert!(!state.is_held(now));
        state.expires_at = now + chrono::Duration::seconds(30);
        state.holder = None;
        assert!(!state.is_held(now));
    }

    #[test]
    fn millis_round_trip() {
        let t = from_millis(1_767_225_600_123);
        assert_eq!(millis(t), 1_767_225_600_123);
    }
}
