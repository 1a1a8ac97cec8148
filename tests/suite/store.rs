//! The state store story: the same scenarios on SQLite, PostgreSQL and MariaDB, each in a
//! fresh database, plus `rollcall migrate` and `rollcall doctor` through the binary.

use std::time::Duration;

use assert_cmd::Command;
use chrono::Utc;
use rollcall::config::{DatabaseUrl, MemberKey};
use rollcall::store::{
    Batch, GroupOrigin, Identity, ManagedGroup, NewOp, NewSnapshot, OpKind, OpStatus, Outcome,
    RunKind, RunStatus, Severity, Store, StoreError,
};
use serde_json::json;
use sqlx::Connection;

use crate::common::db::{Backend, TestDatabase, with_ops};
use crate::on_every_backend;

const TTL: Duration = Duration::from_secs(60);

async fn open(db: &TestDatabase) -> Store {
    Store::open(&DatabaseUrl::new(db.url.clone()))
        .await
        .expect("the store opens and migrates")
}

/// Runs SQL behind the store's back, to simulate time passing or damage.
async fn raw(db: &TestDatabase, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.unwrap();
}

/// Inserts a row that breaks a foreign key, with the checks off for that session only.
async fn raw_without_foreign_keys(db: &TestDatabase, sql: &str) {
    let off = match db.backend {
        Backend::Sqlite => "PRAGMA foreign_keys = OFF;",
        Backend::Postgres => "SET session_replication_role = replica;",
        Backend::Mysql => "SET FOREIGN_KEY_CHECKS = 0;",
    };
    raw(db, &format!("{off} {sql}")).await;
}

fn group(list: &str, id: &str) -> ManagedGroup {
    ManagedGroup {
        list: list.into(),
        group_id: id.into(),
        family: "modules".into(),
        origin: GroupOrigin::Created,
        mail_nickname: list.into(),
        tagged: true,
    }
}

fn add(list: &str, member: &str) -> NewOp {
    NewOp {
        list: list.into(),
        kind: OpKind::AddMember,
        member: Some(member.into()),
    }
}

