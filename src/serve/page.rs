//! `GET /`: a read-only status page for whoever is on call, served from the binary (no
//! script, no external asset): health, the lock, the pause, pending operations, drift, held
//! lists, the last runs and a chart of the last 30. It reads what `rollcall status` and
//! `/metrics` read. It shows no secret, and no member identity unless `[serve]
//! show_members = true`; everything from data is HTML-escaped.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::health::{Health, judge};
use super::html::escape;
use super::metrics::{RECONCILING, read_last_drift};
use super::page_chart::{ChartRun, chart};
use crate::reconcile::{HeldList, OpError, RunReport};
use crate::store::{LeaseState, PauseState, Run, RunKind, RunStatus, Store, StoreError};

/// How many runs the chart and the table show.
pub const RUNS_SHOWN: u32 = 30;

/// Everything the page shows, read at one moment.
#[derive(Debug, Clone)]
pub struct View {
    /// When it was read.
    pub now: DateTime<Utc>,
    /// `/healthz`'s verdict.
    pub health: Health,
    /// The run lease, if one was ever taken.
    pub lease: Option<LeaseState>,
    /// The pause flag.
    pub pause: PauseState,
    /// Pending operations across every run.
    pub pending: i64,
    /// Lists drifted as the newer of the last verify and rebuild saw it.
    pub drift: Option<(RunKind, u64)>,
    /// The last successful run, rebuild or apply: its held lists and failed operations.
    pub last_success: Option<Run>,
    /// The last runs, newest first.
    pub runs: Vec<Run>,
    /// `[serve] show_members`.
    pub show_members: bool,
}

