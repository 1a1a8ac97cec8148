//! Users: `/users/delta` rounds and lookups by member key.

use std::collections::HashSet;

use graph_rs_sdk::http::Method;
use serde_json::{Value, json};

use super::batch::{self, AlsoRetry};
use super::error::GraphError;
use super::groups::object_id;
use super::pages::follow;
use super::transport::{Request, Transport};
use super::{DirectoryUser, UsersDelta};
use crate::config::MemberKey;
use crate::plan::ObjectId;

/// The user properties rollcall reads.
const USER_SELECT: &str = "id,userPrincipalName,mail,employeeId";
/// Most values one `$filter=… in (…)` may compare against.
const MAX_FILTER_VALUES: usize = 15;
/// Most ids one `getByIds` takes.
const MAX_IDS: usize = 1_000;

/// One `/users/delta` round: from `link`, or a full read when `None`.
pub(crate) async fn users_delta(
    transport: &Transport,
    link: Option<&str>,
) -> Result<UsersDelta, GraphError> {
    let first = match link {
        None => Request::get(transport.url(&["users", "delta"], &[("$select", USER_SELECT)])),
        // A link that is not for this endpoint (the configuration changed since it was
        // stored) cannot be used: start over, as for an expired one.
        Some(link) => Request::get(transport.link(link).ok_or(GraphError::DeltaExpired)?),
    };
    let request = first.describe();
    let reply = transport.send(&first).await?;
    let mut users = Vec::new();
    let delta_link = follow(transport, first, reply, |items| {
        users.reserve(items.len());
        for item in &items {
            users.push(parse_user(item, &request)?);
        }
        Ok(())
    })
    .await?
    .ok_or_else(|| {
        GraphError::Other(format!(
            "{request}: the last page has no @odata.deltaLink; the round is incomplete"
        ))
    })?;
    Ok(UsersDelta {
        users,
        delta_link,
        full: link.is_none(),
    })
}

/// Looks up the accounts behind `values` (already normalised); values with no account are
/// simply absent from the result.
pub(crate) async fn find_users(
    transport: &Transport,
    kind: MemberKey,
    values: &[String],
) -> Result<Vec<DirectoryUser>, GraphError> {
    let requests: Vec<Request> = match kind {
        MemberKey::ObjectId => {
            // Text that is no object id names no account; Graph would refuse the whole request.
            let ids: Vec<String> = values
                .iter()
                .filter_map(|v| v.parse::<ObjectId>().ok())
                .map(|id| id.to_string())
                .collect();
            ids.chunks(MAX_IDS)
                .map(|ids| {
                    Request::with_body(
                        Method::POST,
                        transport.url(
                            &["directoryObjects", "getByIds"],
                            &[("$select", USER_SELECT)],
                        ),
                        json!({ "ids": ids, "types": ["user"] }),
                    )
                })
                .collect()
        }
        MemberKey::Upn | MemberKey::Mail | MemberKey::EmployeeId => {
            let property = match kind {
                MemberKey::Upn => "userPrincipalName",
                MemberKey::Mail => "mail",
                _ => "employeeId",
            };
            values
                .chunks(MAX_FILTER_VALUES)
                .map(|chunk| {
                    let filter = in_filter(property, chunk);
                    Request::get(transport.url(
                        &["users"],
                        &[("$filter", filter.as_str()), ("$select", USER_SELECT)],
                    ))
                })
                .collect()
        }
    };
    let replies = batch::send_all(transport, &requests, AlsoRetry::Nothing).await;
    let mut seen = HashSet::new();
    let mut users = Vec::new();
    for (request, reply) in requests.into_iter().zip(replies) {
        let describe = request.describe();
        follow(transport, request, reply?, |items| {
            for item in &items {
                let user = parse_user(item, &describe)?;
                if seen.insert(user.id) {
                    users.push(user);
                }
            }
            Ok(())
        })
        .await?;
    }
    Ok(users)
}

/// `property in ('a','b')`, quotes doubled as OData wants.
fn in_filter(property: &str, values: &[String]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect();
    format!("{property} in ({})", quoted.join(","))
}

/// A user from a reply, keys normalised as `MemberKey::normalize` does.
fn parse_user(value: &Value, request: &str) -> Result<DirectoryUser, GraphError> {
    let key = |name: &str, kind: MemberKey| {
        value[name]
            .as_str()
            .map(|v| kind.normalize(v))
            .filter(|v| !v.is_empty())
    };
    Ok(DirectoryUser {
        id: object_id(value, request)?,
        user_principal_name: key("userPrincipalName", MemberKey::Upn),
        mail: key("mail", MemberKey::Mail),
        employee_id: key("employeeId", MemberKey::EmployeeId),
        removed: value.get("@removed").is_some(),
    })
}

/// The display name of user `id`; `None` when the directory has no such user.
pub(crate) async fn display_name(
    transport: &Transport,
    id: &ObjectId,
) -> Result<Option<String>, GraphError> {
    let request = Request::get(transport.url(
        &["users", &id.to_string()],
        &[("$select", "id,displayName")],
    ));
    let reply = transport.send(&request).await?;
    match reply.status {
        404 => Ok(None),
        _ if reply.is_success() => Ok(reply.body["displayName"].as_str().map(str::to_owned)),
        _ => Err(reply.error(&request)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_filters_quote_and_escape_values() {
        assert_eq!(
            in_filter("mail", &["a@x.org".to_owned(), "o'brien@x.org".to_owned()]),
            "mail in ('a@x.org','o''brien@x.org')"
        );
    }

    #[test]
    fn users_are_normalised_and_removals_flagged() {
        let user = parse_user(
            &json!({"id": "00000000-0000-0000-0000-000000000001", "userPrincipalName": "A.B@X.org",
                    "mail": "A.B@X.org", "employeeId": " E1 "}),
            "GET /users/delta",
        )
        .unwrap();
        assert_eq!(user.user_principal_name.as_deref(), Some("a.b@x.org"));
        assert_eq!(user.mail.as_deref(), Some("a.b@x.org"));
        assert_eq!(user.employee_id.as_deref(), Some("E1"));
        assert!(!user.removed);
        let removed = parse_user(
            &json!({"id": "00000000-0000-0000-0000-000000000002", "@removed": {"reason": "deleted"}}),
            "GET /users/delta",
        )
        .unwrap();
        assert!(removed.removed);
        assert_eq!(removed.mail, None);
        assert!(parse_user(&json!({"id": "not-a-guid"}), "GET /users").is_err());
    }
}
