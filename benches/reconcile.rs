//! What a full build and a no-change run cost against the sandbox tenant, in wall time and
//! Microsoft Graph round trips, with throttling off.
//!
//! `cargo bench --bench reconcile` builds the large university (40,000 students, 3,000 lists,
//! 300,000 memberships) into an empty tenant with the release binary and an SQLite state file,
//! then runs again with nothing to change. `ROLLCALL_BENCH_SMOKE=1 cargo bench --bench
//! reconcile` (or `-- --smoke`) does the same with the small university in seconds, for CI;
//! `ROLLCALL_BENCH_SMOKE=1 cargo test --bench reconcile` runs that in the test profile.
//!
//! Writes are the physical limit (GRAPH.md: ~20 write requests a second per app), so the
//! table compares the build's write round trips (HTTP requests that carried a write, as the
//! sandbox counts them: a create, or a `$batch` holding a write) with the
//! least a client can do: one batch of 20 PATCHes of 20 members per 400 adds, plus one
//! create per group, ceil(adds / 400) + creations. Owners count like members (issue 15): a
//! create binds owners and members together, 20 references in all, so the least is
//! ceil((adds + owner adds) / 400) + creations. The target (issue 7) is within 5 % of that.

#[path = "common/rollcall.rs"]
mod run;
#[path = "common/table.rs"]
mod table;

use std::path::Path;

use anyhow::{Context as _, bail};
use rollcall::generate::{GenerateOptions, Size, generate};
use rollcall::sandbox::{Sandbox, SandboxHandle};
use run::{
    Counters, planned, rollcall, sandbox_runtime, smoke_requested, unthrottled, write_config,
};
use table::Table;
/// Members a client can add per `$batch`: 20 PATCHes of 20 `members@odata.bind` each.
const ADDS_PER_BATCH: u64 = 400;
/// How far write round trips may exceed the least possible.
const TARGET: f64 = 1.05;

fn main() -> anyhow::Result<()> {
    let smoke = smoke_requested();
    let size = if smoke { Size::Small } else { Size::Large };
    let mut table = Table::default();

    let dir = tempfile::tempdir().context("a temporary folder")?;
    let university = generate(&GenerateOptions::for_size(size, 42));
    university
        .write(dir.path())
        .context("writing the university's sources")?;
    let counts = university.counts();
    table.row(
        "university",
        format!(
            "{size:?}: {} people, {} lists, {} memberships",
            counts.students + counts.staff,
            counts.lists,
            counts.memberships
        ),
    );

    let server = sandbox_runtime("sandbox-server")?;
    let sandbox = server.block_on(Sandbox::start(unthrottled(&university)))?;
    drop(university);
    let config = write_config(dir.path(), &sandbox)?;

    let result = measure(&config, &sandbox, &mut table);
    server.block_on(sandbox.shutdown());
    result?;
    table.print("reconcile benchmark (sandbox tenant, throttling off, SQLite state)");
    Ok(())
}

fn measure(config: &Path, sandbox: &SandboxHandle, table: &mut Table) -> anyhow::Result<()> {
    let (creates, adds, owner_adds) = planned(config)?;
    table.row(
        "plan",
        format!("{creates} groups to create, {adds} members and {owner_adds} owners to add"),
    );

    let before = Counters::read(sandbox);
    let build = rollcall(config, &["run"])?;
    let built = Counters::read(sandbox);
    let second = rollcall(config, &["run"])?;
    let after = Counters::read(sandbox);

    let build_counts = built.since(&before);
    let least = (adds + owner_adds).div_ceil(ADDS_PER_BATCH) + creates;
    let ratio = build_counts.write_round_trips as f64 / least.max(1) as f64;
    table.row(
        "full build",
        format!("{:.2} s", build.elapsed.as_secs_f64()),
    );
    table.row("  HTTP round trips", build_counts.round_trips.to_string());
    table.row(
        "  write round trips (requests carrying a write)",
        build_counts.write_round_trips.to_string(),
    );
    // The same, counted from the write requests: creates go alone, the rest 20 per batch.
    let by_requests =
        (build_counts.write_requests - build_counts.creates).div_ceil(20) + build_counts.creates;
    table.row(
        "  write requests (inner ones included)",
        format!(
            "{}, i.e. {by_requests} round trips at 20 per batch (ratio {:.3})",
            build_counts.write_requests,
            by_requests as f64 / least.max(1) as f64
        ),
    );
    table.row(
        "  writes accepted (members bound, groups, tags)",
        build_counts.writes.to_string(),
    );
    table.row(
        "  least write round trips: ceil((adds + owner adds)/400) + creations",
        least.to_string(),
    );
    table.row(
        "  ratio to the least",
        format!(
            "{ratio:.3} ({} the 5 % target)",
            if ratio <= TARGET { "within" } else { "OUTSIDE" }
        ),
    );

    let second_counts = after.since(&built);
    table.row(
        "no-change run",
        format!("{:.2} s", second.elapsed.as_secs_f64()),
    );
    table.row("  HTTP round trips", second_counts.round_trips.to_string());
    table.row("  write requests", second_counts.write_requests.to_string());
    if second_counts.write_requests > 0 {
        bail!(
            "the second run sent {} write requests: the build did not converge",
            second_counts.write_requests
        );
    }
    Ok(())
}
