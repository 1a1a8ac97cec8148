//! `rollcall generate`: deterministic files, sizes, and refusal to overwrite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use assert_cmd::Command;
use rollcall::generate::{
    FILE_NAMES, GenerateOptions, SERVICE_ACCOUNT, Size, generate, is_valid_mail_nickname,
};
use rollcall::sandbox::Seed;
use sha2::{Digest, Sha256};

fn rollcall() -> Command {
    Command::cargo_bin("rollcall").expect("the rollcall binary is built")
}

fn generate_into(dir: &Path, extra: &[&str]) {
    rollcall()
        .args(["generate", "--size", "small", "--out"])
        .arg(dir)
        .args(extra)
        .assert()
        .success();
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

fn within_5_percent(actual: usize, stated: usize) -> bool {
    actual.abs_diff(stated) * 20 <= stated
}

#[test]
fn same_seed_writes_identical_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate_into(a.path(), &["--seed", "7", "--drift"]);
    generate_into(b.path(), &["--seed", "7", "--drift"]);
    let (a, b) = (files(a.path()), files(b.path()));
    assert_eq!(
        a.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        FILE_NAMES.into_iter().collect::<BTreeSet<_>>()
    );
    for (name, bytes) in &a {
        assert!(
            &b[name] == bytes,
            "{name} differs between two runs with the same seed"
        );
    }
}

#[test]
fn different_seed_writes_different_files() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate_into(a.path(), &["--seed", "1"]);
    generate_into(b.path(), &["--seed", "2"]);
    let (a, b) = (files(a.path()), files(b.path()));
    for name in ["modules.csv", "departments.csv", "seed.json"] {
        assert_ne!(a[name], b[name], "{name}");
    }
}

#[test]
fn large_university_is_within_5_percent_of_the_stated_sizes() {
    let counts = generate(&GenerateOptions::for_size(Size::Large, 42)).counts();
    assert!(within_5_percent(counts.students, 40_000), "{counts:?}");
    assert!(within_5_percent(counts.staff, 5_000), "{counts:?}");
    assert!(within_5_percent(counts.lists, 3_000), "{counts:?}");
    assert!(within_5_percent(counts.memberships, 300_000), "{counts:?}");
}

#[test]
fn smaller_sizes_scale_from_the_student_count() {
    let small = generate(&GenerateOptions::for_size(Size::Small, 42)).counts();
    assert!(
        within_5_percent(small.students, 1_000) && within_5_percent(small.staff, 120),
        "{small:?}"
    );
    let medium = generate(&GenerateOptions::for_size(Size::Medium, 42)).counts();
    assert!(
        within_5_percent(medium.students, 10_000) && within_5_percent(medium.staff, 1_250),
        "{medium:?}"
    );
}

#[test]
fn control_files_match_their_csvs() {
    let dir = tempfile::tempdir().unwrap();
    generate_into(dir.path(), &[]);
    for csv in ["modules.csv", "departments.csv"] {
        let bytes = std::fs::read(dir.path().join(csv)).unwrap();
        assert_eq!(bytes.last(), Some(&b'\n'), "{csv} ends with a newline");
        let rows = bytes.iter().filter(|&&b| b == b'\n').count() - 1;
        let control = std::fs::read_to_string(dir.path().join(format!("{csv}.ctl"))).unwrap();
        assert_eq!(
            control,
            format!(
                "rows={rows}\nsha256={}\n",
                hex::encode(Sha256::digest(&bytes))
            )
        );
    }
}

