//! Reading group request bodies: create validation (GRAPH.md "Groups") and bind URLs.

use serde_json::{Map, Value};

use crate::sandbox::directory::{GroupProperties, NewGroup};
use crate::sandbox::error::GraphError;

/// Most link changes (`members@odata.bind` plus `owners@odata.bind`) one request may carry.
const MAX_LINK_CHANGES: usize = 20;
/// The `resourceBehaviorOptions` Graph documents for Microsoft 365 groups.
const RESOURCE_BEHAVIOR_OPTIONS: &[&str] = &[
    "AllowOnlyMembersToPost",
    "CalendarMemberReadOnly",
    "ConnectorsDisabled",
    "HideGroupInOutlook",
    "SubscribeMembersToCalendarEventsDisabled",
    "SubscribeNewGroupMembers",
    "WelcomeEmailDisabled",
];
/// Characters Graph refuses in a `mailNickname`.
const NICKNAME_FORBIDDEN: &str = "@()\\[]\";:<>, ";

/// The object id at the end of a `…/directoryObjects/{id}` (or `…/users/{id}`) bind URL.
pub(super) fn bind_id(url: &Value) -> Result<String, GraphError> {
    let invalid = || {
        GraphError::bad_request(format!(
            "Invalid URL format specified in @odata.bind for members: {url}"
        ))
    };
    let url = url.as_str().ok_or_else(invalid)?;
    let (_, id) = url
        .rsplit_once("/directoryObjects/")
        .or_else(|| url.rsplit_once("/users/"))
        .ok_or_else(invalid)?;
    if id.is_empty() || id.contains('/') {
        return Err(invalid());
    }
    Ok(id.to_owned())
}

pub(super) fn bind_ids(body: &Map<String, Value>, key: &str) -> Result<Vec<String>, GraphError> {
    match body.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(urls)) => urls.iter().map(bind_id).collect(),
        Some(_) => Err(GraphError::bad_request(format!(
            "The value of '{key}' must be an array of URLs."
        ))),
    }
}

pub(super) fn too_many_links(count: usize) -> Result<(), GraphError> {
    if count > MAX_LINK_CHANGES {
        return Err(GraphError::bad_request(format!(
            "The request contains {count} link changes. A single request cannot contain more than {MAX_LINK_CHANGES} link changes."
        )));
    }
    Ok(())
}

pub(super) fn string_property<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    max_chars: usize,
) -> Result<Option<&'a str>, GraphError> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max_chars => {
            Ok(Some(s))
        }
        Some(_) => Err(GraphError::invalid_property(key)),
    }
}

fn required<T>(value: Option<T>, key: &str) -> Result<T, GraphError> {
    value.ok_or_else(|| {
        GraphError::bad_request(format!(
            "A value is required for property '{key}' of resource 'Group'."
        ))
    })
}

fn bool_property(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, GraphError> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(GraphError::invalid_property(key)),
    }
}

fn string_list(body: &Map<String, Value>, key: &str) -> Result<Vec<String>, GraphError> {
    match body.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| GraphError::invalid_property(key))
            })
            .collect(),
        Some(_) => Err(GraphError::invalid_property(key)),
    }
}

pub(super) fn unknown_property(key: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Property '{key}' does not exist on type 'microsoft.graph.group' or cannot be set here."
    ))
}

