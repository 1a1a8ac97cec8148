//! Entra ID sources against the sandbox: users by a `$filter` on an HR attribute, members of
//! an existing group, and a group that does not exist (a source fault, never an empty list).

use std::collections::BTreeSet;

use crate::common::numbered;
use crate::common::scene::{Scene, upns};

const FAMILY: &str = "[[family]]\nname = \"departments\"\n";

/// Users 0–2 in a Welsh-named department, 3–4 in Physics, 5 staff without a department,
/// 6 a student; group `list-0` holds users 1, 4 and 6.
async fn scene() -> Scene {
    let mut seed = numbered::seed(7, &[&[1, 4, 6]]);
    for (n, user) in seed.users.iter_mut().enumerate() {
        user.department = match n {
            0..=2 => Some("Gŵyddoniaeth Bwyd".to_owned()),
            3 | 4 => Some("Physics".to_owned()),
            _ => None,
        };
        user.employee_type = Some(if n == 6 { "Student" } else { "Staff" }.to_owned());
    }
    Scene::start(seed).await
}

#[tokio::test]
async fn entra_source_by_department_converges_and_skips_users_without_one() {
    let scene = scene().await;
    scene.write_config(&format!(
        "{FAMILY}\n[[source]]\nname = \"staff\"\nfamily = \"departments\"\nkind = \"entra\"\n\
         users_filter = \"employeeType eq 'Staff'\"\nlist = \"dept-{{department|slug}}\"\n\
         display_name = \"Department of {{department}}\"\nmember_key = \"object_id\"\n"
    ));
    let plan = scene.rollcall(&["plan"]).await;
    plan.expect(0);
    assert!(
        plan.stdout.contains("source staff (entra): 5 rows"),
        "{}",
        plan.stdout
    );
    let run = scene.rollcall(&["run"]).await;
    run.expect(0);
    let lists = scene.lists();
    assert_eq!(lists["dept-gwyddoniaeth-bwyd"], upns(&[0, 1, 2]));
    assert_eq!(lists["dept-physics"], upns(&[3, 4]));
    // User 5 has no department: skipped, counted and named, never a `dept-` list.
    assert!(!lists.keys().any(|k| k == "dept-" || k.is_empty()));
    let report = format!("{}{}", run.stdout, run.stderr);
    assert!(report.contains("1 entries skipped"), "{report}");
    assert!(
        report.contains(&numbered::user_id(5)) && report.contains("`department` is empty"),
        "{report}"
    );
    // A second run finds nothing to do.
    scene.rollcall(&["run"]).await.expect(0);
    assert_eq!(scene.lists()["dept-physics"], upns(&[3, 4]));
    // `explain` names the Entra user whose properties put them on the list.
    let user = numbered::user_id(3);
    let explained = scene
        .rollcall(&["explain", "DEPT-PHYSICS", &user, "--output", "json"])
        .await;
    explained.expect(0);
    let answer: serde_json::Value = serde_json::from_str(&explained.stdout).unwrap();
    assert_eq!(answer["state"], "on the list", "{answer}");
    assert_eq!(answer["rows"][0]["kind"], "entra");
    assert_eq!(
        answer["rows"][0]["place"].as_str().map(str::to_lowercase),
        Some(user.to_lowercase())
    );
}

#[tokio::test]
async fn entra_source_by_group_copies_an_existing_groups_members() {
    let scene = scene().await;
    scene.write_config(&format!(
        "{FAMILY}\n[[source]]\nname = \"copy\"\nfamily = \"departments\"\nkind = \"entra\"\n\
         group = \"list-0\"\nlist = \"copy-of-list-0\"\nmember_key = \"upn\"\n\n\
         [[source]]\nname = \"by-id\"\nfamily = \"departments\"\nkind = \"entra\"\n\
         group = \"{}\"\nlist = \"{{employeeType|slug}}-of-list-0\"\nmember_key = \"object_id\"\n",
        numbered::group_id(0)
    ));
    scene.rollcall(&["run"]).await.expect(0);
    let lists = scene.lists();
    assert_eq!(lists["copy-of-list-0"], upns(&[1, 4, 6]));
    assert_eq!(lists["staff-of-list-0"], upns(&[1, 4]));
    assert_eq!(lists["student-of-list-0"], upns(&[6]));
}

#[tokio::test]
async fn entra_source_with_a_missing_group_stops_before_any_change() {
    let scene = scene().await;
    scene.write_config(&format!(
        "{FAMILY}\n[[source]]\nname = \"copy\"\nfamily = \"departments\"\nkind = \"entra\"\n\
         group = \"list-0\"\nlist = \"copy-of-list-0\"\nmember_key = \"upn\"\n"
    ));
    scene.rollcall(&["run"]).await.expect(0);
    let before = scene.sandbox.state();
    scene.write_config(&format!(
        "{FAMILY}\n[[source]]\nname = \"copy\"\nfamily = \"departments\"\nkind = \"entra\"\n\
         group = \"no-such-group\"\nlist = \"copy-of-list-0\"\nmember_key = \"upn\"\n"
    ));
    let run = scene.rollcall(&["run"]).await;
    run.expect(3);
    assert!(
        run.stderr.contains("source `copy`") && run.stderr.contains("no group `no-such-group`"),
        "{}",
        run.stderr
    );
    assert_eq!(scene.sandbox.state(), before, "nothing changed");
    let members: BTreeSet<String> = scene.lists()["copy-of-list-0"].clone();
    assert_eq!(members, upns(&[1, 4, 6]));
}
