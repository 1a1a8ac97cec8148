//! The academic year end to end (DESIGN.md "The academic year"). Groups are created Private,
//! or as their family says, with its behaviours. An `[[override]]` or an `[[override_source]]`
//! row applies only inside its `from`/`until` window, judged at the calendar's now
//! (`ROLLCALL_NOW`, the test's own clock), so an exception that ended is as if absent and one
//! that starts in two days takes effect that day. A withdrawal under `remove_after` waits
//! its grace; a family's explicit visibility moves existing groups Public ↔ Private, and a
//! HiddenMembership difference is reported, never written.

use crate::common::db::TestDatabase;
use crate::common::graph::RawGraph;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(
    an_exception_that_ended_is_not_applied_and_one_that_starts_applies_from_its_first_day,
    groups_are_created_private_or_as_their_family_says_with_its_behaviours,
    withdrawals_stay_for_their_grace_and_a_return_within_it_costs_no_write,
    a_family_that_sets_visibility_moves_its_groups_with_one_patch_each,
);

async fn an_exception_that_ended_is_not_applied_and_one_that_starts_applies_from_its_first_day(
    db: TestDatabase,
) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    let key = tenant.university.modules[0].key.clone();
    let mut strangers = tenant
        .university
        .people
        .iter()
        .filter(|p| p.has_account && !tenant.desired.lists[&key].contains(&p.object_id))
        .cloned();
    let (ended, starting) = (strangers.next().unwrap(), strangers.next().unwrap());
    let csv = tenant.dir().join("exceptions.csv");
    std::fs::write(
        &csv,
        format!(
            "list,member,action,from,until,reason\n{key},{},include,2026-12-08,,second marker from Monday\n",
            starting.upn
        ),
    )
    .unwrap();
    tenant.add_config(&format!(
        "[[override]]\nlist = \"{key}\"\ninclude = [\"{}\"]\nuntil = \"2026-12-05\"\n\n\
         [[override_source]]\npath = {}\n",
        ended.upn,
        toml::Value::String(csv.to_string_lossy().into_owned())
    ));

    let today = "2026-12-06T12:00:00Z";
    let check = tenant.rollcall_at(today, &["config", "check"]).await;
    check.expect(0);
    assert!(
        check.stderr.contains("override[0]") && check.stderr.contains("ended"),
        "{}",
        check.stderr
    );
    tenant.rollcall_at(today, &["run"]).await.expect(0);
    tenant.assert_converged("today: neither exception applies");
    let report = tenant.show_last_run().await;
    assert_eq!(report["report"]["exceptions_applied"], 0, "{report}");

    let monday = "2026-12-08T07:00:00Z";
    tenant.rollcall_at(monday, &["run"]).await.expect(0);
    tenant
        .desired
        .lists
        .get_mut(&key)
        .unwrap()
        .insert(starting.object_id.clone());
    tenant.assert_converged("on Monday the new exception applies");
    let report = tenant.show_last_run().await;
    assert_eq!(report["report"]["exceptions_applied"], 1, "{report}");
    let bad = tenant.rollcall_at("next monday", &["run"]).await;
    bad.expect(2);
    assert!(bad.stderr.contains("ROLLCALL_NOW"), "{}", bad.stderr);
    tenant.finish();
}

/// DESIGN.md "The academic year", private lists: a family's `visibility` and `behaviors` are
/// set when its groups are created (Graph takes neither later), and a family that says
/// nothing gets Private groups that send no welcome mail.
async fn groups_are_created_private_or_as_their_family_says_with_its_behaviours(db: TestDatabase) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.set_family("modules", "visibility", "HiddenMembership");
    tenant.set_family(
        "modules",
        "behaviors",
        toml::Value::Array(vec![
            "AllowOnlyMembersToPost".into(),
            "WelcomeEmailDisabled".into(),
        ]),
    );
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the build");
    let graph = RawGraph::connect(&tenant.sandbox).await;
    let groups = graph
        .get("/groups?$select=mailNickname,visibility,resourceBehaviorOptions&$top=999")
        .await;
    let mut seen = 0;
    for group in groups["value"].as_array().expect("a group listing") {
        let nickname = group["mailNickname"].as_str().unwrap_or_default();
        let Some(family) = tenant.desired.families.get(nickname) else {
            continue;
        };
        seen += 1;
        let (visibility, behaviors) = if *family == "modules" {
            (
                "HiddenMembership",
                serde_json::json!(["AllowOnlyMembersToPost", "WelcomeEmailDisabled"]),
            )
        } else {
            ("Private", serde_json::json!(["WelcomeEmailDisabled"]))
        };
        assert_eq!(
            (&group["visibility"], &group["resourceBehaviorOptions"]),
            (&serde_json::json!(visibility), &behaviors),
            "{nickname}"
        );
    }
    assert_eq!(seen, tenant.desired.lists.len());
    let bad = {
        tenant.set_family(
            "departments",
            "behaviors",
            toml::Value::Array(vec!["Loud".into()]),
        );
        tenant.rollcall(&["config", "check"]).await
    };
    bad.expect(2);
    assert!(bad.stderr.contains("behaviors"), "{}", bad.stderr);
    tenant.finish();
}

