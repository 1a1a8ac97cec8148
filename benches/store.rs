//! The state database's share of a build, on SQLite, PostgreSQL and MariaDB side by side in
//! one run: the large university built into an empty sandbox tenant (throttling off) with
//! the release binary, then twice a run with nothing to change; each server backend once directly
//! and once behind a proxy that delays every packet 1 ms each way, as a server across a
//! network would.
//!
//! `cargo bench --bench store` prints, per backend: build wall time, of which apply (the
//! run report's `apply_ms`), the second no-change run's wall time (and the first's, when the
//! server may still be busy after the build), the build's peak resident memory
//! (the child's `VmHWM`), and the round trips to the state database per committed batch
//! (the report's `state_round_trips / batches`). PostgreSQL and MariaDB come from
//! `ROLLCALL_TEST_POSTGRES_URL` / `ROLLCALL_TEST_MYSQL_URL` (a fresh database is created on
//! each and dropped after); an unset one is left out, with a line saying so.
//! `ROLLCALL_BENCH_SMOKE=1 cargo bench --bench store` runs the small university in seconds;
//! `ROLLCALL_BENCH_ROUNDS=N` measures every configuration N times, taking turns, and prints
//! the medians.
//!
//! The numbers are for comparing within one run: on a shared machine the absolute times
//! move with the other load, the ratios much less.

#[path = "common/delay.rs"]
mod delay;
#[path = "common/rollcall.rs"]
mod run;

use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use delay::DelayProxy;
use rollcall::generate::{GenerateOptions, Size, University, generate};
use rollcall::sandbox::Sandbox;
use rollcall::store::Backend;
use run::{
    command, rollcall, sandbox_runtime, smoke_requested, unthrottled, write_config_with_state,
};
use serde_json::Value;
use sqlx::Connection as _;

/// The delay the proxy adds each way.
const NETWORK_DELAY: Duration = Duration::from_millis(1);

