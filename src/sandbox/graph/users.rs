//! `/users` reads and `POST /directoryObjects/getByIds`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::Tenant;
use super::groups::group_json;
use super::request::{Input, Reply, context, decode_token, encode_token, parse_filter};
use super::user_filter::UserFilter;
use crate::sandbox::directory::{Directory, User, UserIx};
use crate::sandbox::error::GraphError;

/// Most values a `$filter` may compare against (`in (…)` or `or` clauses).
const MAX_FILTER_VALUES: usize = 15;
/// Most ids `getByIds` takes.
const MAX_IDS: usize = 1_000;

/// A user property rollcall's clients may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserProperty {
    /// `id`.
    Id,
    /// `displayName`.
    DisplayName,
    /// `userPrincipalName`.
    UserPrincipalName,
    /// `mail`.
    Mail,
    /// `employeeId`.
    EmployeeId,
    /// `department`.
    Department,
    /// `jobTitle`.
    JobTitle,
    /// `employeeType`.
    EmployeeType,
}

impl UserProperty {
    /// Graph's default set for users, less `employeeId` (Graph leaves it out unless selected;
    /// the stricter reading makes clients ask for it).
    const DEFAULT: [UserProperty; 4] = [
        UserProperty::Id,
        UserProperty::DisplayName,
        UserProperty::UserPrincipalName,
        UserProperty::Mail,
    ];

    /// A property by its (case-insensitive) name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            UserProperty::Id,
            UserProperty::DisplayName,
            UserProperty::UserPrincipalName,
            UserProperty::Mail,
            UserProperty::EmployeeId,
            UserProperty::Department,
            UserProperty::JobTitle,
            UserProperty::EmployeeType,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// The properties a `$select` asks for (the default set without one), or the 400 Graph
    /// gives for an unknown name. Resolved once per request, not once per user.
    pub fn selection(select: Option<&[String]>) -> Result<Vec<UserProperty>, GraphError> {
        match select {
            None => Ok(Self::DEFAULT.to_vec()),
            Some(names) => names
                .iter()
                .map(|wanted| {
                    Self::parse(wanted).ok_or_else(|| {
                        GraphError::bad_request(format!(
                            "Could not find a property named '{wanted}' on type 'microsoft.graph.user'."
                        ))
                    })
                })
                .collect(),
        }
    }

    /// The canonical spelling.
    pub fn name(self) -> &'static str {
        match self {
            UserProperty::Id => "id",
            UserProperty::DisplayName => "displayName",
            UserProperty::UserPrincipalName => "userPrincipalName",
            UserProperty::Mail => "mail",
            UserProperty::EmployeeId => "employeeId",
            UserProperty::Department => "department",
            UserProperty::JobTitle => "jobTitle",
            UserProperty::EmployeeType => "employeeType",
        }
    }

    /// The user's value (`None` is JSON null).
    pub fn value(self, user: &User) -> Option<&str> {
        match self {
            UserProperty::Id => Some(&user.id),
            UserProperty::DisplayName => Some(&user.display_name),
            UserProperty::UserPrincipalName => Some(&user.user_principal_name),
            UserProperty::Mail => user.mail.as_deref(),
            UserProperty::EmployeeId => user.employee_id.as_deref(),
            UserProperty::Department => user.department.as_deref(),
            UserProperty::JobTitle => user.job_title.as_deref(),
            UserProperty::EmployeeType => user.employee_type.as_deref(),
        }
    }
}

/// A user as Graph shows it, with the selected properties.
pub fn user_json(user: &User, select: Option<&[String]>) -> Result<Map<String, Value>, GraphError> {
    Ok(UserProperty::selection(select)?
        .into_iter()
        .map(|p| (p.name().to_owned(), json!(p.value(user))))
        .collect())
}

