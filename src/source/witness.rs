//! Row provenance for `rollcall explain`: while a source is read, the rows that name one
//! member (on one list, or on any) are kept with where they came from. A normal run reads
//! with no witness and keeps nothing.

use serde::Serialize;

use crate::config::MemberKey;

/// What to look for while reading one source: a member, as that source normalizes it, and
/// optionally one list (compared case-insensitively, as list keys are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The list key folded to lower case; `None`: every list.
    list: Option<String>,
    /// The member, normalized by the source's member key.
    member: String,
}

impl Witness {
    /// A witness for a source naming people by `key`, looking for `member` (`kind:value`
    /// or a bare value) on `list` (or every list). `None` when `member` names a person by
    /// another kind of key than the source's, so that the source cannot name them.
    pub fn new(list: Option<&str>, member: &str, key: MemberKey) -> Option<Witness> {
        let (kind, value) = split_member(member);
        if kind.is_some_and(|kind| kind != key) {
            return None;
        }
        Some(Witness {
            list: list.map(|l| l.trim().to_lowercase()),
            member: key.normalize(value),
        })
    }

    /// Whether a row of `list` with the normalized member `member` is one to keep.
    pub(crate) fn wants(&self, list: &str, member: &str) -> bool {
        member == self.member
            && self
                .list
                .as_deref()
                .is_none_or(|wanted| list.to_lowercase() == wanted)
    }
}

/// Splits `kind:value` into its member key and value; a bare value has no kind.
pub fn split_member(member: &str) -> (Option<MemberKey>, &str) {
    let member = member.trim();
    member
        .split_once(':')
        .and_then(|(kind, value)| {
            MemberKey::from_name(kind.trim()).map(|k| (Some(k), value.trim()))
        })
        .unwrap_or((None, member))
}

/// One row that names the member: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sighting {
    /// The list key as the row writes it.
    pub list: String,
    /// Where: `file:line` (CSV, 1-based, the header is line 1), `query row N` (SQL), or the
    /// entry's DN (LDAP) or object id (Entra).
    pub place: String,
    /// The row's values rollcall reads (`list`, `member`, and `display_name`,
    /// `description` when present), as written.
    pub values: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_witness_matches_the_normalized_member_on_the_list_in_any_case() {
        let witness = Witness::new(Some("CS101"), "upn:Ann@X.org", MemberKey::Upn).unwrap();
        assert!(witness.wants("cs101", "ann@x.org"));
        assert!(!witness.wants("cs102", "ann@x.org"));
        assert!(!witness.wants("cs101", "bob@x.org"));
        let anywhere = Witness::new(None, "Ann@X.org", MemberKey::Upn).unwrap();
        assert!(anywhere.wants("cs102", "ann@x.org"));
    }

    #[test]
    fn a_member_of_another_key_kind_is_no_witness() {
        assert_eq!(Witness::new(None, "employee_id:E1", MemberKey::Upn), None);
        assert!(Witness::new(None, "employee_id:E1", MemberKey::EmployeeId).is_some());
    }

    #[test]
    fn a_bare_value_with_a_colon_is_kept_whole() {
        assert_eq!(split_member("x:y"), (None, "x:y"));
        assert_eq!(split_member(" mail: a@b "), (Some(MemberKey::Mail), "a@b"));
    }
}
