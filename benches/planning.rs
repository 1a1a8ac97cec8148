//! What planning alone costs: sources → desired lists → diff → guard, in wall time and
//! peak memory, for 300,000 and 1,000,000 memberships.
//!
//! `cargo bench --bench planning` generates each university (deterministically, seed 42)
//! into a temporary folder: the two source CSVs with their control files, an identity map
//! (what the state store's directory mirror would answer) and the groups as Microsoft 365
//! has them, a few per cent off (3 % of memberships missing, 2 % extra). Each size is then
//! planned in a child process of its own, so that its peak resident memory (`VmHWM`) is
//! its own; the child resets the peak before each phase (`/proc/self/clear_refs`), so each
//! phase's peak is reported too. `ROLLCALL_BENCH_SMOKE=1 cargo bench --bench planning` (or
//! `-- --smoke`) plans a small university in seconds, for CI.
//!
//! The phases are the engine's own planning calls (`Engine::prepare` without the I/O):
//! `read_all` (both CSVs read, checked and merged), resolving member keys through the
//! identity map, `Snapshot::resolve` and `Desired::new`, `diff`, and `guard`. Loading the
//! identity map and the actual groups is not timed: in a run they come from the state
//! store and from Microsoft Graph; they stay resident, so they count in the peaks.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollcall::config::{Config, MemberKey};
use rollcall::generate::{Family, GenerateOptions, University, generate};
use rollcall::plan::{self, Actual, ActualList, Approvals, Desired, Members, ObjectId, Policies};
use rollcall::source::{self, Member};
use serde::{Deserialize, Serialize};

/// The identity map: `kind<TAB>value<TAB>object id` per line.
const IDENTITIES: &str = "identities.tsv";
/// The actual groups: `list<TAB>family<TAB>group id<TAB>member id` per line.
const ACTUAL: &str = "actual.tsv";
/// Share of desired memberships missing from Microsoft 365, in per mille.
const MISSING_PER_MILLE: u32 = 30;
/// Extra memberships in Microsoft 365, in per mille of the desired ones.
const EXTRA_PER_MILLE: u32 = 20;