#[test]
fn csvs_hold_valid_list_keys_and_every_person() {
    let dir = tempfile::tempdir().unwrap();
    generate_into(dir.path(), &[]);
    let mut keys = BTreeSet::new();
    let mut departments_members = BTreeSet::new();
    for csv in ["modules.csv", "departments.csv"] {
        let mut reader = csv::Reader::from_path(dir.path().join(csv)).unwrap();
        assert_eq!(
            reader.headers().unwrap(),
            vec!["list", "member", "role", "display_name", "description"]
        );
        for record in reader.records() {
            let record = record.unwrap();
            keys.insert(record[0].to_owned());
            if csv == "departments.csv" {
                departments_members.insert(record[1].to_owned());
            }
        }
    }
    assert!(keys.iter().all(|k| is_valid_mail_nickname(k)), "{keys:?}");
    let university = generate(&GenerateOptions::for_size(Size::Small, 42));
    assert_eq!(keys.len(), university.counts().lists);
    assert_eq!(departments_members.len(), university.people.len());
}

/// Each list names exactly one owner (its module leader or head of department), and every
/// owner is a user of the seed, as is the service account the generated config makes the
/// families' fixed owner.
#[test]
fn every_list_has_one_owner_row_naming_a_user_of_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    generate_into(dir.path(), &[]);
    let seed: Seed =
        serde_json::from_slice(&std::fs::read(dir.path().join("seed.json")).unwrap()).unwrap();
    assert!(
        seed.users
            .iter()
            .any(|u| u.user_principal_name == SERVICE_ACCOUNT)
    );
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (csv, key) in [("modules.csv", "upn"), ("departments.csv", "employee_id")] {
        let users: BTreeSet<String> = seed
            .users
            .iter()
            .filter_map(|u| match key {
                "upn" => Some(u.user_principal_name.clone()),
                _ => u.employee_id.clone(),
            })
            .collect();
        for record in csv::Reader::from_path(dir.path().join(csv))
            .unwrap()
            .records()
        {
            let record = record.unwrap();
            let owned = owners.entry(record[0].to_owned()).or_default();
            match &record[2] {
                "member" => {}
                "owner" => {
                    assert!(
                        users.contains(&record[1]),
                        "{csv}: {record:?} has no account"
                    );
                    owned.push(record[1].to_owned());
                }
                other => panic!("{csv}: role {other:?}"),
            }
        }
    }
    let university = generate(&GenerateOptions::for_size(Size::Small, 42));
    assert_eq!(owners.len(), university.counts().lists);
    for (list, owned) in &owners {
        assert_eq!(owned.len(), 1, "{list}: {owned:?}");
    }
    assert_eq!(
        owners.values().map(Vec::len).sum::<usize>(),
        university.owner_counts().owner_rows
    );
}

#[test]
fn people_without_accounts_are_in_the_csvs_but_not_in_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    generate_into(dir.path(), &[]);
    let seed: Seed =
        serde_json::from_slice(&std::fs::read(dir.path().join("seed.json")).unwrap()).unwrap();
    let users: BTreeSet<String> = seed
        .users
        .iter()
        .map(|u| u.user_principal_name.clone())
        .collect();
    let mut reader = csv::Reader::from_path(dir.path().join("modules.csv")).unwrap();
    let members: BTreeSet<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    let unprovisioned: Vec<&String> = members.difference(&users).collect();
    assert!(!unprovisioned.is_empty(), "some members have no account");
    assert!(
        unprovisioned.len() * 100 <= members.len(),
        "{} of {}",
        unprovisioned.len(),
        members.len()
    );
    let upns: BTreeSet<String> = generate(&GenerateOptions::for_size(Size::Small, 42))
        .people
        .iter()
        .map(|p| p.upn.clone())
        .collect();
    assert!(unprovisioned.iter().all(|upn| upns.contains(*upn)));
}

