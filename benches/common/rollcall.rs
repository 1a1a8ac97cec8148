//! Running the release `rollcall` binary against a sandbox, and reading the sandbox's
//! counters around it: what the reconcile benchmarks share.

// Shared by several benchmark binaries, each of which uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rollcall::generate::University;
use rollcall::sandbox::{Faults, SandboxHandle, SandboxOptions};
use serde_json::Value;

/// The environment variable the generated config names for the client secret.
const SECRET_VAR: &str = "ROLLCALL_BENCH_GRAPH_SECRET";

/// Whether the smoke run was asked for (`ROLLCALL_BENCH_SMOKE=1` or `-- --smoke`).
pub fn smoke_requested() -> bool {
    std::env::args().any(|a| a == "--smoke")
        || std::env::var("ROLLCALL_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Writes the config for the sources `University::write` put in `dir`, the sandbox, and an
/// SQLite state file beside them. The removal guards are lifted: a benchmark's day of churn
/// withdraws more people than the default guard lets through, and approving them is not
/// what is measured.
pub fn write_config(dir: &Path, sandbox: &SandboxHandle) -> anyhow::Result<PathBuf> {
    let state = format!("sqlite://{}", dir.join("state.db").display());
    write_config_with_state(dir, sandbox, &state, "bench.toml")
}

/// [`write_config`] with the state database at `state`, written to `dir/name`.
pub fn write_config_with_state(
    dir: &Path,
    sandbox: &SandboxHandle,
    state: &str,
    name: &str,
) -> anyhow::Result<PathBuf> {
    let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let sources = std::fs::read_to_string(dir.join("rollcall.toml"))
        .context("the generated rollcall.toml")?;
    let config = format!(
        "[state]\n\
         url = {}\n\
         \n{}\
         \n[guard]\n\
         max_removals_per_run = 1000000\n\
         max_removal_percent_per_list = 100\n\
         \n{sources}",
        quote(state),
        sandbox.graph_toml(&format!("client_secret_env = {}", quote(SECRET_VAR))),
    );
    let path = dir.join(name);
    std::fs::write(&path, config).context("writing the benchmark's config")?;
    Ok(path)
}

/// The sandbox options of a benchmark: `university`'s accounts, throttling off, so that what
/// is measured is rollcall and not Graph's budget.
pub fn unthrottled(university: &University) -> SandboxOptions {
    SandboxOptions {
        seed: university.sandbox_seed(),
        faults: Faults {
            throttling: false,
            ..Faults::default()
        },
        ..SandboxOptions::default()
    }
}

/// A runtime of one worker for the sandbox (and a bench's proxy): it gets a core of its own
/// while the benchmark's thread waits on rollcall.
pub fn sandbox_runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .context("the sandbox's runtime")
}

/// One finished command.
#[derive(Debug)]
pub struct Ran {
    /// What it printed on stdout.
    pub stdout: String,
    /// Wall time, process start to exit.
    pub elapsed: Duration,
}

/// `rollcall --config CONFIG ARGS…`, not started yet.
pub fn command(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env(SECRET_VAR, SandboxOptions::default().client_secret)
        .env_remove("ROLLCALL_CONFIG");
    command
}

/// Runs `rollcall --config CONFIG ARGS…`; anything but exit 0 ends the benchmark, since its
/// numbers would mean nothing.
pub fn rollcall(config: &Path, args: &[&str]) -> anyhow::Result<Ran> {
    let started = Instant::now();
    let output = command(config, args)
        .output()
        .with_context(|| format!("starting `rollcall {}`", args.join(" ")))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!(
            "`rollcall {}` failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(Ran {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        elapsed,
    })
}

/// The plan's totals: (groups to create, members to add).
pub fn planned(config: &Path) -> anyhow::Result<(u64, u64, u64)> {
    let plan = rollcall(config, &["plan", "--output", "json"])?;
    let plan: Value = serde_json::from_str(&plan.stdout).context("the plan's JSON")?;
    let total = |name: &str| {
        plan["plan"]["totals"][name]
            .as_u64()
            .with_context(|| format!("the plan has no total `{name}`"))
    };
    Ok((total("creates")?, total("adds")?, total("owner_adds")?))
}

/// The sandbox counters the benchmarks report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// HTTP requests served (a `$batch` counts once).
    pub round_trips: u64,
    /// HTTP requests that carried at least one write.
    pub write_round_trips: u64,
    /// `POST /groups` requests.
    pub creates: u64,
    /// Write requests, inner ones included, throttled ones included.
    pub write_requests: u64,
    /// Accepted writes (each member bound counts one).
    pub writes: u64,
    /// 429 replies, outer and inner.
    pub throttled: u64,
    /// Requests Graph charged: every request but the `$batch` envelopes, inner ones included.
    pub charged: u64,
    /// Requests sent while a `Retry-After` was running: must stay 0.
    pub early: u64,
}

impl Counters {
    /// The sandbox's counters now.
    pub fn read(sandbox: &SandboxHandle) -> Counters {
        let stats = sandbox.stats();
        let counter = |name: &str| stats[name].as_u64().unwrap_or(0);
        // Every reply to an outer request, whatever its status.
        let served = |route: &str| -> u64 {
            stats["requests"][route].as_object().map_or(0, |statuses| {
                statuses.values().filter_map(Value::as_u64).sum()
            })
        };
        Counters {
            round_trips: counter("round_trips"),
            write_round_trips: counter("write_round_trips"),
            creates: served("POST /groups"),
            write_requests: counter("write_requests"),
            writes: counter("writes"),
            throttled: counter("throttled"),
            charged: counter("round_trips") - served("POST /$batch") + counter("batch_inner"),
            early: counter("early_requests"),
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            round_trips: self.round_trips - earlier.round_trips,
            write_round_trips: self.write_round_trips - earlier.write_round_trips,
            creates: self.creates - earlier.creates,
            write_requests: self.write_requests - earlier.write_requests,
            writes: self.writes - earlier.writes,
            throttled: self.throttled - earlier.throttled,
            charged: self.charged - earlier.charged,
            early: self.early - earlier.early,
        }
    }
}
