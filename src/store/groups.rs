//! Recording managed groups: one at a time, or a batch's groups in a few statements.

use std::collections::HashSet;

use sqlx::{Any, Row, Transaction};

use super::sql::{MAX_BINDS, case, marks, one_list};
use super::{Backend, ManagedGroup, StoreError};

/// The columns a recorded group's UPDATE sets from the group.
const UPDATED: [&str; 5] = ["group_id", "family", "origin", "mail_nickname", "tagged"];

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
    let updated = sqlx::query(&backend.sql(
        "UPDATE managed_groups SET group_id = ?, family = ?, origin = ?, mail_nickname = ?, \
         tagged = ?, updated_at = ? WHERE list_key = ?",
    ))
    .bind(group.group_id.as_str())
    .bind(group.family.as_str())
    .bind(group.origin.as_str())
    .bind(group.mail_nickname.as_str())
    .bind(i64::from(group.tagged))
    .bind(now)
    .bind(group.list.as_str())
    .execute(&mut **tx)
    .await
    .map_err(refused(&[group]))?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    insert(tx, backend, &[group], now).await
}

/// Records `groups` as [`upsert_group`] would one by one (a list given twice keeps its last
/// group), in three statements per few thousand groups: which lists are recorded already,
/// one UPDATE of those and one INSERT of the rest. A refusal of a statement covering several
/// lists names none of them; [`super::Store::record_batch`] then finds the list.
pub(crate) async fn upsert_groups(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    groups: &[ManagedGroup],
    now: i64,
) -> Result<u64, StoreError> {
    let mut seen = HashSet::new();
    let mut unique: Vec<&ManagedGroup> = groups
        .iter()
        .rev()
        .filter(|g| seen.insert(g.list.as_str()))
        .collect();
    unique.reverse();
    let mut trips = 0;
    // Each group binds 2 values per updated column and its key once.
    for chunk in unique.chunks(MAX_BINDS / (2 * UPDATED.len() + 1)) {
        let recorded = recorded(tx, backend, chunk).await?;
        let (old, new): (Vec<&ManagedGroup>, Vec<&ManagedGroup>) = chunk
            .iter()
            .partition(|g| recorded.contains(g.list.as_str()));
        trips += 1;
        if !old.is_empty() {
            update(tx, backend, &old, now).await?;
            trips += 1;
        }
        if !new.is_empty() {
            insert(tx, backend, &new, now).await?;
            trips += 1;
        }
    }
    Ok(trips)
}

/// Which of the groups' lists have a recorded group.
async fn recorded(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    groups: &[&ManagedGroup],
) -> Result<HashSet<String>, StoreError> {
    let action = || StoreError::query(format!("look up {} managed groups", groups.len()));
    let query = backend
        .sql(&format!(
            "SELECT list_key FROM managed_groups WHERE list_key IN ({})",
            marks(groups.len())
        ))
        .into_owned();
    let mut select = sqlx::query(&query);
    for group in groups {
        select = select.bind(group.list.as_str());
    }
    let rows = select.fetch_all(&mut **tx).await.map_err(action())?;
    rows.iter()
        .map(|row| row.try_get::<String, _>("list_key").map_err(action()))
        .collect()
}

async fn update(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    groups: &[&ManagedGroup],
    now: i64,
) -> Result<(), StoreError> {
    let sets: Vec<String> = UPDATED
        .iter()
        .map(|column| format!("{column} = {}", case("list_key", groups.len(), column)))
        .collect();
    let query = backend
        .sql(&format!(
            "UPDATE managed_groups SET {}, updated_at = ? WHERE list_key IN ({})",
            sets.join(", "),
            marks(groups.len())
        ))
        .into_owned();
    let mut update = sqlx::query(&query);
    for column in UPDATED {
        for group in groups {
            update = update.bind(group.list.as_str());
            update = match column {
                "group_id" => update.bind(group.group_id.as_str()),
                "family" => update.bind(group.family.as_str()),
                "origin" => update.bind(group.origin.as_str()),
                "mail_nickname" => update.bind(group.mail_nickname.as_str()),
                _ => update.bind(i64::from(group.tagged)),
            };
        }
    }
    update = update.bind(now);
    for group in groups {
        update = update.bind(group.list.as_str());
    }
    update.execute(&mut **tx).await.map_err(refused(groups))?;
    Ok(())
}

async fn insert(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    groups: &[&ManagedGroup],
    now: i64,
) -> Result<(), StoreError> {
    let query = backend
        .sql(&backend.insert("managed_groups", &COLUMNS, groups.len()))
        .into_owned();
    let mut insert = sqlx::query(&query);
    for group in groups {
        insert = insert
            .bind(group.list.as_str())
            .bind(group.group_id.as_str())
            .bind(group.family.as_str())
            .bind(group.origin.as_str())
            .bind(group.mail_nickname.as_str())
            .bind(i64::from(group.tagged))
            .bind(now)
            .bind(now);
    }
    insert.execute(&mut **tx).await.map_err(refused(groups))?;
    Ok(())
}

fn refused(groups: &[&ManagedGroup]) -> impl FnOnce(sqlx::Error) -> StoreError {
    let action = match groups {
        [group] => format!("record managed group `{}`", group.list),
        _ => format!("record {} managed groups", groups.len()),
    };
    StoreError::writing(
        action,
        "managed_groups",
        one_list(groups.iter().map(|g| g.list.as_str())),
    )
}
