//! A run's report, as `show RUN` prints it and the state store keeps it.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use super::actual::Conflict;
use super::apply::Applied;
use super::flow::Planned;
use super::identity::Refresh;
use crate::graph::GraphStats;
use crate::plan::{Totals, Verdict};
use crate::source::SourceSummary;
use crate::store::{JournalOp, OpKind, OpStatus};

/// How many unresolved member keys a list's report line names before it only counts them.
const UNRESOLVED_SHOWN: usize = 20;

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
        }
        self.lists = lists
            .into_iter()
            .map(|(list, line)| ListReport { list, ..line })
            .collect();
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for source in &self.sources {
            writeln!(
                f,
                "source {}: {} rows, {} distinct (sha256 {})",
                source.name,
                source.rows,
                source.distinct,
                &source.checksum[..source.checksum.len().min(12)]
            )?;
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
        if let Some(groups) = self.managed_groups {
            writeln!(f, "managed groups found: {groups}")?;
        }
        if let Some(rows) = self.orphans_repaired.filter(|&rows| rows > 0) {
            writeln!(f, "orphaned rows repaired: {rows}")?;
        }
        if self.resumed > 0 {
            writeln!(f, "resumed: {} time(s)", self.resumed)?;
        }
        writeln!(
            f,
            "graph: {} requests, {} retried, {} throttled",
            self.graph.requests, self.graph.retries, self.graph.throttled
        )?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewOp, RunId};

    fn op(seq: i64, list: &str, kind: OpKind, status: OpStatus) -> JournalOp {
        JournalOp {
            run: RunId(1),
            seq,
            op: NewOp {
                list: list.to_owned(),
                kind,
                member: None,
            },
            status,
            attempts: 1,
            last_error: None,
        }
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
