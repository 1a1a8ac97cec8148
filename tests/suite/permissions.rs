//! Missing consent, the most common first-day failure of a Graph daemon (DESIGN.md "The
//! academic year", permissions): `doctor` names each application permission the token's
//! `roles` claim lacks, and a run refuses with exit 2 before its first write. The sandbox
//! issues tokens with the roles it is told (`PUT /_sandbox/roles`), answers 403
//! `Authorization_RequestDenied` where one is missing, and serves a HiddenMembership group's
//! members empty to a token without Member.Read.Hidden, as Graph can.

use serde_json::{Value, json};

use crate::common::db::TestDatabase;
use crate::common::graph::RawGraph;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(a_missing_permission_is_named_by_doctor_and_refused_by_a_run_before_any_write);

/// Grants exactly `roles` to the sandbox's tokens from now on.
async fn grant(tenant: &Tenant, roles: &[&str]) {
    let reply = reqwest::Client::new()
        .put(format!("{}/_sandbox/roles", tenant.sandbox.base_url()))
        .json(&json!({ "roles": roles }))
        .send()
        .await
        .expect("the sandbox's admin endpoint answers");
    assert!(reply.status().is_success(), "{}", reply.status());
    let body: Value = reply.json().await.expect("JSON");
    assert_eq!(body["roles"], json!(roles));
}

const ALL: [&str; 4] = [
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "User.Read.All",
    "Member.Read.Hidden",
];

async fn a_missing_permission_is_named_by_doctor_and_refused_by_a_run_before_any_write(
    db: TestDatabase,
) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.set_family("modules", "visibility", "HiddenMembership");
    grant(&tenant, &ALL[..3]).await;

    let doctor = tenant.rollcall(&["doctor"]).await;
    doctor.expect(1);
    assert!(
        doctor
            .stdout
            .contains("error [missing-permission] Member.Read.Hidden: without it the members of HiddenMembership groups cannot be read"),
        "{}",
        doctor.stdout
    );
    let writes = tenant.stat("writes");
    let run = tenant.rollcall(&["run"]).await;
    run.expect(2);
    assert!(run.stderr.contains("Member.Read.Hidden"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert_eq!(tenant.stat("writes"), writes, "no write before the refusal");
    assert_eq!(tenant.managed_groups().await, 0);

    // Read-only consent: both write permissions are named.
    grant(&tenant, &["Group.Read.All", "User.Read.All"]).await;
    let doctor = tenant.rollcall(&["doctor"]).await;
    doctor.expect(1);
    for missing in [
        "GroupMember.ReadWrite.All",
        "Group.ReadWrite.All",
        "Member.Read.Hidden",
    ] {
        assert!(
            doctor.stdout.contains(missing),
            "{missing}: {}",
            doctor.stdout
        );
    }
    // And Graph itself refuses what the roles do not cover.
    let graph = RawGraph::connect(&tenant.sandbox).await;
    let refused = graph
        .send_raw(
            reqwest::Method::POST,
            "/groups",
            &json!({
                "displayName": "x", "mailNickname": "x", "mailEnabled": true,
                "securityEnabled": false, "groupTypes": ["Unified"],
            }),
        )
        .await;
    assert_eq!(refused.0, 403, "{}", refused.1);
    assert_eq!(refused.1["error"]["code"], "Authorization_RequestDenied");

    grant(&tenant, &ALL).await;
    let doctor = tenant.rollcall(&["doctor"]).await;
    doctor.expect(0);
    assert!(
        doctor.stdout.contains("permissions: all 4 present"),
        "{}",
        doctor.stdout
    );
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("with every permission granted");

    // Without Member.Read.Hidden, a hidden group's members read as none: not evidence that
    // it is empty, which is why a run refuses to go on without the permission.
    grant(&tenant, &ALL[..3]).await;
    let module = tenant.university.modules[0].key.clone();
    let group = tenant.group_id(&module);
    let blind = RawGraph::connect(&tenant.sandbox).await;
    let members = blind.get(&format!("/groups/{group}/members")).await;
    assert_eq!(members["value"], json!([]), "{members}");
    grant(&tenant, &ALL).await;
    let seeing = RawGraph::connect(&tenant.sandbox).await;
    let members = seeing.get(&format!("/groups/{group}/members")).await;
    assert!(
        !members["value"].as_array().unwrap().is_empty(),
        "{members}"
    );

    // A family that no longer says HiddenMembership asks for no Member.Read.Hidden, but its
    // groups stay hidden: a run without the permission holds them instead of reading them as
    // empty, and changes nothing in them.
    tenant.unset_family("modules", "visibility");
    grant(&tenant, &ALL[..3]).await;
    let writes = tenant.stat("writes");
    let run = tenant.rollcall(&["rebuild"]).await;
    run.expect(7);
    assert!(run.stderr.contains("Member.Read.Hidden"), "{}", run.stderr);
    assert_eq!(
        tenant.stat("writes"),
        writes,
        "nothing written to unreadable lists"
    );
    let report = tenant.show_last_run().await;
    let held = report["report"]["held"].as_array().unwrap();
    let modules = tenant
        .desired
        .families
        .values()
        .filter(|f| **f == "modules");
    assert_eq!(held.len(), modules.count(), "{report}");
    assert!(held.iter().all(|h| h["reason"] == "refused"), "{report}");
    tenant.finish();
}
