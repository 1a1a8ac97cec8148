//! Guards and approvals end to end (DESIGN.md `[guard]`, `plan`, `apply`): each guard trips
//! one over its threshold and not at it, exits 3 before the first write, and names itself in
//! `plan --output json`, `show RUN --output json` and `status`; `--accept-removals N` lets
//! exactly one run through; a saved plan (`plan --out FILE`) is applied by `apply FILE
//! --reason TEXT` only while the sources, Microsoft 365's membership and its age allow.
//!
//! The guards judge the plan before the state database is written, so their thresholds are
//! walked on SQLite; approvals and saved plans are recorded in the run history, so those
//! scenarios run on every backend.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::db::{Backend, TestDatabase};
use crate::common::graph::RawGraph;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(
    removals_over_the_limit_stop_the_run_until_the_operator_accepts_that_many,
    a_saved_plan_is_applied_once_exactly_as_it_was_reviewed,
    a_saved_plan_is_refused_once_sources_membership_or_its_age_moved_on,
);

/// A tenant after a first run that built every list.
async fn converged(db: TestDatabase) -> Tenant {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the first run");
    tenant
}

/// The index and list key of the module whose list has the most members, other than `not`.
fn largest_module(tenant: &Tenant, not: Option<usize>) -> (usize, String) {
    let (index, module) = tenant
        .university
        .modules
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != not)
        .max_by_key(|(_, m)| tenant.desired.lists.get(&m.key).map_or(0, |l| l.len()))
        .expect("the university has modules");
    (index, module.key.clone())
}

/// The members the list `key` should have (and, once converged, has).
fn list_size(tenant: &Tenant, key: &str) -> i64 {
    tenant.desired.lists[key].len() as i64
}

/// Enrols `students` in module `index` again: the plan adds them back.
fn enrol(tenant: &mut Tenant, index: usize, students: &[usize]) {
    tenant.edit_university(|university| {
        university.modules[index]
            .students
            .extend(students.iter().copied());
    });
}

/// The verdict of `guard` (on `list`, for the per-list guard) in a JSON array of verdicts.
fn verdict<'a>(verdicts: &'a Value, guard: &str, list: Option<&str>) -> Option<&'a Value> {
    verdicts
        .as_array()?
        .iter()
        .find(|v| v["guard"].as_str() == Some(guard) && v["list"].as_str() == list)
}

