//! How fast the sandbox tenant serves, and how much memory it holds, with the large
//! university seeded and throttling off.
//!
//! `cargo bench --bench sandbox` measures the large university (40,000 students, 3,000 lists,
//! 300,000 memberships); `ROLLCALL_BENCH_SMOKE=1 cargo bench --bench sandbox` (or
//! `cargo bench --bench sandbox -- --smoke`) runs a small one for a second or two, for CI.
//!
//! The sandbox runs on its own single-worker runtime and the load generator on another, so
//! on a two-core machine each gets a core. The table shows requests per second, client-side
//! latency, and the CPU time each side spent per request (from /proc/self/task), which says
//! where the time goes.

#[path = "common/table.rs"]
mod table;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rollcall::generate::{GenerateOptions, Size, University, generate};
use rollcall::sandbox::{Faults, Sandbox, SandboxHandle, SandboxOptions, Seed, SeedGroup};
use serde_json::{Value, json};
use table::Table;

/// Connections the client keeps busy at once.
const CONNECTIONS: usize = 16;
/// Inner requests per `$batch`, Graph's maximum.
const BATCH: usize = 20;
/// Thread names, so CPU time can be told apart per side.
const SERVER_THREAD: &str = "sandbox-server";
const CLIENT_THREAD: &str = "bench-client";

/// What one run measures, and how long each load phase lasts.
struct Plan {
    students: u32,
    phase: Duration,
    warm_up: Duration,
}