#[test]
fn drift_seeds_pre_existing_and_unmanaged_groups() {
    let (plain, drifted) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate_into(plain.path(), &[]);
    generate_into(drifted.path(), &["--drift"]);
    let read = |dir: &Path| -> Seed {
        serde_json::from_slice(&std::fs::read(dir.join("seed.json")).unwrap()).unwrap()
    };
    assert!(read(plain.path()).groups.is_empty());
    let seed = read(drifted.path());
    let lists: BTreeSet<String> = csv::Reader::from_path(drifted.path().join("modules.csv"))
        .unwrap()
        .records()
        .chain(
            csv::Reader::from_path(drifted.path().join("departments.csv"))
                .unwrap()
                .records(),
        )
        .map(|r| r.unwrap()[0].to_owned())
        .collect();
    let managed = seed
        .groups
        .iter()
        .filter(|g| lists.contains(&g.mail_nickname))
        .count();
    assert_eq!(managed, (lists.len() as f64 * 0.05).round() as usize);
    assert_eq!(seed.groups.len() - managed, 20);
    // The sources are the same with or without drift: drift only changes the tenant.
    assert_eq!(
        std::fs::read(plain.path().join("modules.csv")).unwrap(),
        std::fs::read(drifted.path().join("modules.csv")).unwrap()
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    generate_into(dir.path(), &[]);
    let out = rollcall()
        .args(["generate", "--size", "small", "--seed", "9", "--out"])
        .arg(dir.path())
        .assert()
        .code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("--force"), "{stderr}");
    generate_into(dir.path(), &["--seed", "9", "--force"]);
}

#[test]
fn written_config_fragment_loads() {
    let dir = tempfile::tempdir().unwrap();
    generate_into(dir.path(), &[]);
    rollcall()
        .args(["config", "check"])
        .env("ROLLCALL_CONFIG", dir.path().join("rollcall.toml"))
        .assert()
        .success();
}

/// `rollcall sandbox --generate small --drift` serves exactly the accounts and groups that
/// `rollcall generate --size small --drift` writes to seed.json, so an operator can rehearse
/// against the generated CSVs without copying files around.
#[tokio::test]
async fn sandbox_generate_serves_the_generated_seed() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command as Process, Stdio};

    let binary = assert_cmd::cargo::cargo_bin("rollcall");
    let mut child = Process::new(binary)
        .args([
            "sandbox",
            "--generate",
            "small",
            "--generate-seed",
            "9",
            "--drift",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let base_url = first_line
        .trim()
        .strip_prefix("sandbox tenant listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first_line}"))
        .to_owned();
    let served = async {
        reqwest::get(format!("{base_url}/_sandbox/state"))
            .await?
            .error_for_status()?
            .json::<Seed>()
            .await
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();

    let expected = generate(&GenerateOptions {
        drift: true,
        ..GenerateOptions::for_size(Size::Small, 9)
    })
    .sandbox_seed();
    let served = served.unwrap();
    assert_eq!(served.users.len(), expected.users.len());
    let nicknames = |seed: &Seed| {
        seed.groups
            .iter()
            .map(|g| g.mail_nickname.clone())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(nicknames(&served), nicknames(&expected));
    assert!(!served.groups.is_empty(), "--drift seeds groups");
}

/// An operator rehearsing at production size reseeds a running sandbox with the seed.json
/// `rollcall generate --size large --drift` writes (about 10 MB, far over axum's 2 MB).
#[tokio::test]
async fn a_running_sandbox_takes_the_large_universitys_seed() {
    use rollcall::sandbox::{Sandbox, SandboxOptions};

    let dir = tempfile::tempdir().unwrap();
    rollcall()
        .args(["generate", "--size", "large", "--drift", "--out"])
        .arg(dir.path())
        .assert()
        .success();
    let body = std::fs::read(dir.path().join("seed.json")).unwrap();
    assert!(
        body.len() > 8 * 1024 * 1024,
        "the large seed is {} bytes, no test of a big body",
        body.len()
    );
    let written: Seed = serde_json::from_slice(&body).unwrap();

    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let http = reqwest::Client::new();
    let reply = http
        .post(format!("{}/_sandbox/seed", sandbox.base_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let body = reply.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let counts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(counts["users"], written.users.len());
    assert_eq!(counts["groups"], written.groups.len());
    let served = sandbox.state();
    assert_eq!(served.users.len(), written.users.len());
    sandbox.shutdown().await;
}
