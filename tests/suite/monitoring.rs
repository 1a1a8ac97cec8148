//! The monitoring files in `deploy/`: every metric the Prometheus rules and the Grafana
//! dashboard query is one `serve` exports (the binary's own list of sample names, checked
//! against its rendering of /metrics), and the rules hold the alerts the runbook promises. `promtool check rules` and
//! `promtool test rules` run in `.ci/run`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use rollcall::plan::GuardKind;
use rollcall::serve::{Metrics, SAMPLE_NAMES, TickOutcome, TickRecord};
use rollcall::store::RunKind;
use serde_json::Value;

fn deploy_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every sample name `/metrics` can carry: the binary's own list (a unit test keeps it equal
/// to what is registered), checked here against a rendering of a fresh registry.
fn exported() -> BTreeSet<String> {
    let names: BTreeSet<String> = SAMPLE_NAMES.iter().map(|n| (*n).to_owned()).collect();
    let metrics = Metrics::new();
    metrics.record(
        RunKind::Run,
        TickOutcome::Success,
        Duration::from_secs(3),
        &TickRecord {
            tripped: vec![GuardKind::ALL[0]],
            ..TickRecord::default()
        },
    );
    let text = metrics.render();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let sample = line.split(['{', ' ']).next().unwrap_or_default();
        assert!(names.contains(sample), "{sample} is not in SAMPLE_NAMES");
    }
    names
}

/// The `rollcall_…` metric names a PromQL expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("rollcall_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // `rollcall_…` inside a string (a label value) is not a metric.
        let before = rest[..at].chars().last();
        if before != Some('"') {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Every `expr` of the rules, by alert name.
fn rules() -> Vec<(String, String)> {
    let rules: Value = serde_norway::from_str(&deploy_file("prometheus/rollcall-rules.yml"))
        .expect("the rules are YAML");
    let mut alerts = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            alerts.push((
                rule["alert"].as_str().expect("an alert name").to_owned(),
                rule["expr"].as_str().expect("an expr").to_owned(),
            ));
        }
    }
    alerts
}

/// Every target `expr` of the dashboard's panels.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dashboard: Value =
        serde_json::from_str(&deploy_file("grafana/rollcall.json")).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push((
                title.clone(),
                target["expr"].as_str().expect("an expr").to_owned(),
            ));
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    for variable in variables {
        if let Some(query) = variable["definition"].as_str() {
            exprs.push((format!("${}", variable["name"]), query.to_owned()));
        }
    }
    exprs
}

#[test]
fn the_rules_and_the_dashboard_query_only_exported_metrics() {
    let exported = exported();
    let mut queried = BTreeSet::new();
    for (place, expr) in rules()
        .into_iter()
        .map(|(alert, expr)| (format!("rule {alert}"), expr))
        .chain(
            dashboard_exprs()
                .into_iter()
                .map(|(title, expr)| (format!("panel {title}"), expr)),
        )
    {
        for name in metric_names(&expr) {
            assert!(
                exported.contains(&name),
                "{place}: `{name}` is not exported by /metrics (in `{expr}`); exported: {exported:?}"
            );
            queried.insert(name);
        }
    }
    // The dashboard is over the exported metrics: every one shows somewhere.
    for name in SAMPLE_NAMES {
        assert!(queried.contains(name), "nothing queries {name}");
    }
}

#[test]
fn the_rules_hold_every_alert_the_runbook_promises() {
    let alerts: BTreeSet<String> = rules().into_iter().map(|(alert, _)| alert).collect();
    for alert in [
        "RollcallRunFailed",
        "RollcallGuardTripped",
        "RollcallListsHeld",
        "RollcallNoRecentSuccess",
        "RollcallPendingOperationsStuck",
        "RollcallCredentialExpiring",
    ] {
        assert!(alerts.contains(alert), "no {alert} in {alerts:?}");
    }
    let runbook = deploy_file("RUNBOOK.md");
    assert!(
        runbook.contains("prometheus/rollcall-rules.yml"),
        "the runbook's alert table points at the rules file"
    );
}

#[test]
fn metric_names_are_found_in_expressions() {
    assert_eq!(
        metric_names(
            r#"sum by (le) (rate(rollcall_run_duration_seconds_bucket{job="rollcall_x"}[5m])) / rollcall_paused"#
        ),
        ["rollcall_paused", "rollcall_run_duration_seconds_bucket"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}
