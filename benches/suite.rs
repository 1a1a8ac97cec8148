//! rollcall against a per-member script, under Graph's throttling budget (issue 7).
//!
//! `cargo bench --bench suite` generates the medium and the large university and, for each,
//! against a sandbox tenant with the large tenant's budget (8,000 resource units per 10 s,
//! 3,000 writes per 150 s) running `ROLLCALL_BENCH_TIME_SCALE` (default 20) times faster
//! than real time, measures three runs of the release binary with an SQLite state file:
//!
//! - a full build into an empty tenant: wall time, HTTP round trips, write round trips
//!   against the least a client can do (ceil(adds / 400) + creations), 429s, and the share
//!   of the write budget used while writes were being sent;
//! - a run with nothing to change;
//! - a typical day: 1 % of enrolments changed and a module opened (`apply_churn`).
//!
//! The same three runs are then done by the per-member reconciler in `common/baseline.rs`
//! against a fresh sandbox with the same seed and budget. On these sizes its full build would
//! take hours of (scaled) budget time, so it reconciles every k-th list only, about
//! `ROLLCALL_BENCH_BASELINE_CAP` (default 12,000) memberships, and its figures are
//! extrapolated linearly to the whole university (marked ≈). That flatters the baseline: the
//! sample's writes start against a full write bucket, which a whole run would soon empty.
//!
//! `ROLLCALL_BENCH_TIMELINE=1` prints write requests per second of each scenario.
//! `ROLLCALL_BENCH_SIZES=medium` (or `large`) picks sizes. `ROLLCALL_BENCH_SMOKE=1` (or
//! `-- --smoke`) runs the small university with a fast clock and a small baseline sample in
//! seconds, with no timing assertions, for CI. Planning alone (sources → plan at 300,000 and
//! 1,000,000 memberships) is `cargo bench --bench planning`.

#[path = "common/baseline.rs"]
mod baseline;
#[path = "common/rollcall.rs"]
mod run;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use baseline::{Baseline, Tally};
use rollcall::generate::{GenerateOptions, Size, University, generate};
use rollcall::sandbox::{Faults, Sandbox, SandboxHandle, SandboxOptions, TenantSize};
use run::{Counters, planned, rollcall, smoke_requested, write_config};

/// Graph's write budget per app and tenant: 3,000 writes per 150 s (GRAPH.md).
const WRITES_PER_WINDOW: f64 = 3_000.0;
const WRITE_WINDOW_SECS: f64 = 150.0;
/// Members one `$batch` of 20 PATCHes of 20 can add.
const ADDS_PER_BATCH: u64 = 400;
/// The share of enrolments a typical day changes.
const DAY_CHURN: f64 = 0.01;
/// How often the write-phase sampler reads the sandbox's counters.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// What to measure.
#[derive(Debug)]
struct Setup {
    sizes: Vec<Size>,
    time_scale: f64,
    baseline_cap: usize,
}

impl Setup {
    fn from_environment() -> anyhow::Result<Setup> {
        if smoke_requested() {
            return Ok(Setup {
                sizes: vec![Size::Small],
                time_scale: 200.0,
                baseline_cap: 400,
            });
        }
        let sizes = match std::env::var("ROLLCALL_BENCH_SIZES") {
            Ok(sizes) => sizes
                .split(',')
                .map(|size| match size.trim() {
                    "small" => Ok(Size::Small),
                    "medium" => Ok(Size::Medium),
                    "large" => Ok(Size::Large),
                    other => bail!(
                        "ROLLCALL_BENCH_SIZES: unknown size `{other}`; use small, medium or large"
                    ),
                })
                .collect::<anyhow::Result<Vec<Size>>>()?,
            Err(_) => vec![Size::Medium, Size::Large],
        };
        let number = |name: &str, default: f64| -> anyhow::Result<f64> {
            match std::env::var(name) {
                Ok(value) => value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .with_context(|| format!("{name}: `{value}` is not a positive number")),
                Err(_) => Ok(default),
            }
        };
        Ok(Setup {
            sizes,
            time_scale: number("ROLLCALL_BENCH_TIME_SCALE", 20.0)?,
            baseline_cap: number("ROLLCALL_BENCH_BASELINE_CAP", 12_000.0)? as usize,
        })
    }