fn remove(list: &str, member: &str) -> NewOp {
    NewOp {
        list: list.into(),
        kind: OpKind::RemoveMember,
        member: Some(member.into()),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

on_every_backend!(
    runs_are_recorded_from_start_to_report,
    plan_is_journalled_and_batches_update_journal_and_mirror,
    lease_is_exclusive_and_a_stolen_lease_writes_nothing,
    pause_holds_until_lifted_or_expired,
    mirror_follows_replace_and_apply,
    identity_cache_keeps_resolved_and_unresolved_keys,
    delta_links_are_kept_per_scope,
    a_dead_holders_lease_is_taken_over_with_a_new_token,
    a_full_directory_read_replaces_identities_and_deleted_users_are_forgotten,
    the_whole_mirror_reads_back_per_list,
    doctor_finds_nothing_on_a_fresh_store,
    doctor_finds_orphaned_rows,
    doctor_finds_stuck_run_and_stale_lease,
    doctor_finds_schema_behind_and_ahead,
    doctor_finds_pending_operations_of_finished_runs,
    migrate_and_doctor_commands_report_the_schema,
);

async fn runs_are_recorded_from_start_to_report(db: TestDatabase) {
    let store = open(&db).await;
    let approvals = json!({"operator": "ops", "reason": "term start", "accept_removals": 900});
    let first = store
        .begin_run(RunKind::Run, None, Some(&approvals))
        .await
        .unwrap();
    let run = store.run(first).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Planning);
    assert_eq!(run.kind, RunKind::Run);
    assert_eq!(run.approvals, Some(approvals));
    assert_eq!(run.finished_at, None);

    store
        .set_run_status(first, RunStatus::Applying)
        .await
        .unwrap();
    let report = json!({"lists": {"mod-a": {"added": 3}}});
    store
        .finish_run(first, RunStatus::Succeeded, 0, &report)
        .await
        .unwrap();
    let run = store.run(first).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.report, Some(report));
    assert!(run.finished_at.is_some());

    // An interrupted run is resumable only while it has pending operations.
    let lease = store.acquire("host-a:1", TTL).await.unwrap().unwrap();
    let second = store
        .begin_run(RunKind::Rebuild, Some(&lease), None)
        .await
        .unwrap();
    store.upsert_group(&group("mod-a", "g-a")).await.unwrap();
    store
        .insert_plan(&lease, second, &json!({}), &[add("mod-a", "u1")])
        .await
        .unwrap();
    store.mark_interrupted(second).await.unwrap();
    let third = store.begin_run(RunKind::Verify, None, None).await.unwrap();
    store.mark_interrupted(third).await.unwrap();
    let resumable = store.last_interrupted_run().await.unwrap().unwrap();
    assert_eq!(resumable.id, second);
    assert_eq!(resumable.lease_token, Some(lease.token));
    assert_eq!(resumable.holder.as_deref(), Some("host-a:1"));

    let recent = store.recent_runs(2).await.unwrap();
    assert_eq!(
        recent.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![third, second]
    );

    // Snapshots: the last accepted one per source is what shrink checks compare with.
    let snapshot = |rows| NewSnapshot {
        source: "enrolments".into(),
        rows,
        distinct: rows - 1,
        checksum: format!("sum{rows}"),
    };
    let a = store.record_snapshot(first, &snapshot(100)).await.unwrap();
    store.accept_snapshot(a).await.unwrap();
    let b = store.record_snapshot(second, &snapshot(50)).await.unwrap();
    let staff = NewSnapshot {
        source: "staff".into(),
        rows: 7,
        distinct: 7,
        checksum: "s".into(),
    };
    let c = store.record_snapshot(third, &staff).await.unwrap();
    store.accept_snapshot(c).await.unwrap();
    let last = store
        .last_accepted_snapshot("enrolments")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.id, a, "the unaccepted snapshot {b} must not count");
    assert_eq!(last.summary, snapshot(100));
    assert!(last.accepted_at.is_some());
    let all = store.last_accepted_snapshots().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|s| s.summary.source.as_str())
            .collect::<Vec<_>>(),
        ["enrolments", "staff"]
    );

    // Pruning everything older than now keeps the run with pending operations, the latest
    // run of each kind (here the third, a verify, and a newer run) and the last accepted
    // snapshots.
    let fourth = store.begin_run(RunKind::Run, None, None).await.unwrap();
    store
        .finish_run(fourth, RunStatus::Succeeded, 0, &json!({}))
        .await
        .unwrap();
    raw(&db, "UPDATE runs SET started_at = started_at - 1000").await;
    let pruned = store.prune_runs(0).await.unwrap();
    assert_eq!(pruned, 1);
    assert!(store.run(first).await.unwrap().is_none());
    assert!(store.run(second).await.unwrap().is_some());
    let kept = store
        .last_accepted_snapshot("enrolments")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((kept.id, kept.run), (a, None));
    assert_eq!(store.last_accepted_snapshots().await.unwrap().len(), 2);
}

