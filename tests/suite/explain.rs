//! `rollcall explain` end to end (DESIGN.md "Command line"): why a member is (not) on a
//! list, shown with the CSV row (file:line), the override, the run that removed them and
//! why, the nearest key for a typo, every list of a person, and a list's own story; as text
//! that fits 80 columns and as JSON.

use serde_json::Value;

use crate::common::db::TestDatabase;
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(explain_traces_rows_overrides_removals_near_keys_and_every_list_of_a_person);

/// The 1-based line of `modules.csv` that puts `upn` on `list` (the header is line 1).
fn csv_line(tenant: &Tenant, list: &str, upn: &str) -> String {
    let path = tenant.dir().join("modules.csv");
    let text = std::fs::read_to_string(&path).expect("modules.csv is readable");
    let number = text
        .lines()
        .position(|line| {
            let mut cells = line.split(',');
            cells.next() == Some(list) && cells.next() == Some(upn)
        })
        .unwrap_or_else(|| panic!("modules.csv has no row {list},{upn}"));
    format!("{}:{}", path.display(), number + 1)
}

async fn explain_json(tenant: &Tenant, args: &[&str]) -> Value {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    all.extend(["--output", "json"]);
    tenant.rollcall(&all).await.expect(0).json()
}

async fn explain_text(tenant: &Tenant, args: &[&str]) -> String {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let ran = tenant.rollcall(&all).await;
    ran.expect(0);
    for line in ran.stdout.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
    }
    // Wrapped lines joined again, so that a phrase can be looked for wherever it broke.
    ran.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn explain_traces_rows_overrides_removals_near_keys_and_every_list_of_a_person(
    db: TestDatabase,
) {
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    let build = tenant.last_run().await.0;
    let module = tenant.university.modules[0].clone();
    let key = module.key.clone();
    let mut students = module
        .students
        .iter()
        .map(|&p| tenant.university.people[p].clone())
        .filter(|p| p.has_account);
    // `withdraw` takes the first student with an account; the others stay enrolled.
    let first = students.next().unwrap();
    let (kept, typo_of, excluded) = (
        students.next().unwrap(),
        students.next().unwrap(),
        students.next().unwrap(),
    );

    // A member from a CSV row: the file and line, the account, added by the build.
    let answer = explain_json(&tenant, &[&key.to_uppercase(), &kept.upn]).await;
    assert_eq!(answer["form"], "member");
    assert_eq!(answer["list"], key.as_str(), "list keys match without case");
    assert_eq!(answer["desired"], true);
    assert_eq!(answer["in_microsoft_365"], true);
    assert_eq!(answer["state"], "on the list");
    let row = &answer["rows"][0];
    assert_eq!(row["source"], "enrolments");
    assert_eq!(row["kind"], "csv");
    assert_eq!(row["place"], csv_line(&tenant, &key, &kept.upn).as_str());
    assert_eq!(answer["identity"]["key_kind"], "upn");
    assert_eq!(answer["identity"]["object_id"], kept.object_id.as_str());
    let history = answer["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["run"], build);
    assert_eq!(history[0]["operation"], "add_member");
    assert_eq!(history[0]["status"], "done");
    assert_eq!(history[0]["reason"], "the sources name them");
    assert!(answer["removal_due"].is_null());
    let text = explain_text(&tenant, &[&key, &kept.upn]).await;
    assert!(
        text.contains(&format!("{} on {key}: on the list", kept.upn)),
        "{text}"
    );
    assert!(text.contains("enrolments (csv)"), "{text}");

    // --live asks Microsoft 365 itself, and names the account.
    let live = explain_json(&tenant, &[&key, &kept.upn, "--live"]).await;
    assert_eq!(
        (&live["live"], &live["in_microsoft_365"]),
        (&true.into(), &true.into())
    );
    assert_eq!(live["identity"]["display_name"], kept.display_name.as_str());

    // A member removed two runs ago: the run and the reason.
    let withdrawn = tenant.withdraw(0, 1)[0];
    let withdrawn = tenant.university.people[withdrawn].clone();
    assert_eq!(withdrawn.upn, first.upn);
    tenant.rollcall(&["run"]).await.expect(0);
    let removal = tenant.last_run().await.0;
    tenant.rollcall(&["run"]).await.expect(0);

    // An override includes a stranger; an override source row excludes a student.
    let stranger = tenant
        .university
        .people
        .iter()
        .find(|p| p.has_account && !module.students.contains(&index_of(&tenant, p)))
        .cloned()
        .unwrap();
    let exceptions = tenant.dir().join("exceptions.csv");
    std::fs::write(
        &exceptions,
        format!(
            "list,member,action,from,until,reason\n{key},upn:{},exclude,,,asked to leave (INC-42)\n",
            excluded.upn
        ),
    )
    .unwrap();
    tenant.add_config(&format!(
        "[[override]]\nlist = \"{key}\"\ninclude = [\"upn:{}\"]\n\n[[override_source]]\npath = {}\n",
        stranger.upn,
        toml::Value::String(exceptions.to_string_lossy().into_owned())
    ));
    tenant.rollcall(&["run"]).await.expect(0);
    let overrides_run = tenant.last_run().await.0;
    assert_eq!(overrides_run, removal + 2, "two runs after the removal");

    let answer = explain_json(&tenant, &[&key, &withdrawn.upn]).await;
    assert_eq!(answer["desired"], false);
    assert_eq!(answer["in_microsoft_365"], false);
    let last = answer["history"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(last["run"], removal);
    assert_eq!(last["operation"], "remove_member");
    assert_eq!(last["status"], "done");
    assert_eq!(last["reason"], "the sources no longer name them");
    let text = explain_text(&tenant, &[&key, &withdrawn.upn]).await;
    assert!(text.contains(&format!("run {removal} ")), "{text}");
    assert!(
        text.contains("removed: the sources no longer name them"),
        "{text}"
    );

    let answer = explain_json(&tenant, &[&key, &stranger.upn]).await;
    assert_eq!(answer["desired"], true);
    assert_eq!(answer["in_microsoft_365"], true);
    assert!(answer["rows"].as_array().unwrap().is_empty());
    let hit = &answer["overrides"][0];
    assert_eq!(hit["include"], true);
    assert_eq!(hit["applies_now"], true);
    assert!(
        hit["origin"].as_str().unwrap().ends_with("[[override]] 0"),
        "{hit}"
    );
    let added = &answer["history"][0];
    assert_eq!(added["run"], overrides_run);
    assert!(
        added["reason"].as_str().unwrap().contains("includes them"),
        "{added}"
    );

    let answer = explain_json(&tenant, &[&key, &excluded.upn]).await;
    assert_eq!(answer["desired"], false);
    assert_eq!(answer["state"], "kept off the list by an override");
    assert_eq!(
        answer["rows"][0]["source"], "enrolments",
        "the row still names them"
    );
    let hit = &answer["overrides"][0];
    assert_eq!(hit["include"], false);
    assert_eq!(hit["reason"], "asked to leave (INC-42)");
    assert_eq!(
        hit["origin"],
        format!("{}:2", exceptions.display()).as_str()
    );
    let removed = answer["history"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(removed["run"], overrides_run);
    assert!(
        removed["reason"]
            .as_str()
            .unwrap()
            .contains("excludes them"),
        "{removed}"
    );
    let text = explain_text(&tenant, &[&key, &excluded.upn]).await;
    assert!(text.contains("asked to leave (INC-42)"), "{text}");

    // Not on the list and should not be: the sources read and the nearest key.
    let typo = typo_of.upn.replacen('.', "", 1);
    let answer = explain_json(&tenant, &[&key, &typo]).await;
    assert_eq!(answer["desired"], false);
    assert_eq!(answer["sources_read"][0], "enrolments (csv)");
    let nearest: Vec<&str> = answer["nearest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(nearest.contains(&typo_of.upn.as_str()), "{nearest:?}");
    let text = explain_text(&tenant, &[&key, &typo]).await;
    assert!(text.contains("none names them"), "{text}");

    // Every list of a person: their modules by UPN, their department through the account.
    let answer = explain_json(&tenant, &["--member", &format!("upn:{}", kept.upn)]).await;
    assert_eq!(answer["form"], "person");
    let lists: Vec<&str> = answer["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["list"].as_str().unwrap())
        .collect();
    let person = index_of(&tenant, &kept);
    let department = &tenant.university.departments[kept.department].key;
    assert!(lists.contains(&key.as_str()), "{lists:?}");
    assert!(lists.contains(&department.as_str()), "{lists:?}");
    for module in tenant
        .university
        .modules
        .iter()
        .filter(|m| m.students.contains(&person))
    {
        assert!(lists.contains(&module.key.as_str()), "{lists:?}");
    }
    for list in answer["lists"].as_array().unwrap() {
        assert_eq!(list["state"], "on the list", "{list}");
    }
    let text = explain_text(&tenant, &["--member", &kept.upn]).await;
    assert!(
        text.contains(&format!("{department}: on the list")),
        "{text}"
    );

    // A list alone: family, group, counts, its last runs.
    let answer = explain_json(&tenant, &[&key]).await;
    assert_eq!(answer["form"], "list");
    assert_eq!(answer["family"], "modules");
    assert_eq!(answer["group_id"], tenant.group_id(&key).as_str());
    assert_eq!(answer["desired"], answer["actual"]);
    assert!(answer["held"].as_array().unwrap().is_empty());
    let runs = answer["runs"].as_array().unwrap();
    assert_eq!(runs[0]["run"], overrides_run);
    assert_eq!(
        (&runs[0]["added"], &runs[0]["removed"]),
        (&1.into(), &1.into())
    );
    assert_eq!(runs[1]["run"], removal);
    let text = explain_text(&tenant, &[&key]).await;
    assert!(text.contains("held: no"), "{text}");

    // Read-only: it answers while another process holds the run lease.
    let store = tenant.store().await;
    let lease = store
        .acquire("another-host:1", std::time::Duration::from_secs(300))
        .await
        .unwrap()
        .expect("the lease is free");
    let answer = explain_json(&tenant, &[&key, &kept.upn]).await;
    assert_eq!(answer["state"], "on the list");
    store.release(&lease).await.unwrap();
    store.close().await;

    // A held list: fed by a second family too, it says why and what releases it.
    let clash = tenant.dir().join("clash.csv");
    std::fs::write(&clash, format!("list,member\n{key},{}\n", kept.employee_id)).unwrap();
    tenant.add_config(&format!(
        "[[source]]\nname = \"clash\"\nfamily = \"departments\"\nkind = \"csv\"\n\
         path = {}\nmember_key = \"employee_id\"\n",
        toml::Value::String(clash.to_string_lossy().into_owned())
    ));
    let answer = explain_json(&tenant, &[&key]).await;
    let hold = &answer["held"][0];
    assert_eq!(hold["seen"], "now");
    assert_eq!(hold["reason"], "family_clash");
    assert!(
        hold["release"].as_str().unwrap().contains("one family"),
        "{hold}"
    );
    let text = explain_text(&tenant, &[&key]).await;
    assert!(text.contains("to release: feed"), "{text}");
    let answer = explain_json(&tenant, &[&key, &kept.upn]).await;
    assert!(
        answer["state"].as_str().unwrap().contains("held"),
        "{answer}"
    );

    let unknown = tenant.rollcall(&["explain", "no-such-list"]).await;
    unknown.expect(2);
    assert!(
        unknown.stderr.contains("`no-such-list`"),
        "{}",
        unknown.stderr
    );

    // A source that cannot be read stops explain as it stops a run, naming the place.
    std::fs::write(
        &exceptions,
        format!("list,member,action\n{key},upn:x@y.org,add\n"),
    )
    .unwrap();
    let faulty = tenant.rollcall(&["explain", &key, &kept.upn]).await;
    faulty.expect(3);
    assert!(
        faulty
            .stderr
            .contains(&format!("{}:2", exceptions.display())),
        "{}",
        faulty.stderr
    );
    tenant.finish();
}

fn index_of(tenant: &Tenant, person: &rollcall::generate::Person) -> usize {
    tenant
        .university
        .people
        .iter()
        .position(|p| p.upn == person.upn)
        .expect("the person is in the university")
}
