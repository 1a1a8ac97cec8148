//! A run's report, as `show RUN` prints it and the state store keeps it: built from the
//! plan (each list's fate, held lists included) and folded from the journal, so that `run`,
//! `resume` and `show` agree. How it prints is in [`text`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::apply::Applied;
use super::identity::Refresh;
use super::outcome::HELD;
use super::planned::{Durations, Planned};
use super::verify::{Drift, PendingRemovals, pending_removals};
use crate::graph::{GraphError, GraphStats};
use crate::plan::{HoldReason, Totals, Verdict};
use crate::source::SourceSummary;
use crate::store::{JournalOp, OpKind, OpStatus};

mod text;

pub use text::{Detailed, seconds, write_source};

/// How many unresolved member keys a list's report line names before it only counts them.
const UNRESOLVED_SHOWN: usize = 20;

/// How many failed operations a report describes one by one; `applied.failed` counts them all.
const ERRORS_KEPT: usize = 50;

/// What one run did, and why it ended as it did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunReport {
    /// The sources as read.
    pub sources: Vec<SourceSummary>,
    /// The directory refresh.
    pub directory: Option<Refresh>,
    /// The plan's totals.
    pub totals: Totals,
    /// What the apply did.
    pub applied: Applied,
    /// Per list: what changed, what failed, who could not be resolved.
    pub lists: Vec<ListReport>,
    /// Lists this run left exactly as they were, each with why and what releases it.
    pub held: Vec<HeldList>,
    /// Member keys no account answers to, across lists.
    pub unresolved: u64,
    /// Guards that tripped.
    pub tripped: Vec<Verdict>,
    /// Things operators should know.
    pub warnings: Vec<String>,
    /// Drifted lists (`verify`).
    pub drift: Option<u64>,
    /// Managed groups found (`rebuild --state-only`).
    pub managed_groups: Option<u64>,
    /// Orphaned state rows repaired (`rebuild --state-only`).
    pub orphans_repaired: Option<u64>,
    /// How many times an interrupted run was resumed.
    pub resumed: u32,
    /// Requests sent to Microsoft Graph.
    pub graph: GraphLine,
    /// Why the run did not succeed.
    pub error: Option<String>,
    /// The source and check that stopped the run before planning, if one did.
    pub failed_check: Option<FailedCheck>,
    /// What the operator approved for this run, and why.
    pub approval: Option<Approval>,
    /// Operations that failed for good (the first [`ERRORS_KEPT`]), with Graph's error code.
    pub errors: Vec<OpError>,
    /// How long each phase took.
    pub durations: Durations,
    /// Each drifted list (`verify`).
    pub drifted: Vec<Drift>,
    /// Lists with members in their removal grace (`remove_after`), with the first due date.
    pub leaving: Vec<PendingRemovals>,
    /// Overrides and override-source rows applied (inside their window).
    pub exceptions_applied: u64,
}

/// One operation that failed for good.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpError {
    /// The list key.
    pub list: String,
    /// The operation (`create_group`, `add_member`, `remove_member`, `tag_group`).
    pub op: String,
    /// The member's object id, for member operations.
    pub member: Option<String>,
    /// The HTTP status Microsoft Graph answered, when it answered with an error.
    pub status: Option<u16>,
    /// Microsoft Graph's `error.code` (e.g. `Request_ResourceNotFound`), when it gave one.
    pub code: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl OpError {
    /// The failure of `op`, with Graph's status and code when its error text carries them.
    fn of(op: &JournalOp) -> OpError {
        let text = op.last_error.clone().unwrap_or_default();
        let text = text.strip_prefix(HELD).map_or(text.clone(), str::to_owned);
        let (status, code, message) = match GraphError::parse_status(&text) {
            Some(GraphError::Status {
                status,
                code,
                message,
                ..
            }) => (Some(status), Some(code), message),
            _ => (None, None, text),
        };
        OpError {
            list: op.op.list.clone(),
            op: op.op.kind.as_str().to_owned(),
            member: op.op.member.clone(),
            status,
            code,
            message,
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.list, self.op)?;
        if let Some(member) = &self.member {
            write!(f, " {member}")?;
        }
        match (&self.code, self.status) {
            (Some(code), Some(status)) => write!(f, ": {code} ({status}): {}", self.message),
            _ => write!(f, ": {}", self.message),
        }
    }
}

