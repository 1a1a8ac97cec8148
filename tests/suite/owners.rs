//! Owners end to end (issue 15, DESIGN.md "Owners"): module leaders from a `role` column,
//! department heads from a `role = "owner"` source, a family's fixed owners; a leader change
//! swaps the owner add-before-remove, so no group passes through a moment without one; rows
//! that stop naming anybody leave the fixed owners, or the group's last owner, in place;
//! `verify` sees an owner removed behind rollcall's back and the next run puts it back; a run
//! killed among its owner changes is finished by the next.

use std::collections::BTreeSet;
use std::time::Duration;

use rollcall::generate::Role;
use rollcall::sandbox::Faults;
use serde_json::Value;
use tokio::time::Instant;

use crate::common::db::TestDatabase;
use crate::common::graph::RawGraph;
use crate::common::tenant::{Tenant, TenantOptions, calm};
use crate::on_every_backend;

on_every_backend!(
    owners_from_a_role_column_and_an_owner_source_converge_and_follow_the_sources,
    verify_reports_an_owner_removed_behind_rollcalls_back_and_the_next_run_repairs_it,
    a_run_killed_among_its_owner_changes_is_finished_by_the_next,
);

/// The people a scenario makes owners: staff with an account who lead or head nothing, by
/// upn and object id.
struct Cast {
    staff: Vec<(String, String)>,
}

impl Cast {
    fn of(tenant: &Tenant) -> Cast {
        let staff = tenant
            .university
            .people
            .iter()
            .enumerate()
            .filter(|(n, p)| {
                p.role == Role::Staff
                    && p.has_account
                    && !tenant.university.lists().any(|l| l.owners.contains(n))
            })
            .map(|(_, p)| (p.upn.clone(), p.object_id.clone()))
            .collect::<Vec<_>>();
        assert!(staff.len() > 10, "the university has too few staff");
        Cast { staff }
    }

    fn upn(&self, n: usize) -> &str {
        &self.staff[n].0
    }

    fn id(&self, n: usize) -> String {
        self.staff[n].1.clone()
    }
}

