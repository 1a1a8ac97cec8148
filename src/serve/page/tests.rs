use std::time::Duration;

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::store::RunId;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, minute, 0).unwrap()
}

fn run(id: i64, status: RunStatus, exit: i32, report: serde_json::Value) -> Run {
    Run {
        id: RunId(id),
        kind: RunKind::Run,
        status,
        holder: Some("host:1".to_owned()),
        lease_token: None,
        started_at: at(id as u32),
        finished_at: Some(at(id as u32) + chrono::Duration::seconds(3)),
        exit_code: Some(exit),
        plan_summary: None,
        report: Some(report),
        approvals: None,
    }
}

fn view(show_members: bool) -> View {
    let report = RunReport {
        lists: vec![crate::reconcile::ListReport {
            list: "mod-a".to_owned(),
            added: 3,
            removed: 1,
            created: true,
            ..Default::default()
        }],
        held: vec![HeldList {
            list: "<script>alert(1)</script>".to_owned(),
            reason: "invalid_name".to_owned(),
            message: "a key Exchange refuses".to_owned(),
            release: "rename it in the source".to_owned(),
        }],
        applied: crate::reconcile::Applied {
            done: 5,
            failed: 1,
            pending: 0,
            ..crate::reconcile::Applied::default()
        },
        errors: vec![OpError {
            list: "mod-a".to_owned(),
            op: "add_member".to_owned(),
            member: Some("0c9a4e2b-member-object-id".to_owned()),
            status: Some(400),
            code: None,
            message: "refused".to_owned(),
        }],
        ..RunReport::default()
    };
    let held = run(
        2,
        RunStatus::Succeeded,
        7,
        serde_json::to_value(report).unwrap(),
    );
    View {
        now: at(30),
        health: judge(at(30), at(0), held.finished_at, Duration::from_secs(3600)),
        lease: None,
        pause: PauseState::default(),
        pending: 0,
        drift: Some((RunKind::Verify, 2)),
        last_success: Some(held.clone()),
        runs: vec![held, run(1, RunStatus::Failed, 1, json!({}))],
        show_members,
    }
}

#[test]
fn the_page_shows_runs_held_lists_and_the_chart_escaped() {
    let page = render(&view(false));
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        !page.contains("<script"),
        "no script, and data cannot inject one"
    );
    assert!(page.contains("<svg id=\"runs-chart\""), "{page}");
    assert!(page.contains("<tr data-run=\"2\">"), "{page}");
    assert!(page.contains("<td class=\"held\">held</td>"), "{page}");
    assert!(page.contains("<td class=\"bad\">failed</td>"), "{page}");
    assert!(
        page.contains("2 lists drifted at the last verify"),
        "{page}"
    );
    assert!(
        page.contains("healthy: the last successful run finished"),
        "{page}"
    );
    // Run 2 added 3, removed 1, created 1: 5 changes on the chart.
    assert!(page.contains("run 2: run held, 5 changes"), "{page}");
    assert!(
        !page.contains(" src=") && !page.contains("<link"),
        "no external assets"
    );
}

#[test]
fn member_identities_show_only_when_configured() {
    let hidden = render(&view(false));
    assert!(
        hidden.contains("1 failed; <code>rollcall show 2</code> has each"),
        "{hidden}"
    );
    assert!(!hidden.contains("0c9a4e2b-member-object-id"), "{hidden}");
    let shown = render(&view(true));
    assert!(
        shown.contains("<td>0c9a4e2b-member-object-id</td>"),
        "{shown}"
    );
}

#[test]
fn lock_and_pause_are_shown() {
    let mut view = view(false);
    view.lease = Some(LeaseState {
        holder: Some("ops-host:42".to_owned()),
        token: 1,
        acquired_at: at(29),
        heartbeat_at: at(29),
        expires_at: at(35),
    });
    view.pause = PauseState {
        paused: true,
        reason: Some("exam <board>".to_owned()),
        until: None,
        by: Some("j.smith".to_owned()),
        at: Some(at(1)),
    };
    view.pending = 12;
    let page = render(&view);
    assert!(
        page.contains("held by ops-host:42 since 2026-03-02 10:29:00"),
        "{page}"
    );
    assert!(page.contains("by j.smith (exam &lt;board&gt;)"), "{page}");
    assert!(page.contains("<span class=\"held\">12</span>"), "{page}");
}

#[test]
fn escape_covers_elements_and_attributes() {
    assert_eq!(
        escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}
