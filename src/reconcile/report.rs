//! A run's report, as `show RUN` prints it and the state store keeps it.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use super::actual::Conflict;
use super::apply::Applied;
use super::flow::{Drift, Planned};
use super::identity::Refresh;
use crate::graph::{GraphError, GraphStats};
use crate::plan::{Totals, Verdict};
use crate::source::SourceSummary;
use crate::store::{JournalOp, OpKind, OpStatus};

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
    /// Lists whose nickname belongs to a group rollcall leaves alone.
    pub conflicts: Vec<Conflict>,
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
}

/// How long each phase of a run took, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Durations {
    /// Reading and checking the sources.
    pub sources_ms: u64,
    /// Refreshing the directory mirror and resolving member keys.
    pub directory_ms: u64,
    /// Reading the managed groups' membership.
    pub actual_ms: u64,
    /// Diffing and guarding.
    pub plan_ms: u64,
    /// Journalling and applying.
    pub apply_ms: u64,
    /// The whole run, from its start to its record.
    pub total_ms: u64,
}

impl Durations {
    /// Milliseconds since `start`.
    pub fn since(start: std::time::Instant) -> u64 {
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
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
    /// Sources whose shrink was accepted.
    pub accept_shrink: Vec<String>,
    /// The saved plan applied (`apply FILE`).
    pub plan_file: Option<String>,
}

impl Approval {
    /// The approval in a command's record, if it approves anything or gives a reason.
    pub fn from_record(record: &serde_json::Value) -> Option<Approval> {
        let approval: Approval = serde_json::from_value(record.clone()).ok()?;
        let approves = approval.accept_removals.is_some()
            || approval.accept_additions.is_some()
            || !approval.accept_shrink.is_empty()
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
        if !self.accept_shrink.is_empty() {
            accepts.push(format!("shrink of {}", self.accept_shrink.join(", ")));
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
            conflicts: planned.actual.conflicts.clone(),
            unresolved: planned.unresolved.values().map(|v| v.len() as u64).sum(),
            tripped: planned.verdicts.tripped().cloned().collect(),
            warnings,
            durations: planned.durations,
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
        let mut applied = Applied::default();
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
                        OpKind::TagGroup => {}
                    }
                }
                OpStatus::Failed => {
                    applied.failed += 1;
                    line.failed += 1;
                    if errors.len() < ERRORS_KEPT {
                        errors.push(OpError::of(op));
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

/// How a report shows its per-list lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStyle {
    /// One compact line per list that changed (what `run` prints).
    Lines,
    /// A table with a column per count (what `show RUN` prints).
    Table,
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, ListStyle::Lines)
    }
}

/// A report with its per-list lines as a table, for `show RUN`.
#[derive(Debug, Clone, Copy)]
pub struct Detailed<'a>(pub &'a RunReport);

impl fmt::Display for Detailed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.render(f, ListStyle::Table)
    }
}

/// One source's line: kind, counts, skipped entries and read time.
pub fn write_source(f: &mut impl fmt::Write, source: &SourceSummary) -> fmt::Result {
    let kind = if source.kind.is_empty() {
        String::new()
    } else {
        format!(" ({})", source.kind)
    };
    let skipped = if source.skipped > 0 {
        format!(", {} entries skipped", source.skipped)
    } else {
        String::new()
    };
    writeln!(
        f,
        "source {}{kind}: {} rows, {} distinct{skipped}, read in {} (sha256 {})",
        source.name,
        source.rows,
        source.distinct,
        seconds(source.read_ms),
        &source.checksum[..source.checksum.len().min(12)]
    )
}

