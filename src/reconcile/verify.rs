//! What `verify` reports: each list's drift, from a plan made without approvals. Pure.

use serde::{Deserialize, Serialize};

use super::planned::Planned;
use crate::plan::{ListChange, Plan, leaving_by_list};

/// One list's drift, as `verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The list key.
    pub list: String,
    /// Members the sources want that the group lacks.
    pub missing: u64,
    /// Members the group has that the sources do not want.
    pub extra: u64,
    /// The list has no managed group (not created yet, or its nickname is taken).
    pub group_missing: bool,
    /// The group's title or description differs from what the sources say.
    #[serde(default)]
    pub title: bool,
    /// Owners the sources and the family want that the group lacks.
    #[serde(default)]
    pub owners_missing: u64,
    /// Owners the group has that nobody wants (its last owner is kept, not counted).
    #[serde(default)]
    pub owners_extra: u64,
    /// The list is held, and why (its drift cannot be known or repaired until released).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The group's visibility differs from its family's where only a person can mend it
    /// (HiddenMembership on one side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Lists compared.
    pub checked: u64,
    /// Lists that differ.
    pub drift: Vec<Drift>,
    /// Member keys no account answers to (not drift: nobody can add them).
    pub unresolved: u64,
    /// Lists with members in their removal grace: pending, not drift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingRemovals>,
}

/// A list's members in their removal grace, as `verify` reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRemovals {
    /// The list key.
    pub list: String,
    /// Members the sources no longer name who stay until due.
    pub members: u64,
    /// When the first of them falls due.
    pub first_due: chrono::DateTime<chrono::Utc>,
}

/// Each list's drift, from a plan made without approvals.
pub(super) fn verification(planned: &Planned) -> Verification {
    let mut drift: Vec<Drift> = planned
        .plan
        .lists
        .iter()
        .filter_map(|list| {
            let mut found = Drift {
                list: list.key.clone(),
                missing: list.adds().len() as u64,
                extra: list.removes().len() as u64,
                group_missing: false,
                title: list.retitle().is_some(),
                owners_missing: list.owner_adds().len() as u64,
                owners_extra: list.owner_removes().len() as u64,
                held: None,
                visibility: None,
            };
            match &list.change {
                ListChange::Create { .. } => found.group_missing = true,
                ListChange::Update { .. } | ListChange::Vanished { .. } => {}
                ListChange::NotCreated { .. } => return None,
                ListChange::Held { hold, .. } => {
                    found.group_missing =
                        matches!(hold, crate::plan::HoldReason::NicknameTaken { .. });
                    found.held = Some(hold.to_string());
                }
            }
            (found.group_missing
                || found.held.is_some()
                || found.missing > 0
                || found.extra > 0
                || found.owners_missing > 0
                || found.owners_extra > 0
                || found.title)
                .then_some(found)
        })
        .collect();
    for needs_person in &planned.plan.visibility_drift {
        let text = format!(
            "group is {}, family says {}: needs a person",
            needs_person.have.as_str(),
            needs_person.want.as_str()
        );
        match drift.iter_mut().find(|d| d.list == needs_person.list) {
            Some(found) => found.visibility = Some(text),
            None => drift.push(Drift {
                list: needs_person.list.clone(),
                missing: 0,
                extra: 0,
                group_missing: false,
                title: false,
                owners_missing: 0,
                owners_extra: 0,
                held: None,
                visibility: Some(text),
            }),
        }
    }
    drift.sort_by(|a, b| a.list.cmp(&b.list));
    Verification {
        checked: planned.plan.totals.lists,
        drift,
        unresolved: planned.unresolved.values().map(|v| v.len() as u64).sum(),
        pending: pending_removals(&planned.plan),
    }
}

/// Each list with members in their removal grace, by key.
pub fn pending_removals(plan: &Plan) -> Vec<PendingRemovals> {
    let mut pending: Vec<PendingRemovals> = leaving_by_list(plan)
        .into_iter()
        .map(|(list, (members, first_due))| PendingRemovals {
            list: list.to_owned(),
            members,
            first_due,
        })
        .collect();
    pending.sort_by(|a, b| a.list.cmp(&b.list));
    pending
}

/// One list's pending removals in a few words.
pub fn pending_text(pending: &PendingRemovals) -> String {
    format!(
        "{}: {} leaving, in their removal grace until {} at the earliest",
        pending.list,
        pending.members,
        pending.first_due.format("%Y-%m-%d %H:%M UTC")
    )
}

/// One drifted list in a few words.
pub fn drift_text(drift: &Drift) -> String {
    let mut text = if let Some(held) = &drift.held {
        format!("{}: held: {held}", drift.list)
    } else if drift.group_missing {
        format!(
            "{}: no managed group ({} members wanted)",
            drift.list, drift.missing
        )
    } else {
        format!(
            "{}: {} missing, {} extra",
            drift.list, drift.missing, drift.extra
        )
    };
    if drift.owners_missing + drift.owners_extra > 0 {
        text.push_str(&format!(
            "; owners: {} missing, {} extra",
            drift.owners_missing, drift.owners_extra
        ));
    }
    if drift.title {
        text.push_str("; title differs");
    }
    if let Some(visibility) = &drift.visibility {
        text.push_str("; visibility: ");
        text.push_str(visibility);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnVanish;
    use crate::plan::HoldReason;
    use crate::reconcile::planned::tests::{have, planned, want};

    #[test]
    fn verify_counts_missing_and_extra_members_missing_groups_and_held_lists() {
        let mut planned = planned(
            vec![
                want("a", &[1, 2, 3]),
                want("new", &[5, 6]),
                want("taken", &[7]),
            ],
            vec![have("a", &[1, 9])],
            OnVanish::Keep,
            &[],
        );
        let reason = HoldReason::NicknameTaken {
            mail_nickname: "taken".to_owned(),
            group_id: "g-other".to_owned(),
            why: "not managed".to_owned(),
        };
        planned.plan.hold("taken", "modules", reason);
        let found = verification(&planned);
        assert_eq!(found.checked, 3);
        let summary: Vec<(&str, u64, u64, bool, bool)> = found
            .drift
            .iter()
            .map(|d| {
                (
                    d.list.as_str(),
                    d.missing,
                    d.extra,
                    d.group_missing,
                    d.held.is_some(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a", 2, 1, false, false),
                ("new", 2, 0, true, false),
                ("taken", 0, 0, true, true),
            ]
        );
        assert!(drift_text(&found.drift[2]).contains("held: its nickname `taken`"));
    }

    #[test]
    fn a_vanished_list_is_drift_only_when_its_family_empties_it() {
        let keep = planned(Vec::new(), vec![have("old", &[1])], OnVanish::Keep, &[]);
        assert!(verification(&keep).drift.is_empty());
        let empty = planned(Vec::new(), vec![have("old", &[1])], OnVanish::Empty, &[]);
        assert_eq!(verification(&empty).drift[0].extra, 1);
    }
}