async fn plan_is_journalled_and_batches_update_journal_and_mirror(db: TestDatabase) {
    let store = open(&db).await;
    let lease = store.acquire("host-a:1", TTL).await.unwrap().unwrap();
    let run = store
        .begin_run(RunKind::Run, Some(&lease), None)
        .await
        .unwrap();
    store.upsert_group(&group("mod-a", "g-a")).await.unwrap();
    store
        .replace_members("mod-a", &strings(&["u0", "u9"]))
        .await
        .unwrap();
    let ops = vec![
        NewOp {
            list: "mod-b".into(),
            kind: OpKind::CreateGroup,
            member: None,
        },
        add("mod-a", "u1"),
        add("mod-a", "u2"),
        remove("mod-a", "u0"),
        add("mod-b", "u3"),
        add("mod-a", "u4"),
    ];
    let summary = json!({"adds": 4, "removes": 1, "verdicts": ["ok"]});
    let seqs = store
        .insert_plan(&lease, run, &summary, &ops)
        .await
        .unwrap();
    assert_eq!(seqs, 1..7);
    assert_eq!(
        store.run(run).await.unwrap().unwrap().plan_summary,
        Some(summary)
    );
    let pending = store.pending(run).await.unwrap();
    assert_eq!(
        pending.iter().map(|op| op.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        pending.iter().map(|op| op.op.clone()).collect::<Vec<_>>(),
        ops
    );
    assert!(
        pending
            .iter()
            .all(|op| op.status == OpStatus::Pending && op.attempts == 0)
    );
    assert_eq!(store.pending_everywhere().await.unwrap(), 6);

    // One batch: a created group, done adds and removes, a permanent and a transient failure.
    let outcomes = vec![
        (1, Outcome::Done),
        (2, Outcome::Done),
        (3, Outcome::Failed("403 Forbidden: user is blocked".into())),
        (4, Outcome::Done),
        (5, Outcome::Done),
        (
            6,
            Outcome::Retry("429 throttled past the retry budget".into()),
        ),
    ];
    let journal = store.journal(run).await.unwrap();
    store
        .record_batch(
            &lease,
            Batch {
                run,
                outcomes: &with_ops(&journal, &outcomes),
                groups: &[group("mod-b", "g-b")],
                titles: &[],
            },
        )
        .await
        .unwrap();
    let journal = store.journal(run).await.unwrap();
    let statuses: Vec<_> = journal.iter().map(|op| op.status).collect();
    assert_eq!(
        statuses,
        [
            OpStatus::Done,
            OpStatus::Done,
            OpStatus::Failed,
            OpStatus::Done,
            OpStatus::Done,
            OpStatus::Pending
        ]
    );
    assert!(journal.iter().all(|op| op.attempts == 1));
    assert_eq!(
        journal[2].last_error.as_deref(),
        Some("403 Forbidden: user is blocked")
    );
    assert_eq!(journal[1].last_error, None);
    assert_eq!(store.members("mod-a").await.unwrap(), ["u1", "u9"]);
    assert_eq!(store.members("mod-b").await.unwrap(), ["u3"]);
    assert_eq!(store.group("mod-b").await.unwrap().unwrap().group_id, "g-b");

    let pending = store.pending(run).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].seq, 6);
    assert_eq!(
        pending[0].last_error.as_deref(),
        Some("429 throttled past the retry budget")
    );

    assert_eq!(store.supersede_pending(run).await.unwrap(), 1);
    assert!(store.pending(run).await.unwrap().is_empty());
    let counts = store.journal_counts(run).await.unwrap();
    assert_eq!(
        (
            counts.pending,
            counts.done,
            counts.failed,
            counts.superseded
        ),
        (0, 4, 1, 1)
    );

    // A second plan for the same run continues the sequence.
    let more = store
        .insert_plan(&lease, run, &json!({}), &[add("mod-a", "u5")])
        .await
        .unwrap();
    assert_eq!(more, 7..8);
}

