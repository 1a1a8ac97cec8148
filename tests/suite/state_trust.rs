//! A run checks the state its delta links extend before trusting them (issue 14, case 4):
//! a state database that lost its mirror and identities but kept its delta links (the
//! seed-002 crash shape) must not make the next run believe every group is empty and add
//! everyone again. Lost rows are read in full, named in the report, and the tenant converges
//! with only the writes the sources call for.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::common::db::TestDatabase;
use crate::common::directory::{self, ListDrift};
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(
    run_after_mirror_and_identities_are_lost_with_links_kept_sends_only_what_is_needed,
    run_after_one_list_lost_its_mirror_rows_reads_it_in_full_and_writes_nothing,
);

/// The share of the build's writes the run after the wipe may send, in percent (the issue's
/// target).
const MAX_PERCENT_OF_BUILD: u64 = 5;

/// The member writes that bring the tenant from its state now to the desired one: each add
/// or remove once, each new group once for its creation and once for its tag.
fn needed_writes(tenant: &Tenant) -> u64 {
    let drift: BTreeMap<String, ListDrift> =
        directory::drift(&tenant.sandbox.state(), &tenant.desired, &BTreeSet::new());
    drift
        .values()
        .map(|d| d.missing as u64 + d.extra as u64 + if d.group_missing { 2 } else { 0 })
        .sum()
}

/// The sandbox's write counters at one moment, or between two.
#[derive(Debug, Clone, Copy)]
struct Counts {
    /// Accepted write operations (each member bound counts one).
    writes: u64,
    /// Write requests, inner ones included, whatever their outcome.
    write_requests: u64,
    /// HTTP requests that carried a write.
    write_round_trips: u64,
}

impl Counts {
    fn of(tenant: &Tenant) -> Counts {
        Counts {
            writes: tenant.stat("writes"),
            write_requests: tenant.stat("write_requests"),
            write_round_trips: tenant.stat("write_round_trips"),
        }
    }

    fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            writes: self.writes - earlier.writes,
            write_requests: self.write_requests - earlier.write_requests,
            write_round_trips: self.write_round_trips - earlier.write_round_trips,
        }
    }
}

/// Write requests Microsoft 365 refused, outer and inside batches (an add of a member
/// already present is one).
fn refused_writes(tenant: &Tenant) -> u64 {
    let stats = tenant.sandbox.stats();
    let refused = |routes: &Value| -> u64 {
        routes
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(route, _)| !route.starts_with("GET ") && route.as_str() != "POST /$batch")
            .flat_map(|(_, statuses)| statuses.as_object().into_iter().flatten())
            .filter(|(status, _)| status.starts_with('4'))
            .filter_map(|(_, n)| n.as_u64())
            .sum()
    };
    refused(&stats["requests"]) + refused(&stats["batch_inner_by_route"])
}

