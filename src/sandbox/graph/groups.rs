//! `/groups`: create, read, list, update (member binds), members, and open extensions.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::group_body::{
    bind_id, bind_ids, new_group, string_property, too_many_links, unknown_property,
};
use super::request::{
    Input, MAX_PAGE, Reply, context, decode_token, encode_token, parse_filter, project,
};
use super::users::{UserProperty, write_user_fields};
use super::{Tenant, roles};
use crate::sandbox::directory::{Group, GroupIx, UserIx};
use crate::sandbox::error::GraphError;

/// Largest serialized open extension, in bytes.
const MAX_EXTENSION_BYTES: usize = 2_048;
/// An open extension as Graph shows it.
fn extension_json(extension: &Map<String, Value>) -> Value {
    let mut object = Map::new();
    object.insert(
        "@odata.type".to_owned(),
        json!("#microsoft.graph.openTypeExtension"),
    );
    object.insert(
        "id".to_owned(),
        extension
            .get("extensionName")
            .cloned()
            .unwrap_or(Value::Null),
    );
    for (key, value) in extension {
        object.insert(key.clone(), value.clone());
    }
    Value::Object(object)
}

/// A group as Graph shows it, optionally with its extensions expanded.
pub fn group_json(
    group: &Group,
    select: Option<&[String]>,
    with_extensions: bool,
) -> Result<Map<String, Value>, GraphError> {
    let properties = &group.properties;
    let mail = properties
        .mail_enabled
        .then(|| format!("{}@sandbox.onmicrosoft.com", properties.mail_nickname));
    let mut object = project(
        vec![
            ("id", json!(group.id)),
            ("displayName", json!(properties.display_name)),
            ("mailNickname", json!(properties.mail_nickname)),
            ("description", json!(properties.description)),
            ("visibility", json!(properties.visibility)),
            ("groupTypes", json!(properties.group_types)),
            ("mailEnabled", json!(properties.mail_enabled)),
            ("securityEnabled", json!(properties.security_enabled)),
            ("mail", json!(mail)),
            ("createdDateTime", json!(group.created_date_time)),
            (
                "resourceBehaviorOptions",
                json!(properties.resource_behavior_options),
            ),
        ],
        &[],
        select,
        "group",
    )?;
    if with_extensions {
        object.insert(
            "extensions".to_owned(),
            Value::Array(group.extensions.iter().map(extension_json).collect()),
        );
    }
    Ok(object)
}

/// Whether `$expand` asks for extensions; membership by `$expand` is refused so that clients
/// page through `/members` (Graph caps expanded members at 20 without saying so).
fn expand_extensions(input: &Input<'_>) -> Result<bool, GraphError> {
    match input.query.get("$expand").map(str::trim) {
        None => Ok(false),
        Some("extensions") => Ok(true),
        Some(expand) if expand.starts_with("members") => Err(GraphError::bad_request(
            "Expanding members is not supported by the sandbox; page through /members instead.",
        )),
        Some(expand) => Err(GraphError::bad_request(format!(
            "Could not find a navigation property named '{expand}' on type 'microsoft.graph.group'."
        ))),
    }
}

