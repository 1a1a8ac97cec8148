//! Reads for `entra` sources: users by `$filter` (an advanced query) and the user members of
//! an existing group, with only the properties the source's templates use.

use serde_json::Value;

use super::error::GraphError;
use super::groups::find_group;
use super::pages::{MAX_PAGE, follow};
use super::transport::{Request, Transport};
use crate::plan::ObjectId;

/// Every user matching `filter`, with `select`, page by page into `take`. Sent as an advanced
/// query (`ConsistencyLevel: eventual`, `$count=true`), which every filter Graph can serve on
/// users accepts; a listing that ends early is an error, never fewer users.
pub(crate) async fn users_where(
    transport: &Transport,
    filter: &str,
    select: &str,
    take: impl FnMut(Vec<Value>) -> Result<(), GraphError>,
) -> Result<(), GraphError> {
    let first = Request::get(transport.url(
        &["users"],
        &[
            ("$filter", filter),
            ("$select", select),
            ("$count", "true"),
            ("$top", MAX_PAGE),
        ],
    ))
    .eventual();
    let reply = transport.send(&first).await?;
    follow(transport, first, reply, take).await?;
    Ok(())
}

/// The id of the group named by `key` (an object id or a mailNickname); `None` when the
/// directory has no such group.
pub(crate) async fn group_id(
    transport: &Transport,
    key: &str,
) -> Result<Option<String>, GraphError> {
    if let Ok(id) = key.parse::<ObjectId>() {
        let request = Request::get(transport.url(
            &["groups", &id.to_string()],
            &[("$select", "id,mailNickname")],
        ));
        let reply = transport.send(&request).await?;
        return match reply.status {
            404 => Ok(None),
            _ if reply.is_success() => Ok(Some(id.to_string())),
            _ => Err(reply.error(&request)),
        };
    }
    Ok(find_group(transport, key).await?.map(|group| group.id))
}

/// The user members of group `id`, with `select`, page by page into `take`.
pub(crate) async fn group_users(
    transport: &Transport,
    id: &str,
    select: &str,
    take: impl FnMut(Vec<Value>) -> Result<(), GraphError>,
) -> Result<(), GraphError> {
    let first = Request::get(transport.url(
        &["groups", id, "members", "microsoft.graph.user"],
        &[("$select", select), ("$top", MAX_PAGE)],
    ));
    let reply = transport.send(&first).await?;
    follow(transport, first, reply, take).await?;
    Ok(())
}
