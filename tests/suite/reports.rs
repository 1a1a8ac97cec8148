//! Run reports and history (issue 6): each run records per-list counts, the operator's
//! approval with its reason, failed operations with Microsoft Graph's error code, durations
//! per phase and Graph request counts; `runs` and `show RUN` print them as text and JSON.
//! Old runs are pruned after `[state].keep_runs_days`, never a run with pending operations,
//! the latest run of each kind, or the last accepted snapshot of a source.

use chrono::Utc;
use rollcall::config::DatabaseUrl;
use rollcall::store::{NewOp, NewSnapshot, OpKind, RunId, RunKind, RunStatus, Store};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::db::{Backend, TestDatabase, held_lease};
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(
    old_runs_go_but_pending_latest_of_each_kind_and_last_accepted_snapshots_stay,
    the_last_notified_state_is_kept_per_channel,
);

/// An object id no account has: a user deleted after the directory mirror last saw them.
const GHOST: &str = "00000000-0000-4000-8000-00000000dead";

/// A day in milliseconds, for backdating runs.
const DAY_MS: i64 = 24 * 3600 * 1000;

async fn raw(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_has_per_list_counts_the_approval_graph_error_codes_and_durations() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    let module = tenant.university.modules[0].key.clone();
    tenant.withdraw(0, 2);
    // One member of another module's list now resolves, from the mirror, to an account that
    // is gone: adding it fails for good with Graph's 404 Request_ResourceNotFound.
    let other = tenant.university.modules[1].key.clone();
    tenant
        .raw_sql(
            &format!(
                "UPDATE identities SET object_id = '{GHOST}' WHERE key_kind <> 'object_id' AND \
                 object_id = (SELECT MIN(member_id) FROM mirror WHERE list_key = '{other}')"
            ),
            true,
        )
        .await;
    let ran = tenant
        .rollcall(&[
            "run",
            "--accept-removals",
            "50",
            "--reason",
            "term start clean-up",
        ])
        .await;
    ran.expect(0);
    assert!(ran.stdout.contains("approved by"), "{}", ran.stdout);
    let run = tenant.last_run().await.to_string();

    let show = tenant
        .rollcall(&["show", &run, "--output", "json"])
        .await
        .expect(0)
        .json();
    let report = &show["report"];
    assert_eq!(
        report["approval"]["reason"], "term start clean-up",
        "{report}"
    );
    assert_eq!(report["approval"]["accept_removals"], 50, "{report}");
    let line = report["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["list"] == json!(module))
        .unwrap_or_else(|| panic!("no line for {module}: {report}"));
    assert!(line["removed"].as_u64().unwrap() >= 2, "{line}");
    let errors = report["errors"].as_array().unwrap();
    let ghost = errors
        .iter()
        .find(|e| e["member"] == json!(GHOST))
        .unwrap_or_else(|| panic!("no error for the ghost member: {report}"));
    assert_eq!(
        (&ghost["op"], &ghost["status"], &ghost["code"]),
        (
            &json!("add_member"),
            &json!(404),
            &json!("Request_ResourceNotFound")
        ),
        "{ghost}"
    );
    assert_eq!(report["applied"]["failed"], json!(errors.len()), "{report}");
    let durations = &report["durations"];
    let ms = |phase: &str| {
        durations[phase]
            .as_u64()
            .unwrap_or_else(|| panic!("{phase}: {durations}"))
    };
    assert!(ms("total_ms") > 0, "{durations}");
    let phases: u64 = [
        "sources_ms",
        "directory_ms",
        "actual_ms",
        "plan_ms",
        "apply_ms",
    ]
    .iter()
    .map(|p| ms(p))
    .sum();
    assert!(
        phases <= ms("total_ms") && ms("apply_ms") > 0,
        "{durations}"
    );
    assert!(
        report["graph"]["requests"].as_u64().unwrap() > 0,
        "{report}"
    );

    let text = tenant
        .rollcall(&["show", &run])
        .await
        .expect(0)
        .stdout
        .clone();
    for needle in [
        "approved by",
        "term start clean-up",
        "up to 50 removals",
        "Request_ResourceNotFound (404)",
        "took ",
        "apply ",
        "removed",
        "graph: ",
        "guards:",
    ] {
        assert!(
            text.contains(needle),
            "`show {run}` lacks `{needle}`:\n{text}"
        );
    }
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{module} ")))
        .unwrap_or_else(|| panic!("`show {run}` has no row for {module}:\n{text}"));
    assert!(row.contains('−'), "{row}");

    let runs = tenant.rollcall(&["runs"]).await.expect(0).stdout.clone();
    let header = runs.lines().next().unwrap();
    for column in [
        "run",
        "kind",
        "took",
        "members",
        "failed",
        "unresolved",
        "graph",
        "429s",
        "approved",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = runs
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{run} ")))
        .unwrap_or_else(|| panic!("`runs` has no row for run {run}:\n{runs}"));
    assert!(row.contains("✓") && row.contains("term start"), "{row}");

    let listed = tenant
        .rollcall(&["runs", "--output", "json"])
        .await
        .expect(0)
        .json();
    let first = &listed[0];
    assert_eq!(first["id"].to_string(), run, "{listed}");
    assert!(first["removed"].as_u64().unwrap() >= 2, "{first}");
    assert_eq!(first["failed"], json!(errors.len()), "{first}");
    assert_eq!(
        first["approval"]["reason"], "term start clean-up",
        "{first}"
    );
    assert!(first["duration_ms"].as_u64().is_some(), "{first}");
    // The first run approved nothing: no approval marker.
    assert_eq!(listed[1]["approval"], Value::Null, "{listed}");
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_prunes_runs_older_than_keep_runs_days() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    for _ in 0..3 {
        tenant.rollcall(&["run"]).await.expect(0);
    }
    tenant.rollcall(&["verify"]).await.expect(0);
    tenant
        .raw_sql(
            &format!("UPDATE runs SET started_at = started_at - {}", 100 * DAY_MS),
            true,
        )
        .await;
    let ran = tenant.rollcall(&["run"]).await;
    ran.expect(0);
    assert!(ran.stderr.contains("old runs pruned"), "{}", ran.stderr);
    let listed = tenant
        .rollcall(&["runs", "--output", "json"])
        .await
        .expect(0)
        .json();
    let kinds: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    // The three old runs went; the old verify stays as the latest of its kind.
    assert_eq!(
        kinds,
        [("run", "succeeded"), ("verify", "succeeded")],
        "{listed}"
    );
    // The next run still compares its sources with the last accepted snapshots.
    tenant.rollcall(&["run"]).await.expect(0);
}

async fn open(db: &TestDatabase) -> Store {
    Store::open(&DatabaseUrl::new(db.url.clone()))
        .await
        .expect("the store opens and migrates")
}

fn snapshot(source: &str, rows: i64) -> NewSnapshot {
    NewSnapshot {
        source: source.to_owned(),
        rows,
        distinct: rows,
        checksum: format!("{source}{rows}"),
    }
}

/// A finished run of `kind`, started `days_ago`.
async fn finished(db: &TestDatabase, store: &Store, kind: RunKind, days_ago: i64) -> RunId {
    let run = store.begin_run(kind, None, None).await.unwrap();
    store
        .finish_run(run, RunStatus::Succeeded, 0, &json!({}))
        .await
        .unwrap();
    backdate(db, run, days_ago).await;
    run
}

async fn backdate(db: &TestDatabase, run: RunId, days_ago: i64) {
    let started = Utc::now().timestamp_millis() - days_ago * DAY_MS;
    raw(
        &db.url,
        &format!(
            "UPDATE runs SET started_at = {started} WHERE id = {}",
            run.0
        ),
    )
    .await;
}

async fn old_runs_go_but_pending_latest_of_each_kind_and_last_accepted_snapshots_stay(
    db: TestDatabase,
) {
    let store = open(&db).await;
    let lease = held_lease(&store).await;

    // Old, finished, with a done operation, the last accepted `enrolments` snapshot, an
    // unaccepted `staff` one and an accepted `staff` one that a later run supersedes.
    let first = store
        .begin_run(RunKind::Run, Some(&lease), None)
        .await
        .unwrap();
    let enrolments = store
        .record_snapshot(first, &snapshot("enrolments", 100))
        .await
        .unwrap();
    store.accept_snapshot(enrolments).await.unwrap();
    let unaccepted = store
        .record_snapshot(first, &snapshot("staff", 1))
        .await
        .unwrap();
    let old_staff = store
        .record_snapshot(first, &snapshot("staff", 7))
        .await
        .unwrap();
    store.accept_snapshot(old_staff).await.unwrap();
    let op = NewOp {
        list: "mod-a".to_owned(),
        kind: OpKind::CreateGroup,
        member: None,
    };
    store
        .insert_plan(&lease, first, &json!({}), std::slice::from_ref(&op))
        .await
        .unwrap();
    raw(
        &db.url,
        &format!(
            "UPDATE journal SET status = 'done' WHERE run_id = {}",
            first.0
        ),
    )
    .await;
    store
        .finish_run(first, RunStatus::Succeeded, 0, &json!({}))
        .await
        .unwrap();
    backdate(&db, first, 100).await;

    // Old and interrupted with a pending operation: `resume` still needs it.
    let pending = store
        .begin_run(RunKind::Run, Some(&lease), None)
        .await
        .unwrap();
    store
        .insert_plan(&lease, pending, &json!({}), &[op])
        .await
        .unwrap();
    store.mark_interrupted(pending).await.unwrap();
    backdate(&db, pending, 100).await;

    let old_verify = finished(&db, &store, RunKind::Verify, 95).await;
    let new_verify = finished(&db, &store, RunKind::Verify, 1).await;
    let latest_run = finished(&db, &store, RunKind::Run, 91).await;
    let rebuild = store.begin_run(RunKind::Rebuild, None, None).await.unwrap();
    let new_staff = store
        .record_snapshot(rebuild, &snapshot("staff", 8))
        .await
        .unwrap();
    store.accept_snapshot(new_staff).await.unwrap();
    store
        .finish_run(rebuild, RunStatus::Succeeded, 0, &json!({}))
        .await
        .unwrap();

    assert_eq!(store.prune_runs(90).await.unwrap(), 2);
    for (run, kept) in [
        (first, false),
        (old_verify, false),
        (pending, true),
        (new_verify, true),
        (latest_run, true),
        (rebuild, true),
    ] {
        assert_eq!(store.run(run).await.unwrap().is_some(), kept, "run {run}");
    }
    assert!(
        store.journal(first).await.unwrap().is_empty(),
        "its journal went with it"
    );
    assert_eq!(store.journal(pending).await.unwrap().len(), 1);
    let last = store.last_accepted_snapshots().await.unwrap();
    assert_eq!(
        last.iter().map(|s| (s.id, s.run)).collect::<Vec<_>>(),
        [(enrolments, None), (new_staff, Some(rebuild))],
        "the last accepted snapshot of each source stays, unlinked once its run went"
    );
    let count = |ids: &[i64]| {
        format!(
            "SELECT COUNT(*) FROM source_snapshots WHERE id IN ({})",
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let left: i64 = sqlx::query_scalar(&count(&[unaccepted, old_staff]))
        .fetch_one(&mut sqlx::AnyConnection::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        left, 0,
        "snapshots of pruned runs that no check needs go too"
    );

    // Nothing is old enough any more: a second prune removes nothing.
    assert_eq!(store.prune_runs(90).await.unwrap(), 0);
    store.close().await;
}

async fn the_last_notified_state_is_kept_per_channel(db: TestDatabase) {
    let store = open(&db).await;
    assert_eq!(store.notified("webhook").await.unwrap(), None);
    let run = store.begin_run(RunKind::Run, None, None).await.unwrap();
    store.set_notified("webhook", "tripped", run).await.unwrap();
    store.set_notified("webhook", "ok", run).await.unwrap();
    store.set_notified("other", "drift", run).await.unwrap();
    let webhook = store.notified("webhook").await.unwrap().unwrap();
    assert_eq!((webhook.state.as_str(), webhook.run), ("ok", Some(run)));
    assert!((Utc::now() - webhook.at).num_seconds() < 60);
    assert_eq!(
        store.notified("other").await.unwrap().unwrap().state,
        "drift"
    );
    store.close().await;
}
