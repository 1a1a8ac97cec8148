//! Guards: limits that stop a plan before its first change. Pure: no I/O, no clock.
//!
//! Every guard compares an observed count with a limit, the most it allows: a count equal
//! to the limit passes, one more trips. An operator's approval lifts the guards it covers
//! only when it covers the whole plan, so an approval given for a smaller plan never
//! carries a larger one through.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::GuardConfig;

use super::{HoldReason, ListChange, Plan};

/// What an operator approved for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    /// `--accept-removals N`: removal guards are lifted when the plan removes at most N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_removals: Option<u64>,
    /// The additions guard is lifted when the plan adds at most this many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_additions: Option<u64>,
    /// `--accept-list LIST`: lists whose per-list guards are lifted for this run, by key
    /// folded to lower case (list keys compare case-insensitively).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub accept_lists: BTreeSet<String>,
    /// `--accept-owner-removals N`: the owner removals guard is lifted when the plan
    /// removes at most N owners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_owner_removals: Option<u64>,
}

impl Approvals {
    /// Approval of exactly this plan's removals and additions: what `apply FILE --reason`
    /// grants the saved plan the operator reviewed. Lists the plan holds stay held.
    pub fn whole_plan(plan: &Plan) -> Self {
        Self {
            accept_removals: Some(plan.totals.removes),
            accept_additions: Some(plan.totals.adds),
            accept_lists: BTreeSet::new(),
            accept_owner_removals: Some(plan.totals.owner_removes),
        }
    }

    /// Whether `--accept-list` names `list` (case-insensitively).
    pub fn accepts_list(&self, list: &str) -> bool {
        self.accept_lists.contains(&list.to_lowercase())
    }
}

/// Which guard a verdict is about; named after its `[guard]` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    /// Removals across all lists (emptied vanished lists included).
    MaxRemovalsPerRun,
    /// Removals from one list, as a share of its current members.
    MaxRemovalPercentPerList,
    /// Additions across all lists.
    MaxAdditionsPerRun,
    /// Additions to one list, as a share of its current members.
    MaxAdditionPercentPerList,
    /// A list's desired size against its family's `max_members`.
    MaxMembers,
    /// Owner removals across all lists.
    MaxOwnerRemovalsPerRun,
}

impl GuardKind {
    /// The guard's `[guard]` key.
    pub fn key(self) -> &'static str {
        match self {
            GuardKind::MaxRemovalsPerRun => "max_removals_per_run",
            GuardKind::MaxRemovalPercentPerList => "max_removal_percent_per_list",
            GuardKind::MaxAdditionsPerRun => "max_additions_per_run",
            GuardKind::MaxAdditionPercentPerList => "max_addition_percent_per_list",
            GuardKind::MaxMembers => "max_members",
            GuardKind::MaxOwnerRemovalsPerRun => "max_owner_removals_per_run",
        }
    }

    /// Every guard, run-wide ones first.
    pub const ALL: [GuardKind; 6] = [
        GuardKind::MaxRemovalsPerRun,
        GuardKind::MaxAdditionsPerRun,
        GuardKind::MaxOwnerRemovalsPerRun,
        GuardKind::MaxRemovalPercentPerList,
        GuardKind::MaxAdditionPercentPerList,
        GuardKind::MaxMembers,
    ];

    /// Whether the guard judges one list (a trip holds that list) rather than the whole run.
    pub fn per_list(self) -> bool {
        !matches!(
            self,
            GuardKind::MaxRemovalsPerRun
                | GuardKind::MaxAdditionsPerRun
                | GuardKind::MaxOwnerRemovalsPerRun
        )
    }
}

/// How a guard judged the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Within the limit.
    Passed,
    /// Over the limit: the plan must not be applied.
    Tripped,
    /// Over the limit, but an operator approved up to `by` changes of this kind.
    Accepted {
        /// The approved count.
        by: u64,
    },
}

/// One guard's judgement of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The guard.
    pub guard: GuardKind,
    /// The list, for a per-list guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// The most members the guard lets the plan add or remove.
    pub limit: u64,
    /// How many the plan adds or removes.
    pub observed: u64,
    /// The list's current member count, for the percentage guards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_size: Option<u64>,
    /// The configured percentage, for the percentage guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// The judgement.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Every guard's judgement of one plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Verdicts(Vec<Verdict>);

