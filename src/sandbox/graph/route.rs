//! Which Graph operation a method and path name, its route template and its throttling cost.

use percent_encoding::percent_decode_str;

use super::request::Query;
use crate::sandbox::error::GraphError;

/// A Graph operation the sandbox serves, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /users`.
    ListUsers,
    /// `GET /users/delta`.
    UsersDelta,
    /// `GET /users/{id | userPrincipalName}`.
    GetUser(String),
    /// `GET /groups`.
    ListGroups,
    /// `POST /groups`.
    CreateGroup,
    /// `GET /groups/delta` (also `/groups/delta()`).
    GroupsDelta,
    /// `GET /groups/{id}`.
    GetGroup(String),
    /// `PATCH /groups/{id}`.
    UpdateGroup(String),
    /// `DELETE /groups/{id}`.
    DeleteGroup(String),
    /// `GET /groups/{id}/members[/microsoft.graph.user | /graph.user]`.
    ListMembers {
        /// The group id.
        group: String,
        /// The type cast segment, if any.
        cast: Option<&'static str>,
    },
    /// `POST /groups/{id}/members/$ref`.
    AddMember(String),
    /// `DELETE /groups/{id}/members/{member-id}/$ref`.
    RemoveMember {
        /// The group id.
        group: String,
        /// The member id.
        member: String,
    },
    /// `DELETE /groups/{id}/members/{member-id}` without `/$ref`: would delete the user object.
    DeleteMemberObject,
    /// `GET /groups/{id}/owners`.
    ListOwners(String),
    /// `POST /groups/{id}/owners/$ref`.
    AddOwner(String),
    /// `DELETE /groups/{id}/owners/{owner-id}/$ref`.
    RemoveOwner {
        /// The group id.
        group: String,
        /// The owner id.
        owner: String,
    },
    /// `GET /groups/{id}/extensions`.
    ListExtensions(String),
    /// `POST /groups/{id}/extensions`.
    AddExtension(String),
    /// `POST /directoryObjects/getByIds`.
    GetByIds,
    /// `POST /$batch`.
    Batch,
}

impl Route {
    /// Matches a method and a path (relative to `/v1.0`, percent-encoded) to an operation.
    pub fn parse(method: &str, path: &str) -> Result<Route, GraphError> {
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let route = match (method, segments.as_slice()) {
            ("GET", ["users"]) => Route::ListUsers,
            ("GET", ["users", "delta" | "delta()"]) => Route::UsersDelta,
            ("GET", ["users", id]) => Route::GetUser((*id).to_owned()),
            ("GET", ["groups"]) => Route::ListGroups,
            ("POST", ["groups"]) => Route::CreateGroup,
            ("GET", ["groups", "delta" | "delta()"]) => Route::GroupsDelta,
            ("GET", ["groups", id]) => Route::GetGroup((*id).to_owned()),
            ("PATCH", ["groups", id]) => Route::UpdateGroup((*id).to_owned()),
            ("DELETE", ["groups", id]) => Route::DeleteGroup((*id).to_owned()),
            ("GET", ["groups", id, "members"]) => Route::ListMembers {
                group: (*id).to_owned(),
                cast: None,
            },
            (
                "GET",
                [
                    "groups",
                    id,
                    "members",
                    cast @ ("microsoft.graph.user" | "graph.user"),
                ],
            ) => Route::ListMembers {
                group: (*id).to_owned(),
                cast: Some(if *cast == "graph.user" {
                    "graph.user"
                } else {
                    "microsoft.graph.user"
                }),
            },
            ("POST", ["groups", id, "members", "$ref"]) => Route::AddMember((*id).to_owned()),
            ("DELETE", ["groups", id, "members", member, "$ref"]) => Route::RemoveMember {
                group: (*id).to_owned(),
                member: (*member).to_owned(),
            },
            ("DELETE", ["groups", _, "members", _]) => Route::DeleteMemberObject,
            ("GET", ["groups", id, "owners"]) => Route::ListOwners((*id).to_owned()),
            ("POST", ["groups", id, "owners", "$ref"]) => Route::AddOwner((*id).to_owned()),
            ("DELETE", ["groups", id, "owners", owner, "$ref"]) => Route::RemoveOwner {
                group: (*id).to_owned(),
                owner: (*owner).to_owned(),
            },
            ("GET", ["groups", id, "extensions"]) => Route::ListExtensions((*id).to_owned()),
            ("POST", ["groups", id, "extensions"]) => Route::AddExtension((*id).to_owned()),
            ("POST", ["directoryObjects", "getByIds"]) => Route::GetByIds,
            ("POST", ["$batch"]) => Route::Batch,
            (
                _,
                ["users"]
                | ["users", _]
                | ["groups"]
                | ["groups", _]
                | ["groups", _, "members" | "extensions" | "owners"]
                | ["groups", _, "members" | "owners", _]
                | ["groups", _, "members" | "owners", _, "$ref"]
                | ["directoryObjects", "getByIds"]
                | ["$batch"],
            ) => return Err(GraphError::method_not_allowed(method)),
            (_, segments) => {
                let unknown = first_unknown_segment(segments);
                return Err(if unknown.is_empty() {
                    GraphError::new(400, "BadRequest", "Invalid request.")
                } else {
                    GraphError::unknown_segment(unknown)
                });
            }
        };
        Ok(route)
    }

