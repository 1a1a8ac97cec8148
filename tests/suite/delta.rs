//! Delta reads of the managed groups' membership: a run after a build reads only what changed
//! (`/groups/delta` from the link the last read stored), sees changes made behind rollcall's
//! back, recreates deleted groups, falls back to a full read when the link expired, and
//! never skips a round: replays change nothing, a round whose link could not be saved is read
//! again. `rebuild` and `verify` never trust the mirror.
//!
//! Graph behaviour is proved on SQLite; the scenarios that exercise the store's delta round
//! (mirror and link in one transaction) run on every backend.

use crate::common::db::{Backend, TestDatabase};
use crate::common::graph::RawGraph;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

/// The state store's scope of the groups delta link.
const GROUPS_SCOPE: &str = "groups";

/// Most Graph round trips a run with nothing to change may cost (issue 7's target).
const NO_CHANGE_ROUND_TRIPS: u64 = 10;

/// Runs each scenario on SQLite only.
macro_rules! on_sqlite {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use super::{Backend, TestDatabase};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(db) = TestDatabase::create(Backend::Sqlite).await {
                        super::$scenario(db).await;
                    }
                }
            }
        )*
    };
}

on_every_backend!(
    a_hand_change_is_seen_through_delta_and_repaired,
    a_replayed_delta_round_changes_nothing,
);

on_sqlite!(
    a_no_change_run_after_a_build_costs_a_few_round_trips,
    a_group_deleted_in_365_is_recreated,
    an_expired_link_falls_back_to_a_full_read_and_converges,
    a_group_spread_over_several_delta_pages_is_merged,
    verify_and_rebuild_see_drift_the_mirror_hides,
    a_round_whose_link_cannot_be_saved_is_read_again,
);

/// Builds the university and checks that it converged.
async fn built(db: TestDatabase) -> Tenant {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the build");
    tenant
}

/// Runs `rollcall run`, expecting success; returns the Graph round trips and write requests
/// it cost.
async fn run(tenant: &Tenant) -> (u64, u64, String) {
    let (trips, writes) = (tenant.stat("round_trips"), tenant.stat("write_requests"));
    let ran = tenant.rollcall(&["run"]).await;
    ran.expect(0);
    (
        tenant.stat("round_trips") - trips,
        tenant.stat("write_requests") - writes,
        ran.stderr.clone(),
    )
}

/// Some members of `list` (object ids).
fn members_of(tenant: &Tenant, list: &str, n: usize) -> Vec<String> {
    tenant.desired.lists[list].iter().take(n).cloned().collect()
}

/// People who are not on `list`.
fn strangers(tenant: &Tenant, list: &str, n: usize) -> Vec<String> {
    tenant
        .initial
        .users
        .iter()
        .map(|u| u.id.clone())
        .filter(|id| !tenant.desired.lists[list].contains(id))
        .take(n)
        .collect()
}

/// The largest list.
fn largest_list(tenant: &Tenant) -> String {
    tenant
        .desired
        .lists
        .iter()
        .max_by_key(|(_, members)| members.len())
        .map(|(key, _)| key.clone())
        .expect("the university has lists")
}

async fn a_no_change_run_after_a_build_costs_a_few_round_trips(db: TestDatabase) {
    let tenant = built(db).await;
    let (trips, writes, _) = run(&tenant).await;
    assert_eq!(writes, 0, "a run with nothing to change wrote");
    assert!(
        trips <= NO_CHANGE_ROUND_TRIPS,
        "a no-change run after a build cost {trips} round trips (at most {NO_CHANGE_ROUND_TRIPS})"
    );
    tenant.assert_verified("after the no-change run").await;
    tenant.finish();
}