/// What a child reports for one size.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    /// Distinct memberships the sources hold.
    memberships: u64,
    /// Desired lists.
    lists: usize,
    /// Operations the plan holds.
    operations: u64,
    /// Resident memory once the identity map and actual groups are loaded, in KiB.
    baseline_kib: u64,
    /// Each phase: name, wall time in milliseconds, peak resident memory in KiB.
    phases: Vec<(String, f64, u64)>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let dir = args.get(at + 1).context("--child needs a folder")?;
        let measured = plan_in(Path::new(dir))?;
        println!("{}", serde_json::to_string(&measured)?);
        return Ok(());
    }
    let smoke = args.iter().any(|a| a == "--smoke")
        || std::env::var("ROLLCALL_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
    // Students for about 300,000 and 1,000,000 memberships (7.5 per student).
    let sizes: &[(&str, u32)] = if smoke {
        &[("smoke", 1_000)]
    } else {
        &[("300k", 40_000), ("1M", 133_334)]
    };

    let mut table = String::from(
        "| memberships | lists | operations | sources | resolve | desired | diff | guard | total | peak RSS | above baseline |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (label, students) in sizes {
        let dir = tempfile::tempdir().context("a temporary folder")?;
        prepare(dir.path(), *students).with_context(|| format!("generating the {label} size"))?;
        let output = Command::new(std::env::current_exe()?)
            .arg("--child")
            .arg(dir.path())
            // The config must name a secret; planning never uses it.
            .env("ROLLCALL_BENCH_GRAPH_SECRET", "unused")
            .output()
            .context("running the planning child")?;
        if !output.status.success() {
            bail!(
                "planning {label} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let measured: Measured =
            serde_json::from_slice(&output.stdout).context("the child's report")?;
        row(&mut table, &measured);
    }
    println!("\nplanning benchmark (sources → plan, one process per size)\n\n{table}");
    println!(
        "Times in ms; memory in MiB. Peak RSS is the process's VmHWM over the planning phases;\n\
         above baseline subtracts what was resident before planning (binary, identity map,\n\
         actual groups)."
    );
    Ok(())
}

fn row(table: &mut String, m: &Measured) {
    let ms = |name: &str| m.phases.iter().find(|p| p.0 == name).map_or(0.0, |p| p.1);
    let total: f64 = m.phases.iter().map(|p| p.1).sum();
    let peak = m.phases.iter().map(|p| p.2).max().unwrap_or(0);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let _ = writeln!(
        table,
        "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} |",
        m.memberships,
        m.lists,
        m.operations,
        ms("sources"),
        ms("resolve"),
        ms("desired"),
        ms("diff"),
        ms("guard"),
        total,
        mib(peak),
        mib(peak.saturating_sub(m.baseline_kib)),
    );
}

/// A person's directory object id, derived from their index so that both files agree.
fn person_id(index: usize) -> ObjectId {
    ObjectId::from_u128(mix(index as u64, 0x5eed))
}

/// A group's id, derived from its list's position.
fn group_id(index: usize) -> ObjectId {
    ObjectId::from_u128(mix(index as u64, 0x6e0b))
}

/// 128 well-spread bits from a number (splitmix64 twice).
fn mix(n: u64, salt: u64) -> u128 {
    let step = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let high = step(n ^ salt.rotate_left(17));
    let low = step(high ^ n);
    (u128::from(high) << 64) | u128::from(low)
}

/// Writes the sources, config, identity map and actual groups for `students` into `dir`.
fn prepare(dir: &Path, students: u32) -> anyhow::Result<()> {
    let university = generate(&GenerateOptions {
        students,
        seed: 42,
        drift: false,
    });
    university.write(dir)?;
    let config = format!(
        "[state]\nurl = \"sqlite://{}\"\n\n[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\n\
         client_secret_env = \"ROLLCALL_BENCH_GRAPH_SECRET\"\n\n{}",
        dir.join("state.db").display(),
        university.config_toml(dir)
    );
    std::fs::write(dir.join("bench.toml"), config)?;
    write_identities(dir, &university)?;
    write_actual(dir, &university)
}

fn write_identities(dir: &Path, university: &University) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(dir.join(IDENTITIES))?);
    for (index, person) in university.people.iter().enumerate() {
        // A new arrival has no account yet: their keys stay unresolved, as in a run.
        if !person.has_account {
            continue;
        }
        let id = person_id(index);
        writeln!(out, "upn\t{}\t{id}", person.upn)?;
        writeln!(out, "employee_id\t{}\t{id}", person.employee_id)?;
    }
    out.flush()?;
    Ok(())
}