async fn lease_is_exclusive_and_a_stolen_lease_writes_nothing(db: TestDatabase) {
    let store = open(&db).await;
    assert!(store.current_lease().await.unwrap().is_none());
    let a = store.acquire("host-a:1", TTL).await.unwrap().unwrap();
    let held = store.acquire("host-b:2", TTL).await.unwrap().unwrap_err();
    assert_eq!(held.holder, "host-a:1");
    assert!(held.to_string().contains("host-a:1"), "{held}");

    let renewed = store.renew(&a, TTL * 2).await.unwrap();
    assert!(renewed.expires_at > a.expires_at);
    assert_eq!(renewed.token, a.token);

    store.upsert_group(&group("mod-a", "g-a")).await.unwrap();
    let run = store.begin_run(RunKind::Run, Some(&a), None).await.unwrap();
    store
        .insert_plan(&a, run, &json!({}), &[add("mod-a", "u1")])
        .await
        .unwrap();

    // Time passes beyond the lease without a heartbeat: another host takes over.
    raw(&db, "UPDATE lease SET expires_at = 0").await;
    let b = store.acquire("host-b:2", TTL).await.unwrap().unwrap();
    assert!(b.token > a.token, "{} > {}", b.token, a.token);

    match store.renew(&renewed, TTL).await {
        Err(StoreError::LeaseLost { holder, token }) => {
            assert_eq!(holder.as_deref(), Some("host-b:2"));
            assert_eq!(token, b.token);
        }
        other => panic!("expected LeaseLost, got {other:?}"),
    }
    let journal = store.journal(run).await.unwrap();
    let outcomes = [(1, Outcome::Done)];
    let lost = store
        .record_batch(
            &renewed,
            Batch {
                run,
                outcomes: &with_ops(&journal, &outcomes),
                groups: &[group("mod-z", "g-z")],
                titles: &[],
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(lost, StoreError::LeaseLost { .. }), "{lost}");
    assert!(!lost.is_transient());
    let pending = store.pending(run).await.unwrap();
    assert_eq!((pending.len(), pending[0].attempts), (1, 0));
    assert!(store.members("mod-a").await.unwrap().is_empty());
    assert!(store.group("mod-z").await.unwrap().is_none());
    let plan = store
        .insert_plan(&renewed, run, &json!({}), &[add("mod-a", "u2")])
        .await
        .unwrap_err();
    assert!(matches!(plan, StoreError::LeaseLost { .. }), "{plan}");

    // Releasing by the old holder leaves the new holder's lease alone.
    store.release(&renewed).await.unwrap();
    assert_eq!(
        store
            .current_lease()
            .await
            .unwrap()
            .unwrap()
            .holder
            .as_deref(),
        Some("host-b:2")
    );
    store.release(&b).await.unwrap();
    assert_eq!(store.current_lease().await.unwrap().unwrap().holder, None);
    let c = store.acquire("host-a:1", TTL).await.unwrap().unwrap();
    assert!(c.token > b.token);
}

async fn pause_holds_until_lifted_or_expired(db: TestDatabase) {
    let store = open(&db).await;
    assert!(!store.pause_state().await.unwrap().paused);
    store
        .pause("database maintenance", None, "alice")
        .await
        .unwrap();
    let state = store.pause_state().await.unwrap();
    assert!(state.paused);
    assert_eq!(state.reason.as_deref(), Some("database maintenance"));
    assert_eq!(state.by.as_deref(), Some("alice"));
    store.unpause("bob").await.unwrap();
    assert!(!store.pause_state().await.unwrap().paused);

    let past = Utc::now() - chrono::Duration::hours(1);
    store.pause("overnight", Some(past), "alice").await.unwrap();
    let state = store.pause_state().await.unwrap();
    assert!(!state.paused, "a pause whose until has passed is over");
    assert_eq!(state.reason.as_deref(), Some("overnight"));

    let future = Utc::now() + chrono::Duration::hours(1);
    store
        .pause("overnight", Some(future), "alice")
        .await
        .unwrap();
    let state = store.pause_state().await.unwrap();
    assert!(state.paused);
    assert_eq!(
        state.until.map(|u| u.timestamp_millis()),
        Some(future.timestamp_millis())
    );
}

async fn mirror_follows_replace_and_apply(db: TestDatabase) {
    let store = open(&db).await;
    store.upsert_group(&group("mod-a", "g-a")).await.unwrap();
    store.upsert_group(&group("mod-b", "g-b")).await.unwrap();
    store
        .replace_members("mod-a", &strings(&["u1", "u2", "u3"]))
        .await
        .unwrap();
    store
        .replace_members("mod-b", &strings(&["u1"]))
        .await
        .unwrap();
    store
        .apply_members("mod-a", &strings(&["u4", "u1"]), &strings(&["u2", "gone"]))
        .await
        .unwrap();
    assert_eq!(store.members("mod-a").await.unwrap(), ["u1", "u3", "u4"]);
    store
        .replace_members("mod-b", &strings(&["u7", "u8"]))
        .await
        .unwrap();
    assert_eq!(
        store.member_counts().await.unwrap(),
        [("mod-a".to_owned(), 3), ("mod-b".to_owned(), 2)]
    );

    // Adopting under a new group id updates the row in place.
    let mut adopted = group("mod-b", "g-b2");
    adopted.origin = GroupOrigin::Adopted;
    adopted.tagged = false;
    store.upsert_group(&adopted).await.unwrap();
    assert_eq!(store.group("mod-b").await.unwrap(), Some(adopted));
    assert_eq!(store.groups().await.unwrap().len(), 2);

    store.delete_group("mod-a").await.unwrap();
    assert!(store.members("mod-a").await.unwrap().is_empty());
    assert!(store.group("mod-a").await.unwrap().is_none());

    let unknown = store
        .apply_members("mod-zz", &strings(&["u1"]), &[])
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("managed group"), "{unknown}");
}

