//! What `explain` reads: one member's journalled operations, the lists whose mirror holds
//! them, and one list's changes by run. Read-only, so it works while a run holds the lease.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::journal::op_from_row;
use super::model::from_millis;
use super::{Identity, JournalOp, OpKind, OpStatus, RunId, Store, StoreError};
use crate::config::MemberKey;

/// A journalled operation with when it was planned and when its status last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedOp {
    /// The operation.
    pub op: JournalOp,
    /// When its run journalled it.
    pub planned_at: DateTime<Utc>,
    /// When its status last changed (when it was done, failed or superseded).
    pub updated_at: DateTime<Utc>,
}

/// How many operations of one kind and status a run planned for one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListChange {
    /// The run.
    pub run: RunId,
    /// The operation's kind.
    pub kind: OpKind,
    /// Their status.
    pub status: OpStatus,
    /// How many.
    pub count: u64,
}

impl Store {
    /// Every operation on member `member` (an object id), on `list` (any case) or on any
    /// list, oldest first.
    pub async fn member_ops(
        &self,
        member: &str,
        list: Option<&str>,
    ) -> Result<Vec<TracedOp>, StoreError> {
        let action = || StoreError::query(format!("read the journal of member {member}"));
        let filter = if list.is_some() {
            " AND LOWER(list_key) = ?"
        } else {
            ""
        };
        let query = self
            .backend
            .sql(&format!(
                "SELECT run_id, seq, list_key, kind, member_id, status, attempts, last_error, \
                 created_at, updated_at FROM journal WHERE member_id = ?{filter} \
                 ORDER BY run_id, seq"
            ))
            .into_owned();
        let mut select = sqlx::query(&query).bind(member);
        if let Some(list) = list {
            select = select.bind(list.to_lowercase());
        }
        let rows = select.fetch_all(&self.pool).await.map_err(action())?;
        rows.iter()
            .map(|row| {
                let planned: i64 = row.try_get("created_at").map_err(action())?;
                let updated: i64 = row.try_get("updated_at").map_err(action())?;
                Ok(TracedOp {
                    op: op_from_row(row)?,
                    planned_at: from_millis(planned),
                    updated_at: from_millis(updated),
                })
            })
            .collect()
    }

    /// Every recorded key that resolved to `object_id` (a person's other names: the UPN a
    /// module source uses, the employee id a department source uses).
    pub async fn identities_of(&self, object_id: &str) -> Result<Vec<Identity>, StoreError> {
        let action = || StoreError::query(format!("read the keys of {object_id}"));
        let rows = sqlx::query(&self.backend.sql(
            "SELECT key_kind, key_value, checked_at FROM identities WHERE object_id = ? \
             ORDER BY key_kind, key_value",
        ))
        .bind(object_id)
        .fetch_all(&self.pool)
        .await
        .map_err(action())?;
        let mut found = Vec::new();
        for row in rows {
            let kind: String = row.try_get("key_kind").map_err(action())?;
            let kind = MemberKey::from_name(&kind).ok_or_else(|| StoreError::Unknown {
                place: "identities.key_kind",
                value: kind.clone(),
            })?;
            found.push(Identity {
                kind,
                value: row.try_get("key_value").map_err(action())?,
                object_id: Some(object_id.to_owned()),
                checked_at: from_millis(row.try_get("checked_at").map_err(action())?),
            });
        }
        Ok(found)
    }

    /// The lists whose mirror holds member `member` (an object id), sorted.
    pub async fn lists_of_member(&self, member: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            &self
                .backend
                .sql("SELECT list_key FROM mirror WHERE member_id = ? ORDER BY list_key"),
        )
        .bind(member)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(format!(
            "read the lists of member {member}"
        )))
    }

    /// The operations on `list` (any case) of the newest `runs` runs that changed it, counted
    /// by run, kind and status; newest run first.
    pub async fn list_changes(&self, list: &str, runs: u32) -> Result<Vec<ListChange>, StoreError> {
        let action = || StoreError::query(format!("read the changes of `{list}`"));
        let list = list.to_lowercase();
        let recent: Vec<i64> = sqlx::query_scalar(&self.backend.sql(
            "SELECT DISTINCT run_id FROM journal WHERE LOWER(list_key) = ? \
             ORDER BY run_id DESC LIMIT ?",
        ))
        .bind(list.as_str())
        .bind(i64::from(runs))
        .fetch_all(&self.pool)
        .await
        .map_err(action())?;
        let Some(oldest) = recent.last() else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(&self.backend.sql(
            "SELECT run_id, kind, status, COUNT(*) AS n FROM journal \
             WHERE LOWER(list_key) = ? AND run_id >= ? \
             GROUP BY run_id, kind, status ORDER BY run_id DESC, kind, status",
        ))
        .bind(list.as_str())
        .bind(*oldest)
        .fetch_all(&self.pool)
        .await
        .map_err(action())?;
        rows.iter()
            .map(|row| {
                let run: i64 = row.try_get("run_id").map_err(action())?;
                let kind: String = row.try_get("kind").map_err(action())?;
                let status: String = row.try_get("status").map_err(action())?;
                let n: i64 = row.try_get("n").map_err(action())?;
                Ok(ListChange {
                    run: RunId(run),
                    kind: OpKind::parse(&kind)?,
                    status: OpStatus::parse(&status)?,
                    count: u64::try_from(n).unwrap_or_default(),
                })
            })
            .collect()
    }
}