async fn a_hand_change_is_seen_through_delta_and_repaired(db: TestDatabase) {
    let tenant = built(db).await;
    let list = largest_list(&tenant);
    let group = tenant.group_id(&list);
    let graph = RawGraph::connect(&tenant.sandbox).await;
    let removed = members_of(&tenant, &list, 3);
    graph.remove_members(&group, &removed).await;
    graph
        .add_members(&group, &strangers(&tenant, &list, 2))
        .await;

    let (trips, writes, _) = run(&tenant).await;
    assert!(writes > 0, "the run did not repair the hand change");
    assert!(
        trips <= NO_CHANGE_ROUND_TRIPS + writes,
        "a run repairing one list read more than its delta round ({trips} round trips, {writes} writes)"
    );
    tenant.assert_converged("after the repairing run");
    let store = tenant.store().await;
    let mirrored = store.members(&list).await.expect("the mirror reads");
    store.close().await;
    for member in &removed {
        assert!(
            mirrored.contains(member),
            "the mirror lacks {member}, added back"
        );
    }
    let (_, writes, _) = run(&tenant).await;
    assert_eq!(writes, 0, "the run after the repair wrote again");
    tenant.rollcall(&["verify"]).await.expect(0);
    tenant.finish();
}

async fn a_replayed_delta_round_changes_nothing(db: TestDatabase) {
    let tenant = built(db).await;
    let store = tenant.store().await;
    let before = store
        .delta_link(GROUPS_SCOPE)
        .await
        .expect("the link reads")
        .expect("the build stored a groups delta link");
    let list = largest_list(&tenant);
    let graph = RawGraph::connect(&tenant.sandbox).await;
    graph
        .remove_members(&tenant.group_id(&list), &members_of(&tenant, &list, 2))
        .await;
    run(&tenant).await;
    tenant.assert_converged("after the repair");
    let mirror = store.mirror().await.expect("the mirror reads");

    // The same round again, and the repair's own changes with it.
    store
        .set_delta_link(GROUPS_SCOPE, &before)
        .await
        .expect("the old link is put back");
    let (_, writes, _) = run(&tenant).await;
    assert_eq!(writes, 0, "a replayed round made the run write");
    assert_eq!(
        store.mirror().await.expect("the mirror reads"),
        mirror,
        "a replayed round changed the mirror"
    );
    store.close().await;
    tenant.assert_verified("after the replay").await;
    tenant.finish();
}

async fn a_group_deleted_in_365_is_recreated(db: TestDatabase) {
    let tenant = built(db).await;
    let list = largest_list(&tenant);
    let old = tenant.group_id(&list);
    RawGraph::connect(&tenant.sandbox)
        .await
        .delete_group(&old)
        .await;

    let (_, _, stderr) = run(&tenant).await;
    assert!(
        stderr.contains("deleted in Microsoft 365"),
        "the run did not say the group was gone:\n{stderr}"
    );
    let new = tenant.group_id(&list);
    assert_ne!(new, old, "the list's group was not created again");
    tenant.assert_converged("after recreating the group");
    let (trips, writes, _) = run(&tenant).await;
    assert_eq!(writes, 0, "the run after recreating the group wrote");
    assert!(trips <= NO_CHANGE_ROUND_TRIPS, "{trips} round trips");
    tenant.finish();
}

async fn an_expired_link_falls_back_to_a_full_read_and_converges(db: TestDatabase) {
    let tenant = built(db).await;
    let list = largest_list(&tenant);
    RawGraph::connect(&tenant.sandbox)
        .await
        .remove_members(&tenant.group_id(&list), &members_of(&tenant, &list, 2))
        .await;
    reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/delta/expire",
            tenant.sandbox.base_url()
        ))
        .send()
        .await
        .expect("the sandbox expires its delta tokens")
        .error_for_status()
        .expect("the sandbox accepts the expiry");

    let (trips, writes, stderr) = run(&tenant).await;
    assert!(
        stderr.contains("delta link expired") && stderr.contains("WARN"),
        "the fall-back to a full read was not logged as a warning:\n{stderr}"
    );
    assert!(
        writes > 0,
        "the change made before the expiry was not repaired"
    );
    assert!(
        trips > NO_CHANGE_ROUND_TRIPS,
        "a full read of every group cost only {trips} round trips"
    );
    tenant.assert_converged("after the full read");
    let (trips, writes, _) = run(&tenant).await;
    assert_eq!(writes, 0);
    assert!(
        trips <= NO_CHANGE_ROUND_TRIPS,
        "the full read stored no new link: the next run cost {trips} round trips"
    );
    tenant.finish();
}

