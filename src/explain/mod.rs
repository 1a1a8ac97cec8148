//! `rollcall explain`: why a member is (or is not) on a list, since when and by which run;
//! what a list is and whether it is held; every list a person is or should be on.
//!
//! Read-only. The sources are read afresh with a [`crate::source::Witness`] that keeps the
//! rows naming the member (so the normal run path keeps no provenance), the state database
//! gives identities, the mirror and the journal, and `--live` asks Microsoft 365 itself.
//! The answers are plain data: [`render`] prints them for a person, serde for `--output json`
//! (the shape README's "Why is X (not) on L" documents).

mod gather;
mod list;
mod matching;
mod member;
mod reason;
mod render;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use gather::{Question, explain};
pub use render::render;

/// One of the three answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum Answer {
    /// `explain LIST MEMBER`.
    Member(MemberAnswer),
    /// `explain LIST`.
    List(ListAnswer),
    /// `explain --member KEY`.
    Person(PersonAnswer),
}

/// Why one member is (or is not) on one list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberAnswer {
    /// The list key as the sources (or the state) spell it.
    pub list: String,
    /// The member as asked.
    pub member: String,
    /// Whether the sources and overrides want them on the list now.
    pub desired: bool,
    /// Whether Microsoft 365 has them in the list: from the mirror, or read afresh with
    /// `--live`; `None` when rollcall manages no group for the list or the key resolves to
    /// no account.
    pub in_microsoft_365: Option<bool>,
    /// Whether `in_microsoft_365` was read from Microsoft 365 now (`--live`).
    pub live: bool,
    /// What follows from the two: `on the list`, `to be added`, `to be removed`,
    /// `not on the list`, …
    pub state: String,
    /// Each source row that names them on the list.
    pub rows: Vec<SourceRow>,
    /// Overrides that include or exclude them on the list, applying now or not.
    pub overrides: Vec<OverrideHit>,
    /// How the member key resolved to a directory object.
    pub identity: Option<IdentityAnswer>,
    /// Their adds and removes on the list, oldest first.
    pub history: Vec<HistoryEntry>,
    /// When a member the sources dropped but Microsoft 365 still has falls due for removal
    /// under their family's `remove_after` (DESIGN.md "The academic year"); `null` without
    /// a grace.
    pub removal_due: Option<DateTime<Utc>>,
    /// Every source read, `name (kind)`: shown when none names them.
    pub sources_read: Vec<String>,
    /// Keys in the sources nearest to the one asked (case or typo), when none names them.
    pub nearest: Vec<String>,
}

/// One source row naming a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRow {
    /// The source's name.
    pub source: String,
    /// The source's kind (`csv`, `sql`, `odbc`, `ldap`, `entra`).
    pub kind: String,
    /// The list key as the row writes it.
    pub list: String,
    /// `file:line`, `query row N` (SQL, ODBC), the entry's DN (LDAP) or the user's object
    /// id (Entra); `None` when the source names them but its rows were not traced (a key
    /// kind the witness could not use): the source names them all the same.
    pub place: Option<String>,
    /// The row's values rollcall reads, as `[name, value]` pairs.
    pub values: Vec<(String, String)>,
}

/// An `[[override]]` or `[[override_source]]` row naming a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideHit {
    /// The list key as the override writes it.
    pub list: String,
    /// `CONFIG: [[override]] N` or `FILE:LINE`.
    pub origin: String,
    /// `true`: include; `false`: exclude.
    pub include: bool,
    /// The first moment it applies.
    pub from: Option<DateTime<Utc>>,
    /// The first moment it no longer applies.
    pub until: Option<DateTime<Utc>>,
    /// Why, as the helpdesk wrote it (override sources only).
    pub reason: Option<String>,
    /// Whether its window contains now.
    pub applies_now: bool,
}

/// A member key's resolution, as the identities table records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityAnswer {
    /// The key kind (`upn`, `mail`, `employee_id`, `object_id`).
    pub key_kind: String,
    /// The normalized key.
    pub key: String,
    /// The directory object id; `None`: the directory has no such person.
    pub object_id: Option<String>,
    /// The account's display name (`--live` only).
    pub display_name: Option<String>,
    /// When a run last resolved the key; `None` when no run has (an object id asked for
    /// directly needs no resolving).
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One add or remove of a member on a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The run that planned it.
    pub run: i64,
    /// When its status last changed (done, failed, superseded) or it was planned.
    pub at: DateTime<Utc>,
    /// `add_member` or `remove_member`.
    pub operation: String,
    /// `pending`, `done`, `failed` or `superseded`.
    pub status: String,
    /// Why, as far as the journal and the run record tell.
    pub reason: String,
    /// The last error, when it failed.
    pub error: Option<String>,
}

/// What a list is, how full, whether held, and its last runs' changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListAnswer {
    /// The list key.
    pub list: String,
    /// Its family.
    pub family: Option<String>,
    /// The group's object id, when rollcall manages one.
    pub group_id: Option<String>,
    /// The title the sources give it now.
    pub title: Option<String>,
    /// The sources that feed it.
    pub sources: Vec<String>,
    /// Members the sources and overrides want; `None` when no source feeds it.
    pub desired: Option<u64>,
    /// Members the mirror says Microsoft 365 has; `None` without a managed group.
    pub actual: Option<u64>,
    /// Why it is held, if it is (now, or in the last run).
    pub held: Vec<HoldAnswer>,
    /// Its changes in its last runs, newest first.
    pub runs: Vec<RunChanges>,
}

/// A hold on a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldAnswer {
    /// `now` (the sources as read) or `run N`.
    pub seen: String,
    /// The reason's stable name.
    pub reason: String,
    /// What is wrong.
    pub message: String,
    /// What releases it.
    pub release: String,
}

/// One run's changes to a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunChanges {
    /// The run.
    pub run: i64,
    /// Its kind (`run`, `rebuild`, …), when its record is kept.
    pub kind: Option<String>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// Members added (done).
    pub added: u64,
    /// Members removed (done).
    pub removed: u64,
    /// Operations that failed.
    pub failed: u64,
    /// Operations still pending.
    pub pending: u64,
    /// Operations superseded (a held list, a later plan).
    pub superseded: u64,
}

/// Every list a person is or should be on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonAnswer {
    /// The member as asked.
    pub member: String,
    /// How the key resolved.
    pub identity: Option<IdentityAnswer>,
    /// One answer per list, in list key order.
    pub lists: Vec<MemberAnswer>,
    /// Every source read, `name (kind)`: shown when none names them.
    pub sources_read: Vec<String>,
    /// Keys in the sources nearest to the one asked, when no list holds them.
    pub nearest: Vec<String>,
}