/// Writes a user's properties as JSON object members, each preceded by a comma, straight into
/// `out`: member pages render up to 999 users per request, and building a `Value` per user
/// cost more than everything else the request does.
pub fn write_user_fields(user: &User, properties: &[UserProperty], out: &mut Vec<u8>) {
    for property in properties {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(property.name().as_bytes());
        out.extend_from_slice(b"\":");
        serde_json::to_writer(&mut *out, &property.value(user))
            .expect("a string always serializes into memory");
    }
}

/// `GET /users[?$filter=…]`, paged by a cursor over the directory.
pub fn list(tenant: &Tenant, input: &Input<'_>) -> Result<Reply, GraphError> {
    let select = input.query.select();
    let top = input.query.top()?;
    let directory = tenant.directory();
    let count = match input.query.get("$count") {
        None => false,
        Some(value) if !input.eventual => {
            return Err(GraphError::bad_request(format!(
                "$count={value} needs the header ConsistencyLevel: eventual (an advanced query)."
            )));
        }
        Some(value) => value.eq_ignore_ascii_case("true"),
    };
    if let Some(filter) = input.query.get("$filter")
        && !looks_up(filter)
    {
        return scan(&directory, filter, count, top, input);
    }
    if let Some(filter) = input.query.get("$filter") {
        let found = filtered(&directory, filter)?;
        let value = found
            .into_iter()
            .map(|ix| user_json(directory.user(ix), select.as_deref()).map(Value::Object))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Reply::ok(
            json!({"@odata.context": context("users"), "value": value}),
        ));
    }
    let after = match input.query.get("$skiptoken") {
        None => None,
        Some(token) => Some(
            decode_token(token, "u")
                .and_then(|f| f.first()?.parse::<UserIx>().ok())
                .ok_or_else(GraphError::bad_page_token)?,
        ),
    };
    let start = after.map_or(0, |a| a as usize + 1);
    let users = directory.users();
    let end = (start + top).min(users.len());
    let value = users
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|u| user_json(u, select.as_deref()).map(Value::Object))
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = json!({"@odata.context": context("users"), "value": value});
    if end < users.len() {
        let mut pairs = input.query.without(&["$skiptoken"]);
        pairs.push((
            "$skiptoken".to_owned(),
            encode_token(&format!("u:{}", end - 1)),
        ));
        body["@odata.nextLink"] = json!(input.origin.link("/users", &pairs));
    }
    Ok(Reply::ok(body))
}

/// Whether `filter` is a lookup the directory's indexes answer (`p eq 'v'`, `p in (…)`,
/// joined by `or`, on id, userPrincipalName, mail or employeeId).
fn looks_up(filter: &str) -> bool {
    const INDEXED: [&str; 4] = ["id", "userprincipalname", "mail", "employeeid"];
    parse_filter(filter).is_ok_and(|clauses| {
        clauses
            .iter()
            .all(|c| INDEXED.contains(&c.property.to_ascii_lowercase().as_str()))
    })
}

/// Any other filter: every user tested, the matches paged with a cursor. `ne`, `endswith`
/// and `eq null` are advanced queries, which Graph serves only with `ConsistencyLevel:
/// eventual` and `$count=true`.
fn scan(
    directory: &Directory,
    filter: &str,
    count: bool,
    top: usize,
    input: &Input<'_>,
) -> Result<Reply, GraphError> {
    let parsed = UserFilter::parse(filter)?;
    if parsed.is_advanced() && !(input.eventual && count) {
        return Err(GraphError::unsupported_query(format!(
            "Unsupported or invalid query filter clause specified in '{filter}': this is an advanced query; send ConsistencyLevel: eventual and $count=true."
        )));
    }
    let select = input.query.select();
    let properties = UserProperty::selection(select.as_deref())?;
    let after = match input.query.get("$skiptoken") {
        None => None,
        Some(token) => Some(
            decode_token(token, "f")
                .and_then(|f| f.first()?.parse::<usize>().ok())
                .ok_or_else(GraphError::bad_page_token)?,
        ),
    };
    let users = directory.users();
    let start = after.map_or(0, |a| a + 1);
    let mut value = Vec::new();
    let mut last = None;
    let mut more = false;
    for (ix, user) in users.iter().enumerate().skip(start) {
        if !parsed.matches(user) {
            continue;
        }
        if value.len() == top {
            more = true;
            break;
        }
        value.push(Value::Object(
            properties
                .iter()
                .map(|p| (p.name().to_owned(), json!(p.value(user))))
                .collect(),
        ));
        last = Some(ix);
    }
    let mut body = json!({"@odata.context": context("users"), "value": value});
    if count {
        body["@odata.count"] = json!(users.iter().filter(|u| parsed.matches(u)).count());
    }
    if more && let Some(last) = last {
        let mut pairs = input.query.without(&["$skiptoken"]);
        pairs.push(("$skiptoken".to_owned(), encode_token(&format!("f:{last}"))));
        body["@odata.nextLink"] = json!(input.origin.link("/users", &pairs));
    }
    Ok(Reply::ok(body))
}