    /// The route template used in statistics, e.g. `GET /groups/{id}/members`.
    pub fn template(&self) -> &'static str {
        match self {
            Route::ListUsers => "GET /users",
            Route::UsersDelta => "GET /users/delta",
            Route::GetUser(_) => "GET /users/{id}",
            Route::ListGroups => "GET /groups",
            Route::CreateGroup => "POST /groups",
            Route::GroupsDelta => "GET /groups/delta",
            Route::GetGroup(_) => "GET /groups/{id}",
            Route::UpdateGroup(_) => "PATCH /groups/{id}",
            Route::DeleteGroup(_) => "DELETE /groups/{id}",
            Route::ListMembers { cast: None, .. } => "GET /groups/{id}/members",
            Route::ListMembers {
                cast: Some("graph.user"),
                ..
            } => "GET /groups/{id}/members/graph.user",
            Route::ListMembers { cast: Some(_), .. } => {
                "GET /groups/{id}/members/microsoft.graph.user"
            }
            Route::AddMember(_) => "POST /groups/{id}/members/$ref",
            Route::RemoveMember { .. } => "DELETE /groups/{id}/members/{member-id}/$ref",
            Route::DeleteMemberObject => "DELETE /groups/{id}/members/{member-id}",
            Route::ListOwners(_) => "GET /groups/{id}/owners",
            Route::AddOwner(_) => "POST /groups/{id}/owners/$ref",
            Route::RemoveOwner { .. } => "DELETE /groups/{id}/owners/{owner-id}/$ref",
            Route::ListExtensions(_) => "GET /groups/{id}/extensions",
            Route::AddExtension(_) => "POST /groups/{id}/extensions",
            Route::GetByIds => "POST /directoryObjects/getByIds",
            Route::Batch => "POST /$batch",
        }
    }

    /// Whether this is a write (1 resource unit plus 1 from the write bucket).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Route::CreateGroup
                | Route::UpdateGroup(_)
                | Route::DeleteGroup(_)
                | Route::AddMember(_)
                | Route::RemoveMember { .. }
                | Route::DeleteMemberObject
                | Route::AddExtension(_)
                | Route::AddOwner(_)
                | Route::RemoveOwner { .. }
        )
    }

    /// Resource units charged (GRAPH.md "Throttling"): member lists 3, user reads 2, getByIds 3,
    /// other reads 1, writes 1; `$select` −1, `$expand` +1, never below 1. The batch envelope
    /// itself costs nothing.
    pub fn cost(&self, query: &Query) -> u32 {
        let base: i32 = match self {
            Route::Batch => return 0,
            Route::ListMembers { .. } | Route::ListOwners(_) | Route::GetByIds => 3,
            Route::ListUsers | Route::GetUser(_) | Route::UsersDelta => 2,
            // Writes, and every other read.
            _ => 1,
        };
        let mut cost = base;
        if !self.is_write() {
            if query.get("$select").is_some() {
                cost -= 1;
            }
            if query.get("$expand").is_some() {
                cost += 1;
            }
        }
        cost.max(1) as u32
    }
}

/// The segment Graph's "Resource not found for the segment" names: the first one when it is
/// not a collection the sandbox knows, else the last one.
fn first_unknown_segment<'a>(segments: &[&'a str]) -> &'a str {
    match segments {
        [] => "",
        [first, ..] if !matches!(*first, "users" | "groups" | "directoryObjects") => first,
        [.., last] => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_and_delta_spellings_match() {
        assert_eq!(
            Route::parse("GET", "/groups/g1/members/graph.user").unwrap(),
            Route::ListMembers {
                group: "g1".to_owned(),
                cast: Some("graph.user")
            }
        );
        assert_eq!(
            Route::parse("GET", "/groups/delta()").unwrap(),
            Route::GroupsDelta
        );
    }

    #[test]
    fn guest_upn_is_percent_decoded() {
        assert_eq!(
            Route::parse("GET", "/users/a_b.com%23EXT%23@t.onmicrosoft.com").unwrap(),
            Route::GetUser("a_b.com#EXT#@t.onmicrosoft.com".to_owned())
        );
    }

    #[test]
    fn delete_without_ref_is_its_own_route() {
        assert_eq!(
            Route::parse("DELETE", "/groups/g/members/u").unwrap(),
            Route::DeleteMemberObject
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_graph_errors() {
        assert_eq!(Route::parse("GET", "/widgets").unwrap_err().status, 400);
        assert_eq!(Route::parse("PUT", "/groups").unwrap_err().status, 405);
    }

    #[test]
    fn costs_follow_graph_md() {
        let none = Query::default();
        let select = Query::parse(Some("$select=id"));
        let members = Route::parse("GET", "/groups/g/members").unwrap();
        assert_eq!(members.cost(&none), 3);
        assert_eq!(members.cost(&select), 2);
        assert_eq!(Route::GetGroup("g".to_owned()).cost(&select), 1);
        assert_eq!(
            Route::GetGroup("g".to_owned()).cost(&Query::parse(Some("$expand=extensions"))),
            2
        );
        assert_eq!(Route::ListUsers.cost(&none), 2);
        assert_eq!(Route::AddMember("g".to_owned()).cost(&none), 1);
        assert_eq!(Route::Batch.cost(&none), 0);
    }
}
