//! A group to create as the plan summary records it: what the journal stage writes and the
//! apply (or a `resume`) creates from.

use serde::{Deserialize, Serialize};

/// A group to create, as the plan summary records it so that `resume` can finish a create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedGroup {
    /// The family.
    pub family: String,
    /// mailNickname.
    pub mail_nickname: String,
    /// displayName.
    pub display_name: String,
    /// description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// visibility (plans saved before it was recorded create Private groups).
    #[serde(default = "private")]
    pub visibility: String,
    /// resourceBehaviorOptions.
    #[serde(default)]
    pub behaviors: Vec<String>,
}

fn private() -> String {
    crate::config::Visibility::Private.as_str().to_owned()
}
