//! Bulk state writes (issue 18): a large batch costs two round trips to the state database
//! whatever its size, and writes exactly what the row-by-row store wrote:
//! groups inserted and updated, every outcome's status and error, the mirror's adds and
//! removes, and the groups' titles.

use std::collections::BTreeSet;

use rollcall::config::{DatabaseUrl, Visibility};
use rollcall::plan::Title;
use rollcall::store::{Batch, GroupOrigin, ManagedGroup, NewOp, OpKind, OpStatus, Outcome, Store};
use serde_json::json;

use crate::common::db::{TestDatabase, lease_and_run, with_ops};
use crate::on_every_backend;

on_every_backend!(a_large_batch_costs_a_few_round_trips_and_writes_every_row);

/// Lists in the batch: half recorded before it, half new.
const LISTS: usize = 60;
/// Members added per list.
const MEMBERS: usize = 60;
/// Round trips one batch costs whatever its size: BEGIN with the lease fence, then one script
/// of the groups, the outcomes, the mirror and COMMIT.
const ROUND_TRIPS: u64 = 2;

fn group(list: usize, tagged: bool) -> ManagedGroup {
    ManagedGroup {
        list: format!("mod-{list:03}"),
        group_id: format!("g-{list:03}"),
        family: "modules".into(),
        origin: GroupOrigin::Created,
        mail_nickname: format!("mod-{list:03}"),
        tagged,
    }
}

async fn a_large_batch_costs_a_few_round_trips_and_writes_every_row(db: TestDatabase) {
    let store = Store::open(&DatabaseUrl::new(db.url.clone()))
        .await
        .expect("the store opens");
    let (lease, run) = lease_and_run(&store).await;
    // The first half recorded untagged, each with a member the batch removes.
    for list in 0..LISTS / 2 {
        store.upsert_group(&group(list, false)).await.unwrap();
        store
            .replace_members(&group(list, false).list, &["old".to_owned()])
            .await
            .unwrap();
    }
    let mut ops = Vec::new();
    for list in 0..LISTS {
        let key = group(list, true).list;
        ops.extend((0..MEMBERS).map(|m| NewOp {
            list: key.clone(),
            kind: OpKind::AddMember,
            member: Some(format!("u{m}")),
        }));
        if list < LISTS / 2 {
            ops.push(NewOp {
                list: key,
                kind: OpKind::RemoveMember,
                member: Some("old".into()),
            });
        }
    }
    let seqs = store
        .insert_plan(&lease, run, &json!({}), &ops)
        .await
        .unwrap();
    // Every 7th operation fails for good, every 11th is retried, every 13th superseded;
    // the errors carry quotes, backslashes, dollar quotes and non-ASCII text, written into
    // the batch's script as literals.
    let outcomes: Vec<(i64, Outcome)> = seqs
        .clone()
        .map(|seq| {
            let outcome = match seq {
                s if s % 7 == 0 => Outcome::Failed(format!("403 'blocked' \\ \\' é ✓ $$ {s}")),
                s if s % 11 == 0 => Outcome::Retry(format!("429 \"later\" {s}")),
                s if s % 13 == 0 => Outcome::Superseded(format!("gone {s}")),
                _ => Outcome::Done,
            };
            (seq, outcome)
        })
        .collect();
    let groups: Vec<ManagedGroup> = (0..LISTS).map(|list| group(list, true)).collect();

    // Titles, in the same batch: a list given twice keeps its last title, a list without a
    // group is ignored.
    let mut titles: Vec<(String, Title)> = (0..LISTS)
        .map(|list| {
            let title = Title {
                display_name: format!("Module {list} 'quoted'"),
                description: (list % 2 == 0).then(|| format!("about {list}")),
                visibility: (list % 3 == 0).then_some(Visibility::Private),
            };
            (group(list, true).list, title)
        })
        .collect();
    let retitled = Title {
        display_name: "Renamed".into(),
        description: None,
        visibility: Some(Visibility::Public),
    };
    titles.push((group(0, true).list, retitled.clone()));
    titles.push((
        "mod-none".into(),
        Title {
            display_name: "Nobody".into(),
            description: None,
            visibility: None,
        },
    ));
    let journal = store.journal(run).await.unwrap();
    let sent = with_ops(&journal, &outcomes);
    let before = store.round_trips();
    store
        .record_batch(
            &lease,
            Batch {
                run,
                outcomes: &sent,
                groups: &groups,
                titles: &titles,
            },
        )
        .await
        .unwrap();
    let trips = store.round_trips() - before;
    println!(
        "{:?}: {} outcomes, {LISTS} groups: {trips} round trips",
        db.backend,
        outcomes.len()
    );
    assert!(
        trips == ROUND_TRIPS,
        "a batch of {} outcomes and {LISTS} groups cost {trips} round trips",
        outcomes.len()
    );

    for expected in &groups {
        assert_eq!(
            store.group(&expected.list).await.unwrap().as_ref(),
            Some(expected)
        );
    }
    let journal = store.journal(run).await.unwrap();
    assert_eq!(journal.len(), outcomes.len());
    for (op, (seq, outcome)) in journal.iter().zip(&outcomes) {
        assert_eq!(op.seq, *seq);
        let (status, error) = match outcome {
            Outcome::Done => (OpStatus::Done, None),
            Outcome::Failed(e) => (OpStatus::Failed, Some(e.as_str())),
            Outcome::Retry(e) => (OpStatus::Pending, Some(e.as_str())),
            Outcome::Superseded(e) => (OpStatus::Superseded, Some(e.as_str())),
        };
        assert_eq!(
            (op.status, op.last_error.as_deref(), op.attempts),
            (status, error, 1),
            "operation {seq}"
        );
    }
    for list in 0..LISTS {
        let key = group(list, true).list;
        let expected: BTreeSet<String> = journal
            .iter()
            .filter(|op| op.op.list == key && op.op.kind == OpKind::AddMember)
            .filter(|op| op.status == OpStatus::Done)
            .filter_map(|op| op.op.member.clone())
            .chain(
                journal
                    .iter()
                    .filter(|op| op.op.list == key && op.op.kind == OpKind::RemoveMember)
                    .filter(|op| op.status != OpStatus::Done)
                    .filter_map(|op| op.op.member.clone()),
            )
            .collect();
        let mirror: BTreeSet<String> = store.members(&key).await.unwrap().into_iter().collect();
        assert_eq!(mirror, expected, "the mirror of {key}");
    }

    let known = store.titles().await.unwrap();
    assert_eq!(known.len(), LISTS);
    assert_eq!(known[&group(0, true).list], retitled);
    for (list, title) in &titles[1..LISTS] {
        assert_eq!(&known[list], title, "the title of {list}");
    }
    // A title without a visibility keeps the one recorded.
    let mut kept = retitled.clone();
    kept.visibility = None;
    store
        .set_titles(&[(group(0, true).list, kept)])
        .await
        .unwrap();
    let known = store.titles().await.unwrap();
    assert_eq!(known[&group(0, true).list], retitled);
    store.close().await;
}
