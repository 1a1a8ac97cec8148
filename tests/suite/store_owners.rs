//! The owner mirror (issue 15) on every backend: replaced by full reads, changed by delta
//! rounds and by the journal's done `add_owner`/`remove_owner` operations, forgotten with its
//! group, and repaired like the mirror when its rows are orphaned.

use std::collections::HashMap;

use rollcall::config::DatabaseUrl;
use rollcall::store::{
    Batch, GroupOrigin, ManagedGroup, MirrorChange, NewOp, OpKind, Outcome, Store,
};
use serde_json::json;
use sqlx::Connection;

use crate::common::db::{Backend, TestDatabase, lease_and_run, with_ops};
use crate::on_every_backend;

on_every_backend!(
    owners_are_mirrored_per_list_and_follow_delta_rounds,
    done_owner_operations_reach_the_owner_mirror_in_the_batch,
    orphaned_owner_rows_are_found_and_repaired,
);

async fn open(db: &TestDatabase) -> Store {
    Store::open(&DatabaseUrl::new(db.url.clone()))
        .await
        .expect("the store opens and migrates")
}

fn group(list: &str) -> ManagedGroup {
    ManagedGroup {
        list: list.into(),
        group_id: format!("g-{list}"),
        family: "modules".into(),
        origin: GroupOrigin::Created,
        mail_nickname: list.into(),
        tagged: true,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn owners_of(pairs: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(list, ids)| ((*list).to_owned(), strings(ids)))
        .collect()
}

async fn owners_are_mirrored_per_list_and_follow_delta_rounds(db: TestDatabase) {
    let store = open(&db).await;
    for list in ["a", "b", "c"] {
        store.upsert_group(&group(list)).await.unwrap();
    }
    assert!(store.owner_mirror().await.unwrap().is_empty());
    store
        .replace_owners("a", &strings(&["o3", "o1", "o2"]))
        .await
        .unwrap();
    store.replace_owners("b", &strings(&["o1"])).await.unwrap();
    store.replace_members("a", &strings(&["m1"])).await.unwrap();
    // Replacing is replacing: o3 goes, o4 comes; an empty list holds no row.
    store
        .replace_owners("a", &strings(&["o4", "o1", "o2"]))
        .await
        .unwrap();
    store.replace_owners("c", &[]).await.unwrap();
    assert_eq!(
        store.owner_mirror().await.unwrap(),
        owners_of(&[("a", &["o1", "o2", "o4"]), ("b", &["o1"])])
    );
    assert_eq!(
        store.owners("a").await.unwrap(),
        strings(&["o1", "o2", "o4"])
    );
    // Owners are not members.
    assert_eq!(store.members("a").await.unwrap(), strings(&["m1"]));

    // A delta round: owner adds and removes beside member ones, a replayed add, a list
    // forgotten with its owners; the link stored with them.
    let changes = vec![
        MirrorChange {
            list: "a".into(),
            adds: strings(&["m2"]),
            removes: vec![],
            owner_adds: strings(&["o5", "o1"]),
            owner_removes: strings(&["o2", "o9"]),
        },
        MirrorChange {
            list: "c".into(),
            owner_adds: strings(&["o7"]),
            ..MirrorChange::default()
        },
    ];
    store
        .apply_delta_round(&changes, &strings(&["b"]), "groups", "link-1")
        .await
        .unwrap();
    assert_eq!(
        store.owner_mirror().await.unwrap(),
        owners_of(&[("a", &["o1", "o4", "o5"]), ("c", &["o7"])])
    );
    assert_eq!(store.members("a").await.unwrap(), strings(&["m1", "m2"]));
    assert_eq!(
        store.delta_link("groups").await.unwrap().as_deref(),
        Some("link-1")
    );
    // Replays change nothing.
    store
        .apply_delta_round(&changes, &[], "groups", "link-2")
        .await
        .unwrap();
    assert_eq!(
        store.owners("a").await.unwrap(),
        strings(&["o1", "o4", "o5"])
    );

    // Forgetting a group forgets its owners (the foreign key's cascade).
    store.delete_group("c").await.unwrap();
    assert_eq!(
        store.owner_mirror().await.unwrap(),
        owners_of(&[("a", &["o1", "o4", "o5"])])
    );
    // An owner of a list that is no managed group is refused, naming the table.
    let refused = store
        .replace_owners("nowhere", &strings(&["o1"]))
        .await
        .expect_err("the owner mirror takes only managed groups' lists");
    assert!(
        refused.to_string().contains("owner"),
        "{:?}: {refused}",
        db.backend
    );

    // Many owners (a 300-owner list spans several statements and a MySQL GROUP_CONCAT of
    // more than its default 1,024 bytes).
    let many: Vec<String> = (0..300).map(|i| format!("owner-{i:05}")).collect();
    store.replace_owners("a", &many).await.unwrap();
    let mut sorted = many.clone();
    sorted.sort();
    assert_eq!(store.owner_mirror().await.unwrap()["a"], sorted);
}

async fn done_owner_operations_reach_the_owner_mirror_in_the_batch(db: TestDatabase) {
    let store = open(&db).await;
    let (lease, run) = lease_and_run(&store).await;
    for list in ["a", "b"] {
        store.upsert_group(&group(list)).await.unwrap();
    }
    store
        .replace_owners("a", &strings(&["old", "keep"]))
        .await
        .unwrap();
    let op = |list: &str, kind: OpKind, id: &str| NewOp {
        list: list.into(),
        kind,
        member: Some(id.into()),
    };
    let ops = vec![
        // Members only.
        op("a", OpKind::AddMember, "m1"),
        op("a", OpKind::RemoveMember, "m0"),
        // Members and owners: adds before removes, as the apply sends them.
        op("b", OpKind::AddMember, "m2"),
        op("b", OpKind::RemoveMember, "m0"),
        op("a", OpKind::AddOwner, "new"),
        op("b", OpKind::AddOwner, "first"),
        op("b", OpKind::AddOwner, "failed"),
        op("a", OpKind::RemoveOwner, "old"),
        op("a", OpKind::RemoveOwner, "keep"),
    ];
    let seqs: Vec<i64> = store
        .insert_plan(&lease, run, &json!({}), &ops)
        .await
        .unwrap()
        .collect();
    let done = |seqs: &[i64]| -> Vec<(i64, Outcome)> {
        seqs.iter().map(|&s| (s, Outcome::Done)).collect()
    };
    let record = async |outcomes: &[(i64, Outcome)]| {
        let journal = store.journal(run).await.unwrap();
        let before = store.round_trips();
        let pause = store
            .record_batch(
                &lease,
                Batch {
                    run,
                    outcomes: &with_ops(&journal, outcomes),
                    groups: &[],
                    titles: &[],
                },
            )
            .await
            .unwrap();
        (store.round_trips() - before, pause)
    };

    let (members_only, pause) = record(&done(&seqs[0..2])).await;
    assert!(!pause.paused, "the commit reads the pause flag: not paused");
    assert_eq!(store.members("a").await.unwrap(), strings(&["m1"]));
    assert_eq!(store.owners("a").await.unwrap(), strings(&["keep", "old"]));

    let mut outcomes = done(&seqs[2..9]);
    outcomes[4].1 = Outcome::Failed("400 nope".into()); // b's "failed"
    outcomes[6].1 = Outcome::Retry("400 last owner".into()); // a's "keep"
    // Paused by an operator meanwhile: the next commit reads it, for the next batch's check.
    store.pause("maintenance", None, "ops").await.unwrap();
    let (with_owners, pause) = record(&outcomes).await;
    assert!(pause.paused, "the commit reads the pause flag: paused");
    assert_eq!(pause.reason.as_deref(), Some("maintenance"));
    // A batch is BEGIN with the fence, then one script of every write and the COMMIT,
    // whatever it holds.
    assert_eq!(
        (members_only, with_owners),
        (2, 2),
        "{:?}: a batch with owner operations cost {with_owners} round trips against {members_only}",
        db.backend
    );
    assert_eq!(
        store.owner_mirror().await.unwrap(),
        owners_of(&[("a", &["keep", "new"]), ("b", &["first"])])
    );
    assert_eq!(store.members("b").await.unwrap(), strings(&["m2"]));
}

async fn orphaned_owner_rows_are_found_and_repaired(db: TestDatabase) {
    let store = open(&db).await;
    store.upsert_group(&group("a")).await.unwrap();
    store.replace_owners("a", &strings(&["o1"])).await.unwrap();
    let off = match db.backend {
        Backend::Sqlite => "PRAGMA foreign_keys = OFF;",
        Backend::Postgres => "SET session_replication_role = replica;",
        Backend::Mysql => "SET FOREIGN_KEY_CHECKS = 0;",
    };
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(&format!(
        "{off} INSERT INTO owner_mirror (list_key, owner_id) VALUES ('gone', 'o1'), \
         ('gone', 'o2'), ('0-first', 'o3'); \
         INSERT INTO mirror (list_key, member_id) VALUES ('zz-last', 'm1')"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let findings = store.doctor().await;
    assert!(
        findings.iter().any(|f| f.check == "orphans"
            && f.message.contains("3 owner_mirror row(s)")
            && f.message.contains("gone")),
        "{findings:?}"
    );
    // Orphans before, between and after the managed list's keys, in both mirrors.
    assert_eq!(store.forget_orphaned_mirror().await.unwrap(), 4);
    assert!(store.mirror().await.unwrap().is_empty());
    assert_eq!(
        store.owner_mirror().await.unwrap(),
        owners_of(&[("a", &["o1"])])
    );
    assert!(
        store.doctor().await.is_empty(),
        "{:?}",
        store.doctor().await
    );
}