async fn identity_cache_keeps_resolved_and_unresolved_keys(db: TestDatabase) {
    let store = open(&db).await;
    // Whole milliseconds, as the store keeps them.
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let identity = |kind, value: &str, id: Option<&str>| Identity {
        kind,
        value: value.into(),
        object_id: id.map(str::to_owned),
        checked_at: now,
    };
    store
        .upsert_identities(&[
            identity(MemberKey::Upn, "alice@uni.ac.uk", Some("id-alice")),
            identity(MemberKey::Upn, "bob@uni.ac.uk", None),
            identity(MemberKey::EmployeeId, "alice@uni.ac.uk", Some("id-other")),
        ])
        .await
        .unwrap();
    let found = store
        .lookup_identities(
            MemberKey::Upn,
            &strings(&[
                "alice@uni.ac.uk",
                "bob@uni.ac.uk",
                "carol@uni.ac.uk",
                "ALICE@uni.ac.uk",
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        2,
        "keys compare exactly on every backend: {found:?}"
    );
    assert_eq!(found[0].object_id.as_deref(), Some("id-alice"));
    assert_eq!(found[1].value, "bob@uni.ac.uk");
    assert_eq!(found[1].object_id, None, "bob is known to be unresolved");

    store
        .upsert_identities(&[identity(MemberKey::Upn, "bob@uni.ac.uk", Some("id-bob"))])
        .await
        .unwrap();
    let bob = store
        .lookup_identities(MemberKey::Upn, &strings(&["bob@uni.ac.uk"]))
        .await
        .unwrap();
    assert_eq!(bob[0].object_id.as_deref(), Some("id-bob"));

    // Bulk: more keys than one statement carries.
    let many: Vec<Identity> = (0..2_500)
        .map(|i| {
            identity(
                MemberKey::Mail,
                &format!("p{i}@uni.ac.uk"),
                Some(&format!("id{i}")),
            )
        })
        .collect();
    store.upsert_identities(&many).await.unwrap();
    let keys: Vec<String> = many.iter().map(|i| i.value.clone()).collect();
    assert_eq!(
        store
            .lookup_identities(MemberKey::Mail, &keys)
            .await
            .unwrap()
            .len(),
        2_500
    );

    // A whole university's keys: read in one pass over the kind, with the same answer as the
    // IN lists would give (only the keys asked for, sorted, unknown ones left out).
    let more: Vec<Identity> = (2_500..6_000)
        .map(|i| {
            let id = format!("id{i}");
            identity(
                MemberKey::Mail,
                &format!("p{i}@uni.ac.uk"),
                (i % 7 != 0).then_some(id.as_str()),
            )
        })
        .collect();
    store.upsert_identities(&more).await.unwrap();
    // The kind comes back as one JSON array: a key that JSON must escape reads back as it is.
    let odd = "o'brien \"\\ ,é@uni.ac.uk";
    store
        .upsert_identities(&[identity(MemberKey::Mail, odd, Some("id-odd"))])
        .await
        .unwrap();
    let mut asked: Vec<String> = (1_000..5_500).map(|i| format!("p{i}@uni.ac.uk")).collect();
    asked.push("nobody@uni.ac.uk".to_owned());
    asked.push(odd.to_owned());
    let found = store
        .lookup_identities(MemberKey::Mail, &asked)
        .await
        .unwrap();
    assert_eq!(found.len(), 4_501, "every key asked that the cache holds");
    let odd_found = found.iter().find(|i| i.value == odd).expect("the odd key");
    assert_eq!(odd_found.object_id.as_deref(), Some("id-odd"));
    let first = found.iter().find(|i| i.value == "p1000@uni.ac.uk").unwrap();
    assert_eq!(
        first.checked_at, many[1_000].checked_at,
        "checked_at reads back"
    );
    assert!(found.windows(2).all(|w| w[0].value < w[1].value), "sorted");
    assert!(found.iter().all(|i| asked.contains(&i.value)));
    let unresolved = found.iter().filter(|i| i.object_id.is_none()).count();
    assert_eq!(unresolved, (2_500..5_500).filter(|i| i % 7 == 0).count());
}

async fn delta_links_are_kept_per_scope(db: TestDatabase) {
    let store = open(&db).await;
    assert_eq!(store.delta_link("users").await.unwrap(), None);
    let link = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc";
    store.set_delta_link("users", link).await.unwrap();
    store.set_delta_link("groups", "g1").await.unwrap();
    store.set_delta_link("groups", "g2").await.unwrap();
    assert_eq!(
        store.delta_link("users").await.unwrap().as_deref(),
        Some(link)
    );
    assert_eq!(
        store.delta_link("groups").await.unwrap().as_deref(),
        Some("g2")
    );
    store.clear_delta_links().await.unwrap();
    assert_eq!(store.delta_link("groups").await.unwrap(), None);
}

async fn doctor_finds_nothing_on_a_fresh_store(db: TestDatabase) {
    let store = open(&db).await;
    let lease = store.acquire("host-a:1", TTL).await.unwrap().unwrap();
    let run = store
        .begin_run(RunKind::Run, Some(&lease), None)
        .await
        .unwrap();
    store
        .set_run_status(run, RunStatus::Applying)
        .await
        .unwrap();
    assert_eq!(store.doctor().await, [], "a live run is not stuck");
}

async fn doctor_finds_orphaned_rows(db: TestDatabase) {
    let store = open(&db).await;
    raw_without_foreign_keys(
        &db,
        "INSERT INTO mirror (list_key, member_id) VALUES ('mod-ghost', 'u1'); \
         INSERT INTO journal (run_id, seq, list_key, kind, member_id, status, attempts, created_at, updated_at) \
         VALUES (4242, 1, 'mod-ghost', 'add_member', 'u1', 'pending', 0, 0, 0);",
    )
    .await;
    let findings = store.doctor().await;
    let orphans: Vec<_> = findings.iter().filter(|f| f.check == "orphans").collect();
    assert_eq!(orphans.len(), 2, "{findings:#?}");
    assert!(orphans[0].message.contains("mod-ghost"), "{}", orphans[0]);
    assert!(
        orphans[0].message.contains("rebuild --state-only"),
        "{}",
        orphans[0]
    );
    assert!(orphans[1].message.contains("4242"), "{}", orphans[1]);
    if db.backend == Backend::Sqlite {
        assert!(
            findings.iter().any(|f| f.check == "foreign-keys"),
            "{findings:#?}"
        );
    }
}

async fn doctor_finds_stuck_run_and_stale_lease(db: TestDatabase) {
    let store = open(&db).await;
    let lease = store.acquire("host-a:1", TTL).await.unwrap().unwrap();
    let run = store
        .begin_run(RunKind::Run, Some(&lease), None)
        .await
        .unwrap();
    store
        .set_run_status(run, RunStatus::Applying)
        .await
        .unwrap();
    raw(&db, "UPDATE lease SET expires_at = 0").await;

    let findings = store.doctor().await;
    let checks: Vec<_> = findings.iter().map(|f| f.check).collect();
    assert_eq!(checks, ["stale-lease", "stuck-runs"], "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(findings[0].message.contains("host-a:1"), "{}", findings[0]);
    assert!(
        findings[1].message.contains(&format!("run {run}")),
        "{}",
        findings[1]
    );

    // The next run takes the lease over and marks the dead run interrupted.
    let next = store.acquire("host-b:2", TTL).await.unwrap().unwrap();
    assert_eq!(store.interrupt_stuck_runs(&next).await.unwrap(), [run]);
    assert_eq!(
        store.run(run).await.unwrap().unwrap().status,
        RunStatus::Interrupted
    );
    assert_eq!(store.doctor().await, []);
}

async fn doctor_finds_schema_behind_and_ahead(db: TestDatabase) {
    let store = open(&db).await;
    let latest = store.latest_known_version().unwrap();
    assert_eq!(store.schema_version().await.unwrap(), Some(latest));

    let checksum = match db.backend {
        Backend::Postgres => "'\\x00'::bytea",
        Backend::Sqlite | Backend::Mysql => "X'00'",
    };
    raw(
        &db,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', TRUE, {checksum}, 0)"
        ),
    )
    .await;
    let findings = store.doctor().await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(
        findings[0].message.contains("99990101000000"),
        "{}",
        findings[0]
    );
    assert!(
        findings[0].message.contains("upgrade rollcall"),
        "{}",
        findings[0]
    );

    raw(&db, "DELETE FROM _sqlx_migrations").await;
    let findings = store.doctor().await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(
        findings[0].message.contains("migration record"),
        "{}",
        findings[0]
    );

    // Behind: a database that was never migrated; doctor says so and does not migrate it.
    let empty = TestDatabase::create(db.backend).await.unwrap();
    let unmigrated = Store::connect(&DatabaseUrl::new(empty.url.clone()))
        .await
        .unwrap();
    let findings = unmigrated.doctor().await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].check, "schema");
    assert!(
        findings[0].message.contains("run `rollcall migrate`"),
        "{}",
        findings[0]
    );
    assert_eq!(unmigrated.schema_version().await.unwrap(), None);
    unmigrated.close().await;
}