/// One measured build and no-change run.
struct Measured {
    build: Duration,
    apply_ms: u64,
    /// The first run after the build, when the database server may still be busy with the
    /// build's aftermath (autovacuum, InnoDB's purge).
    first_no_change: Duration,
    /// The run after that.
    no_change: Duration,
    peak_rss_kib: u64,
    round_trips: u64,
    batches: u64,
    /// The no-change run's phases, from its report: name and milliseconds.
    phases: Vec<(&'static str, u64)>,
}

/// The run report's phases, in the order a run goes through them.
const PHASES: [&str; 5] = [
    "sources_ms",
    "directory_ms",
    "actual_ms",
    "plan_ms",
    "total_ms",
];

fn main() -> anyhow::Result<()> {
    let smoke = smoke_requested();
    let size = if smoke { Size::Small } else { Size::Large };
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let university = generate(&GenerateOptions::for_size(size, 42));
    university
        .write(dir.path())
        .context("writing the university's sources")?;
    let counts = university.counts();
    println!(
        "university {size:?}: {} people, {} lists, {} memberships",
        counts.students + counts.staff,
        counts.lists,
        counts.memberships
    );
    let runtime = sandbox_runtime("sandbox-and-proxy")?;

    let rounds = rounds();
    let mut rows: Vec<(Backend, Option<Duration>, Vec<Measured>)> = Vec::new();
    for round in 0..rounds {
        if rounds > 1 {
            println!("round {} of {rounds}", round + 1);
        }
        measure_round(&runtime, &university, dir.path(), &mut rows)?;
    }
    let rows: Vec<(Backend, Option<Duration>, Measured)> = rows
        .into_iter()
        .map(|(backend, delay, runs)| (backend, delay, median(runs)))
        .collect();
    print_table(&rows, rounds);
    Ok(())
}

/// How many times each configuration is measured (`ROLLCALL_BENCH_ROUNDS`, default 1); the
/// table gives the medians. The rounds take turns, so that a slow spell of a shared machine
/// falls on every backend alike.
fn rounds() -> usize {
    std::env::var("ROLLCALL_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// Each configuration's measurements: the median build, apply and no-change run (the
/// phases of the no-change run whose wall time is the median), the highest peak memory.
fn median(mut runs: Vec<Measured>) -> Measured {
    let mid = runs.len() / 2;
    let middle = |mut values: Vec<u128>| {
        values.sort_unstable();
        values[mid]
    };
    let build = middle(runs.iter().map(|m| m.build.as_millis()).collect());
    let apply_ms = middle(runs.iter().map(|m| u128::from(m.apply_ms)).collect());
    let first_no_change = middle(runs.iter().map(|m| m.first_no_change.as_millis()).collect());
    let peak_rss_kib = runs
        .iter()
        .map(|m| m.peak_rss_kib)
        .max()
        .unwrap_or_default();
    runs.sort_by_key(|m| m.no_change);
    let mut measured = runs.swap_remove(mid);
    measured.build = Duration::from_millis(u64::try_from(build).unwrap_or(u64::MAX));
    measured.apply_ms = u64::try_from(apply_ms).unwrap_or(u64::MAX);
    measured.first_no_change =
        Duration::from_millis(u64::try_from(first_no_change).unwrap_or(u64::MAX));
    measured.peak_rss_kib = peak_rss_kib;
    measured
}

/// Measures every backend once, adding to each configuration's row.
fn measure_round(
    runtime: &tokio::runtime::Runtime,
    university: &University,
    dir: &Path,
    rows: &mut Vec<(Backend, Option<Duration>, Vec<Measured>)>,
) -> anyhow::Result<()> {
    let mut n = 0;
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::Mysql] {
        let server = match backend {
            Backend::Sqlite => None,
            _ => match std::env::var(server_var(backend)) {
                Ok(url) if !url.is_empty() => Some(url),
                _ => {
                    println!("{backend:?} left out: {} is not set", server_var(backend));
                    continue;
                }
            },
        };
        let delays: &[Option<Duration>] = if server.is_some() {
            &[None, Some(NETWORK_DELAY)]
        } else {
            &[None]
        };
        for &delay in delays {
            let measured = runtime.block_on(async {
                let state = StateDatabase::create(backend, server.as_deref(), dir, n).await?;
                let url = match delay {
                    Some(delay) => behind_proxy(&state.url, delay).await?,
                    None => state.url.clone(),
                };
                let measured = measure(university, dir, &url, n).await;
                state.drop_database().await;
                measured
            })?;
            match rows
                .iter_mut()
                .find(|(b, d, _)| *b == backend && *d == delay)
            {
                Some((_, _, runs)) => runs.push(measured),
                None => rows.push((backend, delay, vec![measured])),
            }
            n += 1;
        }
    }
    Ok(())
}

fn server_var(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "ROLLCALL_TEST_POSTGRES_URL",
        _ => "ROLLCALL_TEST_MYSQL_URL",
    }
}

/// Builds the university into a fresh sandbox with state at `url`, then runs again.
async fn measure(
    university: &University,
    dir: &Path,
    url: &str,
    n: usize,
) -> anyhow::Result<Measured> {
    let sandbox = Sandbox::start(unthrottled(university)).await?;
    let config = write_config_with_state(dir, &sandbox, url, &format!("bench-{n}.toml"))?;
    // rollcall runs as a child process; this runtime's one worker keeps serving the sandbox
    // and the proxy meanwhile.
    let measured = tokio::task::spawn_blocking(move || -> anyhow::Result<Measured> {
        let (build, peak_rss_kib) = run_watching_memory(&config, &["run"])?;
        let report = latest_report(&config)?;
        let first_no_change = rollcall(&config, &["run"])?.elapsed;
        let no_change = rollcall(&config, &["run"])?.elapsed;
        let second = latest_report(&config)?;
        let number = |report: &Value, path: &[&str]| {
            path.iter()
                .fold(report, |value, key| &value[key])
                .as_u64()
                .with_context(|| format!("the run report has no {}", path.join(".")))
        };
        let phases = PHASES
            .iter()
            .map(|phase| Ok((*phase, number(&second, &["durations", phase])?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Measured {
            build,
            apply_ms: number(&report, &["durations", "apply_ms"])?,
            first_no_change,
            no_change,
            peak_rss_kib,
            round_trips: number(&report, &["applied", "state_round_trips"])?,
            batches: number(&report, &["applied", "batches"])?,
            phases,
        })
    })
    .await?;
    sandbox.shutdown().await;
    measured
}

/// Runs rollcall, reading its peak resident memory while it runs. Returns the wall time
/// and the peak in KiB.
fn run_watching_memory(config: &Path, args: &[&str]) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut child = command(config, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting rollcall")?;
    let mut stderr = child.stderr.take().context("rollcall's stderr")?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some(hwm) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| vm_hwm(&status))
        {
            peak = peak.max(hwm);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        bail!("`rollcall {}` failed ({status}):\n{errors}", args.join(" "));
    }
    Ok((elapsed, peak))
}

/// `VmHWM` from a `/proc/PID/status`, in KiB.
fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The report of the latest run.
fn latest_report(config: &Path) -> anyhow::Result<Value> {
    let runs = rollcall(config, &["runs", "--limit", "1", "--output", "json"])?;
    let runs: Value = serde_json::from_str(&runs.stdout).context("`runs` prints JSON")?;
    let id = runs
        .as_array()
        .and_then(|runs| runs.first())
        .or_else(|| runs["runs"].as_array().and_then(|runs| runs.first()))
        .and_then(|run| run["id"].as_i64().or_else(|| run["run"].as_i64()))
        .with_context(|| format!("`runs` names no run: {runs}"))?;
    let shown = rollcall(config, &["show", &id.to_string(), "--output", "json"])?;
    let shown: Value = serde_json::from_str(&shown.stdout).context("`show` prints JSON")?;
    Ok(if shown["report"].is_object() {
        shown["report"].clone()
    } else {
        shown
    })
}

/// A state database made for one measurement.
struct StateDatabase {
    url: String,
    admin: Option<(Backend, String, String)>,
}

impl StateDatabase {
    async fn create(
        backend: Backend,
        server: Option<&str>,
        dir: &Path,
        n: usize,
    ) -> anyhow::Result<StateDatabase> {
        let Some(server) = server else {
            return Ok(StateDatabase {
                url: format!("sqlite://{}", dir.join(format!("state-{n}.db")).display()),
                admin: None,
            });
        };
        let name = format!("rollcall_bench_{}_{n}", std::process::id());
        admin(backend, server, &format!("CREATE DATABASE {name}")).await?;
        let mut url = url::Url::parse(server).context("the server URL")?;
        url.set_path(&format!("/{name}"));
        Ok(StateDatabase {
            url: url.to_string(),
            admin: Some((backend, server.to_owned(), name)),
        })
    }

    async fn drop_database(self) {
        if let Some((backend, server, name)) = self.admin
            && let Err(e) = admin(backend, &server, &format!("DROP DATABASE {name}")).await
        {
            println!("could not drop the benchmark's database {name}: {e:#}");
        }
    }
}

async fn admin(backend: Backend, server: &str, sql: &str) -> anyhow::Result<()> {
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(server).await?;
            sqlx::raw_sql(sql).execute(&mut conn).await?;
        }
        _ => {
            let mut conn = sqlx::MySqlConnection::connect(server).await?;
            sqlx::raw_sql(sql).execute(&mut conn).await?;
        }
    }
    Ok(())
}

