//! Per-list isolation end to end (DESIGN.md "Per-list isolation", exit 7): ordinary data
//! that once jammed every list now holds one list at most. A key in two cases is one list; a
//! key Exchange refuses and a list whose per-list guard trips are held while every other
//! list's changes (withdrawals first of all) are applied; `--accept-list` releases a guard
//! hold for one run; a retitled module reaches its group's displayName with one PATCH.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::db::TestDatabase;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(
    a_key_in_two_cases_is_one_list_with_every_member_run_after_run,
    a_key_with_a_space_is_held_and_every_other_lists_withdrawals_are_applied,
    a_per_list_guard_trip_holds_that_list_only_until_accept_list_releases_it,
    a_retitled_module_reaches_its_group_with_one_patch_and_then_none,
    a_list_tripled_by_a_bad_join_is_held_until_released_and_max_members_holds_the_same_way,
);

/// A tenant after a first run that built every list.
async fn converged(db: TestDatabase) -> Tenant {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the first run");
    tenant
}

/// Adds a CSV source `extra` of family `family` whose rows are `(list, member)`.
pub(crate) fn add_extra_source(tenant: &mut Tenant, family: &str, rows: &[(&str, &str)]) {
    let path = tenant.dir().join("extra.csv");
    let mut csv = String::from("list,member\n");
    for (list, member) in rows {
        csv.push_str(&format!("{list},{member}\n"));
    }
    std::fs::write(&path, csv).expect("extra.csv is written");
    tenant.add_config(&format!(
        "[[source]]\nname = \"extra\"\nfamily = \"{family}\"\nkind = \"csv\"\npath = {}\nmember_key = \"upn\"\n",
        toml::Value::String(path.to_string_lossy().into_owned())
    ));
}

/// The index of a module with at least `size` students who have an account, other than those
/// in `not`.
fn module_with(tenant: &Tenant, size: usize, not: &[usize]) -> usize {
    let university = &tenant.university;
    (0..university.modules.len())
        .filter(|i| !not.contains(i))
        .find(|&i| {
            university.modules[i]
                .students
                .iter()
                .filter(|&&p| university.people[p].has_account)
                .count()
                >= size
        })
        .unwrap_or_else(|| panic!("no module has {size} students with an account"))
}

/// Every list but `key` is converged, and `key`'s group still has exactly `before`.
#[track_caller]
fn assert_held_untouched(tenant: &Tenant, key: &str, before: &BTreeSet<String>, what: &str) {
    let skip: BTreeSet<String> = [key.to_owned()].into_iter().collect();
    tenant.assert_converged_except(&skip, &format!("after the run that held {what}"));
    let group = tenant
        .sandbox
        .state()
        .groups
        .into_iter()
        .find(|g| g.mail_nickname == key)
        .unwrap_or_else(|| panic!("{what} has no group"));
    assert_eq!(
        &group.members.into_iter().collect::<BTreeSet<_>>(),
        before,
        "{what} was touched while held"
    );
}

/// One more `run` exits 0 and sends no write.
async fn assert_next_run_writes_nothing(tenant: &Tenant, why: &str) {
    let writes = tenant.stat("write_requests");
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(tenant.stat("write_requests"), writes, "{why}");
}

