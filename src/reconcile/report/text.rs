//! How `run` and `show RUN` print a report.

use std::fmt::{self, Write as _};

use super::{ListReport, RunReport};
use crate::reconcile::verify::{drift_text, pending_text};

/// How many lists with members in their removal grace a report names one by one.
const LEAVING_SHOWN: usize = 20;
use crate::source::SourceSummary;

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
            "plan: {} lists, {} unchanged, {} to create, {} to update, {} held; +{} −{} members, {} titles; {} vanished, {} not created",
            t.lists,
            t.unchanged,
            t.creates,
            t.updates,
            t.held,
            t.adds,
            t.removes,
            t.retitles,
            t.vanished,
            t.not_created
        )?;
        if t.owner_adds + t.owner_removes + t.owners_kept > 0 {
            writeln!(
                f,
                "owners: +{} −{}; {} lists keep their last owner (no source names one)",
                t.owner_adds, t.owner_removes, t.owners_kept
            )?;
        }
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
        for held in &self.held {
            writeln!(
                f,
                "held: list {} ({}): {}; to release: {}",
                held.list, held.reason, held.message, held.release
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
        if self.exceptions_applied > 0 {
            writeln!(
                f,
                "exceptions applied: {} (overrides and override-source rows inside their window)",
                self.exceptions_applied
            )?;
        }
        if !self.leaving.is_empty() {
            writeln!(
                f,
                "removal grace: {} members leaving {} lists once due",
                self.totals.leaving,
                self.leaving.len()
            )?;
        }
        for pending in self.leaving.iter().take(LEAVING_SHOWN) {
            writeln!(f, "  {}", pending_text(pending))?;
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
            if line.retitled {
                parts.push("retitled".to_owned());
            }
            if line.added > 0 || line.removed > 0 {
                parts.push(format!("+{} −{}", line.added, line.removed));
            }
            if line.owners_added > 0 || line.owners_removed > 0 {
                parts.push(format!(
                    "owners +{} −{}",
                    line.owners_added, line.owners_removed
                ));
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
                    || l.added
                        + l.removed
                        + l.owners_added
                        + l.owners_removed
                        + l.failed
                        + l.pending
                        + l.unresolved_count
                        > 0
            })
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        let width = lines.iter().map(|l| l.list.len()).max().unwrap_or(4).max(4);
        writeln!(
            f,
            "  {:<width$}  {:<7}  {:>7}  {:>7}  {:>7}  {:>6}  {:>7}  {:>10}",
            "list", "group", "added", "removed", "owners", "failed", "pending", "unresolved"
        )?;
        for line in lines {
            let group = match (line.created, line.adopted) {
                (true, _) => "created",
                (_, true) => "adopted",
                _ => "",
            };
            writeln!(
                f,
                "  {:<width$}  {:<7}  {:>7}  {:>7}  {:>7}  {:>6}  {:>7}  {:>10}",
                line.list,
                group,
                format!("+{}", line.added),
                format!("−{}", line.removed),
                format!("+{}−{}", line.owners_added, line.owners_removed),
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
