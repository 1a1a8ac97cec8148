//! The store never lies about the cause (issue 14): a write the state database refuses (a
//! constraint violation) is rollcall's defect, named with table, constraint and list, rolled
//! back whole, and ends a run with exit 1, never exit 4 "the state database failed".

use std::time::Duration;

use rollcall::config::DatabaseUrl;
use rollcall::store::{
    Batch, GroupOrigin, ManagedGroup, NewOp, OpKind, OpStatus, Outcome, RunKind, Store, StoreError,
};
use serde_json::json;

use crate::common::db::{TestDatabase, with_ops};
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(
    a_group_id_recorded_under_another_list_is_refused_naming_table_constraint_and_list,
    a_refused_batch_commits_nothing_of_itself,
    a_run_whose_write_the_store_refuses_exits_1_naming_the_constraint_never_4,
);

const TTL: Duration = Duration::from_secs(60);

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

/// Panics unless `error` is a refusal whose message names every one of `parts`.
#[track_caller]
fn assert_refusal(error: &StoreError, parts: &[&str]) {
    let message = error.to_string();
    assert!(
        error.is_data_error(),
        "not classed as a data error: {message}"
    );
    assert!(!error.is_transient(), "a refusal is not worth retrying");
    for part in parts {
        assert!(message.contains(part), "`{part}` missing in: {message}");
    }
}

async fn a_group_id_recorded_under_another_list_is_refused_naming_table_constraint_and_list(
    db: TestDatabase,
) {
    let store = Store::open(&DatabaseUrl::new(db.url.clone()))
        .await
        .expect("the store opens");
    store.upsert_group(&group("mod-a", "g-1")).await.unwrap();

    let refused = store
        .upsert_group(&group("mod-b", "g-1"))
        .await
        .expect_err("one group recorded under two lists");
    println!("{:?}: {refused}", db.backend);
    assert_refusal(
        &refused,
        &[
            "UNIQUE constraint",
            "group_id",
            "table `managed_groups`",
            "list `mod-b`",
            "defect in rollcall",
        ],
    );
    // The refusal changed nothing: MySQL's upsert must not rewrite `mod-a`'s row instead.
    assert_eq!(
        store.group("mod-a").await.unwrap(),
        Some(group("mod-a", "g-1"))
    );
    assert_eq!(store.group("mod-b").await.unwrap(), None);

    let refused = store
        .replace_members("mod-x", &["u1".to_owned()])
        .await
        .expect_err("a mirror row of a list that is no managed group");
    assert_refusal(
        &refused,
        &["FOREIGN KEY constraint", "table `mirror`", "list `mod-x`"],
    );

    // A lost connection stays what it is.
    store.close().await;
    let lost = store.groups().await.expect_err("the store is closed");
    assert!(!lost.is_data_error(), "{lost}");
}

async fn a_refused_batch_commits_nothing_of_itself(db: TestDatabase) {
    let store = Store::open(&DatabaseUrl::new(db.url.clone()))
        .await
        .expect("the store opens");
    let lease = store.acquire("host-a:1", TTL).await.unwrap().unwrap();
    let run = store
        .begin_run(RunKind::Run, Some(&lease), None)
        .await
        .unwrap();
    store.upsert_group(&group("mod-a", "g-1")).await.unwrap();
    let create = |list: &str| NewOp {
        list: list.into(),
        kind: OpKind::CreateGroup,
        member: None,
    };
    let add = |list: &str, member: &str| NewOp {
        list: list.into(),
        kind: OpKind::AddMember,
        member: Some(member.into()),
    };
    store
        .insert_plan(
            &lease,
            run,
            &json!({}),
            &[
                create("mod-c"),
                add("mod-c", "u1"),
                create("mod-b"),
                add("mod-b", "u2"),
            ],
        )
        .await
        .unwrap();
    let outcomes: Vec<(i64, Outcome)> = (1..=4).map(|seq| (seq, Outcome::Done)).collect();
    let journal = store.journal(run).await.unwrap();
    let refused = store
        .record_batch(
            &lease,
            Batch {
                run,
                outcomes: &with_ops(&journal, &outcomes),
                groups: &[group("mod-c", "g-3"), group("mod-b", "g-1")],
                titles: &[],
            },
        )
        .await
        .expect_err("the batch records `g-1` under a second list");
    assert_refusal(&refused, &["managed_groups", "group_id", "list `mod-b`"]);
    assert_eq!(
        store.group("mod-c").await.unwrap(),
        None,
        "the batch's first group was committed without the rest"
    );
    assert!(store.members("mod-c").await.unwrap().is_empty());
    let journal = store.journal(run).await.unwrap();
    assert!(
        journal.iter().all(|op| op.status == OpStatus::Pending),
        "outcomes of the refused batch were committed: {journal:?}"
    );

    // A failed run is never resumed: its end supersedes what it left pending.
    store
        .finish_run(run, rollcall::store::RunStatus::Failed, 1, &json!({}))
        .await
        .unwrap();
    assert_eq!(store.pending_everywhere().await.unwrap(), 0);
    assert!(
        store
            .journal(run)
            .await
            .unwrap()
            .iter()
            .all(|op| op.status == OpStatus::Superseded)
    );
    store.close().await;
}

/// After a build, the store's row of one list is moved to another key: the list then lacks
/// a group, and its create finds the existing group by nickname, whose id the store already
/// holds under the other key. Recording it breaks UNIQUE (group_id).
async fn a_run_whose_write_the_store_refuses_exits_1_naming_the_constraint_never_4(
    db: TestDatabase,
) {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the build");
    let list = tenant
        .desired
        .lists
        .keys()
        .next()
        .cloned()
        .expect("the university has lists");
    let ghost = "mod-ghost-2020";
    tenant
        .raw_sql(
            &format!("UPDATE managed_groups SET list_key = '{ghost}' WHERE list_key = '{list}';"),
            true,
        )
        .await;

    let ran = tenant.rollcall(&["run"]).await;
    ran.expect(1);
    for part in [
        "UNIQUE constraint",
        "group_id",
        "`managed_groups`",
        &format!("list `{list}`"),
        "defect in rollcall",
    ] {
        assert!(
            ran.stderr.contains(part),
            "stderr does not name `{part}`:\n{}",
            ran.stderr
        );
    }
    assert!(
        !ran.stderr.contains("failed while applying"),
        "a refused write was reported as a lost database:\n{}",
        ran.stderr
    );
    let show = tenant.show_last_run().await;
    assert_eq!(
        (&show["status"], &show["exit_code"]),
        (&json!("failed"), &json!(1)),
        "{show:#}"
    );
    assert_eq!(tenant.pending_operations().await, 0);
    let doctor = tenant.rollcall(&["doctor"]).await;
    assert!(
        !doctor.stdout.contains("pending-ops"),
        "the failed run left pending operations behind:\n{}",
        doctor.stdout
    );

    // Once the defect's cause is gone, the next run converges.
    tenant
        .raw_sql(
            &format!("UPDATE managed_groups SET list_key = '{list}' WHERE list_key = '{ghost}';"),
            true,
        )
        .await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_verified("after the cause was removed").await;
    tenant.finish();
}
