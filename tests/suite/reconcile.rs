//! Reconcile end to end: the `rollcall` binary against the in-process sandbox tenant, with a
//! generated university as its sources, on SQLite, PostgreSQL and MariaDB.
//!
//! Each scenario checks the sandbox's true state (not rollcall's account of it) against the
//! membership the sources imply, and ends with [`Tenant::finish`]: no duplicate groups, groups
//! rollcall does not manage byte-for-byte unchanged, no member DELETE without `/$ref`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rollcall::graph::MAX_BINDS;
use rollcall::sandbox::{Faults, TenantSize};

use crate::common::db::TestDatabase;
use crate::common::directory::{
    self, ALL_TOTALS, ListDrift, PlanTotals, assert_unresolved_reported, assert_verify_reports,
    plan_lists,
};
use crate::common::graph::RawGraph;
use crate::common::tenant::{COMMAND_TIMEOUT, OTHER_TEAMS_GROUP, Tenant, TenantOptions, calm};
use crate::on_every_backend;

/// A run against a tenant that drops every connection stops once the Graph client's retry budget
/// is spent: `max_retry_time = "15s"` in the tests' configuration, with room to spare.
const INTERRUPTED_RUN_TIMEOUT: Duration = Duration::from_secs(120);

on_every_backend!(
    fresh_build_matches_the_sources_and_a_second_run_writes_nothing,
    drift_behind_rollcalls_back_is_reported_by_verify_and_repaired_by_run,
    adoption_takes_over_groups_named_like_lists,
    without_adoption_groups_named_like_lists_are_conflicts_left_alone,
    throttled_run_waits_out_retry_after_and_converges,
    transient_faults_and_replication_lag_still_converge_without_duplicates,
    run_cut_off_mid_build_leaves_pending_operations_that_the_next_run_finishes,
    killed_run_is_taken_over_and_finished_without_duplicates,
    lost_state_is_found_again_by_tag_and_rebuilt_without_a_write,
    a_paused_rollcall_skips_runs_until_unpaused,
);

fn nothing() -> BTreeSet<String> {
    BTreeSet::new()
}

