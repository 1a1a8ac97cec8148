//! The application permissions a configuration needs, and which of them an access token's
//! `roles` claim lacks (GRAPH.md "Authentication"): read from the token, no signature check,
//! so that `doctor` and a run name a missing consent before anything fails half-way.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An application permission rollcall needs, and what fails without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// Its name, as Entra ID's API permissions page and the token's `roles` claim spell it.
    pub name: &'static str,
    /// Broader permissions that also grant it.
    pub implied_by: &'static [&'static str],
    /// What fails without it, for an operator.
    pub without: &'static str,
}

/// Adding and removing members.
pub const GROUP_MEMBER_READ_WRITE: Permission = Permission {
    name: "GroupMember.ReadWrite.All",
    implied_by: &["Group.ReadWrite.All", "Directory.ReadWrite.All"],
    without: "reading and changing the lists' members fails",
};

/// Creating and tagging groups, retitling them.
pub const GROUP_READ_WRITE: Permission = Permission {
    name: "Group.ReadWrite.All",
    implied_by: &["Directory.ReadWrite.All"],
    without: "creating, tagging and retitling groups fails",
};

/// Resolving member keys to accounts.
pub const USER_READ: Permission = Permission {
    name: "User.Read.All",
    implied_by: &[
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
    without: "member keys cannot be resolved to accounts",
};

/// Reading the members of hidden-membership groups.
pub const MEMBER_READ_HIDDEN: Permission = Permission {
    name: "Member.Read.Hidden",
    implied_by: &[],
    without: "the members of HiddenMembership groups cannot be read (Graph may answer with none)",
};

/// The permissions rollcall needs: always the three for groups, members and users; and
/// `Member.Read.Hidden` when some family makes HiddenMembership groups.
pub fn needed(hidden_membership: bool) -> Vec<Permission> {
    let mut needed = vec![GROUP_MEMBER_READ_WRITE, GROUP_READ_WRITE, USER_READ];
    if hidden_membership {
        needed.push(MEMBER_READ_HIDDEN);
    }
    needed
}

/// The permissions of `needed` that `roles` neither names nor implies.
pub fn missing(needed: &[Permission], roles: &[String]) -> Vec<Permission> {
    let has = |name: &str| roles.iter().any(|r| r == name);
    needed
        .iter()
        .filter(|p| !has(p.name) && !p.implied_by.iter().any(|&name| has(name)))
        .copied()
        .collect()
}

/// The `roles` claim of a JWT access token; `None` when the token is not a JWT (a
/// personal token, or one a proxy swapped) or has no such claim. No signature is checked:
/// the claim only tells what to expect, Graph still decides.
pub fn roles_of(token: &str) -> Option<Vec<String>> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let roles = claims.get("roles")?.as_array()?;
    Some(
        roles
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
    )
}

/// One line per missing permission, for `doctor` and a refusing run.
pub fn describe(missing: &[Permission]) -> String {
    missing
        .iter()
        .map(|p| format!("{} (without it {})", p.name, p.without))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &serde_json::Value) -> String {
        let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.sig",
            part(&serde_json::json!({"alg": "RS256", "typ": "JWT"})),
            part(claims)
        )
    }

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn roles_come_from_the_payload() {
        let jwt = token(&serde_json::json!({"roles": ["User.Read.All", "Group.ReadWrite.All"]}));
        assert_eq!(
            roles_of(&jwt),
            Some(roles(&["User.Read.All", "Group.ReadWrite.All"]))
        );
        assert_eq!(roles_of(&token(&serde_json::json!({"aud": "x"}))), None);
        assert_eq!(roles_of("opaque-token"), None);
        assert_eq!(roles_of("a.!!!.c"), None);
    }

    #[test]
    fn broader_permissions_count_and_hidden_is_asked_only_when_used() {
        let granted = roles(&["Group.ReadWrite.All", "Directory.Read.All"]);
        assert!(missing(&needed(false), &granted).is_empty());
        let lacking = missing(&needed(true), &granted);
        assert_eq!(lacking, [MEMBER_READ_HIDDEN]);
        assert!(describe(&lacking).starts_with("Member.Read.Hidden (without it"));
        let none = missing(&needed(false), &[]);
        assert_eq!(none.len(), 3);
    }
}
