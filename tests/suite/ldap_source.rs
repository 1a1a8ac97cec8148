//! LDAP sources against a private OpenLDAP: entries with templates, and groups whose member
//! DNs are read wherever they sit, both converging in the sandbox; and a search cut short by
//! the server's size limit stopping the run before any change.

use crate::common::numbered;
use crate::common::scene::{Scene, upns};
use crate::common::slapd::{READER_DN, READER_PASSWORD, SUFFIX, Slapd};

/// Paging reads past the size limit of 3; this is what a university's AD or OpenLDAP does.
const PAGED_PAST_THE_LIMIT: &str = "sizelimit size.soft=3 size.hard=3 size.prtotal=unlimited";
/// Paging is held to the same limit: a search of more entries is cut short by the server.
const PAGING_LIMITED: &str = "sizelimit size.soft=3 size.hard=3";

/// Six people (one with two departments, one with none), one alumnus outside `ou=people`,
/// and two groups, one naming a DN that is gone.
fn directory() -> String {
    let person = |n: usize, ou: &str, departments: &[&str]| {
        let mut entry = format!(
            "dn: uid=user{n},ou={ou},{SUFFIX}\nobjectClass: inetOrgPerson\nuid: user{n}\ncn: User {n}\nsn: {n}\nmail: user{n}@example.ac.uk\n"
        );
        for department in departments {
            entry.push_str(&format!("departmentNumber: {department}\n"));
        }
        entry
    };
    let music = "Ysgol Gerddoriaeth â Drama";
    let mut ldif = [
        person(0, "people", &[music]),
        person(1, "people", &[music]),
        person(2, "people", &["Physics"]),
        person(3, "people", &["Physics"]),
        person(4, "people", &["Physics", "Maths"]),
        person(5, "people", &[]),
        person(6, "alumni", &["Physics"]),
    ]
    .join("\n");
    let group = |cn: &str, title: &str, members: &[&str]| {
        let mut entry = format!(
            "\ndn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\ndescription: {title}\n"
        );
        for member in members {
            entry.push_str(&format!("member: {member}\n"));
        }
        entry
    };
    let dn = |n: usize, ou: &str| format!("uid=user{n},ou={ou},{SUFFIX}");
    ldif.push_str(&group(
        "mod-cs101",
        "Programming",
        &[&dn(0, "people"), &dn(2, "people"), &dn(6, "alumni")],
    ));
    ldif.push_str(&group(
        "mod-ph200",
        "Quantum Mechanics",
        &[
            &dn(3, "people"),
            &dn(4, "people"),
            &format!("uid=gone,ou=people,{SUFFIX}"),
        ],
    ));
    ldif
}

fn source(slapd: &Slapd, form: &str) -> String {
    format!(
        "[[family]]\nname = \"departments\"\n\n[[source]]\nname = \"directory\"\nfamily = \"departments\"\nkind = \"ldap\"\n\
         url = \"{}\"\nbind_dn = \"{READER_DN}\"\npassword_env = \"ROLLCALL_TEST_LDAP_PASSWORD\"\n\
         member = \"{{mail}}\"\nmember_key = \"mail\"\ntimeout = \"30s\"\n{form}",
        slapd.url
    )
}

const ENTRIES: &str = "base = \"ou=people,dc=example,dc=ac,dc=uk\"\nfilter = \"(objectClass=inetOrgPerson)\"\nlist = \"dept-{departmentNumber|slug}\"\ndisplay_name = \"Department of {departmentNumber}\"\n";
const GROUPS: &str = "base = \"ou=groups,dc=example,dc=ac,dc=uk\"\ngroups_filter = \"(cn=mod-*)\"\ndisplay_name = \"{description}\"\n";

async fn scene(slapd: &Slapd, form: &str) -> Scene {
    let mut scene = Scene::start(numbered::seed(8, &[])).await;
    scene.env("ROLLCALL_TEST_LDAP_PASSWORD", READER_PASSWORD);
    scene.write_config(&source(slapd, form));
    scene
}

#[tokio::test]
async fn ldap_entries_with_templates_converge_and_skip_entries_without_a_department() {
    let Some(slapd) = Slapd::start(PAGED_PAST_THE_LIMIT, &directory()) else {
        return;
    };
    let scene = scene(&slapd, ENTRIES).await;
    let run = scene.rollcall(&["run"]).await;
    run.expect(0);
    let lists = scene.lists();
    assert_eq!(lists["dept-ysgol-gerddoriaeth-a-drama"], upns(&[0, 1]));
    assert_eq!(lists["dept-physics"], upns(&[2, 3, 4]));
    assert_eq!(lists["dept-maths"], upns(&[4]));
    let report = format!("{}{}", run.stdout, run.stderr);
    assert!(
        report.contains("source directory (ldap): 6 rows"),
        "{report}"
    );
    assert!(
        report.contains("1 entries skipped") && report.contains("uid=user5,ou=people"),
        "{report}"
    );
    scene.rollcall(&["run"]).await.expect(0);
    // `explain` names the entry (its DN) whose attributes put the member on the list.
    let explained = scene
        .rollcall(&[
            "explain",
            "dept-maths",
            "mail:User4@example.ac.uk",
            "--output",
            "json",
        ])
        .await;
    explained.expect(0);
    let answer: serde_json::Value = serde_json::from_str(&explained.stdout).unwrap();
    assert_eq!(answer["state"], "on the list", "{answer}");
    let row = &answer["rows"][0];
    assert_eq!(row["kind"], "ldap");
    assert_eq!(
        row["place"],
        format!("uid=user4,ou=people,{SUFFIX}").as_str()
    );
}

#[tokio::test]
async fn ldap_groups_read_each_member_dn_wherever_it_sits() {
    let Some(slapd) = Slapd::start(PAGED_PAST_THE_LIMIT, &directory()) else {
        return;
    };
    let scene = scene(&slapd, GROUPS).await;
    let run = scene.rollcall(&["run"]).await;
    run.expect(0);
    let lists = scene.lists();
    assert_eq!(lists["mod-cs101"], upns(&[0, 2, 6]));
    assert_eq!(lists["mod-ph200"], upns(&[3, 4]));
    let report = format!("{}{}", run.stdout, run.stderr);
    assert!(report.contains("uid=gone,ou=people"), "{report}");
}

#[tokio::test]
async fn ldap_search_cut_short_by_the_size_limit_stops_with_no_removal() {
    let ldif = directory();
    let scene = {
        let Some(slapd) = Slapd::start(PAGED_PAST_THE_LIMIT, &ldif) else {
            return;
        };
        let scene = scene(&slapd, ENTRIES).await;
        scene.rollcall(&["run"]).await.expect(0);
        scene
    };
    let before = scene.sandbox.state();
    let Some(limited) = Slapd::start(PAGING_LIMITED, &ldif) else {
        return;
    };
    scene.write_config(&source(&limited, ENTRIES));
    let run = scene.rollcall(&["run"]).await;
    run.expect(3);
    assert!(
        run.stderr.contains("source `directory`") && run.stderr.contains("size limit"),
        "{}",
        run.stderr
    );
    assert_eq!(scene.sandbox.state(), before, "nothing was removed");
}
