//! How long planning takes for a large university: builds desired and actual membership
//! of 300,000 and 1,000,000 rows with realistic churn, then times `diff` and `guard`.
//!
//! Run it optimised: `cargo run --release --example plan_scale`.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use rollcall::config::{GuardConfig, OnVanish};
use rollcall::plan::{
    Actual, ActualList, Approvals, Desired, DesiredList, Members, ObjectId, Policies, Policy, diff,
    guard,
};

/// Timed repetitions of the diff; the fastest is reported, the others absorb warm-up.
const REPEATS: usize = 5;

fn main() {
    println!(
        "{:>12} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "memberships", "lists", "prepare", "diff", "diff(max)", "guard", "ops", "adds", "removes"
    );
    for memberships in [300_000, 1_000_000] {
        measure(memberships);
    }
}

fn measure(memberships: usize) {
    let (wanted, held) = university(memberships, 20_260_901);
    let policies: Policies = [(
        "modules".to_owned(),
        Policy {
            create: true,
            on_vanish: OnVanish::Empty,
            ..Policy::UNKNOWN_FAMILY
        },
    )]
    .into_iter()
    .collect();

    let started = Instant::now();
    let (desired, actual) = prepare(wanted, held);
    let prepare = started.elapsed();

    let mut timings = Vec::with_capacity(REPEATS);
    let mut plan = None;
    for _ in 0..REPEATS {
        let started = Instant::now();
        plan = Some(diff(&desired, &actual, &policies));
        timings.push(started.elapsed());
    }
    let plan = plan.expect("at least one repetition");
    let limits = GuardConfig {
        max_removals_per_run: u64::MAX,
        ..GuardConfig::default()
    };

    let started = Instant::now();
    let verdicts = guard(&plan, &limits, &Approvals::default());
    let guard_time = started.elapsed();

    let started = Instant::now();
    let operations = plan.operations().count();
    let operations_time = started.elapsed();

    let rows: usize = desired.lists().iter().map(|l| l.members.len()).sum();
    println!(
        "{:>12} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}",
        rows,
        plan.totals.lists,
        ms(prepare),
        ms(*timings.iter().min().expect("timed")),
        ms(*timings.iter().max().expect("timed")),
        ms(guard_time),
        ms(operations_time),
        plan.totals.adds,
        plan.totals.removes,
    );
    assert!(verdicts.iter().count() >= 1);
    assert_eq!(
        operations as u64,
        plan.totals.creates + plan.totals.adds + plan.totals.removes
    );
}

fn ms(duration: Duration) -> String {
    format!("{:.1}ms", duration.as_secs_f64() * 1000.0)
}

/// Raw membership of one list as the identity resolver hands it over: unsorted ids.
type RawList = (String, Vec<ObjectId>);

/// Module lists of 20 to 280 members drawn from a population an eighth the size of the
/// membership (each student is on about eight lists), and Microsoft 365 a term behind:
/// 2% of memberships gone, 2% new, 1% of lists not yet created, 1% of groups vanished.
fn university(memberships: usize, seed: u64) -> (Vec<RawList>, Vec<RawList>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let people: Vec<ObjectId> = (0..memberships / 8)
        .map(|_| ObjectId::from_u128(rng.r#gen()))
        .collect();
    let (mut wanted, mut held) = (Vec::new(), Vec::new());
    let mut rows = 0;
    let mut n = 0;
    while rows < memberships {
        let size = rng.gen_range(20..280).min(memberships - rows);
        rows += size;
        n += 1;
        let key = format!("mod-{n:06}-2026");
        let members: Vec<ObjectId> = people.choose_multiple(&mut rng, size).copied().collect();
        let mut current: Vec<ObjectId> = members
            .iter()
            .copied()
            .filter(|_| rng.gen_ratio(98, 100))
            .collect();
        for _ in 0..size / 50 {
            current.push(*people.choose(&mut rng).expect("people"));
        }
        let roll = rng.gen_range(0..100);
        if roll != 0 {
            held.push((key.clone(), current));
        }
        if roll != 1 {
            wanted.push((key, members));
        }
    }
    (wanted, held)
}

/// Builds the diff's inputs the way a run does: members sorted and deduplicated, lists
/// ordered by key.
fn prepare(wanted: Vec<RawList>, held: Vec<RawList>) -> (Desired, Actual) {
    let desired = wanted
        .into_iter()
        .map(|(key, members)| DesiredList {
            family: "modules".into(),
            mail_nickname: key.clone(),
            display_name: key.clone(),
            description: None,
            titled: true,
            members: Members::from(members),
            owners: None,
            key,
        })
        .collect();
    let actual = held
        .into_iter()
        .enumerate()
        .map(|(n, (key, members))| ActualList {
            key,
            family: "modules".into(),
            group_id: format!("group-{n}"),
            title: None,
            members: Members::from(members),
            owners: Members::default(),
        })
        .collect();
    (
        Desired::new(desired).expect("generated keys are unique"),
        Actual::new(actual).expect("generated keys are unique"),
    )
}