/// `plan --output json` exits 0 and no guard trips; returns the plan.
async fn assert_passes(tenant: &Tenant, when: &str) -> Value {
    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(0)
        .json();
    let tripped: Vec<&Value> = plan["verdicts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["outcome"] == json!("tripped"))
        .collect();
    assert!(tripped.is_empty(), "{when}: guards tripped: {tripped:?}");
    plan
}

/// `guard` (on `list`) trips with `observed` over `limit`: `plan` exits 3 with the verdict,
/// `run` exits 3 without a write, and `show RUN --output json` and `status` name the guard.
async fn assert_tripped(
    tenant: &Tenant,
    guard: &str,
    list: Option<&str>,
    limit: i64,
    observed: i64,
    when: &str,
) {
    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(3)
        .json();
    let found = verdict(&plan["verdicts"], guard, list).unwrap_or_else(|| {
        panic!(
            "{when}: `plan` has no {guard} verdict: {}",
            plan["verdicts"]
        )
    });
    assert_eq!(
        (&found["outcome"], &found["limit"], &found["observed"]),
        (&json!("tripped"), &json!(limit), &json!(observed)),
        "{when}: {found}"
    );

    let (run, show) = tenant
        .assert_stopped_before_any_change(&["run"], &format!("Guard {guard} tripped"), when)
        .await;
    let recorded = verdict(&show["report"]["tripped"], guard, list)
        .unwrap_or_else(|| panic!("{when}: the run report lacks the {guard} verdict: {show}"));
    assert_eq!(
        (&recorded["limit"], &recorded["observed"]),
        (&json!(limit), &json!(observed)),
        "{when}: {recorded}"
    );

    let status = tenant.rollcall(&["status"]).await;
    status.expect(0);
    let line = format!("guards: the last run ({run}) was stopped by {guard}");
    assert!(
        status.stdout.contains(&line),
        "{when}: `status` lacks `{line}`:\n{}",
        status.stdout
    );
}

/// The per-list guard trips on `list` with `observed` over `limit`: `plan` exits 7 holding
/// that list with the verdict, `run` exits 7 leaving it as it was, and `show RUN --output
/// json` and `status` name it with the command that releases it.
async fn assert_held_by_guard(tenant: &Tenant, list: &str, limit: i64, observed: i64, when: &str) {
    let plan = tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(7)
        .json();
    let entry = plan["plan"]["lists"]
        .as_array()
        .and_then(|lists| lists.iter().find(|l| l["key"] == json!(list)))
        .unwrap_or_else(|| panic!("{when}: the plan lacks list {list}: {}", plan["plan"]));
    let verdict = &entry["hold"]["verdict"];
    assert_eq!(
        (
            &entry["action"],
            &entry["hold"]["reason"],
            &verdict["limit"],
            &verdict["observed"]
        ),
        (
            &json!("held"),
            &json!("guard"),
            &json!(limit),
            &json!(observed)
        ),
        "{when}: {entry}"
    );
    let writes = tenant.stat("writes");
    tenant.rollcall(&["run"]).await.expect(7);
    assert_eq!(
        tenant.stat("writes"),
        writes,
        "{when}: the held list was written"
    );
    let show = tenant.show_last_run().await;
    assert_eq!(
        show["report"]["held"][0]["list"],
        json!(list),
        "{when}: {show}"
    );
    let status = tenant.rollcall(&["status"]).await;
    status.expect(0);
    let release = format!("rollcall run --accept-list {list} --reason TEXT");
    assert!(
        status.stdout.contains(&release),
        "{when}: `status` lacks `{release}`:\n{}",
        status.stdout
    );
}

async fn removals_over_the_limit_stop_the_run_until_the_operator_accepts_that_many(
    db: TestDatabase,
) {
    let mut tenant = converged(db).await;
    tenant.set_guard("max_removals_per_run", 5);
    // Only the run-wide guard may judge these removals.
    tenant.set_guard("max_removal_percent_per_list", 100);
    let (module, _) = largest_module(&tenant, None);

    tenant.withdraw(module, 5);
    let plan = assert_passes(&tenant, "5 removals against a limit of 5").await;
    let at_limit = verdict(&plan["verdicts"], "max_removals_per_run", None)
        .expect("the run-wide removal guard always gives a verdict");
    assert_eq!(
        (&at_limit["observed"], &at_limit["outcome"]),
        (&json!(5), &json!("passed")),
        "{at_limit}"
    );

    tenant.withdraw(module, 1);
    assert_tripped(
        &tenant,
        "max_removals_per_run",
        None,
        5,
        6,
        "6 removals against a limit of 5",
    )
    .await;

    // An approval short of the plan's removals approves nothing.
    let writes = tenant.stat("writes");
    tenant
        .rollcall(&["run", "--accept-removals", "5", "--reason", "too few"])
        .await
        .expect(3);
    assert_eq!(
        tenant.stat("writes"),
        writes,
        "a short approval let writes through"
    );

    let reason = "six students withdrew from the module";
    tenant
        .rollcall(&["run", "--accept-removals", "6", "--reason", reason])
        .await
        .expect(0);
    assert_eq!(
        tenant.stat("writes") - writes,
        6,
        "the approved run's writes"
    );
    tenant.assert_converged("after the approved run");
    let show = tenant.show_last_run().await;
    assert_eq!(
        (
            &show["approvals"]["accept_removals"],
            &show["approvals"]["reason"]
        ),
        (&json!(6), &json!(reason)),
        "{show}"
    );
    let accepted = verdict(&show["plan"]["verdicts"], "max_removals_per_run", None)
        .unwrap_or_else(|| panic!("the journalled plan lacks the verdict: {show}"));
    assert_eq!(
        (&accepted["outcome"], &accepted["by"]),
        (&json!("accepted"), &json!(6)),
        "{accepted}"
    );

    // The approval was for that run only.
    tenant.withdraw(module, 6);
    assert_tripped(
        &tenant,
        "max_removals_per_run",
        None,
        5,
        6,
        "6 more removals after an approved run",
    )
    .await;
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_list_percent_additions_and_emptied_vanished_lists_trip_over_their_thresholds() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let mut tenant = converged(db).await;
    tenant.set_guard("max_removals_per_run", 100_000);
    // Whole modules come and go below; only the guards under test may stop a run.
    tenant.set_guard("max_source_shrink_percent", 90);

    // max_removal_percent_per_list: 10 % of the largest list, rounded down, may go.
    tenant.set_guard("max_removal_percent_per_list", 10);
    let (module, key) = largest_module(&tenant, None);
    let size = list_size(&tenant, &key);
    let limit = size / 10;
    assert!(limit >= 2, "the largest module has only {size} members");
    let mut withdrawn = tenant.withdraw(module, limit as usize);
    let plan = assert_passes(&tenant, "10 % of a list removed").await;
    assert_eq!(
        verdict(
            &plan["verdicts"],
            "max_removal_percent_per_list",
            Some(&key)
        ),
        None,
        "a list within its share gets no verdict"
    );
    withdrawn.extend(tenant.withdraw(module, 1));
    assert_held_by_guard(
        &tenant,
        &key,
        limit,
        limit + 1,
        "one member over 10 % of a list",
    )
    .await;
    // A list exactly `min_list_size_for_percent` long is judged; one member shorter is exempt.
    tenant.set_guard("min_list_size_for_percent", size);
    tenant
        .rollcall(&["plan", "--output", "json"])
        .await
        .expect(7);
    tenant.set_guard("min_list_size_for_percent", size + 1);
    assert_passes(&tenant, "a list below min_list_size_for_percent").await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the exempt list's removals");

    // max_additions_per_run: the withdrawn students enrol again.
    let additions = withdrawn.len() as i64;
    enrol(&mut tenant, module, &withdrawn);
    tenant.set_guard("max_additions_per_run", additions);
    let plan = assert_passes(&tenant, "additions at the limit").await;
    assert_eq!(
        verdict(&plan["verdicts"], "max_additions_per_run", None).map(|v| &v["outcome"]),
        Some(&json!("passed")),
        "{}",
        plan["verdicts"]
    );
    tenant.set_guard("max_additions_per_run", additions - 1);
    assert_tripped(
        &tenant,
        "max_additions_per_run",
        None,
        additions - 1,
        additions,
        "one addition over the limit",
    )
    .await;
    tenant.set_guard("max_additions_per_run", additions);
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the additions at the limit");

    // A vanished list of a family with `on_vanish = "empty"`: its members count as removals.
    tenant.set_family("modules", "on_vanish", "empty");
    tenant.set_guard("max_removal_percent_per_list", 100);
    let (closed, closed_key) = largest_module(&tenant, Some(module));
    let members = list_size(&tenant, &closed_key);
    tenant.edit_university(|university| {
        university.modules.remove(closed);
    });
    tenant.set_guard("max_removals_per_run", members);
    let plan = assert_passes(&tenant, "emptying a vanished list at the limit").await;
    let entry = plan["plan"]["lists"]
        .as_array()
        .and_then(|lists| lists.iter().find(|l| l["key"] == json!(closed_key)))
        .unwrap_or_else(|| panic!("the plan lacks the vanished list: {}", plan["plan"]));
    assert_eq!(
        (&entry["action"], &entry["on_vanish"]),
        (&json!("vanished"), &json!("empty")),
        "{entry}"
    );
    tenant.set_guard("max_removals_per_run", members - 1);
    assert_tripped(
        &tenant,
        "max_removals_per_run",
        None,
        members - 1,
        members,
        "emptying a vanished list one over the limit",
    )
    .await;
    tenant.set_guard("max_removals_per_run", members);
    tenant.rollcall(&["run"]).await.expect(0);
    let emptied = tenant
        .sandbox
        .state()
        .groups
        .into_iter()
        .find(|g| g.mail_nickname == closed_key)
        .expect("the vanished list's group is kept");
    assert!(
        emptied.members.is_empty(),
        "the vanished list still has {} members",
        emptied.members.len()
    );
    tenant.assert_converged("after the vanished list was emptied");
    tenant.finish();
}

/// `plan --out FILE` in the tenant's folder; the plan trips a guard, so it exits 3.
async fn save_plan(tenant: &Tenant, name: &str) -> PathBuf {
    let file = tenant.dir().join(name);
    let ran = tenant.rollcall(&["plan", "--out", path(&file)]).await;
    ran.expect(3);
    assert!(
        ran.stdout.contains("saved the plan to"),
        "`plan --out` does not say where it saved the plan:\n{}",
        ran.stdout
    );
    file
}

fn path(file: &Path) -> &str {
    file.to_str().expect("the temporary folder's path is UTF-8")
}

/// `apply FILE --reason …` exits 3 saying `why`, sends no write and records a stopped
/// `apply` run with the reason.
async fn assert_refused(tenant: &Tenant, file: &Path, why: &str) {
    let (writes, before) = (tenant.stat("writes"), tenant.sandbox.state());
    let reason = "reviewed the withdrawals";
    let ran = tenant
        .rollcall(&["apply", path(file), "--reason", reason])
        .await;
    ran.expect(3);
    for part in [why, "Nothing was changed", "rollcall plan --out FILE"] {
        assert!(
            ran.stderr.contains(part),
            "the refusal of {} lacks `{part}`:\n{}",
            file.display(),
            ran.stderr
        );
    }
    assert_eq!(
        tenant.stat("writes"),
        writes,
        "a refused plan sent writes ({why})"
    );
    assert!(
        tenant.sandbox.state() == before,
        "the tenant changed although the plan was refused ({why})"
    );
    let show = tenant.show_last_run().await;
    assert_eq!(
        (&show["kind"], &show["status"], &show["exit_code"]),
        (&json!("apply"), &json!("stopped"), &json!(3)),
        "{show}"
    );
    assert_eq!(show["approvals"]["reason"], json!(reason), "{show}");
}

async fn a_saved_plan_is_applied_once_exactly_as_it_was_reviewed(db: TestDatabase) {
    let mut tenant = converged(db).await;
    tenant.set_guard("max_removals_per_run", 3);
    let (module, _) = largest_module(&tenant, None);
    tenant.withdraw(module, 5);
    tenant.rollcall(&["run"]).await.expect(3);

    let file = save_plan(&tenant, "reviewed-plan.json").await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file)
            .expect("the plan file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the saved plan is readable by others");
    }
    let bytes = std::fs::read(&file).expect("the saved plan is readable");
    let saved: Value = serde_json::from_slice(&bytes).expect("the saved plan is JSON");
    assert_eq!(saved["version"], json!(2));
    assert_eq!(saved["plan"]["totals"]["removes"], json!(5));
    assert_eq!(
        saved["actual"].as_str().map(str::len),
        Some(64),
        "no actual fingerprint: {}",
        saved["actual"]
    );
    assert!(
        saved["sources"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == json!("enrolments")
                && s["checksum"].as_str().is_some_and(|c| c.len() == 64))),
        "the saved plan lacks the sources' checksums: {}",
        saved["sources"]
    );
    assert_eq!(
        verdict(&saved["verdicts"], "max_removals_per_run", None).map(|v| &v["outcome"]),
        Some(&json!("tripped"))
    );
    // `--output json` keeps stdout one JSON document when the plan is saved too.
    let other = tenant.dir().join("as-json.json");
    tenant
        .rollcall(&["plan", "--output", "json", "--out", path(&other)])
        .await
        .expect(3)
        .json();
    assert!(other.exists(), "`plan --output json --out` saved nothing");

    // The reason is required.
    tenant.rollcall(&["apply", path(&file)]).await.expect(2);
    tenant
        .rollcall(&["apply", path(&file), "--reason", " "])
        .await
        .expect(2);

    let writes = tenant.stat("writes");
    let reason = "five students withdrew; checked with the registry";
    tenant
        .rollcall(&["apply", path(&file), "--reason", reason])
        .await
        .expect(0);
    assert_eq!(tenant.stat("writes") - writes, 5, "apply's writes");
    tenant.assert_converged("after the saved plan was applied");
    let show = tenant.show_last_run().await;
    assert_eq!(
        (&show["kind"], &show["status"], &show["journal"]["done"]),
        (&json!("apply"), &json!("succeeded"), &json!(5)),
        "{show}"
    );
    let approvals = &show["approvals"];
    assert_eq!(approvals["reason"], json!(reason), "{show}");
    assert_eq!(
        approvals["plan_sha256"],
        json!(hex::encode(Sha256::digest(&bytes))),
        "{show}"
    );
    assert_eq!(approvals["accept_removals"], json!(5), "{show}");
    assert_eq!(
        verdict(&show["plan"]["verdicts"], "max_removals_per_run", None).map(|v| &v["outcome"]),
        Some(&json!("accepted")),
        "{show}"
    );

    // Applied once: the membership it was computed from is gone.
    assert_refused(
        &tenant,
        &file,
        "the membership of the managed groups in Microsoft 365 changed",
    )
    .await;
    tenant.finish();
}

