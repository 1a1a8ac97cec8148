//! The application permissions the sandbox's tokens carry, and the 403 Graph answers where
//! one is missing (GRAPH.md "Authentication"): tokens are JWT-shaped with a `roles` claim,
//! so that a client can read what was granted, as with Entra ID.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::json;

use super::route::Route;
use crate::sandbox::error::GraphError;

/// Reading the members of a HiddenMembership group.
pub const MEMBER_READ_HIDDEN: &str = "Member.Read.Hidden";

/// What a new tenant's app registration is granted: everything rollcall asks for.
pub const ALL_ROLES: [&str; 4] = [
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "User.Read.All",
    MEMBER_READ_HIDDEN,
];

const READ_USERS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const READ_GROUPS: &[&str] = &[
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const WRITE_GROUPS: &[&str] = &["Group.ReadWrite.All", "Directory.ReadWrite.All"];
const WRITE_MEMBERS: &[&str] = &[
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
];

/// The roles any one of which lets a token call `route`; `None` for routes checked
/// elsewhere (a batch's parts are checked one by one).
fn accepted(route: &Route) -> Option<&'static [&'static str]> {
    Some(match route {
        Route::ListUsers | Route::UsersDelta | Route::GetUser(_) | Route::GetByIds => READ_USERS,
        Route::ListGroups
        | Route::GroupsDelta
        | Route::GetGroup(_)
        | Route::ListMembers { .. }
        | Route::ListOwners(_)
        | Route::ListExtensions(_) => READ_GROUPS,
        Route::CreateGroup
        | Route::UpdateGroup(_)
        | Route::DeleteGroup(_)
        | Route::AddExtension(_)
        | Route::AddOwner(_)
        | Route::RemoveOwner { .. } => WRITE_GROUPS,
        Route::AddMember(_) | Route::RemoveMember { .. } => WRITE_MEMBERS,
        Route::DeleteMemberObject | Route::Batch => return None,
    })
}

/// Graph's 403 when the token's roles do not cover `route`.
pub fn check(route: &Route, roles: &[String]) -> Result<(), GraphError> {
    match accepted(route) {
        Some(accepted) if !roles.iter().any(|r| accepted.contains(&r.as_str())) => {
            Err(GraphError::new(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ))
        }
        _ => Ok(()),
    }
}

/// Whether a token with `roles` sees the members of HiddenMembership groups.
pub fn sees_hidden_members(roles: &[String]) -> bool {
    roles.iter().any(|r| r == MEMBER_READ_HIDDEN)
}

/// A JWT-shaped access token carrying `roles` (its signature is random: nothing checks it
/// but the sandbox, which knows its tokens by value).
pub fn token(tenant_id: &str, client_id: &str, roles: &[String], ttl: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let part = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let signature: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(43)
        .map(char::from)
        .collect();
    format!(
        "{}.{}.{signature}",
        part(json!({"typ": "JWT", "alg": "RS256"})),
        part(json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{tenant_id}/"),
            "tid": tenant_id,
            "appid": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "roles": roles,
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_missing_role_is_refused_with_graphs_error() {
        let reader = roles(&["Group.Read.All", "User.Read.All"]);
        assert!(check(&Route::ListGroups, &reader).is_ok());
        let refused = check(&Route::AddMember("g".into()), &reader).unwrap_err();
        assert_eq!(refused.status, 403);
        assert_eq!(refused.code, "Authorization_RequestDenied");
        assert!(
            check(
                &Route::AddMember("g".into()),
                &roles(&["Group.ReadWrite.All"])
            )
            .is_ok()
        );
        assert!(check(&Route::Batch, &[]).is_ok());
    }

    #[test]
    fn the_token_carries_its_roles() {
        let token = token("t", "c", &roles(&["User.Read.All"]), 60);
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["roles"], json!(["User.Read.All"]));
        assert_eq!(
            crate::graph::permissions::roles_of(&token),
            Some(roles(&["User.Read.All"]))
        );
    }
}