async fn fresh_build_matches_the_sources_and_a_second_run_writes_nothing(db: TestDatabase) {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    let lists = tenant.desired.lists.len() as u64;

    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(0)
        .json();
    let expected = PlanTotals::expected(&tenant.initial, &tenant.desired, &nothing());
    assert_eq!(expected.creates, lists, "an empty tenant needs every group");
    expected.assert_matches(&plan, &ALL_TOTALS, "plan on an empty tenant");
    let entries = plan_lists(&plan);
    let not_created: Vec<&String> = tenant
        .desired
        .lists
        .keys()
        .filter(|key| entries.get(*key).map(|e| e["action"].as_str()) != Some(Some("create")))
        .collect();
    assert!(
        not_created.is_empty(),
        "plan on an empty tenant does not create {not_created:?}"
    );
    assert_unresolved_reported(&plan, &tenant.desired);
    assert_eq!(
        plan["held"].as_array().map(Vec::len),
        Some(0),
        "an empty tenant holds no list: {}",
        plan["held"]
    );
    assert_eq!(tenant.stat("writes"), 0, "`plan` changed the tenant");

    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the first run");
    // Writes pack as tightly as Graph allows: each create binds its list's first 20 members,
    // the rest go as 20-member PATCHes, then the tag; 20 requests to a `$batch`, every
    // `$batch` full but the last.
    let requests: usize = tenant
        .desired
        .lists
        .values()
        .map(|members| members.len().saturating_sub(MAX_BINDS).div_ceil(MAX_BINDS) + 1)
        .sum();
    assert_eq!(
        tenant.stat("write_round_trips"),
        lists + requests.div_ceil(20) as u64,
        "write round trips of a build: one per create, then full `$batch`es"
    );

    let (writes, write_requests) = (tenant.stat("writes"), tenant.stat("write_requests"));
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(
        (tenant.stat("writes"), tenant.stat("write_requests")),
        (writes, write_requests),
        "a second run with nothing to change sent writes (writes, write requests)"
    );

    let verify = tenant
        .rollcall(&["verify", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(
        verify["checked"].as_u64(),
        Some(lists),
        "verify checked a different number of lists: {verify}"
    );
    assert_verify_reports(&verify, &BTreeMap::new(), "verify after the build");
    assert_eq!(
        verify["unresolved"].as_u64(),
        Some(tenant.desired.unresolved_pairs() as u64),
        "verify's unresolved count differs from the (list, member) pairs without an account"
    );

    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(0)
        .json();
    PlanTotals {
        lists,
        unchanged: lists,
        ..PlanTotals::default()
    }
    .assert_matches(&plan, &ALL_TOTALS, "plan after the build");

    tenant.rollcall(&["status"]).await.expect(0);
    tenant.rollcall(&["runs"]).await.expect(0);
    let run = tenant.last_run().await.to_string();
    tenant.rollcall(&["show", &run]).await.expect(0);
    tenant
        .rollcall(&["show", &run, "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(
        tenant.pending_operations().await,
        0,
        "the journal holds pending operations"
    );
    tenant.finish();
}

async fn drift_behind_rollcalls_back_is_reported_by_verify_and_repaired_by_run(db: TestDatabase) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the first run");

    // Another admin edits three lists directly: members removed, strangers added, both.
    // Spread over the keys, so that department and module lists are both among them.
    let graph = RawGraph::connect(&tenant.sandbox).await;
    let edited: Vec<String> = tenant
        .desired
        .lists
        .iter()
        .filter(|(_, members)| members.len() >= 20)
        .map(|(key, _)| key.clone())
        .step_by(10)
        .take(3)
        .collect();
    assert_eq!(
        edited.len(),
        3,
        "the university has too few lists of 20 or more members to edit three"
    );
    let members =
        |list: &str| -> Vec<String> { tenant.desired.lists[list].iter().cloned().collect() };
    let strangers = |list: &str| -> Vec<String> {
        tenant
            .initial
            .users
            .iter()
            .map(|u| u.id.clone())
            .filter(|id| !tenant.desired.lists[list].contains(id))
            .collect()
    };
    graph
        .remove_members(&tenant.group_id(&edited[0]), &members(&edited[0])[..3])
        .await;
    graph
        .add_members(&tenant.group_id(&edited[1]), &strangers(&edited[1])[..2])
        .await;
    graph
        .remove_members(&tenant.group_id(&edited[2]), &members(&edited[2])[..1])
        .await;
    graph
        .add_members(&tenant.group_id(&edited[2]), &strangers(&edited[2])[..1])
        .await;

    // And the sources move on: withdrawals, new enrolments, a new module.
    let churn = tenant.churn(0.02, 11);
    assert!(
        churn.withdrawals > 0 && churn.new_modules.len() == 1,
        "{churn:?}"
    );
    let state = tenant.sandbox.state();
    let expected = directory::drift(&state, &tenant.desired, &nothing());
    for list in edited.iter().chain(&churn.new_modules) {
        assert!(
            expected.contains_key(list),
            "the scenario meant {list} to drift but it does not"
        );
    }

    let verify = tenant
        .rollcall(&["verify", "--output", "json"])
        .await
        .expect(5)
        .json();
    assert_verify_reports(&verify, &expected, "verify after drift and churn");

    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(0)
        .json();
    PlanTotals::expected(&state, &tenant.desired, &nothing()).assert_matches(
        &plan,
        &ALL_TOTALS,
        "plan after drift and churn",
    );
    let new_module = &churn.new_modules[0];
    assert_eq!(
        plan_lists(&plan)
            .get(new_module)
            .map(|e| e["action"].clone()),
        Some("create".into()),
        "the plan does not create the new module's group {new_module}"
    );

    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the repairing run");
    let verify = tenant
        .rollcall(&["verify", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_verify_reports(&verify, &BTreeMap::new(), "verify after the repair");
    tenant.finish();
}

/// The groups of the initial tenant whose nickname is a list's key, by nickname.
fn groups_named_like_lists(tenant: &Tenant) -> BTreeMap<String, String> {
    let groups: BTreeMap<String, String> = tenant
        .initial
        .groups
        .iter()
        .filter(|g| tenant.desired.is_list(&g.mail_nickname))
        .map(|g| (g.mail_nickname.clone(), g.id.clone().unwrap_or_default()))
        .collect();
    assert!(
        !groups.is_empty(),
        "a drifted tenant has groups named like lists"
    );
    groups
}

async fn adoption_takes_over_groups_named_like_lists(db: TestDatabase) {
    let tenant = Tenant::start(db, TenantOptions::new().drifted()).await;
    let existing = groups_named_like_lists(&tenant);

    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(0)
        .json();
    PlanTotals::expected(&tenant.initial, &tenant.desired, &nothing()).assert_matches(
        &plan,
        &ALL_TOTALS,
        "plan with adoption on",
    );
    let entries = plan_lists(&plan);
    for list in existing.keys() {
        assert_eq!(
            entries.get(list).map(|e| e["action"].clone()),
            Some("update".into()),
            "{list} already has a group to adopt, so the plan should update it"
        );
    }
    assert_eq!(
        plan["held"].as_array().map(Vec::len),
        Some(0),
        "with adoption on no list is held: {}",
        plan["held"]
    );

    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after adopting");
    for (list, id) in &existing {
        assert_eq!(
            &tenant.group_id(list),
            id,
            "{list} is held by a new group rather than the adopted one"
        );
    }
    tenant
        .rollcall(&["verify", "--output", "json"])
        .await
        .expect(0);
    tenant.finish();
}

async fn without_adoption_groups_named_like_lists_are_conflicts_left_alone(db: TestDatabase) {
    let mut tenant = Tenant::start(db, TenantOptions::new().drifted().adopt_existing(false)).await;
    let existing = groups_named_like_lists(&tenant);
    let conflicts: BTreeSet<String> = existing.keys().cloned().collect();
    tenant.protect(&conflicts);

    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(7)
        .json();
    let reported: BTreeSet<(String, String, String)> = plan["plan"]["lists"]
        .as_array()
        .unwrap_or_else(|| panic!("the plan JSON has no lists: {plan}"))
        .iter()
        .filter(|l| l["action"] == "held")
        .map(|l| {
            assert_eq!(l["hold"]["reason"], "nickname_taken", "{l}");
            let field = |name: &str| l["hold"][name].as_str().unwrap_or_default().to_owned();
            (
                l["key"].as_str().unwrap_or_default().to_owned(),
                field("mail_nickname"),
                field("group_id"),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = existing
        .iter()
        .map(|(list, id)| (list.clone(), list.clone(), id.clone()))
        .collect();
    assert_eq!(
        reported, expected,
        "the plan's conflicts (list, nickname, group id) differ from the groups named like lists"
    );
    PlanTotals::expected(&tenant.initial, &tenant.desired, &conflicts).assert_matches(
        &plan,
        &["creates", "updates", "adds", "removes"],
        "plan with adoption off",
    );
    let entries = plan_lists(&plan);
    for list in &conflicts {
        let action = entries.get(list).map(|e| e["action"].clone());
        assert!(
            !matches!(
                action.as_ref().and_then(|a| a.as_str()),
                Some("create" | "update")
            ),
            "{list} is a conflict but the plan says {action:?}"
        );
    }

    tenant.rollcall(&["run"]).await.expect(7);
    tenant.assert_converged_except(&conflicts, "after a run with conflicts");
    let verify = tenant
        .rollcall(&["verify", "--output", "json"])
        .await
        .expect(5)
        .json();
    let drift: BTreeMap<String, ListDrift> = conflicts
        .iter()
        .map(|list| {
            let drift = ListDrift {
                group_missing: true,
                ..ListDrift::default()
            };
            (list.clone(), drift)
        })
        .collect();
    assert_verify_reports(&verify, &drift, "verify with conflicts");
    tenant.finish();
}

async fn throttled_run_waits_out_retry_after_and_converges(db: TestDatabase) {
    // Time runs twice as fast: a write bucket of 3,000 per 75 s, 40 writes a second.
    let faults = Faults {
        throttling: true,
        tenant_size: TenantSize::Small,
        time_scale: 2.0,
        ..Faults::default()
    };
    let tenant = Tenant::start(db, TenantOptions::new().faults(faults)).await;
    // A neighbour spends the budget first, so the build (hundreds of writes) cannot fit in
    // what refills while it runs.
    RawGraph::connect(&tenant.sandbox)
        .await
        .exhaust_budget(&tenant.group_id(OTHER_TEAMS_GROUP))
        .await;
    let throttled = tenant.stat("throttled");
    let early = tenant.stat("early_requests");

    tenant.rollcall(&["run"]).await.expect(0);
    assert!(
        tenant.stat("throttled") > throttled,
        "rollcall was never throttled, so this test proved nothing: tighten the budget"
    );
    assert_eq!(
        tenant.stat("early_requests") - early,
        0,
        "rollcall sent requests before the Retry-After the sandbox gave had passed"
    );
    tenant.assert_converged("after a throttled run");
    tenant
        .rollcall(&["verify", "--output", "json"])
        .await
        .expect(0);
    tenant.finish();
}

async fn transient_faults_and_replication_lag_still_converge_without_duplicates(db: TestDatabase) {
    let faults = Faults {
        error_503_rate: 0.05,
        error_504_rate: 0.05,
        drop_rate: 0.05,
        replication_lag_ms: 300,
        seed: 7,
        ..calm()
    };
    let tenant = Tenant::start(db, TenantOptions::new().faults(faults)).await;
    // A run that gives up on faults must say so with exit 4; the next one carries on.
    let mut codes = Vec::new();
    for _ in 0..3 {
        let ran = tenant.rollcall(&["run"]).await;
        codes.push(ran.code);
        match ran.code {
            Some(0) => break,
            Some(4) => {}
            _ => {
                ran.expect(0);
            }
        }
    }
    assert_eq!(
        codes.last(),
        Some(&Some(0)),
        "runs against a faulty tenant did not converge; exit codes {codes:?}"
    );
    assert!(
        tenant.sandbox.stats()["faults"]
            .as_object()
            .is_some_and(|f| f.values().any(|n| n.as_u64() > Some(0))),
        "no fault was injected, so this test proved nothing: {}",
        tenant.sandbox.stats()["faults"]
    );
    tenant.assert_converged("after runs through faults");

    tenant.sandbox.set_faults(calm());
    // Let the last writes replicate before reading them back.
    tokio::time::sleep(Duration::from_millis(600)).await;
    tenant
        .rollcall(&["verify", "--output", "json"])
        .await
        .expect(0);
    assert_eq!(
        tenant.pending_operations().await,
        0,
        "the journal holds pending operations"
    );
    tenant.finish();
}

async fn run_cut_off_mid_build_leaves_pending_operations_that_the_next_run_finishes(
    db: TestDatabase,
) {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    let memberships = tenant.desired.memberships() as u64;
    tenant.sandbox.set_faults(Faults {
        drop_after_writes: Some(memberships / 3),
        ..calm()
    });

    tenant
        .rollcall_within(&["run"], INTERRUPTED_RUN_TIMEOUT)
        .await
        .expect(4);
    assert!(
        tenant.stat("writes") < memberships,
        "the sandbox let the whole build through; the cut-off did not happen mid-build"
    );
    assert!(
        tenant.pending_operations().await > 0,
        "the run exited 4 (operations pending) but the journal holds none"
    );
    tenant.rollcall(&["status"]).await.expect(0);

    next_run_converges(&tenant, "after the run that followed the cut-off").await;
}

async fn killed_run_is_taken_over_and_finished_without_duplicates(db: TestDatabase) {
    // Slow replies, so that the run is still applying when it is killed.
    let tenant = Tenant::start(
        db,
        TenantOptions::new().faults(Faults {
            latency_ms: 40,
            ..calm()
        }),
    )
    .await;
    let mut child = tenant
        .command(&["run"])
        .spawn()
        .expect("`rollcall run` starts");
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while tenant.stat("writes") == 0 {
        if let Some(status) = child.try_wait().expect("the child can be polled") {
            panic!("`rollcall run` ended ({status}) before it wrote anything");
        }
        assert!(
            Instant::now() < deadline,
            "`rollcall run` wrote nothing within {COMMAND_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.start_kill().expect("SIGKILL is sent");
    child.wait().await.expect("the killed run is reaped");
    let at_kill = tenant.sandbox.state();
    assert!(
        !directory::drift(&at_kill, &tenant.desired, &nothing()).is_empty(),
        "the run had finished before it was killed, so this test proved nothing: raise the latency"
    );

    // Not 6: the lease's holder is a dead process on this host, so it is taken over at once.
    // The killed run planned everything, so finishing its journal alone converges.
    tenant.sandbox.set_faults(calm());
    let resumed = tenant.rollcall(&["resume"]).await;
    resumed.expect(0);
    assert!(
        resumed.stdout.contains("every pending operation is done"),
        "resume did not finish the killed run:\n{}",
        resumed.stdout
    );
    tenant.assert_converged("after resuming the killed run");
    next_run_converges(&tenant, "after the run that followed the resume").await;
}

/// With the faults cleared, one more `run` converges, leaves no pending operation, and
/// `verify` agrees.
async fn next_run_converges(tenant: &Tenant, when: &str) {
    tenant.sandbox.set_faults(calm());
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged(when);
    assert_eq!(
        tenant.pending_operations().await,
        0,
        "the journal still holds pending operations {when}"
    );
    tenant
        .rollcall(&["verify", "--output", "json"])
        .await
        .expect(0);
    tenant.finish();
}

async fn lost_state_is_found_again_by_tag_and_rebuilt_without_a_write(db: TestDatabase) {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the first run");
    let managed = tenant.managed_groups().await;
    assert_eq!(
        managed,
        tenant.desired.lists.len(),
        "every list has a managed group"
    );
    let writes = || (tenant.stat("writes"), tenant.stat("write_requests"));
    let built = writes();

    // A plain run after the loss finds every group again by its tag: nothing is created twice.
    tenant.lose_state().await;
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(
        writes(),
        built,
        "a run after the state was lost sent writes"
    );
    assert_eq!(tenant.managed_groups().await, managed);

    tenant.lose_state().await;
    let rebuilt = tenant.rollcall(&["rebuild", "--state-only"]).await;
    rebuilt.expect(0);
    assert!(
        rebuilt
            .stdout
            .contains(&format!("managed groups found: {managed}")),
        "rebuild --state-only did not report the groups it found:\n{}",
        rebuilt.stdout
    );
    assert_eq!(tenant.managed_groups().await, managed);
    assert_eq!(writes(), built, "rebuild --state-only changed membership");

    tenant.rollcall(&["rebuild"]).await.expect(0);
    assert_eq!(
        writes(),
        built,
        "a rebuild of a converged tenant sent writes"
    );
    next_run_converges(&tenant, "after the rebuilds").await;
}

async fn a_paused_rollcall_skips_runs_until_unpaused(db: TestDatabase) {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant
        .rollcall(&["pause", "--reason", "database maintenance"])
        .await
        .expect(0);
    let skipped = tenant.rollcall(&["run"]).await;
    skipped.expect(6);
    assert!(
        skipped.stderr.contains("database maintenance"),
        "a skipped run does not say why:\n{}",
        skipped.stderr
    );
    assert_eq!(tenant.stat("writes"), 0, "a paused rollcall wrote");
    let status = tenant.rollcall(&["status"]).await;
    status.expect(0);
    assert!(status.stdout.contains("paused: yes"), "{}", status.stdout);
    tenant.rollcall(&["unpause"]).await.expect(0);
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the pause was lifted");
    tenant.finish();
}