/// Members the sources no longer name stay on the list until `remove_after` has passed since
/// the first run that found them absent; one named again within it is never removed and costs
/// no write; a lost state database restarts the grace (longer, never shorter).
async fn withdrawals_stay_for_their_grace_and_a_return_within_it_costs_no_write(db: TestDatabase) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.set_family("modules", "remove_after", "3d");
    let day0 = "2026-12-06T07:00:00Z";
    tenant.rollcall_at(day0, &["run"]).await.expect(0);
    tenant.assert_converged("after the build");
    let key = tenant.university.modules[0].key.clone();
    let desired_before = tenant.desired.clone();
    let withdrawn = tenant.withdraw(0, 3);
    let ids: Vec<String> = withdrawn
        .iter()
        .map(|&p| tenant.university.people[p].object_id.clone())
        .collect();
    let still_there = |tenant: &mut Tenant| {
        tenant.desired = desired_before.clone();
    };

    let plan = tenant.rollcall_at(day0, &["plan"]).await;
    plan.expect(0);
    assert!(
        plan.stdout
            .contains("leaving: 3 in grace until 2026-12-09 07:00 UTC"),
        "{}",
        plan.stdout
    );
    let json = tenant
        .rollcall_at(day0, &["plan", "--output", "json"])
        .await;
    json.expect(0);
    assert_eq!(
        json.json()["plan"]["totals"]["leaving"],
        3,
        "{}",
        json.stdout
    );

    let writes = tenant.stat("writes");
    tenant.rollcall_at(day0, &["run"]).await.expect(0);
    assert_eq!(
        tenant.stat("writes"),
        writes,
        "a member in grace costs no write"
    );
    still_there(&mut tenant);
    tenant.assert_converged("on the day of the withdrawal: all three stay");
    let report = tenant.show_last_run().await;
    assert_eq!(report["report"]["totals"]["leaving"], 3, "{report}");
    let verify = tenant
        .rollcall_at("2026-12-07T07:00:00Z", &["verify"])
        .await;
    verify.expect(0);
    assert!(
        verify.stdout.contains("pending (not drift)"),
        "{}",
        verify.stdout
    );
    let status = tenant.rollcall(&["status"]).await;
    assert!(
        status.stdout.contains("removal grace: 3 members"),
        "{}",
        status.stdout
    );
    let upn = tenant.university.people[withdrawn[0]].upn.clone();
    let explain = tenant
        .rollcall_at(
            "2026-12-07T07:00:00Z",
            &["explain", &key, &upn, "--output", "json"],
        )
        .await;
    explain.expect(0);
    let due = &explain.json()["removal_due"];
    assert!(
        due.as_str()
            .is_some_and(|d| d.starts_with("2026-12-09T07:00:00")),
        "{}",
        explain.stdout
    );

    // The second student comes back on day 2: nothing is written, and they are never removed.
    let back = withdrawn[1];
    tenant.edit_university(|university| {
        university.modules[0].students.insert(back);
    });
    tenant
        .rollcall_at("2026-12-08T07:00:00Z", &["run"])
        .await
        .expect(0);
    assert_eq!(
        tenant.stat("writes"),
        writes,
        "a return within the grace costs no write"
    );

    // A lost state database restarts the grace at the next run: nobody is removed early.
    tenant.lose_state().await;
    tenant
        .rollcall_at("2026-12-09T07:00:00Z", &["rebuild", "--state-only"])
        .await
        .expect(0);
    tenant
        .rollcall_at("2026-12-09T07:00:00Z", &["run"])
        .await
        .expect(0);
    assert_eq!(tenant.stat("writes"), writes, "the grace started again");

    tenant
        .rollcall_at("2026-12-12T07:00:00Z", &["run"])
        .await
        .expect(0);
    tenant.desired = desired_before;
    for (i, id) in ids.iter().enumerate() {
        if i != 1 {
            tenant.desired.lists.get_mut(&key).unwrap().remove(id);
        }
    }
    tenant.assert_converged("once due, the two who left are removed; the one back stays");
    assert_eq!(tenant.stat("writes") - writes, 2);
    let report = tenant.show_last_run().await;
    assert_eq!(report["report"]["totals"]["leaving"], 0, "{report}");
    assert_eq!(report["report"]["totals"]["removes"], 2, "{report}");
    tenant.finish();
}

