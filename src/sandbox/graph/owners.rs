//! A group's owners (GRAPH.md "Owners"): listed like members, added with `POST …/owners/$ref`,
//! removed with `DELETE …/owners/{id}/$ref`; the last owner of a group cannot be removed.

use std::time::Instant;

use serde_json::Value;

use super::Tenant;
use super::group_body::bind_id;
use super::request::{Input, Reply, context};
use super::users::{UserProperty, write_user_fields};
use crate::sandbox::error::GraphError;

/// `GET /groups/{id}/owners`: every owner in one page (Entra allows at most 100 per group).
pub fn list(tenant: &Tenant, id: &str, input: &Input<'_>) -> Result<Reply, GraphError> {
    let select = input.query.select();
    let properties = UserProperty::selection(select.as_deref())?;
    let directory = tenant.directory();
    let group = directory
        .group_by_id(id, tenant.horizon())
        .ok_or_else(|| GraphError::not_found(id))?;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"@odata.context\":");
    serde_json::to_writer(&mut out, &context("directoryObjects"))
        .expect("a string always serializes into memory");
    out.extend_from_slice(b",\"value\":[");
    for (i, &user) in directory.group(group).owners.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"@odata.type\":\"#microsoft.graph.user\"");
        write_user_fields(directory.user(user), &properties, &mut out);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(Reply::ok_raw(out))
}

/// `POST /groups/{id}/owners/$ref` with `{"@odata.id": "…/directoryObjects/{id}"}` → 204.
pub fn add(tenant: &Tenant, id: &str, input: &Input<'_>) -> Result<Reply, GraphError> {
    let body = input.object()?;
    let owner = bind_id(body.get("@odata.id").unwrap_or(&Value::Null)).map_err(|_| {
        GraphError::bad_request("The '@odata.id' property is required to add an owner.")
    })?;
    let lag = tenant.lag();
    tenant
        .directory_mut()
        .add_owners(id, &[owner], Instant::now(), lag)?;
    Ok(Reply::no_content(1))
}

/// `DELETE /groups/{id}/owners/{owner}/$ref` → 204; 404 for a non-owner; 400 for the last.
pub fn remove(tenant: &Tenant, id: &str, owner: &str) -> Result<Reply, GraphError> {
    let lag = tenant.lag();
    tenant
        .directory_mut()
        .remove_owner(id, owner, Instant::now(), lag)?;
    Ok(Reply::no_content(1))
}
