//! What the removal grace's bookkeeping costs (issue 20): the no-change run of the large
//! university with no member in grace, then with a tenth of every module's students withdrawn
//! under `remove_after = "7d"` (every one of them kept, and recorded in `member_absences`).
//!
//! `cargo bench --bench grace` measures the large university (40,000 students, ~255,000 module
//! memberships) with the release binary, an SQLite state file and the sandbox with throttling
//! off; `ROLLCALL_BENCH_SMOKE=1 cargo test --bench grace` runs the small one in seconds. Each
//! no-change run is timed three times and the median printed.

#[path = "common/rollcall.rs"]
mod run;
#[path = "common/table.rs"]
mod table;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rollcall::generate::{GenerateOptions, Size, generate};
use rollcall::sandbox::Sandbox;
use run::{Counters, rollcall, sandbox_runtime, smoke_requested, unthrottled, write_config};
use table::Table;

/// Runs per measurement; the median is reported.
const RUNS: usize = 3;

fn main() -> anyhow::Result<()> {
    let size = if smoke_requested() {
        Size::Small
    } else {
        Size::Large
    };
    let mut table = Table::default();
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let mut university = generate(&GenerateOptions::for_size(size, 42));
    university
        .write(dir.path())
        .context("writing the sources")?;

    let server = sandbox_runtime("sandbox-server")?;
    let sandbox = server.block_on(Sandbox::start(unthrottled(&university)))?;
    let config = write_config(dir.path(), &sandbox)?;
    let text = std::fs::read_to_string(&config)?;
    let family = "name = \"modules\"\n";
    if !text.contains(family) {
        bail!("the generated config has no `modules` family");
    }
    std::fs::write(
        &config,
        text.replacen(family, &format!("{family}remove_after = \"7d\"\n"), 1),
    )?;

    let build = rollcall(&config, &["run"])?;
    table.row(
        "university",
        format!("{size:?}: {} memberships", university.counts().memberships),
    );
    table.row("full build", seconds(build.elapsed));
    let state = dir.path().join("state.db");
    let before = no_change(&config, &sandbox)?;
    table.row("no-change run, nobody in grace (median)", seconds(before));
    table.row("  member_absences rows", rows(&state)?.to_string());
    table.row("  state file", megabytes(&state)?);

    let mut withdrawn = 0;
    for module in &mut university.modules {
        let leaving: Vec<usize> = module.students.iter().copied().step_by(10).collect();
        withdrawn += leaving.len();
        for student in leaving {
            module.students.remove(&student);
        }
    }
    university
        .write(dir.path())
        .context("rewriting the sources")?;
    let counters = Counters::read(&sandbox);
    let first = rollcall(
        &config,
        &[
            "run",
            "--accept-shrink",
            "enrolments",
            "--reason",
            "the benchmark's withdrawals",
        ],
    )?;
    table.row(
        format!("withdrawn: {withdrawn} enrolments, first run (records them)").as_str(),
        seconds(first.elapsed),
    );
    let after = no_change(&config, &sandbox)?;
    let writes = Counters::read(&sandbox).since(&counters).write_requests;
    if writes > 0 {
        bail!("{writes} write requests while every withdrawal was in its grace");
    }
    table.row(
        "no-change run, all of them in grace (median)",
        seconds(after),
    );
    table.row("  member_absences rows", rows(&state)?.to_string());
    table.row("  state file", megabytes(&state)?);
    table.row(
        "  cost of the bookkeeping",
        format!(
            "{:+.0} ms per run",
            (after.as_secs_f64() - before.as_secs_f64()) * 1000.0
        ),
    );
    server.block_on(sandbox.shutdown());
    table.print("removal grace bookkeeping (sandbox tenant, throttling off, SQLite state)");
    Ok(())
}

/// The median wall time of [`RUNS`] no-change runs; fails if one writes anything.
fn no_change(
    config: &Path,
    sandbox: &rollcall::sandbox::SandboxHandle,
) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let before = Counters::read(sandbox);
        times.push(rollcall(config, &["run"])?.elapsed);
        let writes = Counters::read(sandbox).since(&before).write_requests;
        if writes > 0 {
            bail!("a no-change run sent {writes} write requests");
        }
    }
    times.sort();
    Ok(times[RUNS / 2])
}

/// Rows in `member_absences` of the SQLite state file.
fn rows(state: &Path) -> anyhow::Result<i64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}", state.display());
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM member_absences")
            .fetch_one(&mut conn)
            .await?;
        Ok(count)
    })
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.2} s", elapsed.as_secs_f64())
}

fn megabytes(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::metadata(path)?.len();
    Ok(format!("{:.1} MB", bytes as f64 / 1_000_000.0))
}
