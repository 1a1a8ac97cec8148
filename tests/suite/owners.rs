//! Owners end to end (issue 15, DESIGN.md "Owners"): module leaders from a `role` column,
//! department heads from a `role = "owner"` source, a family's fixed owners; a leader change
//! swaps the owner add-before-remove, so no group passes through a moment without one; rows
//! that stop naming anybody leave the fixed owners, or the group's last owner, in place;
//! `verify` sees an owner removed behind rollcall's back and the next run puts it back; a run
//! killed among its owner changes is finished by the next.

use std::collections::{BTreeMap, BTreeSet};
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

/// The people a scenario makes owners: staff with an account, by upn and object id.
struct Cast {
    staff: Vec<(String, String)>,
}

impl Cast {
    fn of(tenant: &Tenant) -> Cast {
        let staff = tenant
            .university
            .people
            .iter()
            .filter(|p| p.role == Role::Staff && p.has_account)
            .map(|p| (p.upn.clone(), p.object_id.clone()))
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

/// Panics unless each list's group has exactly the owners `want` gives it.
#[track_caller]
fn assert_owners(tenant: &Tenant, want: &BTreeMap<String, BTreeSet<String>>, when: &str) {
    for (list, owners) in want {
        assert_eq!(&owners_of(tenant, list), owners, "{when}: owners of {list}");
    }
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

/// Leaders in a `role` column of an extra modules source, heads in a `role = "owner"`
/// departments source, a fixed owner for every module: the build converges with exactly
/// those owners; a leader or head who changes is swapped add-before-remove; rows that name
/// nobody any more leave the fixed owner, or a group's last owner.
async fn owners_from_a_role_column_and_an_owner_source_converge_and_follow_the_sources(
    db: TestDatabase,
) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    let cast = Cast::of(&tenant);
    let modules: Vec<String> = tenant.university.modules[..3]
        .iter()
        .map(|m| m.key.clone())
        .collect();
    let department = tenant.university.departments[0].key.clone();
    let base = tenant.desired.lists.clone();
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
    tenant.set_family(
        "modules",
        "owners",
        toml::Value::Array(vec![cast.upn(0).into()]),
    );
    tenant.set_family("departments", "owners_are_members", false);
    tenant.set_guard("max_source_shrink_percent", 100);

    // Every module is owned by the fixed owner, two by their leaders too; leaders are members
    // (owners_are_members defaults to true), a `member` row only a member; the head owns the
    // department without being a member.
    let mut want: BTreeMap<String, BTreeSet<String>> = tenant
        .desired
        .families
        .iter()
        .filter(|(_, family)| **family == "modules")
        .map(|(list, _)| (list.clone(), BTreeSet::from([cast.id(0)])))
        .collect();
    want.get_mut(&modules[0]).unwrap().insert(cast.id(1));
    want.get_mut(&modules[1]).unwrap().insert(cast.id(2));
    want.insert(department.clone(), BTreeSet::from([cast.id(4)]));
    for (list, person) in [(0, 1), (1, 2), (2, 3)] {
        let members = tenant.desired.lists.get_mut(&modules[list]).unwrap();
        members.insert(cast.id(person));
    }
    let plan = tenant.rollcall(&["plan", "--output", "json"]).await;
    plan.expect(0);
    let totals = &plan.json()["plan"]["totals"];
    assert_eq!(
        totals["owner_adds"],
        want.values().map(BTreeSet::len).sum::<usize>() as u64
    );
    assert_eq!(totals["owner_removes"], 0);
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the build with owners");
    assert_owners(&tenant, &want, "after the build");
    tenant.assert_verified("after the build").await;
    let report = tenant.show_last_run().await;
    let lines = report["report"]["lists"]
        .as_array()
        .expect("per-list lines");
    let owners_added: u64 = lines
        .iter()
        .map(|l| l["owners_added"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        owners_added,
        want.values().map(BTreeSet::len).sum::<usize>() as u64
    );

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
    assert!(
        plan.stdout
            .contains(&format!("~ {}: +1 −1 +1 owner −1 owner", modules[0])),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("Owners: 2 to add, 2 to remove"),
        "{}",
        plan.stdout
    );
    tenant.rollcall(&["run"]).await.expect(0);
    want.insert(modules[0].clone(), BTreeSet::from([cast.id(0), cast.id(5)]));
    want.insert(department.clone(), BTreeSet::from([cast.id(6)]));
    let members = tenant.desired.lists.get_mut(&modules[0]).unwrap();
    *members = base[&modules[0]].clone();
    members.insert(cast.id(5));
    tenant.assert_converged("after the leader changed");
    assert_owners(&tenant, &want, "after the leader and the head changed");
    assert_eq!(
        owner_refusals(&tenant),
        0,
        "rollcall asked Graph to remove a group's last owner"
    );

    // Nobody named any more: the modules keep their fixed owner, the department its head,
    // the group's last owner, and the plan says why.
    leaders(&tenant, &[format!("{},{},member", modules[2], cast.upn(3))]);
    write_csv(&tenant, "heads.csv", "list,member", &[]);
    let plan = tenant.rollcall(&["plan"]).await;
    plan.expect(0);
    assert!(
        plan.stdout.contains(&format!(
            "owner {} kept: no source or family names an owner",
            cast.id(6)
        )),
        "{}",
        plan.stdout
    );
    tenant.rollcall(&["run"]).await.expect(0);
    for list in [&modules[0], &modules[1]] {
        want.insert(list.clone(), BTreeSet::from([cast.id(0)]));
        let members = tenant.desired.lists.get_mut(list).unwrap();
        *members = base[list].clone();
    }
    tenant.assert_converged("after the owner rows went");
    assert_owners(&tenant, &want, "after the owner rows went");
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
    tenant.set_family(
        "modules",
        "owners",
        toml::Value::Array(vec![cast.upn(0).into(), cast.upn(1).into()]),
    );
    tenant.rollcall(&["run"]).await.expect(0);
    let module = tenant.university.modules[0].key.clone();
    let both = BTreeSet::from([cast.id(0), cast.id(1)]);
    assert_eq!(owners_of(&tenant, &module), both);

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
    assert_eq!(owners_of(&tenant, &module), both);
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
    let modules: Vec<String> = tenant
        .university
        .modules
        .iter()
        .map(|m| m.key.clone())
        .collect();
    let leaders = |n: usize| [1 + n % 7, 8 + n % 3];
    let rows: Vec<String> = modules
        .iter()
        .enumerate()
        .flat_map(|(n, key)| leaders(n).map(|l| format!("{key},{},owner", cast.upn(l))))
        .collect();
    let path = write_csv(&tenant, "leaders.csv", "list,member,role", &rows);
    tenant.add_config(&format!(
        "[[source]]\nname = \"leaders\"\nfamily = \"modules\"\nkind = \"csv\"\npath = {path}\nmember_key = \"upn\"\n"
    ));
    tenant.set_family(
        "modules",
        "owners",
        toml::Value::Array(vec![cast.upn(0).into()]),
    );
    tenant.set_family("modules", "owners_are_members", false);
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
    for (n, key) in modules.iter().enumerate() {
        let [first, second] = leaders(n);
        assert_eq!(
            owners_of(&tenant, key),
            BTreeSet::from([cast.id(0), cast.id(first), cast.id(second)]),
            "owners of {key}"
        );
    }
    tenant.assert_converged("after the run that followed the kill");
    assert_eq!(owner_refusals(&tenant), 0);
    tenant.finish();
}
