//! The academic year end to end (DESIGN.md "The academic year"). Groups are created Private,
//! or as their family says, with its behaviours. An `[[override]]` or an `[[override_source]]`
//! row applies only inside its `from`/`until` window, judged at the calendar's now
//! (`ROLLCALL_NOW`, the test's own clock), so an exception that ended is as if absent and one
//! that starts in two days takes effect that day.

use crate::common::db::TestDatabase;
use crate::common::graph::RawGraph;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(
    an_exception_that_ended_is_not_applied_and_one_that_starts_applies_from_its_first_day,
    groups_are_created_private_or_as_their_family_says_with_its_behaviours,
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

    let monday = "2026-12-08T07:00:00Z";
    tenant.rollcall_at(monday, &["run"]).await.expect(0);
    tenant
        .desired
        .lists
        .get_mut(&key)
        .unwrap()
        .insert(starting.object_id.clone());
    tenant.assert_converged("on Monday the new exception applies");
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