/// What an operator approved for a run (`--accept-*`, `apply FILE --reason`), as the
/// commands record it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Approval {
    /// Who ran the command.
    pub operator: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Removals approved.
    pub accept_removals: Option<u64>,
    /// Additions approved.
    pub accept_additions: Option<u64>,
    /// Owner removals approved.
    #[serde(default)]
    pub accept_owner_removals: Option<u64>,
    /// Sources whose shrink was accepted.
    pub accept_shrink: Vec<String>,
    /// Lists released from their per-list guard (`--accept-list`).
    pub accept_list: Vec<String>,
    /// The saved plan applied (`apply FILE`).
    pub plan_file: Option<String>,
}

impl Approval {
    /// The approval in a command's record, if it approves anything or gives a reason.
    pub fn from_record(record: &serde_json::Value) -> Option<Approval> {
        let approval: Approval = serde_json::from_value(record.clone()).ok()?;
        let approves = approval.accept_removals.is_some()
            || approval.accept_additions.is_some()
            || approval.accept_owner_removals.is_some()
            || !approval.accept_shrink.is_empty()
            || !approval.accept_list.is_empty()
            || approval.plan_file.is_some()
            || approval
                .reason
                .as_deref()
                .is_some_and(|r| !r.trim().is_empty());
        approves.then_some(approval)
    }
}

impl fmt::Display for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "by {}: {}",
            self.operator.as_deref().unwrap_or("(unknown)"),
            self.reason.as_deref().unwrap_or("(no reason given)")
        )?;
        let mut accepts = Vec::new();
        if let Some(file) = &self.plan_file {
            accepts.push(format!("saved plan {file}"));
        }
        if let Some(n) = self.accept_removals {
            accepts.push(format!("up to {n} removals"));
        }
        if let Some(n) = self.accept_additions {
            accepts.push(format!("up to {n} additions"));
        }
        if let Some(n) = self.accept_owner_removals {
            accepts.push(format!("up to {n} owner removals"));
        }
        if !self.accept_shrink.is_empty() {
            accepts.push(format!("shrink of {}", self.accept_shrink.join(", ")));
        }
        if !self.accept_list.is_empty() {
            accepts.push(format!("list {}", self.accept_list.join(", ")));
        }
        if !accepts.is_empty() {
            write!(f, " (accepts {})", accepts.join(", "))?;
        }
        Ok(())
    }
}

/// A source check that stopped a run: which source, and the check's stable id (`empty`,
/// `min-rows`, `shrink`, `control-rows`, `unreachable`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCheck {
    /// The source's name.
    pub source: String,
    /// The check's id, as `SourceError::check` names it.
    pub check: String,
}

/// A list the run held: why, and the exact command (or fix) that releases it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeldList {
    /// The list key.
    pub list: String,
    /// The reason's stable name (`guard`, `invalid_name`, `refused`, …), as `/metrics` labels it.
    pub reason: String,
    /// What is wrong, in words.
    pub message: String,
    /// What releases it.
    pub release: String,
}

impl HeldList {
    /// The report line of `list` held for `hold`.
    pub fn new(list: &str, hold: &HoldReason) -> HeldList {
        HeldList {
            list: list.to_owned(),
            reason: hold.key().to_owned(),
            message: hold.to_string(),
            release: hold.release(list),
        }
    }
}