async fn doctor_finds_pending_operations_of_finished_runs(db: TestDatabase) {
    let store = open(&db).await;
    let lease = store.acquire("host-a:1", TTL).await.unwrap().unwrap();
    store.upsert_group(&group("mod-a", "g-a")).await.unwrap();
    let run = store
        .begin_run(RunKind::Run, Some(&lease), None)
        .await
        .unwrap();
    store
        .insert_plan(
            &lease,
            run,
            &json!({}),
            &[add("mod-a", "u1"), add("mod-a", "u2")],
        )
        .await
        .unwrap();
    store
        .finish_run(run, RunStatus::Succeeded, 0, &json!({}))
        .await
        .unwrap();
    let findings = store.doctor().await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].check, "pending-ops");
    assert!(findings[0].message.contains("2 pending"), "{}", findings[0]);
}

fn rollcall() -> Command {
    Command::cargo_bin("rollcall").expect("the rollcall binary is built")
}

async fn migrate_and_doctor_commands_report_the_schema(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rollcall.toml");
    std::fs::write(&config, format!("[state]\nurl = \"{}\"\n", db.url)).unwrap();
    let run = move |args: &'static [&'static str], config: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            let out = rollcall()
                .args(args)
                .env("ROLLCALL_CONFIG", &config)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            )
        })
    };

    // Before any migration: a server database exists but is empty; an SQLite file does not
    // exist yet (doctor must not create it). Either way doctor says to migrate.
    let (code, stdout, stderr) = run(&["doctor"], config.clone()).await.unwrap();
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let expected = match db.backend {
        Backend::Sqlite => "missing-database",
        Backend::Postgres | Backend::Mysql => "run `rollcall migrate`",
    };
    assert!(stdout.contains(expected), "{stdout}");
    assert!(stdout.contains("`rollcall migrate`"), "{stdout}");

    let (code, stdout, stderr) = run(&["migrate"], config.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("schema version before: none"), "{stdout}");
    assert!(stdout.contains("applied: 20260101000000 state"), "{stdout}");
    assert!(
        stdout.contains("applied: 20261121000000 notify state"),
        "{stdout}"
    );
    assert!(
        stdout.contains("applied: 20261206000000 group titles"),
        "{stdout}"
    );
    assert!(
        stdout.contains("applied: 20261207000000 academic year"),
        "{stdout}"
    );
    assert!(
        stdout.contains("applied: 20261208000000 owners"),
        "{stdout}"
    );
    assert!(
        stdout.contains("schema version after: 20261208000000"),
        "{stdout}"
    );

    let (code, stdout, _) = run(&["migrate"], config.clone()).await.unwrap();
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("schema version before: 20261208000000"),
        "{stdout}"
    );
    assert!(!stdout.contains("applied:"), "{stdout}");

    let (code, stdout, stderr) = run(&["doctor"], config.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("no problems found"), "{stdout}");
}