async fn a_group_spread_over_several_delta_pages_is_merged(db: TestDatabase) {
    let mut tenant = built(db).await;
    tenant.set_guard("max_removals_per_run", 100_000);
    tenant.set_guard("max_removal_percent_per_list", 100);
    // The sandbox carries 500 member changes a page: two lists with 300 each put the second
    // one on two pages.
    let lists: Vec<String> = tenant
        .desired
        .lists
        .iter()
        .filter(|(_, members)| tenant.initial.users.len() - members.len() >= 300)
        .map(|(key, _)| key.clone())
        .take(2)
        .collect();
    assert_eq!(lists.len(), 2, "the university has too few people");
    let graph = RawGraph::connect(&tenant.sandbox).await;
    for list in &lists {
        graph
            .add_members(&tenant.group_id(list), &strangers(&tenant, list, 300))
            .await;
    }

    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(
        plan["plan"]["totals"]["removes"].as_u64(),
        Some(600),
        "the delta round's pages were not merged into exactly the 600 strangers: {}",
        plan["plan"]["totals"]
    );
    assert_eq!(plan["plan"]["totals"]["adds"].as_u64(), Some(0));
    run(&tenant).await;
    tenant.assert_verified("after removing the strangers").await;
    tenant.finish();
}

async fn verify_and_rebuild_see_drift_the_mirror_hides(db: TestDatabase) {
    let tenant = built(db).await;
    let list = largest_list(&tenant);
    let graph = RawGraph::connect(&tenant.sandbox).await;
    graph
        .remove_members(&tenant.group_id(&list), &members_of(&tenant, &list, 2))
        .await;
    // The change is lost to the delta rounds: the stored link moves past it, the mirror
    // still holds the two members.
    let latest = graph
        .get("/groups/delta?$select=mailNickname,displayName,members&$deltatoken=latest")
        .await;
    let link = latest["@odata.deltaLink"]
        .as_str()
        .expect("a latest delta link");
    let store = tenant.store().await;
    store
        .set_delta_link(GROUPS_SCOPE, link)
        .await
        .expect("the link is stored");
    store.close().await;

    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(
        plan["plan"]["totals"]["adds"].as_u64(),
        Some(0),
        "the delta read saw a change the scenario hid from it"
    );
    let verify = tenant
        .rollcall(&["verify", "--output", "json"])
        .await
        .expect(5)
        .json();
    assert!(
        verify["drift"].to_string().contains(&list),
        "verify did not find {list} drifted: {verify}"
    );
    tenant.rollcall(&["rebuild"]).await.expect(0);
    tenant.assert_verified("after the rebuild").await;
    let (trips, writes, _) = run(&tenant).await;
    assert_eq!(writes, 0);
    assert!(trips <= NO_CHANGE_ROUND_TRIPS, "{trips} round trips");
    tenant.finish();
}

async fn a_round_whose_link_cannot_be_saved_is_read_again(db: TestDatabase) {
    let tenant = built(db).await;
    let list = largest_list(&tenant);
    let removed = members_of(&tenant, &list, 2);
    RawGraph::connect(&tenant.sandbox)
        .await
        .remove_members(&tenant.group_id(&list), &removed)
        .await;
    // The store write that saves the link fails: the round's mirror changes must go with it.
    tenant
        .raw_sql(
            "CREATE TRIGGER refuse_links BEFORE UPDATE ON delta_links WHEN NEW.scope = 'groups' \
             BEGIN SELECT RAISE(ABORT, 'the state database went away'); END;",
            true,
        )
        .await;
    let writes = tenant.stat("write_requests");
    let ran = tenant.rollcall(&["run"]).await;
    assert_ne!(ran.code, Some(0), "the run ignored a failed store write");
    assert_eq!(
        tenant.stat("write_requests"),
        writes,
        "a failed round led to writes"
    );
    let store = tenant.store().await;
    let mirrored = store.members(&list).await.expect("the mirror reads");
    for member in &removed {
        assert!(
            mirrored.contains(member),
            "the round was half applied: {member} left the mirror without its link saved"
        );
    }
    tenant.raw_sql("DROP TRIGGER refuse_links;", true).await;

    let (_, writes, _) = run(&tenant).await;
    assert!(
        writes > 0,
        "the round read again did not lead to the repair"
    );
    tenant.assert_converged("after the round was read again");
    let (_, writes, _) = run(&tenant).await;
    assert_eq!(writes, 0);
    store.close().await;
    tenant.rollcall(&["verify"]).await.expect(0);
    tenant.finish();
}