    fn faults(&self) -> Faults {
        Faults {
            throttling: true,
            tenant_size: TenantSize::Large,
            time_scale: self.time_scale,
            seed: 42,
            ..Faults::default()
        }
    }

    /// Writes the budget allows over `elapsed`, starting from a full bucket.
    fn writes_allowed(&self, elapsed: Duration) -> f64 {
        WRITES_PER_WINDOW
            + WRITES_PER_WINDOW / WRITE_WINDOW_SECS * self.time_scale * elapsed.as_secs_f64()
    }
}

/// One measured run.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    wall: Duration,
    counters: Counters,
    /// From the first write to the last, as the sandbox saw them.
    write_phase: Option<Duration>,
}

/// Everything measured for one university size.
#[derive(Debug)]
struct Figures {
    size: Size,
    memberships: usize,
    creates: u64,
    adds: u64,
    rollcall: [Measured; 3],
    baseline: [Measured; 3],
    baseline_tally: Tally,
    /// Baseline figures are multiplied by this (whole university ÷ sample).
    extrapolation: f64,
    sampled_lists: usize,
    lists: usize,
}

fn main() -> anyhow::Result<()> {
    let setup = Setup::from_environment()?;
    // The sandbox gets a runtime (and so a core) of its own; rollcall runs as its own process
    // and the baseline on this thread.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sandbox-server")
        .enable_all()
        .build()?;
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut all = Vec::new();
    for &size in &setup.sizes {
        let figures = measure_size(&setup, size, &server, &client)
            .with_context(|| format!("size {size:?}"))?;
        print_details(&setup, &figures);
        all.push(figures);
    }
    print_table(&setup, &all);
    Ok(())
}

fn measure_size(
    setup: &Setup,
    size: Size,
    server: &tokio::runtime::Runtime,
    client: &tokio::runtime::Runtime,
) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let mut university = generate(&GenerateOptions::for_size(size, 42));
    university
        .write(dir.path())
        .context("writing the university's sources")?;
    let before_churn = university.clone();
    let seed = university.sandbox_seed();
    let faults = setup.faults();
    let options = SandboxOptions {
        seed: seed.clone(),
        faults: faults.clone(),
        ..SandboxOptions::default()
    };

    // rollcall.
    let sandbox = server.block_on(Sandbox::start(options.clone()))?;
    let config = write_config(dir.path(), &sandbox)?;
    // Owners bound at creation share the 20 references with members, so the least counts
    // owner adds like member adds (issue 15).
    let (creates, member_adds, owner_adds) = planned(&config)?;
    let adds = member_adds + owner_adds;
    let outcome = rollcall_runs(&sandbox, &faults, &config, &mut university, dir.path());
    server.block_on(sandbox.shutdown());
    let ours = outcome?;

    // The per-member baseline, on every k-th list, against a fresh tenant.
    let memberships: usize = before_churn.lists().map(|l| l.members.len()).sum();
    let lists = before_churn.lists().count();
    let stride = (memberships / setup.baseline_cap.max(1)).max(1);
    let sample: HashSet<String> = before_churn
        .lists()
        .enumerate()
        .filter(|(i, _)| i % stride == 0)
        .map(|(_, l)| l.key.to_owned())
        .collect();
    let sampled: usize = before_churn
        .lists()
        .filter(|l| sample.contains(l.key))
        .map(|l| l.members.len())
        .sum();
    let sandbox = server.block_on(Sandbox::start(options))?;
    let outcome = client
        .block_on(Baseline::connect(&sandbox))
        .and_then(|mut baseline| {
            let mut pass = |u: &University| {
                scenario(&sandbox, &faults, || {
                    let lists = u.lists().filter(|l| sample.contains(l.key));
                    client.block_on(baseline.reconcile(u, lists))
                })
            };
            let runs = [
                pass(&before_churn)?,
                pass(&before_churn)?,
                pass(&university)?,
            ];
            Ok((runs, baseline.tally))
        });
    server.block_on(sandbox.shutdown());
    let (baseline_runs, baseline_tally) = outcome?;
    Ok(Figures {
        size,
        memberships,
        creates,
        adds,
        rollcall: ours,
        baseline: baseline_runs,
        baseline_tally,
        extrapolation: memberships as f64 / sampled.max(1) as f64,
        sampled_lists: sample.len(),
        lists,
    })
}