/// The warnings of the newest run's report, joined.
async fn last_warnings(tenant: &Tenant) -> (String, Value) {
    let show = tenant.show_last_run().await;
    let warnings = show["report"]["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    (warnings, show)
}

async fn run_after_mirror_and_identities_are_lost_with_links_kept_sends_only_what_is_needed(
    db: TestDatabase,
) {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the build");
    let build = Counts::of(&tenant);
    let build_writes = build.writes;
    let lists = tenant.desired.lists.len();

    tenant
        .raw_sql("DELETE FROM mirror; DELETE FROM identities;", true)
        .await;
    let store = tenant.store().await;
    for scope in ["users", "groups"] {
        assert!(
            store
                .delta_link(scope)
                .await
                .expect("the links read")
                .is_some(),
            "the {scope} delta link was lost with the rows; the scenario needs it kept"
        );
    }
    store.close().await;

    let needed = needed_writes(&tenant);
    let (before, refused) = (Counts::of(&tenant), refused_writes(&tenant));
    let ran = tenant.rollcall(&["run"]).await;
    ran.expect(0);
    let after = Counts::of(&tenant).since(&before);
    let sent = after.writes;
    println!(
        "mirror and identities lost ({:?}): build {build:?}; the run after the wipe {after:?} \
         ({needed} writes needed)",
        tenant.db().backend
    );
    assert_eq!(
        sent, needed,
        "the run after the wipe sent other writes than the tenant needs"
    );
    assert!(
        sent * 100 <= build_writes * MAX_PERCENT_OF_BUILD
            && after.write_requests * 100 <= build.write_requests * MAX_PERCENT_OF_BUILD,
        "the run after the wipe sent {after:?}, more than {MAX_PERCENT_OF_BUILD} % of the build's {build:?}"
    );
    assert_eq!(
        refused_writes(&tenant) - refused,
        0,
        "the run after the wipe sent writes Microsoft 365 refused (adds of members already present)"
    );

    let (warnings, show) = last_warnings(&tenant).await;
    assert!(
        warnings.contains("the directory mirror (identities) was empty"),
        "the report's warnings do not say the identities were lost:\n{warnings}"
    );
    assert_eq!(
        show["report"]["directory"]["lost_rows"],
        Value::Bool(true),
        "the report does not say the identities were lost and the directory read in full:\n{:#}",
        show["report"]["directory"]
    );
    assert!(
        warnings.contains(&format!("of {lists} managed groups"))
            && warnings.contains("read in full"),
        "the report does not say the mirror was lost and every group read in full:\n{warnings}"
    );

    tenant
        .assert_verified("after the run that followed the wipe")
        .await;
    tenant.rollcall(&["doctor"]).await.expect(0);
    let (trips, writes) = (tenant.stat("round_trips"), tenant.stat("writes"));
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(tenant.stat("writes"), writes, "a later run wrote again");
    println!(
        "the run after that cost {} round trips",
        tenant.stat("round_trips") - trips
    );
    tenant.finish();
}

async fn run_after_one_list_lost_its_mirror_rows_reads_it_in_full_and_writes_nothing(
    db: TestDatabase,
) {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the build");
    let list = tenant
        .desired
        .lists
        .iter()
        .max_by_key(|(_, members)| members.len())
        .map(|(key, _)| key.clone())
        .expect("the university has lists");
    tenant
        .raw_sql(
            &format!("DELETE FROM mirror WHERE list_key = '{list}';"),
            true,
        )
        .await;
    // Rows of a list that is no managed group, as a restore with foreign keys off leaves.
    tenant
        .raw_sql(
            "INSERT INTO mirror (list_key, member_id) VALUES \
             ('mod-gone-2020', '00000000-0000-4000-8000-00000000dead');",
            false,
        )
        .await;
    let doctor = tenant.rollcall(&["doctor"]).await;
    doctor.expect(1);
    assert!(
        doctor.stdout.contains("[orphans]"),
        "doctor does not name the orphaned mirror row:\n{}",
        doctor.stdout
    );

    let writes = tenant.stat("writes");
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(
        tenant.stat("writes"),
        writes,
        "the run wrote although only the state database had lost rows"
    );
    let (warnings, _) = last_warnings(&tenant).await;
    assert!(
        warnings.contains(&format!("`{list}`")) && warnings.contains("read in full"),
        "the report does not name `{list}` as read in full:\n{warnings}"
    );
    assert!(
        warnings.contains("1 mirror row(s) belonged to lists that are no managed group"),
        "the report does not name the orphaned row:\n{warnings}"
    );
    let store = tenant.store().await;
    assert_eq!(
        store.members(&list).await.expect("the mirror reads").len(),
        tenant.desired.lists[&list].len(),
        "the mirror of `{list}` was not rebuilt"
    );
    store.close().await;
    tenant.rollcall(&["doctor"]).await.expect(0);

    // Rebuilt: the next run trusts the delta again and warns no more.
    tenant.rollcall(&["run"]).await.expect(0);
    let (warnings, _) = last_warnings(&tenant).await;
    assert!(
        !warnings.contains("read in full"),
        "a run after the repair still distrusts the mirror:\n{warnings}"
    );
    tenant.assert_verified("after the repair").await;
    tenant.finish();
}