/// `GET /groups[?$filter=mailNickname eq 'x']`, paged by a cursor.
pub fn list(tenant: &Tenant, input: &Input<'_>) -> Result<Reply, GraphError> {
    let select = input.query.select();
    let top = input.query.top()?;
    let with_extensions = expand_extensions(input)?;
    let horizon = tenant.horizon();
    let directory = tenant.directory();
    let render = |ix: GroupIx| {
        group_json(directory.group(ix), select.as_deref(), with_extensions).map(Value::Object)
    };
    if let Some(filter) = input.query.get("$filter") {
        let mut found: Vec<GroupIx> = Vec::new();
        for clause in parse_filter(filter)? {
            for value in &clause.values {
                let matched: Vec<GroupIx> = match clause.property.to_ascii_lowercase().as_str() {
                    "mailnickname" => directory
                        .group_by_nickname(value, horizon)
                        .into_iter()
                        .collect(),
                    "id" => directory.group_by_id(value, horizon).into_iter().collect(),
                    "displayname" => (0..directory.group_count() as GroupIx)
                        .filter(|&g| {
                            let group = directory.group(g);
                            group.visible_at(horizon) && group.properties.display_name == *value
                        })
                        .collect(),
                    _ => {
                        return Err(GraphError::unsupported_query(format!(
                            "Unsupported or invalid query filter clause specified for property '{}' of resource 'Group'.",
                            clause.property
                        )));
                    }
                };
                found.extend(matched);
            }
        }
        found.sort_unstable();
        found.dedup();
        let value = found
            .into_iter()
            .map(render)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Reply::ok(
            json!({"@odata.context": context("groups"), "value": value}),
        ));
    }
    let start = match input.query.get("$skiptoken") {
        None => 0,
        Some(token) => decode_token(token, "g")
            .and_then(|f| f.first()?.parse::<usize>().ok())
            .ok_or_else(GraphError::bad_page_token)?,
    };
    let mut value = Vec::with_capacity(top);
    let mut next = None;
    for ix in start..directory.group_count() {
        if !directory.group(ix as GroupIx).visible_at(horizon) {
            continue;
        }
        if value.len() == top {
            next = Some(ix);
            break;
        }
        value.push(render(ix as GroupIx)?);
    }
    let mut body = json!({"@odata.context": context("groups"), "value": value});
    if let Some(next) = next {
        let mut pairs = input.query.without(&["$skiptoken"]);
        pairs.push(("$skiptoken".to_owned(), encode_token(&format!("g:{next}"))));
        body["@odata.nextLink"] = json!(input.origin.link("/groups", &pairs));
    }
    Ok(Reply::ok(body))
}

/// `GET /groups/{id}`.
pub fn get(tenant: &Tenant, id: &str, input: &Input<'_>) -> Result<Reply, GraphError> {
    let select = input.query.select();
    let with_extensions = expand_extensions(input)?;
    let directory = tenant.directory();
    let group = directory
        .group_by_id(id, tenant.horizon())
        .ok_or_else(|| GraphError::not_found(id))?;
    let mut body = group_json(directory.group(group), select.as_deref(), with_extensions)?;
    body.insert(
        "@odata.context".to_owned(),
        json!(context("groups/$entity")),
    );
    Ok(Reply::ok(Value::Object(body)))
}

/// `POST /groups` → 201 with the new group.
pub fn create(tenant: &Tenant, input: &Input<'_>) -> Result<Reply, GraphError> {
    let new = new_group(input.object()?)?;
    // Each reference bound is a write: members and owners alike.
    let binds = (new.members.len() + new.owners.len()) as u64;
    let lag = tenant.lag();
    let mut directory = tenant.directory_mut();
    let ix = directory.create_group(new, Instant::now(), lag)?;
    let group = directory.group(ix);
    let mut body = group_json(group, None, false)?;
    body.insert(
        "@odata.context".to_owned(),
        json!(context("groups/$entity")),
    );
    let location = input.origin.link(&format!("/groups/{}", group.id), &[]);
    Ok(Reply::created(Value::Object(body), 1 + binds).with_header("Location", location))
}

