//! A source row's `role`: whether it names a member of its list or an owner of its group.

use serde::{Deserialize, Serialize};

/// What a source row makes its person on the row's list.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A member: receives the list's mail.
    #[default]
    Member,
    /// An owner of the list's group (and, when the family says so, a member too).
    Owner,
}

impl Role {
    /// Reads a `role` cell: `member`, `owner` (any case, trimmed), or empty for `default`.
    pub fn parse_cell(cell: &str, default: Role) -> Result<Role, String> {
        let cell = cell.trim();
        if cell.is_empty() {
            Ok(default)
        } else if cell.eq_ignore_ascii_case("member") {
            Ok(Role::Member)
        } else if cell.eq_ignore_ascii_case("owner") {
            Ok(Role::Owner)
        } else {
            Err(format!(
                "role `{}` is neither `member` nor `owner`",
                cell.escape_default()
            ))
        }
    }
}
