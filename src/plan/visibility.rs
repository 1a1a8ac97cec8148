//! Visibility after creation (DESIGN.md "The academic year"): where a family sets
//! `visibility` explicitly, Public ↔ Private follows it with a PATCH; HiddenMembership is set
//! only at creation, so a difference there is drift that needs a person, never a write.
//! A family that leaves `visibility` unset never changes an existing group's.

use serde::{Deserialize, Serialize};

use crate::config::Visibility;

/// A list whose group's visibility differs from its family's in a way no PATCH can mend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisibilityDrift {
    /// The list key.
    pub list: String,
    /// The group's visibility.
    pub have: Visibility,
    /// The family's.
    pub want: Visibility,
}

impl std::fmt::Display for VisibilityDrift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the group is {}, its family says {}; HiddenMembership is set only when a \
             group is created, so a person must recreate the group (RUNBOOK: \"A list whose \
             visibility must change\"); rollcall sends no write for it",
            self.list,
            self.have.as_str(),
            self.want.as_str()
        )
    }
}

/// What one group's visibility needs: a PATCH to `Some(v)`, or nothing.
pub fn patch(family: Option<Visibility>, have: Option<Visibility>) -> Option<Visibility> {
    use Visibility::{Private, Public};
    match (family?, have?) {
        (want @ (Public | Private), have @ (Public | Private)) if want != have => Some(want),
        _ => None,
    }
}

/// The drift no PATCH can mend: HiddenMembership on one side only.
pub fn drift(
    list: &str,
    family: Option<Visibility>,
    have: Option<Visibility>,
) -> Option<VisibilityDrift> {
    let (want, have) = (family?, have?);
    let hidden = |v| v == Visibility::HiddenMembership;
    (want != have && (hidden(want) || hidden(have))).then(|| VisibilityDrift {
        list: list.to_owned(),
        have,
        want,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Visibility::{HiddenMembership, Private, Public};

    #[test]
    fn public_and_private_follow_an_explicit_family_only() {
        assert_eq!(patch(Some(Private), Some(Public)), Some(Private));
        assert_eq!(patch(Some(Public), Some(Private)), Some(Public));
        assert_eq!(patch(Some(Private), Some(Private)), None);
        assert_eq!(
            patch(None, Some(Public)),
            None,
            "an unset family changes nothing"
        );
        assert_eq!(
            patch(Some(Private), None),
            None,
            "an unknown visibility is left"
        );
        assert_eq!(patch(Some(HiddenMembership), Some(Public)), None);
        assert_eq!(patch(Some(Private), Some(HiddenMembership)), None);
    }

    #[test]
    fn hidden_membership_on_one_side_is_drift_for_a_person() {
        let d = drift("m", Some(HiddenMembership), Some(Private)).unwrap();
        assert_eq!((d.have, d.want), (Private, HiddenMembership));
        assert!(d.to_string().contains("recreate"), "{d}");
        assert!(drift("m", Some(Public), Some(HiddenMembership)).is_some());
        assert!(drift("m", Some(Public), Some(Private)).is_none());
        assert!(drift("m", None, Some(HiddenMembership)).is_none());
        assert!(drift("m", Some(HiddenMembership), Some(HiddenMembership)).is_none());
    }
}