impl Verdicts {
    /// All verdicts: run-wide guards first, then per-list ones by list key.
    pub fn iter(&self) -> impl Iterator<Item = &Verdict> {
        self.0.iter()
    }

    /// The verdicts that stop the plan.
    pub fn tripped(&self) -> impl Iterator<Item = &Verdict> {
        self.iter().filter(|v| v.outcome == Outcome::Tripped)
    }

    /// Whether any guard stops the plan (the run exits 3 before its first change).
    pub fn any_tripped(&self) -> bool {
        self.tripped().next().is_some()
    }

    /// The verdict of a run-wide guard, or of a per-list guard for `list`.
    pub fn find(&self, guard: GuardKind, list: Option<&str>) -> Option<&Verdict> {
        self.iter()
            .find(|v| v.guard == guard && v.list.as_deref() == list)
    }
}

/// Judges a plan against the configured limits and the operator's approvals.
///
/// The run-wide guards always give a verdict (`max_additions_per_run` only when it is
/// configured). The percentage guard gives one only for a list over its limit: a verdict
/// for every list that loses a member would bury the one that matters.
pub fn guard(plan: &Plan, limits: &GuardConfig, approvals: &Approvals) -> Verdicts {
    let removals = plan.totals.removes;
    let removals_approved = approvals.accept_removals.filter(|&n| n >= removals);
    let judge_removals = |observed: u64, limit: u64| judge(observed, limit, removals_approved);

    let mut verdicts = vec![Verdict {
        guard: GuardKind::MaxRemovalsPerRun,
        list: None,
        limit: limits.max_removals_per_run,
        observed: removals,
        list_size: None,
        percent: None,
        outcome: judge_removals(removals, limits.max_removals_per_run),
    }];

    let owner_removals = plan.totals.owner_removes;
    let owner_removals_approved = approvals
        .accept_owner_removals
        .filter(|&n| n >= owner_removals);
    verdicts.push(Verdict {
        guard: GuardKind::MaxOwnerRemovalsPerRun,
        list: None,
        limit: limits.max_owner_removals_per_run,
        observed: owner_removals,
        list_size: None,
        percent: None,
        outcome: judge(
            owner_removals,
            limits.max_owner_removals_per_run,
            owner_removals_approved,
        ),
    });

    if let Some(max_additions) = limits.max_additions_per_run {
        let additions = plan.totals.adds;
        let additions_approved = approvals.accept_additions.filter(|&n| n >= additions);
        verdicts.push(Verdict {
            guard: GuardKind::MaxAdditionsPerRun,
            list: None,
            limit: max_additions,
            observed: additions,
            list_size: None,
            percent: None,
            outcome: judge(additions, max_additions, additions_approved),
        });
    }

    let percent = limits.max_removal_percent_per_list;
    for list in &plan.lists {
        let size = list.current_size();
        let removes = list.removes().len() as u64;
        if removes == 0 || size < limits.min_list_size_for_percent {
            continue;
        }
        // removes × 100 > percent × size, in whole members: the most a list may lose is
        // ⌊percent × size / 100⌋, so 50% of 11 members allows 5 and trips at 6.
        let limit = size.saturating_mul(u64::from(percent)) / 100;
        if removes <= limit {
            continue;
        }
        verdicts.push(Verdict {
            guard: GuardKind::MaxRemovalPercentPerList,
            list: Some(list.key.clone()),
            limit,
            observed: removes,
            list_size: Some(size),
            percent: Some(u32::from(percent)),
            outcome: if approvals.accepts_list(&list.key) {
                Outcome::Accepted { by: removes }
            } else {
                judge_removals(removes, limit)
            },
        });
    }
    Verdicts(verdicts)
}

