//! `rollcall serve` driven as a black box against the sandbox, on a schedule of every two
//! seconds: runs happen and converge the tenant, never overlap, and show in /metrics and
//! /healthz; SIGTERM stops a run at a batch boundary, SIGHUP reloads the config; two instances
//! on one PostgreSQL or MariaDB state database run each tick once and take over from each other.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rollcall::config::DatabaseUrl;
use rollcall::reconcile::OPS_PER_BATCH;
use rollcall::store::{OpKind, OpStatus, Run, RunKind, RunStatus, Store};
use serde_json::Value;
use tokio::time::Instant;

use crate::common::db::{Backend, TestDatabase};
use crate::common::serving::{PATIENCE, Serving, sample_of};
use crate::common::tenant::{Tenant, TenantOptions};

/// Every two seconds.
const EVERY_TWO_SECONDS: &str = "*/2 * * * * *";

/// A tenant whose config schedules runs with `run` and listens on a free loopback port.
async fn tenant(
    db: TestDatabase,
    options: TenantOptions,
    run: &str,
    max_success_age: &str,
) -> Tenant {
    let mut tenant = Tenant::start(db, options).await;
    tenant.add_config(&format!(
        "\n[schedule]\nrun = \"{run}\"\n\n[serve]\nlisten = \"127.0.0.1:0\"\nmax_success_age = \"{max_success_age}\"\n"
    ));
    tenant
}

async fn sqlite() -> TestDatabase {
    TestDatabase::create(Backend::Sqlite)
        .await
        .expect("SQLite needs no server")
}

/// Every recorded run, oldest first, read through a connection of its own (no migration
/// check, no pool kept beside the SQLite file serve writes).
async fn runs(tenant: &Tenant) -> Vec<Run> {
    let url = DatabaseUrl::new(tenant.db().url.clone());
    let store = Store::connect(&url)
        .await
        .expect("the state database opens");
    let mut runs = store
        .recent_runs(10_000)
        .await
        .expect("the runs can be listed");
    store.close().await;
    runs.reverse();
    runs
}