#[tokio::test]
async fn sqlite_file_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&DatabaseUrl::new(format!("sqlite://{}", path.display())))
        .await
        .unwrap();
    store.set_delta_link("users", "x").await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let wal = dir.path().join("state.db-wal");
    assert!(wal.exists(), "the store runs in WAL mode");
    assert_eq!(
        std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn in_memory_sqlite_keeps_its_state_across_calls() {
    let store = Store::open(&DatabaseUrl::new("sqlite::memory:"))
        .await
        .unwrap();
    store.set_delta_link("groups", "g").await.unwrap();
    assert_eq!(
        store.delta_link("groups").await.unwrap().as_deref(),
        Some("g")
    );
}

#[tokio::test]
async fn unreachable_server_is_a_transient_error_without_the_password() {
    let url = DatabaseUrl::new("postgres://rollcall:s3cret@127.0.0.1:1/state");
    let error = Store::open(&url).await.unwrap_err();
    let message = error.to_string();
    assert!(!message.contains("s3cret"), "{message}");
    assert!(message.contains("rollcall:***@127.0.0.1:1"), "{message}");
    assert!(error.is_transient(), "{error:?}");
}

#[test]
fn doctor_reports_a_missing_sqlite_database_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rollcall.toml");
    std::fs::write(&config, "[state]\nurl = \"sqlite://gone.db\"\n").unwrap();
    let output = rollcall()
        .args(["doctor"])
        .env("ROLLCALL_CONFIG", &config)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("missing-database"), "{stdout}");
    assert!(stdout.contains("rebuild --state-only"), "{stdout}");
    assert!(
        !dir.path().join("gone.db").exists(),
        "doctor created the database"
    );
}