/// `PATCH /groups/{id}`: up to 20 `members@odata.bind`, all or nothing, and simple properties.
pub fn update(tenant: &Tenant, id: &str, input: &Input<'_>) -> Result<Reply, GraphError> {
    let body = input.object()?;
    if body.contains_key("resourceBehaviorOptions") {
        return Err(GraphError::bad_request(
            "Property 'resourceBehaviorOptions' can be set only when the group is created.",
        ));
    }
    if let Some(key) = body.keys().find(|k| {
        !matches!(
            k.as_str(),
            "members@odata.bind"
                | "owners@odata.bind"
                | "displayName"
                | "description"
                | "visibility"
        )
    }) {
        return Err(unknown_property(key));
    }
    let visibility = match body.get("visibility") {
        None => None,
        Some(Value::String(v)) if v == "Public" || v == "Private" => Some(v.clone()),
        Some(Value::String(v)) if v == "HiddenMembership" => {
            return Err(hidden_membership_is_fixed());
        }
        Some(Value::String(v)) => {
            return Err(GraphError::bad_request(format!(
                "Invalid value '{v}' specified for property 'visibility' of resource 'Group'."
            )));
        }
        Some(_) => return Err(GraphError::invalid_property("visibility")),
    };
    let members = bind_ids(body, "members@odata.bind")?;
    let owners = bind_ids(body, "owners@odata.bind")?;
    too_many_links(members.len() + owners.len())?;
    let display_name = string_property(body, "displayName", 256)?.map(str::to_owned);
    let description = match body.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => return Err(GraphError::invalid_property("description")),
    };
    let lag = tenant.lag();
    let now = Instant::now();
    let mut directory = tenant.directory_mut();
    let added = if members.is_empty() {
        0
    } else {
        directory.add_members(id, &members, now, lag)?
    };
    let added = added
        + if owners.is_empty() {
            0
        } else {
            directory.add_owners(id, &owners, now, lag)?
        };
    if let Some(visibility) = visibility {
        let ix = directory
            .group_by_id(id, None)
            .ok_or_else(|| GraphError::not_found(id))?;
        if directory.group(ix).properties.visibility.as_deref() == Some("HiddenMembership") {
            return Err(hidden_membership_is_fixed());
        }
        directory.set_visibility(id, visibility, now, lag)?;
    }
    if display_name.is_some() || description.is_some() {
        directory.update_group(id, display_name, description, now, lag)?;
    }
    Ok(Reply::no_content((added as u64).max(1)))
}

/// HiddenMembership is set at creation and never changed after (GRAPH.md "Groups").
fn hidden_membership_is_fixed() -> GraphError {
    GraphError::bad_request(
        "The visibility HiddenMembership can be set only when the group is created, and cannot be changed afterwards.",
    )
}

/// `GET /groups/{id}/members[/microsoft.graph.user]`, paged by a cursor over the member set.
pub fn members(
    tenant: &Tenant,
    id: &str,
    cast: Option<&str>,
    input: &Input<'_>,
) -> Result<Reply, GraphError> {
    if input.query.get("$expand").is_some() {
        return Err(GraphError::bad_request(
            "$expand is not supported when listing group members; use $select.",
        ));
    }
    let top = input.query.top()?;
    let select = input.query.select();
    let horizon = tenant.horizon();
    let directory = tenant.directory();
    let group = directory
        .group_by_id(id, horizon)
        .ok_or_else(|| GraphError::not_found(id))?;
    let after = match input.query.get("$skiptoken") {
        None => None,
        Some(token) => {
            let fields = decode_token(token, "m").ok_or_else(GraphError::bad_page_token)?;
            match fields.as_slice() {
                [g, after] if g.parse::<GroupIx>().ok() == Some(group) => Some(
                    after
                        .parse::<UserIx>()
                        .map_err(|_| GraphError::bad_page_token())?,
                ),
                _ => return Err(GraphError::bad_page_token()),
            }
        }
    };
    // Without Member.Read.Hidden, a HiddenMembership group's members are left out rather
    // than refused (GRAPH.md "Groups"): the read looks like an empty group.
    let hidden = directory.group(group).properties.visibility.as_deref()
        == Some("HiddenMembership")
        && !roles::sees_hidden_members(input.roles);
    let (page, more) = if hidden {
        (Vec::new(), false)
    } else {
        directory.member_page(group, horizon, after, top.min(MAX_PAGE))
    };
    let properties = UserProperty::selection(select.as_deref())?;
    // Written straight to bytes: see `write_user_fields`.
    let mut out = Vec::with_capacity(128 + page.len() * 96);
    out.extend_from_slice(b"{\"@odata.context\":");
    write_json(&mut out, &context("directoryObjects"));
    out.extend_from_slice(b",\"value\":[");
    for (i, &user) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"@odata.type\":\"#microsoft.graph.user\"");
        write_user_fields(directory.user(user), &properties, &mut out);
        out.push(b'}');
    }
    out.push(b']');
    if more && let Some(last) = page.last() {
        let mut pairs = input.query.without(&["$skiptoken"]);
        pairs.push((
            "$skiptoken".to_owned(),
            encode_token(&format!("m:{group}:{last}")),
        ));
        let path = match cast {
            Some(cast) => format!("/groups/{id}/members/{cast}"),
            None => format!("/groups/{id}/members"),
        };
        out.extend_from_slice(b",\"@odata.nextLink\":");
        write_json(&mut out, &input.origin.link(&path, &pairs));
    }
    out.push(b'}');
    Ok(Reply::ok_raw(out))
}