/// Waits until `enough` holds for the recorded runs.
async fn wait_for_runs(
    tenant: &Tenant,
    serve: &Serving,
    what: &str,
    enough: impl Fn(&[Run]) -> bool,
) -> Vec<Run> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let runs = runs(tenant).await;
        if enough(&runs) {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {}\n--- serve's log (end) ---\n{}",
            describe(&runs),
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn succeeded(runs: &[Run]) -> usize {
    runs.iter()
        .filter(|r| r.kind == RunKind::Run && r.status == RunStatus::Succeeded)
        .count()
}

fn describe(runs: &[Run]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "{} {} {} {:?} {:?}..{:?}",
                r.id, r.kind, r.status, r.holder, r.started_at, r.finished_at
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Panics unless the runs that took the lease ran one after another, and no tick ran twice.
fn assert_no_overlap(runs: &[Run]) {
    let mut ran: Vec<&Run> = runs
        .iter()
        .filter(|r| r.status != RunStatus::Skipped)
        .collect();
    ran.sort_by_key(|r| r.started_at);
    let now = Utc::now();
    for pair in ran.windows(2) {
        let end: DateTime<Utc> = pair[0].finished_at.unwrap_or(now);
        assert!(
            pair[1].started_at >= end,
            "run {} started before run {} ended:\n{}",
            pair[1].id,
            pair[0].id,
            describe(runs)
        );
    }
    let mut per_tick: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &ran {
        if let Some(tick) = run.approvals.as_ref().and_then(|a| a["tick"].as_str()) {
            *per_tick.entry(tick).or_default() += 1;
        }
    }
    for (tick, n) in per_tick {
        assert_eq!(
            n,
            1,
            "the tick due {tick} ran {n} times:\n{}",
            describe(runs)
        );
    }
}

fn instance(run: &Run) -> String {
    run.approvals
        .as_ref()
        .and_then(|a| a["instance"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_converge_never_overlap_and_show_in_metrics_and_health() {
    let tenant = tenant(
        sqlite().await,
        TenantOptions::new(),
        EVERY_TWO_SECONDS,
        "2h",
    )
    .await;
    let mut serve = Serving::start(&tenant).await;
    let (status, body) = serve.get("/healthz").await;
    assert_eq!(
        status, 200,
        "a fresh start is healthy during its grace: {body}"
    );

    wait_for_runs(&tenant, &serve, "three successful scheduled runs", |runs| {
        succeeded(runs) >= 3
    })
    .await;
    tenant.assert_converged("after three scheduled runs");

    let paused_at = Utc::now();
    tenant
        .rollcall(&["pause", "--reason", "checking the metrics"])
        .await
        .expect(0);
    let runs = wait_for_runs(&tenant, &serve, "a run skipped for the pause", |runs| {
        runs.iter()
            .any(|r| r.status == RunStatus::Skipped && r.started_at > paused_at)
    })
    .await;
    assert_no_overlap(&runs);
    for run in &runs {
        let approvals = run
            .approvals
            .as_ref()
            .expect("scheduled runs record approvals");
        assert_eq!(
            approvals["operator"], "serve",
            "run {}: {approvals}",
            run.id
        );
    }

    // No run is in flight while paused, so the counters and the runs table agree.
    let success = serve
        .metric(r#"rollcall_runs_total{kind="run",outcome="success"}"#)
        .await;
    assert_eq!(success, succeeded(&runs) as f64, "{}", describe(&runs));
    let store = tenant.store().await;
    let mut journal: HashMap<(OpKind, OpStatus), u64> = HashMap::new();
    for run in &runs {
        for op in store.journal(run.id).await.expect("the journal is read") {
            *journal.entry((op.op.kind, op.status)).or_default() += 1;
        }
    }
    store.close().await;
    let (_, text) = serve.get("/metrics").await;
    for (kind, label) in [
        (OpKind::AddMember, "add"),
        (OpKind::RemoveMember, "remove"),
        (OpKind::CreateGroup, "create"),
        (OpKind::TagGroup, "tag"),
    ] {
        let done = journal.get(&(kind, OpStatus::Done)).copied().unwrap_or(0);
        assert_eq!(
            sample_of(
                &text,
                &format!(r#"rollcall_operations_total{{kind="{label}",outcome="done"}}"#)
            ),
            done as f64,
            "{label} operations done:\n{text}"
        );
    }
    assert!(
        journal
            .get(&(OpKind::AddMember, OpStatus::Done))
            .copied()
            .unwrap_or(0)
            > 1000
    );
    assert!(
        sample_of(&text, r#"rollcall_graph_requests_total{status="2xx"}"#) > 0.0,
        "{text}"
    );
    assert_eq!(
        sample_of(&text, r#"rollcall_run_duration_seconds_count{kind="run"}"#),
        success,
        "{text}"
    );
    assert!(
        sample_of(&text, "rollcall_last_success_timestamp_seconds")
            > paused_at.timestamp() as f64 - 60.0,
        "{text}"
    );
    assert_eq!(sample_of(&text, "rollcall_paused"), 1.0, "{text}");
    assert_eq!(
        sample_of(&text, "rollcall_pending_operations"),
        0.0,
        "{text}"
    );
    for name in [
        "rollcall_graph_throttled",
        "rollcall_guard_trips",
        "rollcall_unresolved_members",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP:\n{text}"
        );
    }
    let skipped_seen = Instant::now() + PATIENCE;
    while serve
        .metric(r#"rollcall_runs_total{kind="run",outcome="skipped"}"#)
        .await
        < 1.0
    {
        assert!(Instant::now() < skipped_seen, "no skipped tick was counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (status, body) = serve.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).expect("/healthz is JSON");
    assert_eq!(health["healthy"], true, "{health}");
    assert!(health["last_success"].is_string(), "{health}");

    serve.signal("TERM");
    assert!(
        serve.exit().await.success(),
        "serve did not exit 0:\n{}",
        serve.log_text()
    );
    assert!(
        serve.logged("serve stopped").is_some(),
        "{}",
        serve.log_text()
    );
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_unhealthy_past_max_success_age_and_healthy_after_a_success() {
    let tenant = tenant(
        sqlite().await,
        TenantOptions::new(),
        EVERY_TWO_SECONDS,
        "3s",
    )
    .await;
    tenant
        .rollcall(&["pause", "--reason", "before the first run"])
        .await
        .expect(0);
    let mut serve = Serving::start(&tenant).await;
    let deadline = Instant::now() + PATIENCE;
    let body = loop {
        let (status, body) = serve.get("/healthz").await;
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never turned unhealthy: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let health: Value = serde_json::from_str(&body).expect("/healthz is JSON");
    assert_eq!(health["healthy"], false, "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("no successful run since serve started"),
        "{health}"
    );
    assert!(serve.is_running());

    tenant.rollcall(&["unpause"]).await.expect(0);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = serve.get("/healthz").await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never turned healthy again: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serve.signal("INT");
    assert!(serve.exit().await.success(), "{}", serve.log_text());
    tenant.assert_converged("after the unpaused run");
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_scheduled_run_at_a_batch_boundary_and_the_next_run_finishes_it() {
    let options = TenantOptions::slow_build();
    let tenant = tenant(sqlite().await, options, EVERY_TWO_SECONDS, "2h").await;
    let mut serve = Serving::start(&tenant).await;
    let deadline = Instant::now() + PATIENCE;
    while tenant.stat("writes") == 0 {
        assert!(serve.is_running(), "serve ended:\n{}", serve.log_text());
        assert!(
            Instant::now() < deadline,
            "serve wrote nothing:\n{}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve.signal("TERM");
    let asked = tenant.stat("writes");
    let status = serve.exit().await;
    assert!(
        status.success(),
        "serve did not exit 0 ({status}):\n{}",
        serve.log_text()
    );
    let after = tenant.stat("writes") - asked;
    assert!(
        after <= OPS_PER_BATCH as u64,
        "{after} writes landed after SIGTERM, more than the one batch in flight"
    );
    assert!(
        serve.logged("stops at its next batch boundary").is_some(),
        "{}",
        serve.log_text()
    );
    let last = runs(&tenant).await.pop().expect("a run is recorded");
    assert_eq!(
        last.status,
        RunStatus::Interrupted,
        "{}",
        describe(std::slice::from_ref(&last))
    );
    assert!(
        tenant.pending_operations().await > 0,
        "the stopped run has nothing pending"
    );

    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(tenant.pending_operations().await, 0);
    tenant.assert_converged("after the run that followed SIGTERM");
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_picks_up_a_changed_schedule_and_keeps_running_on_a_bad_config() {
    // New Year's midnight: no run during the test unless the reload takes.
    let yearly = "0 0 0 1 1 *";
    let tenant = tenant(sqlite().await, TenantOptions::new(), yearly, "2h").await;
    let config = tenant.dir().join("e2e.toml");
    let original = std::fs::read_to_string(&config).expect("the config is read");
    let mut serve = Serving::start(&tenant).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        runs(&tenant).await.is_empty(),
        "a run happened on the yearly schedule"
    );

    let every_two = original.replace(
        &format!("run = \"{yearly}\""),
        &format!("run = \"{EVERY_TWO_SECONDS}\""),
    );
    assert_ne!(every_two, original, "the schedule line was not found");
    std::fs::write(&config, &every_two).expect("the config is rewritten");
    serve.signal("HUP");
    serve.wait_logged("configuration reloaded").await;
    wait_for_runs(&tenant, &serve, "a run on the reloaded schedule", |runs| {
        succeeded(runs) >= 1
    })
    .await;

    let bad = every_two.replace(
        &format!("run = \"{EVERY_TWO_SECONDS}\""),
        "run = \"every two seconds\"",
    );
    std::fs::write(&config, &bad).expect("the config is rewritten");
    serve.signal("HUP");
    let refused = serve
        .wait_logged("the configuration is not valid; keeping the one in use")
        .await;
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("schedule.run"),
        "{refused}"
    );
    let before = succeeded(&runs(&tenant).await);
    wait_for_runs(&tenant, &serve, "a run after the bad reload", |runs| {
        succeeded(runs) > before
    })
    .await;
    assert!(serve.is_running());

    let moved = every_two.replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"");
    assert_ne!(moved, every_two, "the listen line was not found");
    std::fs::write(&config, &moved).expect("the config is rewritten");
    serve.signal("HUP");
    serve
        .wait_logged("[serve] listen changed; restart serve")
        .await;
    let (status, _) = serve.get("/healthz").await;
    assert_eq!(
        status, 200,
        "serve stopped listening on its address after the reload"
    );

    serve.signal("TERM");
    assert!(serve.exit().await.success(), "{}", serve.log_text());
    assert_no_overlap(&runs(&tenant).await);
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_run_each_tick_once_and_take_over() {
    if let Some(db) = TestDatabase::create(Backend::Postgres).await {
        two_instances(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_mariadb_run_each_tick_once_and_take_over() {
    if let Some(db) = TestDatabase::create(Backend::Mysql).await {
        two_instances(db).await;
    }
}

async fn two_instances(db: TestDatabase) {
    let tenant = tenant(db, TenantOptions::new(), EVERY_TWO_SECONDS, "2h").await;
    let mut first = Serving::start(&tenant).await;
    let mut second = Serving::start(&tenant).await;
    let runs_now = wait_for_runs(&tenant, &first, "four successful scheduled runs", |runs| {
        succeeded(runs) >= 4
    })
    .await;
    assert_no_overlap(&runs_now);
    tenant.assert_converged("after four scheduled runs by two instances");

    // Kill whichever instance holds the lease now, mid-run.
    let store = tenant.store().await;
    let deadline = Instant::now() + PATIENCE;
    let holder = loop {
        let lease = store.current_lease().await.expect("the lease is read");
        if let Some(lease) = lease.filter(|l| l.is_held(Utc::now()))
            && let Some(holder) = lease.holder
        {
            break holder;
        }
        assert!(Instant::now() < deadline, "no instance ever held the lease");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    store.close().await;
    let (victim, survivor) = if holder.ends_with(&first.holder_suffix()) {
        (&mut first, &mut second)
    } else {
        assert!(
            holder.ends_with(&second.holder_suffix()),
            "the lease holder {holder} is neither instance"
        );
        (&mut second, &mut first)
    };
    victim
        .child
        .kill()
        .await
        .expect("the running instance is killed");
    let killed_at = Utc::now();
    let survivor_name = holder.replace(&victim.holder_suffix(), &survivor.holder_suffix());

    wait_for_runs(
        &tenant,
        survivor,
        "a successful run by the survivor after the kill",
        |runs| {
            runs.iter().any(|r| {
                r.status == RunStatus::Succeeded
                    && r.started_at > killed_at
                    && instance(r) == survivor_name
            })
        },
    )
    .await;
    assert!(survivor.is_running());
    survivor.signal("TERM");
    assert!(survivor.exit().await.success(), "{}", survivor.log_text());
    let runs_now = runs(&tenant).await;
    assert_no_overlap(&runs_now);
    let by_instance = runs_now
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .fold(BTreeMap::<String, usize>::new(), |mut n, r| {
            *n.entry(instance(r)).or_default() += 1;
            n
        });
    assert!(by_instance.contains_key(&survivor_name), "{by_instance:?}");
    assert_eq!(tenant.pending_operations().await, 0);
    tenant.assert_converged("after the survivor's runs");
    tenant.finish();
}