/// The held lists of a report or plan in JSON, as `(list, reason)`.
fn held(value: &Value) -> Vec<(String, String)> {
    value["held"]
        .as_array()
        .unwrap_or_else(|| panic!("no `held` in {value}"))
        .iter()
        .map(|h| {
            (
                h["list"].as_str().unwrap_or_default().to_owned(),
                h["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn a_key_in_two_cases_is_one_list_with_every_member_run_after_run(db: TestDatabase) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    let module = tenant.university.modules[0].key.clone();
    let newcomer = tenant
        .university
        .people
        .iter()
        .find(|p| p.has_account && !tenant.desired.lists[&module].contains(&p.object_id))
        .expect("somebody is not on the first module")
        .clone();
    let shouted = module.to_uppercase();
    assert_ne!(shouted, module);
    add_extra_source(&mut tenant, "modules", &[(&shouted, &newcomer.upn)]);
    tenant
        .desired
        .lists
        .get_mut(&module)
        .unwrap()
        .insert(newcomer.object_id.clone());

    for run in ["the first run", "the second run"] {
        let ran = tenant.rollcall(&["run"]).await;
        ran.expect(0);
        tenant.assert_converged(&format!("after {run}"));
        let report = tenant.show_last_run().await;
        let warnings: Vec<&str> = report["report"]["warnings"]
            .as_array()
            .unwrap_or_else(|| {
                panic!(
                    "{run}: the report has no warnings: {report}\n{}",
                    ran.stdout
                )
            })
            .iter()
            .filter_map(Value::as_str)
            .filter(|w| w.contains("differ only in case"))
            .collect();
        assert_eq!(warnings.len(), 1, "{run}: {warnings:?} in {report}");
        for part in [
            format!("`{shouted}` (source `extra` row 1)"),
            format!("`{module}` (source `enrolments` row"),
            format!("kept as `{module}`"),
        ] {
            assert!(
                warnings[0].contains(&part),
                "{run}: `{part}` in {}",
                warnings[0]
            );
        }
    }
    assert_eq!(tenant.managed_groups().await, tenant.desired.lists.len());
    assert_next_run_writes_nothing(&tenant, "a converged run wrote").await;
    tenant.assert_verified("at the end").await;
    tenant.finish();
}

async fn a_key_with_a_space_is_held_and_every_other_lists_withdrawals_are_applied(
    db: TestDatabase,
) {
    let mut tenant = converged(db).await;
    let module = module_with(&tenant, 3, &[]);
    tenant.withdraw(module, 2);
    let someone = tenant.university.people[0].upn.clone();
    add_extra_source(&mut tenant, "modules", &[("mod bad key", &someone)]);

    let plan = tenant.rollcall(&["plan", "--output", "json"]).await;
    plan.expect(7);
    assert_eq!(
        held(&plan.json()),
        [("mod bad key".to_owned(), "invalid_name".to_owned())]
    );

    let ran = tenant.rollcall(&["run"]).await;
    ran.expect(7);
    assert!(
        ran.stdout.contains("held: list mod bad key (invalid_name)")
            && ran.stdout.contains("source extra"),
        "{}",
        ran.stdout
    );
    tenant.assert_converged("after the run that held the bad key");
    let report = tenant.show_last_run().await;
    assert_eq!(report["exit_code"], 7, "{report}");
    assert_eq!(
        held(&report["report"]),
        [("mod bad key".to_owned(), "invalid_name".to_owned())]
    );
    let status = tenant.rollcall(&["status"]).await;
    assert!(status.stdout.contains("mod bad key"), "{}", status.stdout);
    tenant.finish();
}

async fn a_per_list_guard_trip_holds_that_list_only_until_accept_list_releases_it(
    db: TestDatabase,
) {
    let mut tenant = converged(db).await;
    let halved = module_with(&tenant, 12, &[]);
    let other = module_with(&tenant, 3, &[halved]);
    let size = tenant.desired.lists[&tenant.university.modules[halved].key].len();
    let key = tenant.university.modules[halved].key.clone();
    let before: BTreeSet<String> = tenant.desired.lists[&key].clone();
    tenant.withdraw(halved, size / 2 + 1);
    tenant.withdraw(other, 1);

    let ran = tenant.rollcall(&["run"]).await;
    ran.expect(7);
    assert!(
        ran.stdout
            .contains(&format!("rollcall run --accept-list {key} --reason TEXT")),
        "{}",
        ran.stdout
    );
    assert_held_untouched(&tenant, &key, &before, "the halved list");
    assert_eq!(
        held(&tenant.show_last_run().await["report"]),
        [(key.clone(), "guard".to_owned())]
    );

    tenant.rollcall(&["run"]).await.expect(7);
    tenant
        .rollcall(&["run", "--accept-list", &key.to_uppercase()])
        .await
        .expect(2);
    tenant
        .rollcall(&[
            "run",
            "--accept-list",
            &key.to_uppercase(),
            "--reason",
            "the module was split in two",
        ])
        .await
        .expect(0);
    let approval = &tenant.show_last_run().await["report"]["approval"];
    assert_eq!(
        (&approval["reason"], &approval["accept_list"][0]),
        (
            &"the module was split in two".into(),
            &key.to_uppercase().into()
        ),
        "{approval}"
    );
    tenant.assert_verified("after --accept-list").await;
    tenant.finish();
}

async fn a_retitled_module_reaches_its_group_with_one_patch_and_then_none(db: TestDatabase) {
    let mut tenant = converged(db).await;
    let key = tenant.university.modules[0].key.clone();
    tenant.edit_university(|university| {
        university.modules[0].title = "Renamed by the Senate".to_owned();
    });
    let title = tenant.university.modules[0].display_name();

    let plan = tenant.rollcall(&["plan"]).await;
    plan.expect(0);
    assert!(
        plan.stdout
            .contains(&format!("~ {key}: +0 −0; ~ title `{title}`")),
        "{}",
        plan.stdout
    );
    let verify = tenant.rollcall(&["verify"]).await;
    verify.expect(5);
    assert!(verify.stdout.contains("title differs"), "{}", verify.stdout);

    let writes = tenant.stat("write_requests");
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(tenant.stat("write_requests") - writes, 1, "one PATCH");
    let group = tenant
        .sandbox
        .state()
        .groups
        .into_iter()
        .find(|g| g.mail_nickname == key)
        .expect("the module's group");
    assert_eq!(group.display_name, title);

    assert_next_run_writes_nothing(&tenant, "the title was sent again").await;
    tenant.assert_verified("after the retitle").await;
    tenant.finish();
}

/// Enrols `count` people with an account who are not on module `index` (a join gone wrong).
fn join_wrongly(tenant: &mut Tenant, index: usize, count: usize) {
    tenant.edit_university(|university| {
        let module = &university.modules[index];
        let strangers: Vec<usize> = (0..university.people.len())
            .filter(|p| university.people[*p].has_account)
            .filter(|p| !module.students.contains(p) && !module.teachers.contains(p))
            .take(count)
            .collect();
        assert_eq!(strangers.len(), count, "too few people to join wrongly");
        university.modules[index].students.extend(strangers);
    });
}

async fn a_list_tripled_by_a_bad_join_is_held_until_released_and_max_members_holds_the_same_way(
    db: TestDatabase,
) {
    let mut tenant = converged(db).await;
    tenant.set_guard("max_addition_percent_per_list", 100);
    let joined = module_with(&tenant, 10, &[]);
    let other = module_with(&tenant, 3, &[joined]);
    let key = tenant.university.modules[joined].key.clone();
    let size = tenant.desired.lists[&key].len();
    let before: BTreeSet<String> = tenant.desired.lists[&key].clone();
    join_wrongly(&mut tenant, joined, 2 * size);
    tenant.withdraw(other, 1);

    tenant.rollcall(&["run"]).await.expect(7);
    assert_held_untouched(&tenant, &key, &before, "the tripled list");
    let report = tenant.show_last_run().await;
    assert_eq!(held(&report["report"]), [(key.clone(), "guard".to_owned())]);
    let message = report["report"]["held"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("max_addition_percent_per_list")
            && message.contains(&format!("gain {} members on its {size}", 2 * size)),
        "{message}"
    );
    tenant
        .rollcall(&[
            "run",
            "--accept-list",
            &key,
            "--reason",
            "a merged module, confirmed",
        ])
        .await
        .expect(0);
    tenant.assert_converged("after --accept-list");

    // max_members holds a list that would grow past it the same way; one at it passes.
    tenant.set_guard("max_addition_percent_per_list", 100_000);
    let biggest = tenant
        .desired
        .lists
        .values()
        .map(BTreeSet::len)
        .max()
        .unwrap_or(0);
    tenant.set_family("modules", "max_members", biggest as i64);
    tenant.rollcall(&["plan"]).await.expect(0);
    let other_key = tenant.university.modules[other].key.clone();
    let other_size = tenant.desired.lists[&other_key].len();
    join_wrongly(&mut tenant, other, biggest + 1 - other_size);
    let plan = tenant.rollcall(&["plan", "--output", "json"]).await;
    plan.expect(7);
    assert_eq!(held(&plan.json()), [(other_key, "guard".to_owned())]);
    tenant.finish();
}

/// DESIGN.md "Transactions and interruption": within a run, member removals go out before
/// member additions, so a throttled, paused or interrupted run has already withdrawn access.
/// The order does not depend on the state database, so SQLite alone proves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_withdrawal_is_sent_before_the_first_enrolment_to_an_existing_group() {
    let Some(db) = TestDatabase::create(crate::common::db::Backend::Sqlite).await else {
        return;
    };
    let mut tenant = converged(db).await;
    let mut modules: Vec<usize> = Vec::new();
    for _ in 0..4 {
        modules.push(module_with(&tenant, 3, &modules));
    }
    // Enrolments on two lists, withdrawals from two others (one person never both).
    for (n, &module) in modules.iter().enumerate() {
        if n % 2 == 0 {
            join_wrongly(&mut tenant, module, 25);
        } else {
            tenant.withdraw(module, 4);
        }
    }
    let before = tenant.sandbox.membership_changes().len();
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after withdrawals and enrolments");
    let changes = tenant.sandbox.membership_changes();
    let order: Vec<bool> = changes[before..].iter().map(|(_, added)| *added).collect();
    let removals = order.iter().filter(|added| !**added).count();
    assert_eq!((removals, order.len() - removals), (8, 50), "{order:?}");
    assert!(
        order.iter().take(removals).all(|added| !added),
        "an addition went out before a removal: {order:?}"
    );
    tenant.finish();
}

/// A second group carrying a list's tag (copied by hand) holds that list in a full read,
/// naming both groups; every other list is rebuilt as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_tagged_for_one_list_hold_it_naming_both() {
    let Some(db) = TestDatabase::create(crate::common::db::Backend::Sqlite).await else {
        return;
    };
    let tenant = converged(db).await;
    let key = tenant.university.modules[0].key.clone();
    let first = tenant.group_id(&key);
    let graph = crate::common::graph::RawGraph::connect(&tenant.sandbox).await;
    let created = graph
        .batch(vec![serde_json::json!({
            "id": "1", "method": "POST", "url": "/groups",
            "headers": {"Content-Type": "application/json"},
            "body": {
                "displayName": "copy", "mailNickname": "copy-of-a-list", "mailEnabled": true,
                "securityEnabled": false, "groupTypes": ["Unified"],
            },
        })])
        .await;
    let second = created[0]["body"]["id"]
        .as_str()
        .expect("the copy's id")
        .to_owned();
    graph
        .batch(vec![serde_json::json!({
            "id": "1", "method": "POST", "url": format!("/groups/{second}/extensions"),
            "headers": {"Content-Type": "application/json"},
            "body": {
                "@odata.type": "microsoft.graph.openTypeExtension",
                "extensionName": "org.rollcall.managed",
                "list": key, "family": "modules", "since": "2026-12-01T00:00:00Z",
            },
        })])
        .await;

    let rebuilt = tenant.rollcall(&["rebuild"]).await;
    rebuilt.expect(7);
    let report = tenant.show_last_run().await;
    assert_eq!(
        held(&report["report"]),
        [(key.clone(), "two_groups_tagged".to_owned())]
    );
    let message = report["report"]["held"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(&first) && message.contains(&second),
        "{message}"
    );
    tenant.assert_converged("after the rebuild that held the doubly tagged list");
}