/// rollcall's full build, no-change run, and day of churn (the sources in `dir` rewritten).
fn rollcall_runs(
    sandbox: &SandboxHandle,
    faults: &Faults,
    config: &Path,
    university: &mut University,
    dir: &Path,
) -> anyhow::Result<[Measured; 3]> {
    let run = || rollcall(config, &["run"]).map(drop);
    let full = scenario(sandbox, faults, run)?;
    let quiet = scenario(sandbox, faults, run)?;
    if quiet.counters.write_requests > 0 {
        bail!(
            "the no-change run sent {} write requests: the build did not converge",
            quiet.counters.write_requests
        );
    }
    university.apply_churn(DAY_CHURN, 7);
    university.write(dir).context("writing the day's sources")?;
    let day = scenario(sandbox, faults, run)?;
    Ok([full, quiet, day])
}

/// Runs `work` against a sandbox whose buckets start full, and measures it: wall time, the
/// sandbox's counters, and the stretch during which writes arrived.
fn scenario(
    sandbox: &SandboxHandle,
    faults: &Faults,
    work: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Measured> {
    sandbox.set_faults(faults.clone());
    let before = Counters::read(sandbox);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let (outcome, write_phase) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut first: Option<Duration> = None;
            let mut last: Option<Duration> = None;
            let mut seen = before.write_requests;
            let mut timeline = Timeline::from_env(seen);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(SAMPLE_EVERY);
                let now = Counters::read(sandbox).write_requests;
                if now > seen {
                    seen = now;
                    let at = started.elapsed();
                    first.get_or_insert(at);
                    last = Some(at);
                }
                if let Some(timeline) = timeline.as_mut() {
                    timeline.sample(started.elapsed(), now);
                }
            }
            first.zip(last).map(|(first, last)| last - first)
        });
        let outcome = work();
        done.store(true, Ordering::Relaxed);
        (outcome, sampler.join().expect("the sampler does not panic"))
    });
    let wall = started.elapsed();
    outcome?;
    Ok(Measured {
        wall,
        counters: Counters::read(sandbox).since(&before),
        write_phase,
    })
}

/// With `ROLLCALL_BENCH_TIMELINE=1`, write requests served per second of a scenario, printed
/// to stderr: where a write phase leaves the budget unused.
struct Timeline {
    second: u64,
    at_second_start: u64,
}

impl Timeline {
    fn from_env(write_requests: u64) -> Option<Timeline> {
        std::env::var_os("ROLLCALL_BENCH_TIMELINE").map(|_| Timeline {
            second: 0,
            at_second_start: write_requests,
        })
    }

    fn sample(&mut self, elapsed: Duration, write_requests: u64) {
        if elapsed.as_secs() > self.second {
            eprintln!(
                "  timeline: second {:>3}: {:>5} write requests",
                self.second,
                write_requests - self.at_second_start
            );
            self.second = elapsed.as_secs();
            self.at_second_start = write_requests;
        }
    }
}

/// The least write round trips a full build can take: one per 400 adds, one per creation.
fn least_write_round_trips(figures: &Figures) -> u64 {
    figures.adds.div_ceil(ADDS_PER_BATCH) + figures.creates
}

/// Writes served (throttled ones are charged but not served) over writes the budget allowed
/// while they were sent.
fn budget_used(setup: &Setup, run: &Measured) -> Option<f64> {
    let phase = run.write_phase?;
    let served = run
        .counters
        .write_requests
        .saturating_sub(run.counters.throttled);
    Some(served as f64 / setup.writes_allowed(phase))
}