fn write_actual(dir: &Path, university: &University) -> anyhow::Result<()> {
    let mut random = ChaCha8Rng::seed_from_u64(7);
    let people = university.people.len();
    let mut out = BufWriter::new(std::fs::File::create(dir.join(ACTUAL))?);
    for (index, list) in university.lists().enumerate() {
        let family = match list.family {
            Family::Modules => "modules",
            Family::Departments => "departments",
        };
        let group = group_id(index);
        for &member in &list.members {
            if university.people[member].has_account
                && random.gen_range(0..1000) >= MISSING_PER_MILLE
            {
                writeln!(
                    out,
                    "{}\t{family}\t{group}\t{}",
                    list.key,
                    person_id(member)
                )?;
            }
            if random.gen_range(0..1000) < EXTRA_PER_MILLE {
                let other = random.gen_range(0..people);
                writeln!(out, "{}\t{family}\t{group}\t{}", list.key, person_id(other))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The child: loads the inputs, then times and measures each planning phase.
fn plan_in(dir: &Path) -> anyhow::Result<Measured> {
    let config = Config::load(&dir.join("bench.toml"))?;
    let identities = load_identities(&dir.join(IDENTITIES))?;
    let actual = load_actual(&dir.join(ACTUAL))?;
    let baseline_kib = status_kib("VmRSS")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut phases = Vec::new();
    let mut phase = |name: &str, started: Instant| -> anyhow::Result<()> {
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        phases.push((name.to_owned(), elapsed, status_kib("VmHWM")?));
        reset_peak()
    };

    reset_peak()?;
    let started = Instant::now();
    let snapshot = runtime.block_on(source::read_all(&config))?;
    phase("sources", started)?;

    // What `identity::resolve` answers: every key the sources name, looked up once.
    let started = Instant::now();
    let keys = snapshot.member_keys();
    let resolved: HashMap<&Member, ObjectId> = keys
        .iter()
        .filter_map(|member| {
            let id = identities.get(&(member.key, member.value.as_str()))?;
            Some((*member, *id))
        })
        .collect();
    drop(keys);
    phase("resolve", started)?;

    let started = Instant::now();
    let wanted = snapshot.wanted();
    let lists = snapshot.resolve(wanted, |_| false, |member| resolved.get(member).copied());
    let desired = Desired::new(lists.lists)?;
    phase("desired", started)?;

    let started = Instant::now();
    let policies = Policies::from_families(&config.families);
    let plan = plan::diff(&desired, &actual, &policies);
    phase("diff", started)?;

    let started = Instant::now();
    let verdicts = plan::guard(&plan, &config.guard, &Approvals::default());
    phase("guard", started)?;
    std::hint::black_box(&verdicts);

    Ok(Measured {
        memberships: snapshot.sources.iter().map(|s| s.distinct).sum(),
        lists: desired.lists().len(),
        operations: plan.totals.adds + plan.totals.removes,
        baseline_kib,
        phases,
    })
}

/// The identity map, keyed by member kind and normalized value.
type Identities = HashMap<(MemberKey, &'static str), ObjectId>;

fn load_identities(path: &Path) -> anyhow::Result<Identities> {
    let mut map = HashMap::new();
    for line in BufReader::new(std::fs::File::open(path)?).lines() {
        let line = line?;
        let mut fields = line.split('\t');
        let (Some(kind), Some(value), Some(id)) = (fields.next(), fields.next(), fields.next())
        else {
            bail!("{}: a short line: {line}", path.display());
        };
        let kind = match kind {
            "upn" => MemberKey::Upn,
            "employee_id" => MemberKey::EmployeeId,
            other => bail!("{}: unknown kind {other}", path.display()),
        };
        // The map lives as long as the child; leaking keeps lookups by `&str`.
        let value: &'static str = Box::leak(value.to_owned().into_boxed_str());
        map.insert((kind, value), id.parse()?);
    }
    Ok(map)
}

fn load_actual(path: &Path) -> anyhow::Result<Actual> {
    let mut lists: Vec<ActualList> = Vec::new();
    let mut members: Vec<ObjectId> = Vec::new();
    let finish = |lists: &mut Vec<ActualList>, members: &mut Vec<ObjectId>| {
        if let Some(last) = lists.last_mut() {
            last.members = Members::from(std::mem::take(members));
        }
    };
    for line in BufReader::new(std::fs::File::open(path)?).lines() {
        let line = line?;
        let fields: Vec<&str> = line.split('\t').collect();
        let [key, family, group, member] = fields[..] else {
            bail!("{}: a bad line: {line}", path.display());
        };
        if lists.last().is_none_or(|l| l.key != key) {
            finish(&mut lists, &mut members);
            lists.push(ActualList {
                key: key.to_owned(),
                family: family.to_owned(),
                group_id: group.to_owned(),
                title: None,
                members: Members::default(),
                owners: Default::default(),
            });
        }
        members.push(member.parse()?);
    }
    finish(&mut lists, &mut members);
    Ok(Actual::new(lists)?)
}

/// A `/proc/self/status` figure in KiB (e.g. `VmHWM`, the peak resident set).
fn status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}

/// Resets `VmHWM` to the current resident set, so the next reading is the next phase's peak.
fn reset_peak() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak (clear_refs)")
}