impl Plan {
    fn from_environment() -> Self {
        let smoke = std::env::args().any(|a| a == "--smoke")
            || std::env::var("ROLLCALL_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
        if smoke {
            Plan {
                students: 300,
                phase: Duration::from_millis(400),
                warm_up: Duration::from_millis(100),
            }
        } else {
            Plan {
                students: Size::Large.students(),
                phase: Duration::from_secs(8),
                warm_up: Duration::from_secs(1),
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let plan = Plan::from_environment();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()?;
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()?;
    let mut table = Table::default();

    let rss_at_start = resident_mib()?;
    let started = Instant::now();
    let university = generate(&GenerateOptions {
        students: plan.students,
        seed: 42,
        drift: false,
    });
    let seed = converged_seed(&university);
    let counts = university.counts();
    table.row(
        "university generated",
        format!("{:.2} s", started.elapsed().as_secs_f64()),
    );
    table.row(
        "  people / lists / memberships",
        format!(
            "{} / {} / {}",
            counts.students + counts.staff,
            counts.lists,
            counts.memberships
        ),
    );
    let lists: Vec<SeedGroup> = seed.groups.clone();
    drop(university);
    let rss_before = resident_mib()?;

    let started = Instant::now();
    let options = SandboxOptions {
        seed,
        faults: Faults {
            throttling: false,
            ..Faults::default()
        },
        ..SandboxOptions::default()
    };
    let sandbox = server.block_on(Sandbox::start(options))?;
    let start_time = started.elapsed();
    let rss_after = resident_mib()?;
    table.row(
        "sandbox seeded and started",
        format!("{:.2} s", start_time.as_secs_f64()),
    );
    table.row("RSS at bench start", format!("{rss_at_start:.0} MiB"));
    table.row(
        "RSS before seeding (seed built)",
        format!("{rss_before:.0} MiB"),
    );
    table.row("RSS after seeding", format!("{rss_after:.0} MiB"));
    table.row(
        "  held by the sandbox (after − before)",
        format!("{:.0} MiB", rss_after - rss_before),
    );

    let result = client.block_on(load(&sandbox, &lists, &plan, &mut table));
    server.block_on(sandbox.shutdown());
    result?;
    table.print(&format!(
        "sandbox benchmark ({CONNECTIONS} connections, throttling off)"
    ));
    Ok(())
}

/// A tenant already in step with the university: every account, and one group per list
/// holding the list's members that have accounts. Group ids are fixed so the load can
/// address groups without reading them first.
fn converged_seed(university: &University) -> Seed {
    let mut seed = university.sandbox_seed();
    let ids = |members: &mut dyn Iterator<Item = usize>| -> Vec<String> {
        members
            .filter(|&i| university.people[i].has_account)
            .map(|i| university.people[i].object_id.clone())
            .collect()
    };
    let group = |n: usize, key: &str, name: String, members: Vec<String>| SeedGroup {
        id: Some(format!("00000000-0000-4000-8000-{n:012x}")),
        display_name: name,
        mail_nickname: key.to_owned(),
        description: None,
        group_types: vec!["Unified".to_owned()],
        mail_enabled: true,
        security_enabled: false,
        members,
        extensions: Vec::new(),
        owners: Vec::new(),
    };
    for (n, module) in university.modules.iter().enumerate() {
        let members = ids(&mut module.members());
        seed.groups
            .push(group(n, &module.key, module.display_name(), members));
    }
    for (d, department) in university.departments.iter().enumerate() {
        let members = ids(&mut university.department_members(d));
        let n = university.modules.len() + d;
        seed.groups.push(group(
            n,
            &department.key,
            department.display_name(),
            members,
        ));
    }
    seed
}

async fn load(
    sandbox: &SandboxHandle,
    lists: &[SeedGroup],
    plan: &Plan,
    table: &mut Table,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()?;
    let token = token(&http, sandbox).await?;
    let graph = Arc::new(Graph {
        http,
        base: sandbox.graph_url(),
        token,
    });

    let reads: Arc<Vec<String>> = Arc::new(
        lists
            .iter()
            .filter_map(|g| g.id.as_ref())
            .map(|id| format!("/groups/{id}/members/microsoft.graph.user?$select=id,userPrincipalName&$top=999"))
            .collect(),
    );
    let phase = run_phase(plan, {
        let graph = graph.clone();
        move |worker, round| {
            let graph = graph.clone();
            let reads = reads.clone();
            async move {
                let path = &reads[(round * CONNECTIONS + worker) % reads.len()];
                graph.get(path).await
            }
        }
    })
    .await?;
    phase.report(table, "member-list GET ($top=999)", 1);

    // Each worker owns its own (group, member) pairs, removes twenty of them in one batch and
    // adds them back in the next, so the tenant stays in step and every write succeeds.
    let pairs: Vec<(String, String)> = lists
        .iter()
        .flat_map(|g| {
            let id = g.id.clone().unwrap_or_default();
            g.members.iter().map(move |m| (id.clone(), m.clone()))
        })
        .collect();
    let per_worker: Arc<Vec<Vec<(String, String)>>> = Arc::new(
        (0..CONNECTIONS)
            .map(|w| pairs.iter().skip(w).step_by(CONNECTIONS).cloned().collect())
            .collect(),
    );
    if per_worker.iter().any(|p| p.len() < BATCH) {
        bail!("the university is too small for {CONNECTIONS} workers of {BATCH} writes each");
    }
    let sandbox_stats_before = sandbox.stats();
    let phase = run_phase(plan, {
        let graph = graph.clone();
        move |worker, round| {
            let graph = graph.clone();
            let per_worker = per_worker.clone();
            async move {
                let mine = &per_worker[worker];
                let chunks = mine.len() / BATCH;
                let chunk = &mine[(round / 2 % chunks) * BATCH..][..BATCH];
                let requests: Vec<Value> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, (group, member))| {
                        if round % 2 == 0 {
                            json!({"id": i.to_string(), "method": "DELETE",
                                   "url": format!("/groups/{group}/members/{member}/$ref")})
                        } else {
                            json!({"id": i.to_string(), "method": "PATCH",
                                   "url": format!("/groups/{group}"),
                                   "headers": {"Content-Type": "application/json"},
                                   "body": {"members@odata.bind": [
                                       format!("https://graph.microsoft.com/v1.0/directoryObjects/{member}")]}})
                        }
                    })
                    .collect();
                graph.batch(json!({ "requests": requests })).await
            }
        }
    })
    .await?;
    phase.report(table, "$batch of 20 DELETE/PATCH writes", BATCH);
    let writes = counter(&sandbox.stats(), "writes") - counter(&sandbox_stats_before, "writes");
    table.row(
        "  writes the sandbox accepted (warm-up included)",
        format!("{writes}"),
    );
    let stats = sandbox.stats();
    table.row(
        "sandbox counted",
        format!(
            "{} round trips, {} inner batch requests, {} throttled",
            counter(&stats, "round_trips"),
            counter(&stats, "batch_inner"),
            counter(&stats, "throttled")
        ),
    );
    Ok(())
}

fn counter(stats: &Value, name: &str) -> u64 {
    stats.get(name).and_then(Value::as_u64).unwrap_or(0)
}

async fn token(http: &reqwest::Client, sandbox: &SandboxHandle) -> anyhow::Result<String> {
    let defaults = SandboxOptions::default();
    let reply: Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sandbox.authority(),
            defaults.tenant_id
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", defaults.client_id.as_str()),
            ("client_secret", defaults.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await?
        .error_for_status()
        .context("the sandbox refused the benchmark's token request")?
        .json()
        .await?;
    reply["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("the token reply has no access_token")
}

/// The client side of the Graph surface the benchmark uses.
struct Graph {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// One request's outcome: whether it (and every inner request) succeeded, and bytes read.
struct Outcome {
    ok: bool,
    bytes: usize,
}

impl Graph {
    async fn get(&self, path: &str) -> anyhow::Result<Outcome> {
        let reply = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let ok = reply.status().is_success();
        let bytes = reply.bytes().await?.len();
        Ok(Outcome { ok, bytes })
    }

    async fn batch(&self, body: Value) -> anyhow::Result<Outcome> {
        let reply = self
            .http
            .post(format!("{}/$batch", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = reply.status();
        let bytes = reply.bytes().await?;
        let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let inner_ok = parsed["responses"].as_array().is_some_and(|responses| {
            responses.len() == BATCH
                && responses.iter().all(|r| {
                    r["status"]
                        .as_u64()
                        .is_some_and(|s| (200..300).contains(&s))
                })
        });
        Ok(Outcome {
            ok: status.is_success() && inner_ok,
            bytes: bytes.len(),
        })
    }
}

/// What one load phase measured.
struct Phase {
    requests: usize,
    failed: usize,
    bytes: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    server_cpu: Duration,
    client_cpu: Duration,
}

impl Phase {
    fn report(&self, table: &mut Table, name: &str, operations_per_request: usize) {
        let per_second = self.requests as f64 / self.elapsed.as_secs_f64();
        table.row(
            name,
            format!(
                "{per_second:.0} req/s ({:.0} operations/s), {} requests, {} failed",
                per_second * operations_per_request as f64,
                self.requests,
                self.failed
            ),
        );
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let at = |q: f64| {
            sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        };
        if let (Some(p50), Some(p99)) = (at(0.5), at(0.99)) {
            table.row(
                "  latency p50 / p99",
                format!(
                    "{:.2} ms / {:.2} ms",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                ),
            );
        }
        let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64;
        table.row(
            "  CPU per request: server / client",
            format!(
                "{:.0} µs / {:.0} µs (server busy {:.0} % of the phase)",
                per_request(self.server_cpu),
                per_request(self.client_cpu),
                100.0 * self.server_cpu.as_secs_f64() / self.elapsed.as_secs_f64()
            ),
        );
        table.row(
            "  response size",
            format!(
                "{:.1} KiB on average",
                self.bytes as f64 / 1024.0 / self.requests.max(1) as f64
            ),
        );
    }
}

/// Runs `request(worker, round)` on `CONNECTIONS` workers, each sending its next request as
/// soon as the last one is answered: a warm-up first, then the measured phase.
async fn run_phase<F, Fut>(plan: &Plan, request: F) -> anyhow::Result<Phase>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Outcome>> + Send,
{
    let start_round = run_workers(plan.warm_up, 0, request.clone())
        .await?
        .next_round;
    let cpu_before = cpu_by_thread()?;
    let started = Instant::now();
    let run = run_workers(plan.phase, start_round, request).await?;
    let elapsed = started.elapsed();
    let cpu_after = cpu_by_thread()?;
    Ok(Phase {
        requests: run.latencies.len(),
        failed: run.failed,
        bytes: run.bytes,
        elapsed,
        latencies: run.latencies,
        server_cpu: cpu_after.0.saturating_sub(cpu_before.0),
        client_cpu: cpu_after.1.saturating_sub(cpu_before.1),
    })
}

struct WorkerRun {
    latencies: Vec<Duration>,
    failed: usize,
    bytes: usize,
    next_round: usize,
}

async fn run_workers<F, Fut>(
    length: Duration,
    first_round: usize,
    request: F,
) -> anyhow::Result<WorkerRun>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Outcome>> + Send,
{
    let deadline = Instant::now() + length;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|worker| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut run = WorkerRun {
                    latencies: Vec::new(),
                    failed: 0,
                    bytes: 0,
                    next_round: first_round,
                };
                // Stop only after an even number of rounds, so a phase that alternates
                // removes and adds never ends with members removed and not yet added back.
                while Instant::now() < deadline || (run.next_round - first_round) % 2 == 1 {
                    let sent = Instant::now();
                    let outcome = request(worker, run.next_round).await?;
                    run.latencies.push(sent.elapsed());
                    run.failed += usize::from(!outcome.ok);
                    run.bytes += outcome.bytes;
                    run.next_round += 1;
                }
                anyhow::Ok(run)
            })
        })
        .collect();
    let mut total = WorkerRun {
        latencies: Vec::new(),
        failed: 0,
        bytes: 0,
        next_round: first_round,
    };
    for worker in workers {
        let run = worker.await??;
        total.latencies.extend(run.latencies);
        total.failed += run.failed;
        total.bytes += run.bytes;
        // The next phase carries on from the furthest round, past every pair touched here.
        total.next_round = total.next_round.max(run.next_round);
    }
    Ok(total)
}

/// CPU time (user + system) spent so far by the server's and the client's threads.
fn cpu_by_thread() -> anyhow::Result<(Duration, Duration)> {
    // Linux reports thread times in clock ticks, 100 per second on every mainstream kernel.
    const TICKS_PER_SECOND: u64 = 100;
    let mut server = 0;
    let mut client = 0;
    for task in std::fs::read_dir("/proc/self/task").context("/proc/self/task")? {
        let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
            continue; // the thread ended while we looked
        };
        let Some((name, rest)) = stat
            .split_once(") ")
            .map(|(head, rest)| (head.rsplit_once('(').map_or("", |(_, n)| n), rest))
        else {
            continue;
        };
        // After the name: state is field 3, utime field 14, stime field 15.
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 =
            fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        if name.starts_with(SERVER_THREAD) {
            server += ticks;
        } else if name.starts_with(CLIENT_THREAD) {
            client += ticks;
        }
    }
    let time = |ticks: u64| Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND);
    Ok((time(server), time(client)))
}

/// The process's resident set size, in MiB.
fn resident_mib() -> anyhow::Result<f64> {
    let status =
        std::fs::read_to_string(Path::new("/proc/self/status")).context("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("/proc/self/status has no VmRSS line")?;
    Ok(kib / 1024.0)
}
