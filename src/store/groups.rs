//! Recording managed groups: one at a time, or as statements of a batch's script.

use sqlx::{Any, Transaction};

use super::script::Stmt;
use super::{Backend, ManagedGroup, StoreError};

/// The columns of a new group's row.
const COLUMNS: [&str; 8] = [
    "list_key",
    "group_id",
    "family",
    "origin",
    "mail_nickname",
    "tagged",
    "created_at",
    "updated_at",
];

/// Records a managed group, or updates the one with the same list key. Not an upsert: on
/// MySQL/MariaDB `ON DUPLICATE KEY UPDATE` fires on any unique key, so a group id already
/// recorded under another list would silently rewrite that list's row; an UPDATE by list key
/// and, for a new list, a plain INSERT let every backend refuse it alike.
pub(crate) async fn upsert_group(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    group: &ManagedGroup,
    now: i64,
) -> Result<(), StoreError> {
    let [update, insert] = upsert_group_stmts(group, now);
    let refused = || {
        StoreError::writing(
            format!("record managed group `{}`", group.list),
            "managed_groups",
            Some(&group.list),
        )
    };
    let updated = update.execute(backend, tx).await.map_err(refused())?;
    if updated.rows_affected() == 0 {
        insert.execute(backend, tx).await.map_err(refused())?;
    }
    Ok(())
}

/// The two statements that record `group` inside a script, as [`upsert_group`] does: an
/// UPDATE by list key, then an INSERT that adds the row only where that found none. A group
/// id recorded under another list is refused by the INSERT, on every backend alike.
pub(crate) fn upsert_group_stmts(group: &ManagedGroup, now: i64) -> [Stmt<'_>; 2] {
    let update = Stmt::new(
        "UPDATE managed_groups SET group_id = ?, family = ?, origin = ?, mail_nickname = ?, \
         tagged = ?, updated_at = ? WHERE list_key = ?",
    );
    let update = group_fields(update, group)
        .bind(now)
        .bind(group.list.as_str());
    let columns = COLUMNS.join(", ");
    let insert = Stmt::new(format!(
        "INSERT INTO managed_groups ({columns}) SELECT {columns} FROM (SELECT ? AS list_key, \
         ? AS group_id, ? AS family, ? AS origin, ? AS mail_nickname, ? AS tagged, \
         ? AS created_at, ? AS updated_at) AS new_group WHERE NOT EXISTS \
         (SELECT 1 FROM managed_groups AS g WHERE g.list_key = new_group.list_key)"
    ))
    .bind(group.list.as_str());
    let insert = group_fields(insert, group).bind(now).bind(now);
    [update, insert]
}

/// Binds the group's own columns, in `COLUMNS` order after the list key.
fn group_fields<'a>(stmt: Stmt<'a>, group: &'a ManagedGroup) -> Stmt<'a> {
    stmt.bind(group.group_id.as_str())
        .bind(group.family.as_str())
        .bind(group.origin.as_str())
        .bind(group.mail_nickname.as_str())
        .bind(i64::from(group.tagged))
}