/// The URL of the same database through a delay proxy.
async fn behind_proxy(url: &str, delay: Duration) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).context("the state URL")?;
    let host = parsed.host_str().context("the state URL has a host")?;
    let port = parsed
        .port()
        .unwrap_or(if parsed.scheme().starts_with("postgres") {
            5432
        } else {
            3306
        });
    let upstream = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .context("the state server's address")?;
    let proxy = DelayProxy::start(upstream, delay).await?;
    parsed
        .set_host(Some(&proxy.addr.ip().to_string()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    parsed
        .set_port(Some(proxy.addr.port()))
        .map_err(|()| anyhow::anyhow!("the state URL takes no port"))?;
    Ok(parsed.to_string())
}

fn print_table(rows: &[(Backend, Option<Duration>, Measured)], rounds: usize) {
    let sqlite_apply = rows
        .iter()
        .find(|(b, d, _)| *b == Backend::Sqlite && d.is_none())
        .map(|(_, _, m)| m.apply_ms.max(1));
    let medians = if rounds > 1 {
        format!("; medians of {rounds} rounds")
    } else {
        String::new()
    };
    println!(
        "\nstate store benchmark (sandbox tenant, throttling off; compare within this run{medians})\n\n\
         | backend | network | build wall | of which apply | apply ÷ SQLite | no-change run (first after the build) | build peak RSS | state round trips per batch |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (backend, delay, m) in rows {
        let network = network(*backend, *delay);
        let ratio = sqlite_apply.map_or("—".to_owned(), |base| {
            format!("{:.2}×", m.apply_ms as f64 / base as f64)
        });
        println!(
            "| {backend:?} | {network} | {:.1} s | {:.1} s | {ratio} | {:.2} s ({:.2} s) | {} MB | {:.1} ({} in {} batches) |",
            m.build.as_secs_f64(),
            m.apply_ms as f64 / 1000.0,
            m.no_change.as_secs_f64(),
            m.first_no_change.as_secs_f64(),
            m.peak_rss_kib / 1024,
            m.round_trips as f64 / m.batches.max(1) as f64,
            m.round_trips,
            m.batches
        );
    }
    println!(
        "\nno-change run (the second after the build) by phase (ms, from its report)\n\n\
         | backend | network | {} |\n| --- | --- |{}",
        PHASES.map(|p| p.trim_end_matches("_ms")).join(" | "),
        " --- |".repeat(PHASES.len())
    );
    for (backend, delay, m) in rows {
        let phases: Vec<String> = m.phases.iter().map(|(_, ms)| ms.to_string()).collect();
        println!(
            "| {backend:?} | {} | {} |",
            network(*backend, *delay),
            phases.join(" | ")
        );
    }
}

fn network(backend: Backend, delay: Option<Duration>) -> String {
    match (backend, delay) {
        (Backend::Sqlite, _) => "(file)".to_owned(),
        (_, None) => "loopback".to_owned(),
        (_, Some(d)) => format!("+{} ms each way", d.as_millis()),
    }
}