/// Judges `plan` as [`guard`] does, and each list against the growth guards (its family's
/// `max_members` from `max_members`, by family; `max_addition_percent_per_list`), then holds
/// every list whose per-list guard tripped (DESIGN.md "Per-list isolation") and judges the
/// run-wide guards again on what is left: the verdicts returned trip only for a run-wide
/// limit, which stops the whole run.
pub fn guard_holding(
    plan: &mut Plan,
    limits: &GuardConfig,
    max_members: &BTreeMap<String, u64>,
    approvals: &Approvals,
) -> Verdicts {
    let mut first = guard(plan, limits, approvals);
    first.0.extend(growth(plan, limits, max_members, approvals));
    let tripped: Vec<Verdict> = first
        .tripped()
        .filter(|v| v.list.is_some())
        .cloned()
        .collect();
    if tripped.is_empty() {
        return first;
    }
    for verdict in tripped {
        let Some(key) = verdict.list.clone() else {
            continue;
        };
        let family = plan
            .lists
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.family.clone())
            .unwrap_or_default();
        plan.hold(&key, &family, HoldReason::Guard { verdict });
    }
    let mut judged = guard(plan, limits, approvals);
    judged
        .0
        .extend(growth(plan, limits, max_members, approvals));
    judged
}

/// The growth guards' verdicts, one for each list over its limit: `max_members` (its
/// family's; new lists too) and `max_addition_percent_per_list` (lists with at least
/// `min_list_size_for_percent` current members; new lists are exempt). `--accept-list`, or
/// `--accept-additions` covering the whole plan's additions, accepts them.
fn growth(
    plan: &Plan,
    limits: &GuardConfig,
    max_members: &BTreeMap<String, u64>,
    approvals: &Approvals,
) -> Vec<Verdict> {
    let additions_approved = approvals
        .accept_additions
        .filter(|&n| n >= plan.totals.adds);
    let mut verdicts = Vec::new();
    for list in &plan.lists {
        let adds = list.adds().len() as u64;
        if adds == 0 {
            continue;
        }
        let size = list.current_size();
        let approved = if approvals.accepts_list(&list.key) {
            Some(adds)
        } else {
            additions_approved
        };
        let desired = size + adds - list.removes().len() as u64;
        if let Some(&most) = max_members.get(&list.family)
            && desired > most
        {
            verdicts.push(Verdict {
                guard: GuardKind::MaxMembers,
                list: Some(list.key.clone()),
                limit: most,
                observed: desired,
                list_size: Some(size),
                percent: None,
                outcome: judge(desired, most, approved),
            });
        }
        let growing = matches!(list.change, ListChange::Update { .. });
        if let Some(percent) = limits.max_addition_percent_per_list
            && growing
            && size >= limits.min_list_size_for_percent
        {
            // Like the removal guard, in whole members: 100 % of 11 allows 11 additions.
            let limit = size.saturating_mul(u64::from(percent)) / 100;
            if adds > limit {
                verdicts.push(Verdict {
                    guard: GuardKind::MaxAdditionPercentPerList,
                    list: Some(list.key.clone()),
                    limit,
                    observed: adds,
                    list_size: Some(size),
                    percent: Some(percent),
                    outcome: judge(adds, limit, approved),
                });
            }
        }
    }
    verdicts
}