fn write_json(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("a string always serializes into memory");
}

/// `POST /groups/{id}/members/$ref` with `{"@odata.id": "…/directoryObjects/{id}"}` → 204.
pub fn add_member(tenant: &Tenant, id: &str, input: &Input<'_>) -> Result<Reply, GraphError> {
    let body = input.object()?;
    let member = bind_id(body.get("@odata.id").ok_or_else(|| {
        GraphError::bad_request("The '@odata.id' property is required to add a member.")
    })?)?;
    let lag = tenant.lag();
    let mut directory = tenant.directory_mut();
    directory.add_members(id, &[member], Instant::now(), lag)?;
    Ok(Reply::no_content(1))
}

/// `DELETE /groups/{id}/members/{member}/$ref` → 204, or 404 naming the group.
pub fn remove_member(tenant: &Tenant, id: &str, member: &str) -> Result<Reply, GraphError> {
    let lag = tenant.lag();
    let mut directory = tenant.directory_mut();
    directory.remove_member(id, member, Instant::now(), lag)?;
    Ok(Reply::no_content(1))
}

/// `DELETE /groups/{id}` → 204.
pub fn delete(tenant: &Tenant, id: &str) -> Result<Reply, GraphError> {
    let lag = tenant.lag();
    let mut directory = tenant.directory_mut();
    directory.delete_group(id, Instant::now(), lag)?;
    Ok(Reply::no_content(1))
}

/// `GET /groups/{id}/extensions`.
pub fn extensions(tenant: &Tenant, id: &str) -> Result<Reply, GraphError> {
    let directory = tenant.directory();
    let group = directory
        .group_by_id(id, tenant.horizon())
        .ok_or_else(|| GraphError::not_found(id))?;
    let value: Vec<Value> = directory
        .group(group)
        .extensions
        .iter()
        .map(extension_json)
        .collect();
    Ok(Reply::ok(json!({
        "@odata.context": context(&format!("groups('{id}')/extensions")),
        "value": value,
    })))
}

/// `POST /groups/{id}/extensions`: an open type extension of at most 2 KB → 201.
pub fn add_extension(tenant: &Tenant, id: &str, input: &Input<'_>) -> Result<Reply, GraphError> {
    let body = input.object()?;
    let odata_type = body.get("@odata.type").and_then(Value::as_str);
    if !matches!(
        odata_type,
        Some("microsoft.graph.openTypeExtension" | "#microsoft.graph.openTypeExtension")
    ) {
        return Err(GraphError::bad_request(
            "The '@odata.type' of an open extension must be 'microsoft.graph.openTypeExtension'.",
        ));
    }
    if body
        .get("extensionName")
        .and_then(Value::as_str)
        .is_none_or(|name| name.trim().is_empty())
    {
        return Err(GraphError::bad_request(
            "The 'extensionName' property is required for an open extension.",
        ));
    }
    let size = serde_json::to_vec(body)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > MAX_EXTENSION_BYTES {
        return Err(GraphError::bad_request(format!(
            "The open extension is {size} bytes; the limit is {MAX_EXTENSION_BYTES} bytes."
        )));
    }
    let extension: Map<String, Value> = body
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "@odata.type" | "id"))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let reply = extension_json(&extension);
    tenant.directory_mut().add_extension(id, extension)?;
    Ok(Reply::created(reply, 1))
}