/// Writes `rows` (`list,member[,role]` lines after the header) as CSV file `name`, and
/// returns its path as TOML.
fn write_csv(tenant: &Tenant, name: &str, header: &str, rows: &[String]) -> String {
    let path = tenant.dir().join(name);
    let mut text = format!("{header}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    std::fs::write(&path, text).expect("the CSV is written");
    toml::Value::String(path.to_string_lossy().into_owned()).to_string()
}

/// The owners (object ids) of the group holding `nickname`.
fn owners_of(tenant: &Tenant, nickname: &str) -> BTreeSet<String> {
    tenant
        .sandbox
        .state()
        .groups
        .into_iter()
        .find(|g| g.mail_nickname == nickname)
        .unwrap_or_else(|| panic!("the sandbox has no group {nickname}"))
        .owners
        .into_iter()
        .collect()
}

/// Owner removals Graph refused with 400 (the last-owner refusal), outer or in `$batch`es.
fn owner_refusals(tenant: &Tenant) -> u64 {
    let stats = tenant.sandbox.stats();
    let mut refused = 0;
    for table in ["requests", "batch_inner_by_route"] {
        let Some(routes) = stats[table].as_object() else {
            continue;
        };
        for (route, statuses) in routes {
            if route.starts_with("DELETE") && route.contains("/owners/") {
                refused += statuses["400"].as_u64().unwrap_or(0);
            }
        }
    }
    refused
}

/// Sets the modules' fixed owners to `owners` (staff of the cast, by index) in place of the
/// generated service account, in the config and in what the tenant should hold.
fn set_module_owners(tenant: &mut Tenant, cast: &Cast, owners: &[usize]) {
    let upns = owners.iter().map(|&n| cast.upn(n).into()).collect();
    tenant.set_family("modules", "owners", toml::Value::Array(upns));
    let service = tenant.university.service_account_id();
    let modules: Vec<String> = module_keys(tenant);
    for key in modules {
        let want = tenant.desired.owners.get_mut(&key).unwrap();
        want.remove(&service);
        want.extend(owners.iter().map(|&n| cast.id(n)));
    }
}

fn module_keys(tenant: &Tenant) -> Vec<String> {
    tenant
        .university
        .modules
        .iter()
        .map(|m| m.key.clone())
        .collect()
}

/// Leaders in a `role` column of an extra modules source and heads in a `role = "owner"`
/// departments source, beside the generated leaders, heads and service account: the build
/// converges with exactly those owners; a leader or head who changes is swapped
/// add-before-remove; rows that name nobody any more leave the fixed owners, or a group's
/// last owner.
async fn owners_from_a_role_column_and_an_owner_source_converge_and_follow_the_sources(
    db: TestDatabase,
) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    let cast = Cast::of(&tenant);
    let modules: Vec<String> = module_keys(&tenant)[..3].to_vec();
    let department = tenant.university.departments[0].key.clone();
    let base_members = tenant.desired.lists.clone();
    let leaders = |tenant: &Tenant, rows: &[String]| {
        write_csv(tenant, "leaders.csv", "list,member,role", rows)
    };
    let leaders_path = leaders(
        &tenant,
        &[
            format!("{},{},owner", modules[0], cast.upn(1)),
            format!("{},{},OWNER", modules[1], cast.upn(2)),
            format!("{},{},member", modules[2], cast.upn(3)),
        ],
    );
    let heads_path = write_csv(
        &tenant,
        "heads.csv",
        "list,member",
        &[format!("{department},{}", cast.upn(4))],
    );
    tenant.add_config(&format!(
        "[[source]]\nname = \"leaders\"\nfamily = \"modules\"\nkind = \"csv\"\npath = {leaders_path}\nmember_key = \"upn\"\n\n\
         [[source]]\nname = \"heads\"\nfamily = \"departments\"\nkind = \"csv\"\npath = {heads_path}\nmember_key = \"upn\"\nrole = \"owner\"\nallow_empty = true\n"
    ));
    tenant.set_guard("max_source_shrink_percent", 100);
    set_module_owners(&mut tenant, &cast, &[0]);

    // Owner rows are memberships too (owners_are_members defaults to true); a `member` row is
    // only a membership.
    let owner = |tenant: &mut Tenant, list: &str, person: String| {
        tenant.desired.owners.get_mut(list).unwrap().insert(person);
    };
    let member = |tenant: &mut Tenant, list: &str, person: String| {
        tenant.desired.lists.get_mut(list).unwrap().insert(person);
    };
    for (list, person) in [(&modules[0], 1), (&modules[1], 2), (&department, 4)] {
        owner(&mut tenant, list, cast.id(person));
        member(&mut tenant, list, cast.id(person));
    }
    member(&mut tenant, &modules[2], cast.id(3));
    let wanted_owners: usize = tenant.desired.owners.values().map(BTreeSet::len).sum();
    let plan = tenant.rollcall(&["plan", "--output", "json"]).await;
    plan.expect(0);
    let totals = &plan.json()["plan"]["totals"];
    assert_eq!(totals["owner_adds"], wanted_owners as u64, "{totals}");
    assert_eq!(totals["owner_removes"], 0);
    tenant.rollcall(&["run"]).await.expect(0);
    let report = tenant.show_last_run().await;
    let lines = report["report"]["lists"]
        .as_array()
        .expect("per-list lines");
    let owners_added: u64 = lines
        .iter()
        .map(|l| l["owners_added"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(owners_added, wanted_owners as u64);
    tenant.assert_verified("after the build with owners").await;

    // A new leader for the first module and a new head: added, then the old ones removed.
    leaders(
        &tenant,
        &[
            format!("{},{},owner", modules[0], cast.upn(5)),
            format!("{},{},owner", modules[1], cast.upn(2)),
            format!("{},{},member", modules[2], cast.upn(3)),
        ],
    );
    write_csv(
        &tenant,
        "heads.csv",
        "list,member",
        &[format!("{department},{}", cast.upn(6))],
    );
    let plan = tenant.rollcall(&["plan"]).await;
    plan.expect(0);
    let line = plan
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("~ {}:", modules[0])))
        .unwrap_or_else(|| panic!("no plan line for {}:\n{}", modules[0], plan.stdout));
    assert!(line.contains("+1 owner −1 owner"), "{line}");
    assert!(
        plan.stdout.contains("Owners: 2 to add, 2 to remove"),
        "{}",
        plan.stdout
    );
    tenant.rollcall(&["run"]).await.expect(0);
    for (list, old, new) in [(&modules[0], 1, 5), (&department, 4, 6)] {
        tenant
            .desired
            .owners
            .get_mut(list)
            .unwrap()
            .remove(&cast.id(old));
        owner(&mut tenant, list, cast.id(new));
        let members = tenant.desired.lists.get_mut(list).unwrap();
        if !base_members[list].contains(&cast.id(old)) {
            members.remove(&cast.id(old));
        }
        members.insert(cast.id(new));
    }
    tenant.assert_converged("after the leader and the head changed");
    assert_eq!(
        owner_refusals(&tenant),
        0,
        "rollcall asked Graph to remove a group's last owner"
    );

    // Nobody named any more: the modules keep their fixed owner; the departments, without
    // fixed owners now, keep their heads, and a department that nobody owns keeps the last
    // owner it has, and the plan says why.
    leaders(&tenant, &[format!("{},{},member", modules[2], cast.upn(3))]);
    write_csv(&tenant, "heads.csv", "list,member", &[]);
    tenant.set_family("departments", "owners", toml::Value::Array(Vec::new()));
    let generated_head = tenant.university.departments[0]
        .head
        .map(|p| tenant.university.people[p].employee_id.clone())
        .expect("the first department has a head");
    tenant.add_config(&format!(
        "\n[[override]]\nlist = \"{department}\"\nowners_exclude = [\"employee_id:{generated_head}\"]\n"
    ));
    let before = owners_of(&tenant, &department);
    let plan = tenant.rollcall(&["plan"]).await;
    plan.expect(0);
    let kept = before.iter().next().unwrap().clone();
    assert!(
        plan.stdout.contains(&format!(
            "owner {kept} kept: no source or family names an owner"
        )),
        "{}",
        plan.stdout
    );
    tenant.rollcall(&["run"]).await.expect(0);
    let service = tenant.university.service_account_id();
    for list in [&modules[0], &modules[1]] {
        tenant
            .desired
            .owners
            .get_mut(list)
            .unwrap()
            .remove(&cast.id(1));
        tenant
            .desired
            .owners
            .get_mut(list)
            .unwrap()
            .remove(&cast.id(2));
        tenant
            .desired
            .owners
            .get_mut(list)
            .unwrap()
            .remove(&cast.id(5));
        let members = tenant.desired.lists.get_mut(list).unwrap();
        *members = base_members[list].clone();
    }
    let departments: Vec<String> = tenant
        .university
        .departments
        .iter()
        .map(|d| d.key.clone())
        .collect();
    for list in &departments {
        let want = tenant.desired.owners.get_mut(list).unwrap();
        want.remove(&service);
        if *list == department {
            *want = BTreeSet::from([kept.clone()]);
            let members = tenant.desired.lists.get_mut(list).unwrap();
            *members = base_members[list].clone();
        } else if want.is_empty() {
            want.insert(service.clone());
        }
    }
    tenant.assert_converged("after the owner rows went");
    assert_eq!(owner_refusals(&tenant), 0);
    tenant
        .assert_verified("with only fixed and last owners")
        .await;
    tenant.finish();
}