impl RunReport {
    /// The report as text, its lists in `style`.
    fn render(&self, f: &mut fmt::Formatter<'_>, style: ListStyle) -> fmt::Result {
        if let Some(approval) = &self.approval {
            writeln!(f, "approved {approval}")?;
        }
        for source in &self.sources {
            write_source(f, source)?;
        }
        if let Some(directory) = &self.directory {
            let how = if directory.full {
                "full read"
            } else {
                "changes"
            };
            writeln!(f, "directory: {} users ({how})", directory.users)?;
        }
        let t = &self.totals;
        writeln!(
            f,
            "plan: {} lists, {} unchanged, {} to create, {} to update; +{} −{} members; {} vanished, {} not created",
            t.lists,
            t.unchanged,
            t.creates,
            t.updates,
            t.adds,
            t.removes,
            t.vanished,
            t.not_created
        )?;
        let a = &self.applied;
        writeln!(
            f,
            "applied: {} done, {} failed, {} pending",
            a.done, a.failed, a.pending
        )?;
        match style {
            ListStyle::Table => self.list_table(f)?,
            ListStyle::Lines => self.list_lines(f)?,
        }
        for conflict in &self.conflicts {
            writeln!(
                f,
                "conflict: list {} wants nickname {} held by group {}: {}",
                conflict.list, conflict.mail_nickname, conflict.group_id, conflict.reason
            )?;
        }
        if self.unresolved > 0 {
            writeln!(
                f,
                "unresolved: {} member keys have no account yet; they are tried again next run",
                self.unresolved
            )?;
        }
        for verdict in &self.tripped {
            writeln!(
                f,
                "guard tripped: {}{} observed {} over limit {}",
                verdict.guard.key(),
                verdict
                    .list
                    .as_deref()
                    .map_or_else(String::new, |l| format!(" on {l}")),
                verdict.observed,
                verdict.limit
            )?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        if let Some(drift) = self.drift {
            writeln!(f, "drift: {drift} lists")?;
        }
        for drift in &self.drifted {
            writeln!(f, "  {}", drift_text(drift))?;
        }
        for error in &self.errors {
            writeln!(f, "failed: {error}")?;
        }
        if self.applied.failed > self.errors.len() as u64 && !self.errors.is_empty() {
            writeln!(
                f,
                "failed: … and {} more (`rollcall show RUN --output json` has the journal counts)",
                self.applied.failed - self.errors.len() as u64
            )?;
        }
        if let Some(groups) = self.managed_groups {
            writeln!(f, "managed groups found: {groups}")?;
        }
        if let Some(rows) = self.orphans_repaired.filter(|&rows| rows > 0) {
            writeln!(f, "orphaned rows repaired: {rows}")?;
        }
        if self.resumed > 0 {
            writeln!(f, "resumed: {} time(s)", self.resumed)?;
        }
        let g = &self.graph;
        writeln!(
            f,
            "graph: {} requests ({} inside $batch), {} retried, {} throttled (held back {}); replies 2xx {} 4xx {} 5xx {}, {} without reply",
            g.requests,
            g.batched,
            g.retries,
            g.throttled,
            seconds(g.throttle_wait_ms),
            g.status_2xx,
            g.status_4xx,
            g.status_5xx,
            g.no_reply
        )?;
        let d = &self.durations;
        if d.total_ms > 0 {
            writeln!(
                f,
                "took {}: sources {}, directory {}, actual {}, plan {}, apply {}",
                seconds(d.total_ms),
                seconds(d.sources_ms),
                seconds(d.directory_ms),
                seconds(d.actual_ms),
                seconds(d.plan_ms),
                seconds(d.apply_ms)
            )?;
        }
        if let Some(failed) = &self.failed_check {
            writeln!(
                f,
                "source check failed: `{}` on source {}",
                failed.check, failed.source
            )?;
        }
        if let Some(error) = &self.error {
            writeln!(f, "error: {error}")?;
        }
        Ok(())
    }

    /// One compact line per list that changed.
    fn list_lines(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lists {
            let mut parts = Vec::new();
            if line.created {
                parts.push("created".to_owned());
            }
            if line.adopted {
                parts.push("adopted".to_owned());
            }
            if line.added > 0 || line.removed > 0 {
                parts.push(format!("+{} −{}", line.added, line.removed));
            }
            if line.failed > 0 {
                parts.push(format!("{} failed", line.failed));
            }
            if line.pending > 0 {
                parts.push(format!("{} pending", line.pending));
            }
            if line.unresolved_count > 0 {
                let mut names = line.unresolved.join(", ");
                if line.unresolved_count as usize > line.unresolved.len() {
                    let _ = write!(names, ", …");
                }
                parts.push(format!("{} unresolved ({names})", line.unresolved_count));
            }
            if !parts.is_empty() {
                writeln!(f, "  {}: {}", line.list, parts.join("; "))?;
            }
        }
        Ok(())
    }

    /// A table of the lists that changed, failed or have unresolved members.
    fn list_table(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&ListReport> = self
            .lists
            .iter()
            .filter(|l| {
                l.created
                    || l.adopted
                    || l.added + l.removed + l.failed + l.pending + l.unresolved_count > 0
            })
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        let width = lines.iter().map(|l| l.list.len()).max().unwrap_or(4).max(4);
        writeln!(
            f,
            "  {:<width$}  {:<7}  {:>7}  {:>7}  {:>6}  {:>7}  {:>10}",
            "list", "group", "added", "removed", "failed", "pending", "unresolved"
        )?;
        for line in lines {
            let group = match (line.created, line.adopted) {
                (true, _) => "created",
                (_, true) => "adopted",
                _ => "",
            };
            writeln!(
                f,
                "  {:<width$}  {:<7}  {:>7}  {:>7}  {:>6}  {:>7}  {:>10}",
                line.list,
                group,
                format!("+{}", line.added),
                format!("−{}", line.removed),
                line.failed,
                line.pending,
                line.unresolved_count
            )?;
        }
        Ok(())
    }
}

/// A duration in milliseconds for people: `850ms`, `1.5s`.
pub fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// One drifted list in a few words.
pub fn drift_text(drift: &Drift) -> String {
    if drift.group_missing {
        format!(
            "{}: no managed group ({} members wanted)",
            drift.list, drift.missing
        )
    } else {
        format!(
            "{}: {} missing, {} extra",
            drift.list, drift.missing, drift.extra
        )
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
                pending: 1
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
