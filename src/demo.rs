//! `rollcall demo`: a self-contained tour. A sandbox tenant on loopback, a small generated
//! university, a full build into an SQLite state file in a temporary folder, a day of
//! enrolment changes, a second run and a verify, each step told with its counts.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use crate::config::Config;
use crate::exit::{CommandError, Exit};
use crate::generate::{GenerateOptions, Size, generate};
use crate::plan::Approvals;
use crate::reconcile::{Engine, Progress, RunReport};
use crate::sandbox::{Faults, Sandbox, SandboxHandle, SandboxOptions};
use crate::store::RunKind;

/// The generator seed: the same tour every time.
const SEED: u64 = 2026;

/// The share of enrolments that change between the two runs.
const CHURN: f64 = 0.02;

/// Runs the tour and prints what happened.
pub async fn run() -> Result<Exit, CommandError> {
    let dir = tempfile::Builder::new()
        .prefix("rollcall-demo-")
        .tempdir()
        .context("cannot create a temporary folder for the demo")
        .map_err(CommandError::failed)?;
    let outcome = tour(dir.path()).await;
    outcome.map_err(CommandError::failed)
}

async fn tour(dir: &Path) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let mut university = generate(&GenerateOptions {
        drift: true,
        ..GenerateOptions::for_size(Size::Small, SEED)
    });
    university.write(dir)?;
    let counts = university.counts();
    println!(
        "1. generated a small university in {}: {} students, {} staff, {} module and department lists, {} memberships",
        dir.display(),
        counts.students,
        counts.staff,
        counts.lists,
        counts.memberships
    );

    let sandbox = Sandbox::start(SandboxOptions {
        seed: university.sandbox_seed(),
        faults: Faults {
            throttling: false,
            ..Faults::default()
        },
        ..SandboxOptions::default()
    })
    .await?;
    let seeded = sandbox.state();
    println!(
        "2. started the sandbox tenant at {} with {} users and {} groups left by an earlier updater (some drifted, some not ours)",
        sandbox.graph_url(),
        seeded.users.len(),
        seeded.groups.len()
    );

    let config = write_config(dir, &sandbox, &university.config_toml(dir))?;
    let engine = Engine::open(config, Progress::silent()).await?;

    let (run, report) = reconcile(&engine).await?;
    let writes = writes(&sandbox);
    println!(
        "3. full build (run {run}): created {} groups, adopted {}, added {} and removed {} members, {} in {} write requests; {} memberships name people with no account yet (reported, retried next run)",
        report.lists.iter().filter(|l| l.created).count(),
        report.lists.iter().filter(|l| l.adopted).count(),
        added(&report),
        removed(&report),
        owners(&report),
        writes,
        report.unresolved
    );

    let churn = university.apply_churn(CHURN, SEED + 1);
    university.write(dir)?;
    println!(
        "4. a day of changes in the student record: {} withdrawals, {} new enrolments, new module {}, new leader for {}",
        churn.withdrawals,
        churn.enrolments,
        churn.new_modules.join(", "),
        churn.leader_changes.join(", ")
    );

    let (run, report) = reconcile(&engine).await?;
    println!(
        "5. second run (run {run}): created {} group(s), added {}, removed {} members, {} (each new owner added before the old one goes) in {} write requests",
        report.lists.iter().filter(|l| l.created).count(),
        added(&report),
        removed(&report),
        owners(&report),
        writes_since(&sandbox, writes)
    );

    let before = self::writes(&sandbox);
    let (run, report) = reconcile(&engine).await?;
    println!(
        "6. third run (run {run}), nothing changed: {} changes, {} write requests",
        report.applied.done,
        writes_since(&sandbox, before)
    );

    let (run, verification) = engine.verify().await?;
    println!(
        "7. verify (run {run}): {} lists checked against Microsoft 365, {} drifted",
        verification.checked,
        verification.drift.len()
    );
    let untouched = untouched_groups(&seeded, &sandbox);
    println!("8. groups rollcall does not manage, left exactly as they were: {untouched}");
    println!(
        "done in {:.1} s. Next: `rollcall generate --size small --out DIR`, `rollcall sandbox`, and README.md",
        started.elapsed().as_secs_f64()
    );
    engine.store.close().await;
    sandbox.shutdown().await;
    Ok(if verification.drift.is_empty() {
        Exit::Success
    } else {
        Exit::Drift
    })
}

/// `[state]` and `[graph]` for the sandbox, and the generated families and sources.
fn write_config(dir: &Path, sandbox: &SandboxHandle, families: &str) -> anyhow::Result<Config> {
    let secret = dir.join("client-secret");
    std::fs::write(&secret, SandboxOptions::default().client_secret)
        .context("cannot write the demo's client secret file")?;
    let config = format!(
        "[state]\nurl = \"sqlite://rollcall.db\"\n\n{}\n{families}",
        sandbox.graph_toml("client_secret_file = \"client-secret\"")
    );
    let path = dir.join("rollcall-demo.toml");
    std::fs::write(&path, config).context("cannot write the demo's configuration")?;
    Ok(Config::load(&path)?)
}

async fn reconcile(engine: &Engine) -> anyhow::Result<(crate::store::RunId, RunReport)> {
    let record = serde_json::json!({ "reason": "rollcall demo" });
    engine
        .run(RunKind::Run, &Approvals::default(), &record)
        .await
        .map_err(|e| e.error)
}

fn added(report: &RunReport) -> u64 {
    report.lists.iter().map(|l| l.added).sum()
}

fn removed(report: &RunReport) -> u64 {
    report.lists.iter().map(|l| l.removed).sum()
}

/// `owners +N −M`: the module leaders, department heads and the service account.
fn owners(report: &RunReport) -> String {
    let added: u64 = report.lists.iter().map(|l| l.owners_added).sum();
    let removed: u64 = report.lists.iter().map(|l| l.owners_removed).sum();
    format!("owners +{added} −{removed}")
}

fn writes(sandbox: &SandboxHandle) -> u64 {
    sandbox.stats()["write_requests"].as_u64().unwrap_or(0)
}

fn writes_since(sandbox: &SandboxHandle, before: u64) -> u64 {
    writes(sandbox) - before
}

/// How many seeded groups no list names are byte-for-byte as seeded, out of how many.
fn untouched_groups(seeded: &crate::sandbox::Seed, sandbox: &SandboxHandle) -> String {
    let now = sandbox.state();
    let unmanaged: Vec<_> = seeded
        .groups
        .iter()
        .filter(|g| g.extensions.is_empty())
        .filter(|g| {
            !now.groups
                .iter()
                .any(|n| n.id == g.id && !n.extensions.is_empty())
        })
        .collect();
    let same = unmanaged
        .iter()
        .filter(|g| now.groups.iter().any(|n| n == **g))
        .count();
    format!("{same} of {}", unmanaged.len())
}