fn print_details(setup: &Setup, figures: &Figures) {
    let [full, quiet, day] = &figures.rollcall;
    println!(
        "\n{:?} university: {} lists, {} memberships; plan: {} creations, {} adds; \
         sandbox budget: large tenant × {}",
        figures.size,
        figures.lists,
        figures.memberships,
        figures.creates,
        figures.adds,
        setup.time_scale
    );
    for (name, run) in [("full build", full), ("no-change", quiet), ("day", day)] {
        let c = &run.counters;
        println!(
            "  rollcall {name}: {:.2} s, {} round trips, {} write round trips, {} write \
             requests, {} writes, {} of {} requests 429, {} early, write phase {:.2} s",
            run.wall.as_secs_f64(),
            c.round_trips,
            c.write_round_trips,
            c.write_requests,
            c.writes,
            c.throttled,
            c.charged,
            c.early,
            run.write_phase.unwrap_or_default().as_secs_f64()
        );
    }
    for (name, run) in [
        ("full build", &figures.baseline[0]),
        ("no-change", &figures.baseline[1]),
        ("day", &figures.baseline[2]),
    ] {
        let c = &run.counters;
        println!(
            "  baseline {name} (sample: {} of {} lists, × {:.2}): {:.2} s, {} round trips, {} \
             write requests, {} writes, {} 429s, {} early",
            figures.sampled_lists,
            figures.lists,
            figures.extrapolation,
            run.wall.as_secs_f64(),
            c.round_trips,
            c.write_requests,
            c.writes,
            c.throttled,
            c.early
        );
    }
    let t = &figures.baseline_tally;
    println!(
        "  baseline in all (sample): {} creations, {} adds, {} removes, {} round trips, {} \
         write requests, {} 429s",
        t.creates, t.adds, t.removes, t.round_trips, t.write_requests, t.throttled
    );
}

fn print_table(setup: &Setup, all: &[Figures]) {
    println!(
        "\n| what | rollcall | per-member baseline | baseline ÷ rollcall |\n| --- | --- | --- | --- |"
    );
    for figures in all {
        let size = format!("{:?}", figures.size).to_lowercase();
        let x = figures.extrapolation;
        let approx = if x > 1.0 { "≈ " } else { "" };
        let [full, quiet, day] = &figures.rollcall;
        let [b_full, b_quiet, b_day] = &figures.baseline;
        let secs = |d: Duration, scale: f64| d.as_secs_f64() * scale;
        let row = |what: String, ours: String, theirs: String, ratio: f64| {
            println!("| {what} | {ours} | {approx}{theirs} | {ratio:.1}× |");
        };
        for (name, ours, theirs) in [
            ("full build", full, b_full),
            ("no-change run", quiet, b_quiet),
            ("a day (1 % churn)", day, b_day),
        ] {
            row(
                format!("{size}: {name}, wall time"),
                format!("{:.1} s", secs(ours.wall, 1.0)),
                format!("{:.0} s", secs(theirs.wall, x)),
                secs(theirs.wall, x) / secs(ours.wall, 1.0),
            );
            row(
                format!("{size}: {name}, HTTP round trips"),
                thousands(ours.counters.round_trips as f64),
                thousands(theirs.counters.round_trips as f64 * x),
                theirs.counters.round_trips as f64 * x / ours.counters.round_trips.max(1) as f64,
            );
        }
        let least = least_write_round_trips(figures);
        row(
            format!(
                "{size}: full build, write round trips (least: {})",
                thousands(least as f64)
            ),
            format!(
                "{} ({:.3} × least)",
                thousands(full.counters.write_round_trips as f64),
                full.counters.write_round_trips as f64 / least.max(1) as f64
            ),
            thousands(b_full.counters.write_round_trips as f64 * x),
            b_full.counters.write_round_trips as f64 * x
                / full.counters.write_round_trips.max(1) as f64,
        );
        let share = |run: &Measured| {
            format!(
                "{} of {} requests ({:.2} %)",
                run.counters.throttled,
                run.counters.charged,
                run.counters.throttled as f64 * 100.0 / run.counters.charged.max(1) as f64
            )
        };
        println!(
            "| {size}: full build, answered 429 | {} | {} (sample) | |",
            share(full),
            share(b_full)
        );
        let used = |run: &Measured| {
            budget_used(setup, run).map_or("no writes".to_owned(), |u| {
                format!(
                    "{:.0} % over {:.1} s of writes",
                    u * 100.0,
                    run.write_phase.unwrap_or_default().as_secs_f64()
                )
            })
        };
        println!(
            "| {size}: full build, write budget used | {} | {} (sample) | |",
            used(full),
            used(b_full)
        );
    }
    println!(
        "\nSandbox tenant with the large tenant's budget running {}× faster than real time; \
         rollcall is this build's binary (release under `cargo bench`) with an SQLite state file. Baseline figures marked ≈ \
         are extrapolated linearly from a sample of every k-th list.",
        setup.time_scale
    );
}

/// 12345.6 as "12,346".
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