fn filtered(directory: &Directory, filter: &str) -> Result<BTreeSet<UserIx>, GraphError> {
    let clauses = parse_filter(filter)?;
    let values: usize = clauses.iter().map(|c| c.values.len()).sum();
    if values > MAX_FILTER_VALUES {
        return Err(GraphError::unsupported_query(format!(
            "Too many child clauses specified in search filter expression containing 'OR' operators: {values}. Max allowed: {MAX_FILTER_VALUES}."
        )));
    }
    let mut found = BTreeSet::new();
    for clause in &clauses {
        for value in &clause.values {
            let users = directory.find_users(&clause.property, value).ok_or_else(|| {
                GraphError::unsupported_query(format!(
                    "Unsupported or invalid query filter clause specified for property '{}' of resource 'User'.",
                    clause.property
                ))
            })?;
            found.extend(users);
        }
    }
    Ok(found)
}

/// `GET /users/{id | userPrincipalName}`.
pub fn get(tenant: &Tenant, key: &str, input: &Input<'_>) -> Result<Reply, GraphError> {
    let select = input.query.select();
    let directory = tenant.directory();
    let user = directory
        .user_by_key(key)
        .ok_or_else(|| GraphError::not_found(key))?;
    let mut body = user_json(directory.user(user), select.as_deref())?;
    body.insert("@odata.context".to_owned(), json!(context("users/$entity")));
    Ok(Reply::ok(Value::Object(body)))
}

/// `POST /directoryObjects/getByIds`: the users and groups among up to 1,000 ids; unknown ids
/// are left out.
pub fn get_by_ids(tenant: &Tenant, input: &Input<'_>) -> Result<Reply, GraphError> {
    let body = input.object()?;
    let ids = body
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| GraphError::bad_request("The 'ids' property is required."))?;
    if ids.len() > MAX_IDS {
        return Err(GraphError::bad_request(format!(
            "The number of ids must not exceed {MAX_IDS}; got {}.",
            ids.len()
        )));
    }
    let types: Option<Vec<String>> = body.get("types").and_then(Value::as_array).map(|types| {
        types
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect()
    });
    let wants = |kind: &str| types.as_ref().is_none_or(|t| t.iter().any(|k| k == kind));
    let select = input.query.select();
    let horizon = tenant.horizon();
    let directory = tenant.directory();
    let mut value = Vec::new();
    for id in ids {
        let id = id
            .as_str()
            .ok_or_else(|| GraphError::bad_request("Every entry of 'ids' must be a string."))?;
        if let Some(user) = directory.user_by_id(id).filter(|_| wants("user")) {
            let mut object = user_json(directory.user(user), select.as_deref())?;
            object.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
            value.push(Value::Object(object));
        } else if let Some(group) = directory
            .group_by_id(id, horizon)
            .filter(|_| wants("group"))
        {
            let mut object = group_json(directory.group(group), select.as_deref(), false)?;
            object.insert("@odata.type".to_owned(), json!("#microsoft.graph.group"));
            value.push(Value::Object(object));
        }
    }
    Ok(Reply::ok(json!({
        "@odata.context": context("directoryObjects"),
        "value": value,
    })))
}