async fn a_saved_plan_is_refused_once_sources_membership_or_its_age_moved_on(db: TestDatabase) {
    let mut tenant = converged(db).await;
    tenant.set_guard("max_removals_per_run", 3);
    let (module, key) = largest_module(&tenant, None);
    tenant.withdraw(module, 5);

    // A source changed since.
    let file = save_plan(&tenant, "before-another-withdrawal.json").await;
    tenant.withdraw(module, 1);
    assert_refused(&tenant, &file, "source `enrolments` changed").await;

    // Membership changed since, behind rollcall's back.
    let file = save_plan(&tenant, "before-an-admin-edit.json").await;
    let graph = RawGraph::connect(&tenant.sandbox).await;
    let (other, member) = tenant
        .desired
        .lists
        .iter()
        .filter(|(list, _)| **list != key)
        .find_map(|(list, members)| Some((list.clone(), members.first()?.clone())))
        .expect("another list with members");
    graph
        .remove_members(&tenant.group_id(&other), &[member])
        .await;
    assert_refused(
        &tenant,
        &file,
        "the membership of the managed groups in Microsoft 365 changed",
    )
    .await;

    // Older than `[guard].plan_ttl`.
    tenant.set_guard("plan_ttl", "1s");
    let file = save_plan(&tenant, "old.json").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_refused(&tenant, &file, "older than [guard].plan_ttl = 1s").await;

    // Not a saved plan of this rollcall: a usage error before anything is read.
    let garbage = tenant.dir().join("garbage.json");
    std::fs::write(&garbage, "{\"plan\": [1, 2").expect("the garbage is written");
    let mut newer: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("the saved plan")).expect("JSON");
    newer["version"] = json!(99);
    let future = tenant.dir().join("future.json");
    std::fs::write(&future, newer.to_string()).expect("the newer plan is written");
    let missing = tenant.dir().join("missing.json");
    for (file, says) in [
        (&garbage, "is not a saved plan"),
        (&future, "format version 99"),
        (&missing, "cannot read the saved plan"),
    ] {
        let (runs, writes) = (tenant.last_run().await, tenant.stat("writes"));
        let ran = tenant
            .rollcall(&["apply", path(file), "--reason", "any"])
            .await;
        ran.expect(2);
        assert!(
            ran.stderr.contains(says),
            "{}:\n{}",
            file.display(),
            ran.stderr
        );
        assert_eq!(
            tenant.last_run().await,
            runs,
            "a run was recorded for {}",
            file.display()
        );
        assert_eq!(tenant.stat("writes"), writes);
    }
    tenant.finish();
}
