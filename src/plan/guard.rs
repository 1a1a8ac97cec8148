//! Guards: limits that stop a plan before its first change. Pure: no I/O, no clock.
//!
//! Every guard compares an observed count with a limit, the most it allows: a count equal
//! to the limit passes, one more trips. An operator's approval lifts the guards it covers
//! only when it covers the whole plan, so an approval given for a smaller plan never
//! carries a larger one through.

use serde::{Deserialize, Serialize};

use crate::config::GuardConfig;

use super::Plan;

/// What an operator approved for one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    /// `--accept-removals N`: removal guards are lifted when the plan removes at most N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_removals: Option<u64>,
    /// The additions guard is lifted when the plan adds at most this many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_additions: Option<u64>,
}

impl Approvals {
    /// Approval of exactly this plan's removals and additions: what `apply FILE --reason`
    /// grants the saved plan the operator reviewed.
    pub fn whole_plan(plan: &Plan) -> Self {
        Self {
            accept_removals: Some(plan.totals.removes),
            accept_additions: Some(plan.totals.adds),
        }
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
    /// The list's current member count, for the percentage guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_size: Option<u64>,
    /// The configured percentage, for the percentage guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
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
            percent: Some(percent),
            outcome: judge_removals(removes, limit),
        });
    }
    Verdicts(verdicts)
}

/// Passed within the limit; over it, accepted when approved, tripped otherwise.
fn judge(observed: u64, limit: u64, approved: Option<u64>) -> Outcome {
    match approved {
        _ if observed <= limit => Outcome::Passed,
        Some(by) => Outcome::Accepted { by },
        None => Outcome::Tripped,
    }
}
