//! The actual side of owners (issue 15): a full read learns every managed group's owners into
//! the owner mirror, a delta read follows owners changed behind rollcall's back, and
//! `rebuild --state-only` restores owner rows the state database lost.

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use serde_json::json;

use crate::common::db::TestDatabase;
use crate::common::graph::RawGraph;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(owner_mirror_is_read_followed_by_delta_and_rebuilt);

/// The owners of every managed group as the sandbox holds them, by list key (lists without
/// owners left out, as the owner mirror leaves them out).
async fn sandbox_owners(tenant: &Tenant) -> HashMap<String, Vec<String>> {
    let store = tenant.store().await;
    let state = tenant.sandbox.state();
    let by_id: BTreeMap<String, Vec<String>> = state
        .groups
        .iter()
        .filter_map(|g| Some((g.id.clone()?.to_ascii_lowercase(), g.owners.clone())))
        .collect();
    let mut owners = HashMap::new();
    for group in store.groups().await.expect("the managed groups read") {
        let mut ids: Vec<String> = by_id
            .get(&group.group_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|id| id.to_ascii_lowercase())
            .collect();
        ids.sort();
        if !ids.is_empty() {
            owners.insert(group.list, ids);
        }
    }
    owners
}

/// Owner listings the sandbox answered, alone or inside `$batch`.
fn owner_listings(tenant: &Tenant) -> u64 {
    let stats = tenant.sandbox.stats();
    let route = "GET /groups/{id}/owners";
    ["requests", "batch_inner_by_route"]
        .iter()
        .filter_map(|kind| stats[*kind][route].as_object())
        .flat_map(|statuses| statuses.values())
        .filter_map(serde_json::Value::as_u64)
        .sum()
}

async fn owner_mirror(tenant: &Tenant) -> HashMap<String, Vec<String>> {
    tenant
        .store()
        .await
        .owner_mirror()
        .await
        .expect("the owner mirror reads")
}

async fn add_owner(graph: &RawGraph, group: &str, owner: &str) {
    let body = json!({
        "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{owner}")
    });
    let (status, reply) = graph
        .send_raw(Method::POST, &format!("/groups/{group}/owners/$ref"), &body)
        .await;
    assert_eq!(status, 204, "adding owner {owner} to {group}: {reply}");
}

async fn remove_owner(graph: &RawGraph, group: &str, owner: &str) {
    let (status, reply) = graph
        .send_raw(
            Method::DELETE,
            &format!("/groups/{group}/owners/{owner}/$ref"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 204, "removing owner {owner} from {group}: {reply}");
}

async fn owner_mirror_is_read_followed_by_delta_and_rebuilt(db: TestDatabase) {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the build");
    let graph = RawGraph::connect(&tenant.sandbox).await;

    // Owners given behind rollcall's back: two on the first three groups, one on the next.
    let groups = tenant
        .store()
        .await
        .groups()
        .await
        .expect("the groups read");
    assert!(groups.len() >= 4, "the university has too few lists");
    let users: Vec<String> = tenant.initial.users.iter().map(|u| u.id.clone()).collect();
    let (a, b) = (&users[0], &users[1]);
    for group in &groups[..3] {
        add_owner(&graph, &group.group_id, a).await;
        add_owner(&graph, &group.group_id, b).await;
    }
    add_owner(&graph, &groups[3].group_id, b).await;

    // A state-only rebuild reads them all in full.
    let listings = owner_listings(&tenant);
    tenant
        .rollcall(&["rebuild", "--state-only"])
        .await
        .expect(0);
    assert!(
        owner_listings(&tenant) - listings >= groups.len() as u64,
        "the rebuild did not list every managed group's owners"
    );
    let expected = sandbox_owners(&tenant).await;
    assert_eq!(
        expected.len(),
        groups.len(),
        "every group has owners: {expected:?}"
    );
    assert_eq!(
        expected[&groups[3].list].len(),
        1 + tenant.desired.owners[&groups[3].list].len()
    );
    assert_eq!(owner_mirror(&tenant).await, expected, "after the rebuild");

    // Owners changed behind rollcall's back come with the next run's delta round, and the
    // run puts the families' owners back (both families keep their owners here).
    let c = &users[2];
    add_owner(&graph, &groups[0].group_id, c).await;
    remove_owner(&graph, &groups[1].group_id, a).await;
    add_owner(&graph, &groups[4 % groups.len()].group_id, c).await;
    let listings = owner_listings(&tenant);
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(
        owner_listings(&tenant),
        listings,
        "the run listed owners: it did not read by delta"
    );
    tenant.assert_converged("after the run that put the owners back");
    let expected = sandbox_owners(&tenant).await;
    assert_eq!(owner_mirror(&tenant).await, expected, "after the delta run");

    // Owner rows lost: a state-only rebuild restores them.
    tenant.raw_sql("DELETE FROM owner_mirror;", true).await;
    assert!(owner_mirror(&tenant).await.is_empty());
    tenant
        .rollcall(&["rebuild", "--state-only"])
        .await
        .expect(0);
    assert_eq!(
        owner_mirror(&tenant).await,
        expected,
        "after rebuilding lost rows"
    );
    tenant.finish();
}