impl View {
    /// Reads the view from the store.
    pub async fn read(
        store: &Store,
        started_at: DateTime<Utc>,
        max_success_age: std::time::Duration,
        show_members: bool,
    ) -> Result<View, StoreError> {
        let now = Utc::now();
        let last_success = store
            .last_finished_run(RECONCILING, RunStatus::Succeeded)
            .await?;
        Ok(View {
            now,
            health: judge(
                now,
                started_at,
                last_success.as_ref().and_then(|r| r.finished_at),
                max_success_age,
            ),
            lease: store.current_lease().await?,
            pause: store.pause_state().await?,
            pending: store.pending_everywhere().await?,
            drift: read_last_drift(store).await?,
            last_success,
            runs: store.recent_runs(RUNS_SHOWN).await?,
            show_members,
        })
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:75em;\
padding:0 1em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;\
border-bottom:1px solid #ddd}table{border-collapse:collapse;width:100%}th,td{text-align:left;\
padding:.2em .5em;border-bottom:1px solid #eee;vertical-align:top}td.n{text-align:right}\
.ok{fill:#2e7d32;color:#2e7d32}.held{fill:#ef6c00;color:#ef6c00}.bad{fill:#c62828;color:#c62828}\
.other{fill:#9e9e9e;color:#616161}.axis{font-size:11px;fill:#555}.base{stroke:#999}\
code{background:#f4f4f4;padding:0 .2em}.none{color:#777}dl{display:grid;\
grid-template-columns:11em 1fr;gap:.3em 1em}dt{font-weight:600}dd{margin:0}.t{white-space:nowrap}";

/// The page.
pub fn render(view: &View) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"60\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>rollcall status</title><style>{STYLE}</style></head><body>\
         <h1>rollcall status</h1><p>As of {} UTC; this page reloads every minute.</p>",
        view.now.format("%F %T")
    );
    overview(&mut html, view);
    held(&mut html, view);
    html.push_str("<h2>Last runs</h2>");
    let mut oldest_first: Vec<&Run> = view.runs.iter().collect();
    oldest_first.reverse();
    html.push_str(&chart(
        &oldest_first
            .iter()
            .map(|r| chart_run(r))
            .collect::<Vec<_>>(),
    ));
    runs_table(&mut html, &view.runs);
    failures(&mut html, view);
    html.push_str(
        "<p class=\"none\">Read-only. <code>rollcall status</code>, <code>rollcall runs</code> \
         and <code>rollcall show RUN</code> say the same and more; /metrics and /healthz serve \
         machines.</p></body></html>\n",
    );
    html
}

fn overview(html: &mut String, view: &View) {
    let health = &view.health;
    let (class, word) = if health.healthy {
        ("ok", "healthy")
    } else {
        ("bad", "unhealthy")
    };
    let _ = write!(
        html,
        "<dl id=\"overview\"><dt>health</dt><dd class=\"{class}\">{word}: {}</dd>",
        escape(&health.reason)
    );
    let lock = match &view.lease {
        Some(lease) if lease.is_held(view.now) => format!(
            "held by {} since {} UTC (expires {} UTC)",
            escape(lease.holder.as_deref().unwrap_or("?")),
            lease.acquired_at.format("%F %T"),
            lease.expires_at.format("%F %T")
        ),
        _ => "free".to_owned(),
    };
    let _ = write!(html, "<dt>lock</dt><dd id=\"lock\">{lock}</dd>");
    let pause = &view.pause;
    let paused = if pause.paused {
        format!(
            "<span class=\"held\">yes</span>, by {} ({}){}; <code>rollcall unpause</code> ends it",
            escape(pause.by.as_deref().unwrap_or("?")),
            escape(pause.reason.as_deref().unwrap_or("")),
            pause
                .until
                .map_or_else(String::new, |u| format!(" until {} UTC", u.format("%F %T")))
        )
    } else {
        "no".to_owned()
    };
    let _ = write!(html, "<dt>paused</dt><dd id=\"paused\">{paused}</dd>");
    let pending = if view.pending > 0 {
        format!(
            "<span class=\"held\">{}</span>; <code>rollcall resume</code> or the next run \
             finishes them",
            view.pending
        )
    } else {
        "0".to_owned()
    };
    let _ = write!(
        html,
        "<dt>pending operations</dt><dd id=\"pending\">{pending}</dd>"
    );
    let drift = match view.drift {
        Some((RunKind::Verify, lists)) => format!("{lists} lists drifted at the last verify"),
        Some((kind, lists)) => format!("{lists} lists changed by the last {kind}"),
        None => "no verify or rebuild recorded".to_owned(),
    };
    let _ = write!(html, "<dt>drift</dt><dd id=\"drift\">{drift}</dd></dl>");
}

fn held(html: &mut String, view: &View) {
    let report = view.last_success.as_ref().and_then(RunReport::of);
    let held: Vec<HeldList> = report.map(|r| r.held).unwrap_or_default();
    let _ = write!(html, "<h2>Held lists</h2>");
    if held.is_empty() {
        html.push_str("<p id=\"held\" class=\"none\">None in the last successful run.</p>");
        return;
    }
    let run = view.last_success.as_ref().map_or(0, |r| r.id.0);
    let _ = write!(
        html,
        "<p>{} held (left exactly as they were) in run {run}:</p>\
         <table id=\"held\"><tr><th>list</th><th>reason</th><th>why</th><th>to release</th></tr>",
        held.len()
    );
    for list in &held {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"held\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&list.list),
            escape(&list.reason),
            escape(&list.message),
            escape(&list.release)
        );
    }
    html.push_str("</table>");
}

/// How a run ended, in a word, and the CSS class it is drawn in.
fn outcome(run: &Run) -> (String, &'static str) {
    match (run.status, run.exit_code) {
        (RunStatus::Succeeded, Some(7)) => ("held".to_owned(), "held"),
        (RunStatus::Succeeded, _) => ("succeeded".to_owned(), "ok"),
        (RunStatus::Failed | RunStatus::Stopped | RunStatus::Interrupted, _) => {
            (run.status.to_string(), "bad")
        }
        (status, _) => (status.to_string(), "other"),
    }
}

fn seconds_taken(run: &Run) -> Option<f64> {
    run.finished_at
        .map(|end| (end - run.started_at).num_milliseconds().max(0) as f64 / 1000.0)
}

fn chart_run(run: &Run) -> ChartRun {
    let (added, removed, created) = RunReport::of(run).unwrap_or_default().changes();
    let (word, class) = outcome(run);
    ChartRun {
        id: run.id.0,
        label: format!("{} {word}", run.kind),
        changes: added + removed + created,
        seconds: seconds_taken(run).unwrap_or(0.0),
        class,
    }
}

fn runs_table(html: &mut String, runs: &[Run]) {
    if runs.is_empty() {
        return;
    }
    html.push_str(
        "<table id=\"runs\"><tr><th>run</th><th>kind</th><th>outcome</th><th>started (UTC)</th>\
         <th>took</th><th>exit</th><th>added</th><th>removed</th><th>created</th>\
         <th>failed</th><th>pending</th><th>held</th><th>unresolved</th></tr>",
    );
    for run in runs {
        let report = RunReport::of(run).unwrap_or_default();
        let (added, removed, created) = report.changes();
        let (word, class) = outcome(run);
        let took = seconds_taken(run).map_or_else(
            || "-".to_owned(),
            |s| crate::reconcile::seconds((s * 1000.0) as u64),
        );
        let exit = run
            .exit_code
            .map_or_else(|| "-".to_owned(), |c| c.to_string());
        let _ = write!(
            html,
            "<tr data-run=\"{}\"><td class=\"n\">{}</td><td>{}</td><td class=\"{class}\">{}</td>\
             <td class=\"t\">{}</td><td class=\"n\">{took}</td><td class=\"n\">{exit}</td>\
             <td class=\"n\">{added}</td><td class=\"n\">{removed}</td><td class=\"n\">{created}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            run.id,
            run.id,
            escape(run.kind.as_str()),
            escape(&word),
            run.started_at.format("%F %T"),
            report.applied.failed,
            report.applied.pending,
            report.held.len(),
            report.unresolved,
        );
    }
    html.push_str("</table>");
}

/// The last successful run's failed operations: counted, and with `show_members` each one
/// with its member and the reply.
fn failures(html: &mut String, view: &View) {
    let Some(run) = &view.last_success else {
        return;
    };
    let report = RunReport::of(run).unwrap_or_default();
    if report.errors.is_empty() {
        return;
    }
    let _ = write!(
        html,
        "<h2>Failed operations in run {}</h2><p>{} failed; <code>rollcall show {}</code> has \
         each.</p>",
        run.id, report.applied.failed, run.id
    );
    if !view.show_members {
        return;
    }
    html.push_str(
        "<table id=\"failures\"><tr><th>list</th><th>operation</th><th>member</th>\
         <th>reply</th></tr>",
    );
    for OpError {
        list,
        op,
        member,
        status,
        message,
        ..
    } in &report.errors
    {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
            escape(list),
            escape(op),
            escape(member.as_deref().unwrap_or("")),
            status.map_or_else(String::new, |s| s.to_string()),
            escape(message)
        );
    }
    html.push_str("</table>");
}

#[cfg(test)]
mod tests;