/// Parses and validates a create body (GRAPH.md "Groups").
pub(super) fn new_group(body: &Map<String, Value>) -> Result<NewGroup, GraphError> {
    const KNOWN: &[&str] = &[
        "@odata.type",
        "displayName",
        "mailNickname",
        "description",
        "groupTypes",
        "mailEnabled",
        "securityEnabled",
        "visibility",
        "members@odata.bind",
        "owners@odata.bind",
        "resourceBehaviorOptions",
    ];
    if let Some(key) = body.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(unknown_property(key));
    }
    let display_name = required(string_property(body, "displayName", 256)?, "displayName")?;
    let mail_nickname = required(string_property(body, "mailNickname", 64)?, "mailNickname")?;
    if !mail_nickname
        .chars()
        .all(|c| c.is_ascii_graphic() && !NICKNAME_FORBIDDEN.contains(c))
    {
        return Err(GraphError::invalid_property("mailNickname"));
    }
    let mail_enabled = required(bool_property(body, "mailEnabled")?, "mailEnabled")?;
    let security_enabled = required(bool_property(body, "securityEnabled")?, "securityEnabled")?;
    let group_types = string_list(body, "groupTypes")?;
    let unified = group_types.iter().any(|t| t == "Unified");
    if let Some(other) = group_types
        .iter()
        .find(|t| !matches!(t.as_str(), "Unified" | "DynamicMembership"))
    {
        return Err(GraphError::bad_request(format!(
            "Invalid value '{other}' specified for property 'groupTypes' of resource 'Group'."
        )));
    }
    if unified && !mail_enabled {
        return Err(GraphError::invalid_property("mailEnabled"));
    }
    // Graph cannot create mail-enabled security groups or distribution lists (Exchange can).
    if !unified && mail_enabled {
        return Err(GraphError::bad_request(
            "Creating mail-enabled security groups or distribution lists is not supported through Microsoft Graph.",
        ));
    }
    if !unified && !security_enabled {
        return Err(GraphError::invalid_property("securityEnabled"));
    }
    let resource_behavior_options = string_list(body, "resourceBehaviorOptions")?;
    if let Some(option) = resource_behavior_options
        .iter()
        .find(|o| !RESOURCE_BEHAVIOR_OPTIONS.contains(&o.as_str()))
    {
        return Err(GraphError::bad_request(format!(
            "Invalid value '{option}' specified for property 'resourceBehaviorOptions' of resource 'Group'."
        )));
    }
    if !unified && !resource_behavior_options.is_empty() {
        return Err(GraphError::invalid_property("resourceBehaviorOptions"));
    }
    // A Microsoft 365 group is Public unless the create says otherwise (GRAPH.md "Groups").
    let visibility = match body.get("visibility") {
        None | Some(Value::Null) => unified.then(|| "Public".to_owned()),
        Some(Value::String(v)) if unified => {
            let known = ["Public", "Private", "HiddenMembership"];
            let Some(v) = known.iter().find(|k| k.eq_ignore_ascii_case(v)) else {
                return Err(GraphError::bad_request(format!(
                    "Invalid value '{v}' specified for property 'visibility' of resource 'Group'."
                )));
            };
            Some((*v).to_owned())
        }
        Some(_) => return Err(GraphError::invalid_property("visibility")),
    };
    let members = bind_ids(body, "members@odata.bind")?;
    let owners = bind_ids(body, "owners@odata.bind")?;
    too_many_links(members.len() + owners.len())?;
    let description = match body.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(GraphError::invalid_property("description")),
    };
    Ok(NewGroup {
        properties: GroupProperties {
            display_name: display_name.to_owned(),
            mail_nickname: mail_nickname.to_owned(),
            description,
            group_types,
            mail_enabled,
            security_enabled,
            resource_behavior_options,
            visibility,
        },
        members,
        owners,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn bind_urls_name_the_object() {
        assert_eq!(
            bind_id(&json!(
                "https://graph.microsoft.com/v1.0/directoryObjects/abc"
            ))
            .unwrap(),
            "abc"
        );
        assert_eq!(
            bind_id(&json!("http://127.0.0.1:1/v1.0/users/def")).unwrap(),
            "def"
        );
        assert!(bind_id(&json!("abc")).is_err());
        assert!(bind_id(&json!(7)).is_err());
    }

    #[test]
    fn nicknames_with_forbidden_characters_are_refused() {
        for nickname in ["a b", "a@b", "a(b", "a;b", "ä", ""] {
            let err = new_group(&body(json!({
                "displayName": "x", "mailNickname": nickname,
                "mailEnabled": true, "securityEnabled": false, "groupTypes": ["Unified"],
            })))
            .unwrap_err();
            assert!(err.message.contains("mailNickname"), "{nickname}: {err:?}");
        }
    }

    #[test]
    fn mail_enabled_security_groups_cannot_be_created() {
        let err = new_group(&body(json!({
            "displayName": "x", "mailNickname": "x",
            "mailEnabled": true, "securityEnabled": true, "groupTypes": [],
        })))
        .unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[test]
    fn unknown_properties_and_options_are_refused() {
        let base = json!({
            "displayName": "x", "mailNickname": "x",
            "mailEnabled": true, "securityEnabled": false, "groupTypes": ["Unified"],
        });
        let mut unknown = base.clone();
        unknown["colour"] = json!("red");
        assert!(new_group(&body(unknown)).is_err());
        let mut option = base;
        option["resourceBehaviorOptions"] = json!(["NoSuchOption"]);
        assert!(new_group(&body(option)).is_err());
    }
}
