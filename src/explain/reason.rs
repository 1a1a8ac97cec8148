//! Why a run added or removed a member, derived from what the journal and the run record
//! keep: the run's kind, its approvals, and the overrides whose window covered the run.
//! Pure.

use super::OverrideHit;
use crate::reconcile::Approval;
use crate::store::{OpKind, Run, RunKind};

/// The reason for `kind` (an add or a remove) on `list` in `run` (`None`: the run record
/// was pruned), in words.
pub fn reason(kind: OpKind, list: &str, run: Option<&Run>, overrides: &[OverrideHit]) -> String {
    let Some(run) = run else {
        return "its run's record was pruned (`[state].keep_runs_days`)".to_owned();
    };
    let at = run.started_at;
    let adding = kind == OpKind::AddMember;
    let by_override = overrides.iter().find(|o| {
        o.include == adding && o.from.is_none_or(|f| at >= f) && o.until.is_none_or(|u| at < u)
    });
    let ended = overrides
        .iter()
        .find(|o| o.include && o.until.is_some_and(|u| at >= u));
    let mut reason = match (adding, by_override, ended) {
        (_, Some(o), _) => format!(
            "override {} {}",
            o.origin,
            if adding {
                "includes them"
            } else {
                "excludes them"
            }
        ),
        (true, None, _) => "the sources name them".to_owned(),
        (false, None, Some(o)) => format!("override {} ended", o.origin),
        (false, None, None) => "the sources no longer name them".to_owned(),
    };
    match run.kind {
        RunKind::Rebuild => reason = format!("rebuild: {reason}"),
        RunKind::Resume => reason = format!("resume: {reason}"),
        RunKind::Run | RunKind::Apply | RunKind::Verify | RunKind::StateRebuild => {}
    }
    let Some(approval) = run.approvals.as_ref().and_then(Approval::from_record) else {
        return reason;
    };
    let mut flags = Vec::new();
    if let Some(file) = &approval.plan_file {
        flags.push(format!("apply {file}"));
    }
    if approval
        .accept_list
        .iter()
        .any(|l| l.to_lowercase() == list.to_lowercase())
    {
        flags.push(format!("--accept-list {list}"));
    }
    match (adding, approval.accept_removals, approval.accept_additions) {
        (false, Some(n), _) => flags.push(format!("--accept-removals {n}")),
        (true, _, Some(n)) => flags.push(format!("--accept-additions {n}")),
        _ => {}
    }
    if !approval.accept_shrink.is_empty() {
        flags.push(format!(
            "--accept-shrink {}",
            approval.accept_shrink.join(",")
        ));
    }
    if !flags.is_empty() {
        reason = format!("{reason}; approved with {}", flags.join(" "));
    }
    let who = approval.operator.as_deref().unwrap_or("an operator");
    if let Some(why) = approval.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        reason = format!("{reason} (by {who}: {why})");
    }
    reason
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use crate::store::{RunId, RunStatus};

    fn run(kind: RunKind, approvals: Option<serde_json::Value>) -> Run {
        Run {
            id: RunId(7),
            kind,
            status: RunStatus::Succeeded,
            holder: None,
            lease_token: None,
            started_at: time("2026-10-01T06:00:00Z"),
            finished_at: None,
            exit_code: Some(0),
            plan_summary: None,
            report: None,
            approvals,
        }
    }

    fn time(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn hit(include: bool, until: Option<&str>) -> OverrideHit {
        OverrideHit {
            list: "cs101".into(),
            origin: "x.csv:2".into(),
            include,
            from: None,
            until: until.map(time),
            reason: None,
            applies_now: true,
        }
    }

    #[test]
    fn a_plain_run_follows_the_sources() {
        let plain = run(RunKind::Run, None);
        assert_eq!(
            reason(OpKind::AddMember, "cs101", Some(&plain), &[]),
            "the sources name them"
        );
        assert_eq!(
            reason(OpKind::RemoveMember, "cs101", Some(&plain), &[]),
            "the sources no longer name them"
        );
    }

    #[test]
    fn an_override_in_its_window_or_ended_is_the_reason() {
        let plain = run(RunKind::Run, None);
        let include = [hit(true, None)];
        assert!(
            reason(OpKind::AddMember, "cs101", Some(&plain), &include).contains("x.csv:2 includes")
        );
        let ended = [hit(true, Some("2026-09-30T00:00:00Z"))];
        assert_eq!(
            reason(OpKind::RemoveMember, "cs101", Some(&plain), &ended),
            "override x.csv:2 ended"
        );
        let exclude = [hit(false, None)];
        assert!(reason(OpKind::RemoveMember, "cs101", Some(&plain), &exclude).contains("excludes"));
    }

    #[test]
    fn kind_flags_and_operator_reason_are_named() {
        let approved = run(
            RunKind::Rebuild,
            Some(
                json!({"operator": "jo", "reason": "INC-1", "accept_removals": 40, "accept_list": ["CS101"]}),
            ),
        );
        let text = reason(OpKind::RemoveMember, "cs101", Some(&approved), &[]);
        assert_eq!(
            text,
            "rebuild: the sources no longer name them; approved with --accept-list cs101 --accept-removals 40 (by jo: INC-1)"
        );
        assert!(reason(OpKind::AddMember, "cs101", None, &[]).contains("pruned"));
    }
}