/// PATCHes of `PATCH /groups/{id}` the sandbox answered 204, alone or inside a batch.
fn group_patches(tenant: &Tenant) -> u64 {
    let stats = tenant.sandbox.stats();
    let route = "PATCH /groups/{id}";
    stats["requests"][route]["204"].as_u64().unwrap_or(0)
        + stats["batch_inner_by_route"][route]["204"]
            .as_u64()
            .unwrap_or(0)
}

/// A family that sets `visibility` explicitly moves its existing groups Public ↔ Private with
/// one PATCH each, and the next run sends none; a family that leaves it unset never touches
/// a group's visibility; a HiddenMembership difference is drift for a person, never a write.
async fn a_family_that_sets_visibility_moves_its_groups_with_one_patch_each(db: TestDatabase) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.set_family("modules", "visibility", "Public");
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the build");
    let modules = tenant
        .desired
        .families
        .values()
        .filter(|f| **f == "modules")
        .count() as u64;
    let graph = RawGraph::connect(&tenant.sandbox).await;
    let visibilities = || async {
        let groups = graph
            .get("/groups?$select=mailNickname,visibility&$top=999")
            .await;
        groups["value"]
            .as_array()
            .expect("a group listing")
            .iter()
            .map(|g| {
                (
                    g["mailNickname"].as_str().unwrap_or_default().to_owned(),
                    g["visibility"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect::<std::collections::BTreeMap<String, String>>()
    };
    // A department group made Public by hand: its family says nothing, so it stays so.
    let department = tenant
        .desired
        .families
        .iter()
        .find(|(_, f)| **f == "departments")
        .map(|(k, _)| k.clone())
        .unwrap();
    let department_id = tenant.group_id(&department);
    graph
        .patch(
            &format!("/groups/{department_id}"),
            &serde_json::json!({"visibility": "Public"}),
        )
        .await;

    tenant.set_family("modules", "visibility", "Private");
    let before = group_patches(&tenant);
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(
        group_patches(&tenant) - before,
        modules,
        "one PATCH per module group"
    );
    let seen = visibilities().await;
    for (nickname, family) in &tenant.desired.families {
        let want = match *family {
            "modules" => "Private",
            _ if *nickname == department => "Public",
            _ => "Private",
        };
        assert_eq!(seen[nickname], want, "{nickname}");
    }
    let before = group_patches(&tenant);
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(group_patches(&tenant), before, "the next run sends none");

    // HiddenMembership is set only at creation: reported by plan, run and verify, never sent.
    tenant.set_family("modules", "visibility", "HiddenMembership");
    let plan = tenant.rollcall(&["plan"]).await;
    plan.expect(0);
    assert!(
        plan.stderr.contains("needs a person") || plan.stdout.contains("recreate"),
        "{}{}",
        plan.stdout,
        plan.stderr
    );
    let before = group_patches(&tenant);
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(
        group_patches(&tenant),
        before,
        "no write for HiddenMembership"
    );
    let verify = tenant.rollcall(&["rebuild"]).await;
    verify.expect(0);
    let verify = tenant.rollcall(&["verify"]).await;
    verify.expect(5);
    assert!(
        verify.stdout.contains("needs a person"),
        "{}",
        verify.stdout
    );
    tenant.finish();
}