async fn a_dead_holders_lease_is_taken_over_with_a_new_token(db: TestDatabase) {
    let store = open(&db).await;
    let dead = store.acquire("host:1", TTL).await.unwrap().unwrap();
    let taken = store
        .take_over("host:1", "host:2", TTL)
        .await
        .unwrap()
        .expect("the dead holder's lease is taken over");
    assert!(taken.token > dead.token);
    assert_eq!(taken.holder, "host:2");
    // The old holder is fenced out, and a take-over naming a holder that no longer has the
    // lease takes nothing.
    assert!(matches!(
        store.renew(&dead, TTL).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(
        store
            .take_over("host:1", "host:3", TTL)
            .await
            .unwrap()
            .is_none()
    );
    store
        .renew(&taken, TTL)
        .await
        .expect("the new holder renews");
}

async fn a_full_directory_read_replaces_identities_and_deleted_users_are_forgotten(
    db: TestDatabase,
) {
    let store = open(&db).await;
    let identity = |value: &str, id: Option<&str>| Identity {
        kind: MemberKey::Upn,
        value: value.to_owned(),
        object_id: id.map(str::to_owned),
        checked_at: Utc::now(),
    };
    store
        .upsert_identities(&[
            identity("gone@x", Some("id-gone")),
            identity("a@x", Some("id-a")),
        ])
        .await
        .unwrap();
    store
        .replace_identities(&[identity("a@x", Some("id-a")), identity("b@x", Some("id-b"))])
        .await
        .unwrap();
    let keys = |found: Vec<Identity>| {
        found
            .into_iter()
            .map(|i| (i.value, i.object_id))
            .collect::<Vec<_>>()
    };
    let all = ["a@x", "b@x", "gone@x"].map(str::to_owned);
    assert_eq!(
        keys(store.lookup_identities(MemberKey::Upn, &all).await.unwrap()),
        vec![
            ("a@x".to_owned(), Some("id-a".to_owned())),
            ("b@x".to_owned(), Some("id-b".to_owned())),
        ]
    );
    store.forget_objects(&["id-b".to_owned()]).await.unwrap();
    assert_eq!(
        keys(store.lookup_identities(MemberKey::Upn, &all).await.unwrap()),
        vec![
            ("a@x".to_owned(), Some("id-a".to_owned())),
            ("b@x".to_owned(), None),
        ]
    );
}

async fn the_whole_mirror_reads_back_per_list(db: TestDatabase) {
    let store = open(&db).await;
    for list in ["a", "b"] {
        store
            .upsert_group(&ManagedGroup {
                list: list.to_owned(),
                group_id: format!("g-{list}"),
                family: "modules".to_owned(),
                origin: GroupOrigin::Created,
                mail_nickname: list.to_owned(),
                tagged: true,
            })
            .await
            .unwrap();
    }
    store
        .replace_members("a", &["m2".to_owned(), "m1".to_owned()])
        .await
        .unwrap();
    store
        .replace_members("b", &["m3".to_owned()])
        .await
        .unwrap();
    let mirror = store.mirror().await.unwrap();
    assert_eq!(mirror["a"], vec!["m1".to_owned(), "m2".to_owned()]);
    assert_eq!(mirror["b"], vec!["m3".to_owned()]);
    assert_eq!(mirror.len(), 2);
}

/// MySQL cannot roll DDL back: a first run killed while migrating leaves the schema half made
/// and the migration recorded as unfinished. The next open finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_cut_off_halfway_on_mysql_runs_again() {
    let Some(db) = TestDatabase::create(Backend::Mysql).await else {
        return;
    };
    open(&db).await.close().await;
    raw(
        &db,
        "UPDATE _sqlx_migrations SET success = 0; DROP TABLE delta_links; DROP TABLE pause;",
    )
    .await;
    let store = open(&db).await;
    assert_eq!(
        store
            .delta_link("users")
            .await
            .expect("the dropped table is back"),
        None
    );
    assert!(!store.pause_state().await.unwrap().paused);
    let findings = store.doctor().await;
    assert!(
        findings.is_empty(),
        "doctor finds the finished migration sound: {findings:?}"
    );
}

/// sqlx takes no lock to migrate SQLite; processes opening one fresh file at once must all
/// end up with the schema instead of one failing on "table already exists".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_opening_a_fresh_sqlite_file_at_once_all_migrate_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::new(format!(
        "sqlite://{}",
        dir.path().join("state.db").display()
    ));
    let opens = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { Store::open(&url).await })
    });
    for open in futures::future::join_all(opens).await {
        let store = open.unwrap().expect("every store opens and migrates");
        assert!(store.doctor().await.is_empty());
        store.close().await;
    }
}