/// An owner removed by hand is drift that `verify` names (exit 5); the next run adds it
/// back and `verify` is clean again.
async fn verify_reports_an_owner_removed_behind_rollcalls_back_and_the_next_run_repairs_it(
    db: TestDatabase,
) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    let cast = Cast::of(&tenant);
    set_module_owners(&mut tenant, &cast, &[0, 1]);
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the build");
    let module = tenant.university.modules[0].key.clone();

    let graph = RawGraph::connect(&tenant.sandbox).await;
    let group = tenant.group_id(&module);
    let (status, body) = graph
        .send_raw(
            reqwest::Method::DELETE,
            &format!("/groups/{group}/owners/{}/$ref", cast.id(1)),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let verify = tenant.rollcall(&["verify"]).await;
    verify.expect(5);
    assert!(
        verify.stdout.contains("owners: 1 missing, 0 extra"),
        "{}",
        verify.stdout
    );
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_verified("after the repair").await;
    tenant.finish();
}

/// A build that gives every module a fixed owner and a leader, killed (SIGKILL) once its
/// owner writes have begun: the journal keeps what was not recorded, and the next run
/// finishes with exactly the wanted owners.
async fn a_run_killed_among_its_owner_changes_is_finished_by_the_next(db: TestDatabase) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    let cast = Cast::of(&tenant);
    tenant.rollcall(&["run"]).await.expect(0);
    let modules = module_keys(&tenant);
    let leaders = |n: usize| [1 + n % 7, 8 + n % 3];
    for (n, key) in modules.iter().enumerate() {
        for person in leaders(n) {
            tenant
                .desired
                .owners
                .get_mut(key)
                .unwrap()
                .insert(cast.id(person));
            tenant
                .desired
                .lists
                .get_mut(key)
                .unwrap()
                .insert(cast.id(person));
        }
    }
    let rows: Vec<String> = modules
        .iter()
        .enumerate()
        .flat_map(|(n, key)| leaders(n).map(|l| format!("{key},{},owner", cast.upn(l))))
        .collect();
    let path = write_csv(&tenant, "leaders.csv", "list,member,role", &rows);
    tenant.add_config(&format!(
        "[[source]]\nname = \"leaders\"\nfamily = \"modules\"\nkind = \"csv\"\npath = {path}\nmember_key = \"upn\"\n"
    ));
    set_module_owners(&mut tenant, &cast, &[0]);
    // One request at a time, each slow: the kill lands between two `$batch`es of owner adds,
    // before the batch's outcomes are committed.
    tenant.set_graph("max_concurrency", Some(toml::Value::Integer(1)));
    tenant.sandbox.set_faults(Faults {
        latency_ms: 150,
        ..calm()
    });
    let before = tenant.stat("writes");
    let mut child = tenant
        .command(&["run"])
        .spawn()
        .expect("`rollcall run` starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while tenant.stat("writes") == before {
        if let Some(status) = child.try_wait().expect("the child can be polled") {
            panic!("`rollcall run` ended ({status}) before it wrote anything");
        }
        assert!(Instant::now() < deadline, "`rollcall run` wrote nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.start_kill().expect("SIGKILL is sent");
    child.wait().await.expect("the killed run is reaped");
    assert!(
        tenant.pending_operations().await > 0,
        "the owner changes finished before the kill, so this test proved nothing"
    );
    tenant.sandbox.set_faults(calm());
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(tenant.pending_operations().await, 0);
    tenant.assert_converged("after the run that followed the kill");
    assert_eq!(owner_refusals(&tenant), 0);
    tenant.finish();
}