/// Passed within the limit; over it, accepted when approved, tripped otherwise.
fn judge(observed: u64, limit: u64, approved: Option<u64>) -> Outcome {
    match approved {
        _ if observed <= limit => Outcome::Passed,
        Some(by) => Outcome::Accepted { by },
        None => Outcome::Tripped,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::config::OnVanish;
    use crate::plan::diff;
    use crate::plan::fixtures::{actual, desired, have, modules, want};
    use crate::plan::{ActualList, DesiredList};

    fn limits(
        max_removals: u64,
        percent: u8,
        min_size: u64,
        max_additions: Option<u64>,
    ) -> GuardConfig {
        GuardConfig {
            max_removals_per_run: max_removals,
            max_removal_percent_per_list: percent,
            min_list_size_for_percent: min_size,
            max_additions_per_run: max_additions,
            ..GuardConfig::default()
        }
    }

    /// A list `key` of `size` members (numbered from `first`) that loses `removes` of them
    /// and gains `adds` new ones.
    fn shrink(
        key: &str,
        first: u128,
        size: u128,
        removes: u128,
        adds: u128,
    ) -> (DesiredList, ActualList) {
        let current: Vec<u128> = (first..first + size).collect();
        let kept = &current[removes as usize..];
        let added: Vec<u128> = (first + 1_000_000..first + 1_000_000 + adds).collect();
        let wanted: Vec<u128> = kept.iter().copied().chain(added).collect();
        (want(key, &wanted), have(key, &current))
    }

    fn plan_of(lists: Vec<(DesiredList, ActualList)>) -> Plan {
        let (wanted, held): (Vec<_>, Vec<_>) = lists.into_iter().unzip();
        diff(
            &desired(wanted),
            &actual(held),
            &modules(true, OnVanish::Keep),
        )
    }

    fn outcome(verdicts: &Verdicts, guard: GuardKind, list: Option<&str>) -> Option<Outcome> {
        verdicts.find(guard, list).map(|v| v.outcome)
    }

    const NO_APPROVAL: Approvals = Approvals {
        accept_removals: None,
        accept_additions: None,
        accept_lists: BTreeSet::new(),
        accept_owner_removals: None,
    };

    #[rstest]
    #[case::below_limit(4, Outcome::Passed)]
    #[case::at_limit(5, Outcome::Passed)]
    #[case::one_over_limit(6, Outcome::Tripped)]
    fn removals_per_run_trips_only_over_its_limit(
        #[case] removes: u128,
        #[case] expected: Outcome,
    ) {
        // Spread over two big lists so the percentage guard stays out of the way.
        let plan = plan_of(vec![
            shrink("a", 0, 100, removes / 2, 0),
            shrink("b", 1000, 100, removes - removes / 2, 0),
        ]);
        let verdicts = guard(&plan, &limits(5, 50, 10, None), &NO_APPROVAL);
        let verdict = verdicts.find(GuardKind::MaxRemovalsPerRun, None).unwrap();
        assert_eq!((verdict.limit, verdict.observed), (5, removes as u64));
        assert_eq!(verdict.outcome, expected);
        assert_eq!(verdicts.any_tripped(), expected == Outcome::Tripped);
    }

    #[rstest]
    #[case::half_of_ten_passes(10, 5, None)]
    #[case::over_half_of_ten_trips(10, 6, Some(5))]
    #[case::half_of_eleven_rounds_down(11, 5, None)]
    #[case::six_of_eleven_trips(11, 6, Some(5))]
    #[case::below_min_size_is_exempt(9, 9, None)]
    #[case::large_list_at_limit_passes(1000, 500, None)]
    #[case::large_list_one_over_trips(1000, 501, Some(500))]
    fn percent_per_list_trips_only_over_its_share(
        #[case] size: u128,
        #[case] removes: u128,
        #[case] tripped_limit: Option<u64>,
    ) {
        let plan = plan_of(vec![shrink("a", 0, size, removes, 0)]);
        let verdicts = guard(&plan, &limits(10_000, 50, 10, None), &NO_APPROVAL);
        let verdict = verdicts.find(GuardKind::MaxRemovalPercentPerList, Some("a"));
        assert_eq!(
            verdict.map(|v| (v.limit, v.observed, v.list_size, v.outcome)),
            tripped_limit.map(|limit| (limit, removes as u64, Some(size as u64), Outcome::Tripped))
        );
    }

    #[rstest]
    #[case::zero_percent_allows_no_removal(0, 1, true)]
    #[case::hundred_percent_allows_emptying(100, 20, false)]
    fn percent_extremes(#[case] percent: u8, #[case] removes: u128, #[case] trips: bool) {
        let plan = plan_of(vec![shrink("a", 0, 20, removes, 0)]);
        let verdicts = guard(&plan, &limits(10_000, percent, 10, None), &NO_APPROVAL);
        assert_eq!(verdicts.any_tripped(), trips);
    }

    #[rstest]
    #[case::no_approval(None, Outcome::Tripped)]
    #[case::approval_short_of_the_removals(Some(5), Outcome::Tripped)]
    #[case::approval_of_exactly_the_removals(Some(6), Outcome::Accepted { by: 6 })]
    #[case::approval_of_more(Some(100), Outcome::Accepted { by: 100 })]
    fn accepted_removals_lift_the_run_guard_only_when_they_cover_the_plan(
        #[case] accept: Option<u64>,
        #[case] expected: Outcome,
    ) {
        let plan = plan_of(vec![shrink("a", 0, 100, 6, 0)]);
        let approvals = Approvals {
            accept_removals: accept,
            accept_additions: None,
            ..NO_APPROVAL
        };
        let verdicts = guard(&plan, &limits(5, 50, 10, None), &approvals);
        assert_eq!(
            outcome(&verdicts, GuardKind::MaxRemovalsPerRun, None),
            Some(expected)
        );
    }

    #[rstest]
    #[case::approval_covering_the_list_but_not_the_plan(Some(8), Outcome::Tripped)]
    #[case::approval_covering_the_plan(Some(9), Outcome::Accepted { by: 9 })]
    fn accepted_removals_lift_the_percent_guard_only_when_they_cover_the_plan(
        #[case] accept: Option<u64>,
        #[case] expected: Outcome,
    ) {
        // `a` loses 8 of 10 (over 50%); `b` loses 1 of 100: 9 removals in all.
        let plan = plan_of(vec![shrink("a", 0, 10, 8, 0), shrink("b", 1000, 100, 1, 0)]);
        let approvals = Approvals {
            accept_removals: accept,
            accept_additions: None,
            ..NO_APPROVAL
        };
        let verdicts = guard(&plan, &limits(500, 50, 10, None), &approvals);
        assert_eq!(
            outcome(&verdicts, GuardKind::MaxRemovalPercentPerList, Some("a")),
            Some(expected)
        );
        assert_eq!(
            outcome(&verdicts, GuardKind::MaxRemovalPercentPerList, Some("b")),
            None
        );
    }

    #[rstest]
    #[case::unlimited_when_not_configured(None, 50, None)]
    #[case::at_limit(Some(3), 3, Some(Outcome::Passed))]
    #[case::one_over_limit(Some(3), 4, Some(Outcome::Tripped))]
    fn additions_guard_applies_only_when_configured(
        #[case] max: Option<u64>,
        #[case] adds: u128,
        #[case] expected: Option<Outcome>,
    ) {
        let plan = plan_of(vec![shrink("a", 0, 10, 0, adds)]);
        let verdicts = guard(&plan, &limits(500, 50, 10, max), &NO_APPROVAL);
        assert_eq!(
            outcome(&verdicts, GuardKind::MaxAdditionsPerRun, None),
            expected
        );
    }

    #[test]
    fn accepted_removals_do_not_lift_the_additions_guard() {
        let plan = plan_of(vec![shrink("a", 0, 10, 0, 4)]);
        let removals_only = Approvals {
            accept_removals: Some(1000),
            accept_additions: None,
            ..NO_APPROVAL
        };
        let verdicts = guard(&plan, &limits(500, 50, 10, Some(3)), &removals_only);
        assert!(verdicts.any_tripped());
        let whole = guard(
            &plan,
            &limits(500, 50, 10, Some(3)),
            &Approvals::whole_plan(&plan),
        );
        assert_eq!(
            outcome(&whole, GuardKind::MaxAdditionsPerRun, None),
            Some(Outcome::Accepted { by: 4 })
        );
    }

    #[test]
    fn whole_plan_approval_lifts_every_guard() {
        let plan = plan_of(vec![shrink("a", 0, 10, 9, 9)]);
        let strict = limits(1, 10, 1, Some(1));
        assert_eq!(guard(&plan, &strict, &NO_APPROVAL).tripped().count(), 3);
        let approved = guard(&plan, &strict, &Approvals::whole_plan(&plan));
        assert!(!approved.any_tripped());
        assert_eq!(approved.iter().count(), 4);
    }

    #[test]
    fn owner_removals_are_guarded_across_the_run_and_approved_by_count() {
        let mut plan = plan_of(vec![shrink("a", 0, 10, 1, 0)]);
        plan.totals.owner_removes = 51;
        let limits = GuardConfig::default();
        let verdicts = guard(&plan, &limits, &NO_APPROVAL);
        let verdict = verdicts
            .find(GuardKind::MaxOwnerRemovalsPerRun, None)
            .unwrap();
        assert_eq!((verdict.limit, verdict.observed), (50, 51));
        assert_eq!(verdict.outcome, Outcome::Tripped);
        assert!(!GuardKind::MaxOwnerRemovalsPerRun.per_list());
        let too_few = Approvals {
            accept_owner_removals: Some(50),
            ..NO_APPROVAL
        };
        assert!(guard(&plan, &limits, &too_few).any_tripped());
        let enough = Approvals {
            accept_owner_removals: Some(51),
            ..NO_APPROVAL
        };
        assert_eq!(
            outcome(
                &guard(&plan, &limits, &enough),
                GuardKind::MaxOwnerRemovalsPerRun,
                None
            ),
            Some(Outcome::Accepted { by: 51 })
        );
        // Member removals approvals do not lift it.
        let members = Approvals {
            accept_removals: Some(1_000),
            ..NO_APPROVAL
        };
        assert!(guard(&plan, &limits, &members).any_tripped());
        let message = crate::plan::tripped_message(verdict, 1);
        assert!(message.contains("--accept-owner-removals 51"), "{message}");
    }

    #[rstest]
    #[case::emptied_list_counts_against_the_run(OnVanish::Empty, 6, true)]
    #[case::kept_list_removes_nothing(OnVanish::Keep, 0, false)]
    fn vanished_lists_count_as_removals(
        #[case] on_vanish: OnVanish,
        #[case] removals: u64,
        #[case] trips: bool,
    ) {
        let held: Vec<u128> = (0..6).collect();
        let plan = diff(
            &desired(vec![]),
            &actual(vec![have("gone", &held)]),
            &modules(true, on_vanish),
        );
        let verdicts = guard(&plan, &limits(5, 50, 10, None), &NO_APPROVAL);
        let run = verdicts.find(GuardKind::MaxRemovalsPerRun, None).unwrap();
        assert_eq!(run.observed, removals);
        assert_eq!(run.outcome == Outcome::Tripped, trips);
    }

    #[test]
    fn emptying_a_large_vanished_list_trips_the_percent_guard() {
        let held: Vec<u128> = (0..20).collect();
        let plan = diff(
            &desired(vec![]),
            &actual(vec![have("gone", &held)]),
            &modules(true, OnVanish::Empty),
        );
        let verdicts = guard(&plan, &limits(500, 50, 10, None), &NO_APPROVAL);
        assert_eq!(
            outcome(&verdicts, GuardKind::MaxRemovalPercentPerList, Some("gone")),
            Some(Outcome::Tripped)
        );
    }

    #[test]
    fn a_per_list_trip_holds_that_list_only_and_accept_list_releases_it() {
        let mut plan = plan_of(vec![
            shrink("big", 0, 100, 60, 0),
            shrink("ok", 1_000, 20, 2, 3),
        ]);
        let verdicts = guard_holding(
            &mut plan,
            &limits(500, 50, 10, None),
            &BTreeMap::new(),
            &NO_APPROVAL,
        );
        assert!(!verdicts.any_tripped(), "{verdicts:?}");
        let held: Vec<&str> = plan.held().map(|(l, _)| l.key.as_str()).collect();
        assert_eq!(held, ["big"]);
        assert_eq!((plan.totals.removes, plan.totals.adds), (2, 3));
        assert!(plan.operations().all(|op| op.list == "ok"));

        let mut plan = plan_of(vec![
            shrink("big", 0, 100, 60, 0),
            shrink("ok", 1_000, 20, 2, 3),
        ]);
        let approvals = Approvals {
            accept_lists: ["big".to_owned()].into_iter().collect(),
            ..NO_APPROVAL
        };
        assert!(approvals.accepts_list("BIG"));
        let verdicts = guard_holding(
            &mut plan,
            &limits(500, 50, 10, None),
            &BTreeMap::new(),
            &approvals,
        );
        assert_eq!(plan.totals.held, 0);
        assert_eq!(
            outcome(&verdicts, GuardKind::MaxRemovalPercentPerList, Some("big")),
            Some(Outcome::Accepted { by: 60 })
        );
    }

    #[test]
    fn the_run_wide_guard_counts_only_the_lists_not_held() {
        let mut plan = plan_of(vec![
            shrink("big", 0, 100, 60, 0),
            shrink("ok", 1_000, 20, 5, 0),
        ]);
        let verdicts = guard_holding(
            &mut plan,
            &limits(10, 50, 10, None),
            &BTreeMap::new(),
            &NO_APPROVAL,
        );
        assert_eq!(
            outcome(&verdicts, GuardKind::MaxRemovalsPerRun, None),
            Some(Outcome::Passed)
        );
        let mut plan = plan_of(vec![
            shrink("big", 0, 100, 60, 0),
            shrink("ok", 1_000, 40, 15, 0),
        ]);
        let verdicts = guard_holding(
            &mut plan,
            &limits(10, 50, 10, None),
            &BTreeMap::new(),
            &NO_APPROVAL,
        );
        assert!(
            verdicts.any_tripped(),
            "15 removals left over a limit of 10"
        );
    }

    #[test]
    fn a_list_grown_past_its_share_or_its_familys_size_is_held_and_new_lists_are_exempt() {
        let limits = GuardConfig {
            max_addition_percent_per_list: Some(100),
            ..limits(500, 50, 10, None)
        };
        let grown = || {
            let mut plan = plan_of(vec![
                shrink("joined", 0, 20, 0, 21),
                shrink("ok", 1_000, 20, 0, 20),
            ]);
            let fresh = diff(
                &desired(vec![want("new", &(5_000..5_100).collect::<Vec<u128>>())]),
                &actual(vec![]),
                &modules(true, OnVanish::Keep),
            );
            plan.lists.extend(fresh.lists);
            plan.lists.sort_by(|a, b| a.key.cmp(&b.key));
            plan.totals.adds += fresh.totals.adds;
            plan.totals.creates += fresh.totals.creates;
            plan.totals.lists += fresh.totals.lists;
            plan
        };
        let mut plan = grown();
        let verdicts = guard_holding(&mut plan, &limits, &BTreeMap::new(), &NO_APPROVAL);
        assert!(!verdicts.any_tripped());
        let held: Vec<&str> = plan.held().map(|(l, _)| l.key.as_str()).collect();
        assert_eq!(
            held,
            ["joined"],
            "100 % of 20 allows 20 additions, not 21; new lists are exempt"
        );
        let reason = plan.held().next().unwrap().1.to_string();
        assert!(reason.contains("gain 21 members on its 20"), "{reason}");

        let most: BTreeMap<String, u64> = [("modules".to_owned(), 40)].into_iter().collect();
        let mut plan = grown();
        guard_holding(&mut plan, &GuardConfig::default(), &most, &NO_APPROVAL);
        let held: Vec<&str> = plan.held().map(|(l, _)| l.key.as_str()).collect();
        assert_eq!(
            held,
            ["joined", "new"],
            "41 and 100 members, over 40; 40 is at the limit"
        );

        let mut plan = grown();
        let approvals = Approvals {
            accept_lists: ["joined".to_owned(), "new".to_owned()]
                .into_iter()
                .collect(),
            ..NO_APPROVAL
        };
        guard_holding(&mut plan, &limits, &most, &approvals);
        assert_eq!(plan.totals.held, 0);
    }

    #[test]
    fn verdicts_serialise_with_their_config_key_and_outcome() {
        let plan = plan_of(vec![shrink("a", 0, 10, 6, 0)]);
        let approvals = Approvals {
            accept_removals: Some(6),
            accept_additions: None,
            ..NO_APPROVAL
        };
        let verdicts = guard(&plan, &limits(5, 50, 10, None), &approvals);
        let json = serde_json::to_value(&verdicts).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"guard": "max_removals_per_run", "limit": 5, "observed": 6,
                 "outcome": "accepted", "by": 6},
                {"guard": "max_owner_removals_per_run", "limit": 50, "observed": 0,
                 "outcome": "passed"},
                {"guard": "max_removal_percent_per_list", "list": "a", "limit": 5, "observed": 6,
                 "list_size": 10, "percent": 50, "outcome": "accepted", "by": 6},
            ])
        );
        assert_eq!(serde_json::from_value::<Verdicts>(json).unwrap(), verdicts);
    }
}
