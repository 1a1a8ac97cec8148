//! What planning produces, as plain data: the plan with each list's fate, the guards'
//! verdicts, and what was read to make them. The stages after planning and the report read
//! it; nothing here does I/O.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::actual::ActualState;
use super::identity::Refresh;
use crate::plan::{AbsenceChanges, Plan, Title, Verdicts};
use crate::source::SourceSummary;

/// Everything a run decides before its first change.
#[derive(Debug)]
pub struct Planned {
    /// The sources as read.
    pub sources: Vec<SourceSummary>,
    /// The directory refresh.
    pub directory: Refresh,
    /// Member keys no account answers to, per list.
    pub unresolved: BTreeMap<String, Vec<String>>,
    /// The actual side.
    pub actual: ActualState,
    /// The plan, held lists included.
    pub plan: Plan,
    /// The guards' verdicts (a tripped one is run-wide: per-list trips are holds).
    pub verdicts: Verdicts,
    /// The removal grace's first-absent times to record when the run goes ahead.
    pub absences: AbsenceChanges,
    /// Snapshot warnings.
    pub warnings: Vec<String>,
    /// Overrides and override-source rows applied (inside their window).
    pub exceptions_applied: u64,
    /// How long reading and planning took, phase by phase.
    pub durations: Durations,
}

impl Planned {
    /// The titles the plan sets, by list key: what `apply` sends for each `update_group`.
    pub fn retitles(&self) -> HashMap<String, Title> {
        self.plan
            .lists
            .iter()
            .filter_map(|list| Some((list.key.clone(), list.retitle()?.clone())))
            .collect()
    }
}

/// How long each phase of a run took, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Durations {
    /// Reading and checking the sources.
    pub sources_ms: u64,
    /// Refreshing the directory mirror and resolving member keys.
    pub directory_ms: u64,
    /// Reading the managed groups' membership.
    pub actual_ms: u64,
    /// Diffing and guarding.
    pub plan_ms: u64,
    /// Journalling and applying.
    pub apply_ms: u64,
    /// The whole run, from its start to its record.
    pub total_ms: u64,
}

impl Durations {
    /// Milliseconds since `start`.
    pub fn since(start: std::time::Instant) -> u64 {
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::OnVanish;
    use crate::plan::{Actual, ActualList, Desired, DesiredList, ObjectId, Policies, Policy};
    use crate::reconcile::actual::ActualState;
    use crate::store::{GroupOrigin, ManagedGroup};

    fn id(n: u128) -> ObjectId {
        ObjectId::from_u128(n)
    }

    /// A desired list of family `modules`.
    pub fn want(key: &str, members: &[u128]) -> DesiredList {
        DesiredList {
            key: key.to_owned(),
            family: "modules".to_owned(),
            mail_nickname: key.to_owned(),
            display_name: key.to_owned(),
            description: None,
            titled: true,
            members: members.iter().copied().map(id).collect(),
            owners: None,
        }
    }

    /// A managed group of family `modules` with group id `g-KEY`, its title unknown.
    pub fn have(key: &str, members: &[u128]) -> ActualList {
        ActualList {
            key: key.to_owned(),
            family: "modules".to_owned(),
            group_id: format!("g-{key}"),
            title: None,
            members: members.iter().copied().map(id).collect(),
            owners: Default::default(),
        }
    }

    fn managed(key: &str, tagged: bool) -> ManagedGroup {
        ManagedGroup {
            list: key.to_owned(),
            group_id: format!("g-{key}"),
            family: "modules".to_owned(),
            origin: GroupOrigin::Created,
            mail_nickname: key.to_owned(),
            tagged,
        }
    }

    /// A plan over `desired` and `actual` with every `actual` list managed (tagged unless
    /// named in `untagged`).
    pub fn planned(
        desired: Vec<DesiredList>,
        actual: Vec<ActualList>,
        on_vanish: OnVanish,
        untagged: &[&str],
    ) -> Planned {
        let policies: Policies = [(
            "modules".to_owned(),
            Policy {
                create: true,
                on_vanish,
                ..Policy::UNKNOWN_FAMILY
            },
        )]
        .into_iter()
        .collect();
        let managed = actual
            .iter()
            .map(|l| {
                (
                    l.key.clone(),
                    managed(&l.key, !untagged.contains(&l.key.as_str())),
                )
            })
            .collect();
        let plan = crate::plan::diff(
            &Desired::new(desired).unwrap(),
            &Actual::new(actual.clone()).unwrap(),
            &policies,
        );
        Planned {
            sources: Vec::new(),
            directory: Refresh::default(),
            unresolved: BTreeMap::new(),
            actual: ActualState {
                actual: Actual::new(actual).unwrap(),
                managed,
                ..ActualState::default()
            },
            plan,
            absences: AbsenceChanges::default(),
            exceptions_applied: 0,
            verdicts: Verdicts::default(),
            warnings: Vec::new(),
            durations: Durations::default(),
        }
    }
}