/// One list's line in a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListReport {
    /// The list key.
    pub list: String,
    /// Its group was created.
    pub created: bool,
    /// Its group was adopted.
    pub adopted: bool,
    /// Members added.
    pub added: u64,
    /// Members removed.
    pub removed: u64,
    /// Its title or description was set.
    pub retitled: bool,
    /// Owners added.
    #[serde(default)]
    pub owners_added: u64,
    /// Owners removed.
    #[serde(default)]
    pub owners_removed: u64,
    /// Operations that failed for good.
    pub failed: u64,
    /// Operations still pending.
    pub pending: u64,
    /// Member keys no account answers to (the first few).
    pub unresolved: Vec<String>,
    /// How many member keys no account answers to.
    pub unresolved_count: u64,
}

/// Microsoft Graph traffic of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GraphLine {
    /// HTTP requests sent.
    pub requests: u64,
    /// Requests retried.
    pub retries: u64,
    /// 429s received.
    pub throttled: u64,
    /// Requests carried inside `$batch`es.
    pub batched: u64,
    /// Replies with a 1xx–3xx status.
    pub status_2xx: u64,
    /// Replies with a 4xx status, 429s included.
    pub status_4xx: u64,
    /// Replies with a 5xx status.
    pub status_5xx: u64,
    /// Requests that got no reply.
    pub no_reply: u64,
    /// Milliseconds requests spent held back by throttling (summed over concurrent ones).
    pub throttle_wait_ms: u64,
}

impl From<GraphStats> for GraphLine {
    fn from(stats: GraphStats) -> Self {
        GraphLine {
            requests: stats.requests,
            retries: stats.retries,
            throttled: stats.throttled,
            batched: stats.batched,
            status_2xx: stats.status_2xx,
            status_4xx: stats.status_4xx,
            status_5xx: stats.status_5xx,
            no_reply: stats.no_reply,
            throttle_wait_ms: stats.throttle_wait.as_millis() as u64,
        }
    }
}

impl RunReport {
    /// The report a finished run recorded; `None` for a run without one (or one this
    /// rollcall cannot read).
    pub fn of(run: &crate::store::Run) -> Option<RunReport> {
        serde_json::from_value(run.report.clone()?).ok()
    }

    /// Members added, members removed and groups created, over every list.
    pub fn changes(&self) -> (u64, u64, u64) {
        self.lists.iter().fold((0, 0, 0), |(a, r, c), l| {
            (a + l.added, r + l.removed, c + u64::from(l.created))
        })
    }

    /// The report of a plan, before anything is applied.
    pub fn planned(planned: &Planned) -> RunReport {
        let mut lists: BTreeMap<String, ListReport> = BTreeMap::new();
        for (list, keys) in &planned.unresolved {
            let line = lists.entry(list.clone()).or_default();
            line.unresolved = keys.iter().take(UNRESOLVED_SHOWN).cloned().collect();
            line.unresolved_count = keys.len() as u64;
        }
        for group in &planned.actual.adopted {
            lists.entry(group.list.clone()).or_default().adopted = true;
        }
        let mut warnings = planned.warnings.clone();
        warnings.extend(planned.actual.warnings.iter().cloned());
        RunReport {
            sources: planned.sources.clone(),
            directory: Some(planned.directory),
            totals: planned.plan.totals,
            lists: lists
                .into_iter()
                .map(|(list, line)| ListReport { list, ..line })
                .collect(),
            held: planned
                .plan
                .held()
                .map(|(list, hold)| HeldList::new(&list.key, hold))
                .collect(),
            unresolved: planned.unresolved.values().map(|v| v.len() as u64).sum(),
            tripped: planned.verdicts.tripped().cloned().collect(),
            warnings,
            durations: planned.durations,
            leaving: pending_removals(&planned.plan),
            exceptions_applied: planned.exceptions_applied,
            ..RunReport::default()
        }
    }

