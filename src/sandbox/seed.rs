//! The sandbox tenant's seed: the users and groups it starts with, as JSON.
//!
//! The same shape is accepted by `rollcall sandbox --seed FILE` and `POST /_sandbox/seed`,
//! written by `rollcall generate`, and returned (with members as they truly are, without
//! replication lag) by `GET /_sandbox/state`. Field names follow Microsoft Graph's.

use serde::{Deserialize, Serialize};

/// A whole tenant directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// User accounts.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Groups, with their members.
    #[serde(default)]
    pub groups: Vec<SeedGroup>,
}

/// A user account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedUser {
    /// The object id (a GUID, lower case).
    pub id: String,
    /// The sign-in name, e.g. `a.student@example.ac.uk`.
    pub user_principal_name: String,
    /// The primary SMTP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    /// The HR or student-record number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    /// The person's name as shown in address books.
    #[serde(default)]
    pub display_name: String,
    /// The department (HR-synced), e.g. `Physics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    /// The employee type (`Student`, `Staff`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_type: Option<String>,
    /// Whether the account may sign in; `true` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_enabled: Option<bool>,
}

/// A group and its direct members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedGroup {
    /// The object id; the sandbox assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name shown in address books.
    pub display_name: String,
    /// The alias, unique among Microsoft 365 groups.
    pub mail_nickname: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `["Unified"]` for a Microsoft 365 group; empty for a security group or distribution list.
    #[serde(default = "unified")]
    pub group_types: Vec<String>,
    /// Whether the group has a mailbox address.
    #[serde(default = "yes")]
    pub mail_enabled: bool,
    /// Whether the group is a security group.
    #[serde(default)]
    pub security_enabled: bool,
    /// Object ids of the direct members (users).
    #[serde(default)]
    pub members: Vec<String>,
    /// Object ids of the owners (users).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Open extensions, each a JSON object with `extensionName` and custom properties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<serde_json::Map<String, serde_json::Value>>,
}

fn unified() -> Vec<String> {
    vec!["Unified".to_owned()]
}

fn yes() -> bool {
    true
}