    /// Folds a run's journal into the per-list lines and the applied counts.
    pub fn count_journal(&mut self, journal: &[JournalOp]) {
        let mut lists: BTreeMap<String, ListReport> = self
            .lists
            .drain(..)
            .map(|line| (line.list.clone(), line))
            .collect();
        // The journal knows the outcomes; what the apply cost it does not.
        let mut applied = Applied {
            batches: self.applied.batches,
            state_round_trips: self.applied.state_round_trips,
            ..Applied::default()
        };
        let mut errors = Vec::new();
        for op in journal {
            let line = lists.entry(op.op.list.clone()).or_default();
            match op.status {
                OpStatus::Done => {
                    applied.done += 1;
                    match op.op.kind {
                        OpKind::CreateGroup => line.created = true,
                        OpKind::AddMember => line.added += 1,
                        OpKind::RemoveMember => line.removed += 1,
                        OpKind::UpdateGroup => line.retitled = true,
                        OpKind::AddOwner => line.owners_added += 1,
                        OpKind::RemoveOwner => line.owners_removed += 1,
                        OpKind::TagGroup => {}
                    }
                }
                OpStatus::Failed => {
                    applied.failed += 1;
                    line.failed += 1;
                    let error = OpError::of(op);
                    let refused = op
                        .last_error
                        .as_deref()
                        .is_some_and(|e| e.starts_with(HELD));
                    if refused && !self.held.iter().any(|h| h.list == op.op.list) {
                        let hold = HoldReason::Refused {
                            status: error.status.unwrap_or_default(),
                            code: error.code.clone().unwrap_or_default(),
                            message: error.message.clone(),
                        };
                        self.held.push(HeldList::new(&op.op.list, &hold));
                    }
                    if errors.len() < ERRORS_KEPT {
                        errors.push(error);
                    }
                }
                OpStatus::Pending => {
                    applied.pending += 1;
                    line.pending += 1;
                }
                OpStatus::Superseded => {}
            }
        }
        if !journal.is_empty() {
            self.applied = applied;
            self.errors = errors;
        }
        self.lists = lists
            .into_iter()
            .map(|(list, line)| ListReport { list, ..line })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(seq: i64, list: &str, kind: OpKind, status: OpStatus) -> JournalOp {
        JournalOp::sample(seq, list, kind, None, status)
    }

    #[test]
    fn the_journal_folds_into_per_list_lines_and_totals() {
        let mut report = RunReport {
            lists: vec![ListReport {
                list: "b".to_owned(),
                unresolved: vec!["x@example.ac.uk".to_owned()],
                unresolved_count: 1,
                ..ListReport::default()
            }],
            ..RunReport::default()
        };
        report.count_journal(&[
            op(1, "a", OpKind::CreateGroup, OpStatus::Done),
            op(2, "a", OpKind::TagGroup, OpStatus::Done),
            op(3, "a", OpKind::AddMember, OpStatus::Done),
            op(4, "a", OpKind::AddMember, OpStatus::Failed),
            op(5, "b", OpKind::RemoveMember, OpStatus::Done),
            op(6, "b", OpKind::AddMember, OpStatus::Pending),
            op(7, "b", OpKind::AddMember, OpStatus::Superseded),
        ]);
        assert_eq!(
            report.applied,
            Applied {
                done: 4,
                failed: 1,
                pending: 1,
                ..Applied::default()
            }
        );
        let a = &report.lists[0];
        assert_eq!(
            (a.list.as_str(), a.created, a.added, a.failed),
            ("a", true, 1, 1)
        );
        let b = &report.lists[1];
        assert_eq!((b.removed, b.pending, b.unresolved_count), (1, 1, 1));
        let text = report.to_string();
        assert!(text.contains("  a: created; +1 −0; 1 failed"), "{text}");
        assert!(
            text.contains("  b: +0 −1; 1 pending; 1 unresolved (x@example.ac.uk)"),
            "{text}"
        );
    }

    #[test]
    fn failed_operations_keep_graphs_error_code_and_the_table_shows_each_list() {
        let mut failed = op(1, "a", OpKind::AddMember, OpStatus::Failed);
        failed.op.member = Some("u-1".to_owned());
        failed.last_error = Some(
            "POST /v1.0/groups/g/members/$ref: Microsoft Graph answered 404 \
             Request_ResourceNotFound: Resource 'u-1' does not exist"
                .to_owned(),
        );
        let mut plain = op(2, "b", OpKind::CreateGroup, OpStatus::Failed);
        plain.last_error = Some("the plan holds no group properties".to_owned());
        let mut report = RunReport::default();
        report.count_journal(&[
            failed,
            plain,
            op(3, "b", OpKind::RemoveMember, OpStatus::Done),
        ]);
        assert_eq!(
            report.errors,
            vec![
                OpError {
                    list: "a".to_owned(),
                    op: "add_member".to_owned(),
                    member: Some("u-1".to_owned()),
                    status: Some(404),
                    code: Some("Request_ResourceNotFound".to_owned()),
                    message: "Resource 'u-1' does not exist".to_owned(),
                },
                OpError {
                    list: "b".to_owned(),
                    op: "create_group".to_owned(),
                    member: None,
                    status: None,
                    code: None,
                    message: "the plan holds no group properties".to_owned(),
                },
            ]
        );
        let text = report.to_string();
        assert!(
            text.contains("failed: a add_member u-1: Request_ResourceNotFound (404): Resource"),
            "{text}"
        );
        let table = Detailed(&report).to_string();
        assert!(table.contains("list  group"), "{table}");
        assert!(table.contains("  b     "), "{table}");
        assert!(table.contains("−1"), "{table}");
    }

    #[test]
    fn a_group_refused_during_apply_is_a_held_list_with_its_release() {
        let mut refused = op(1, "gone", OpKind::AddMember, OpStatus::Failed);
        refused.last_error = Some(format!(
            "{HELD}POST /v1.0/groups/g/members/$ref: Microsoft Graph answered 404 \
             Request_ResourceNotFound: Resource 'g' does not exist"
        ));
        let mut report = RunReport::default();
        report.count_journal(&[
            refused,
            op(2, "gone", OpKind::AddMember, OpStatus::Superseded),
            op(3, "ok", OpKind::AddMember, OpStatus::Done),
        ]);
        assert_eq!(report.held.len(), 1, "{report:?}");
        let held = &report.held[0];
        assert_eq!(
            (held.list.as_str(), held.reason.as_str()),
            ("gone", "refused")
        );
        assert!(held.message.contains("404"), "{held:?}");
        assert!(held.release.contains("creates it again"), "{held:?}");
        assert_eq!(report.errors[0].status, Some(404));
        assert!(
            report.to_string().contains("held: list gone (refused)"),
            "{report}"
        );
    }

    #[test]
    fn an_approval_is_read_from_the_commands_record_only_when_it_approves() {
        let plain = serde_json::json!({
            "operator": "ops", "reason": null, "accept_removals": null,
            "accept_additions": null, "accept_shrink": [],
        });
        assert_eq!(Approval::from_record(&plain), None);
        let approved = serde_json::json!({
            "operator": "ops", "reason": "term start", "accept_removals": 900,
            "accept_additions": null, "accept_shrink": ["enrolments"],
        });
        let approval = Approval::from_record(&approved).unwrap();
        assert_eq!(
            approval.to_string(),
            "by ops: term start (accepts up to 900 removals, shrink of enrolments)"
        );
    }

    #[test]
    fn a_report_reads_back_from_its_json() {
        let report = RunReport {
            unresolved: 3,
            error: Some("boom".to_owned()),
            failed_check: Some(FailedCheck {
                source: "enrolments".to_owned(),
                check: "shrink".to_owned(),
            }),
            ..RunReport::default()
        };
        assert!(
            report
                .to_string()
                .contains("source check failed: `shrink` on source enrolments"),
            "{report}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(serde_json::from_value::<RunReport>(json).unwrap(), report);
        // Reports written by an older rollcall lack newer fields; they still read.
        let old: RunReport = serde_json::from_value(serde_json::json!({"unresolved": 2})).unwrap();
        assert_eq!(old.unresolved, 2);
    }
}
