//! Removal grace's bookkeeping: when each member whom a list's sources no longer name was
//! first found absent (DESIGN.md "The academic year").

use std::collections::BTreeMap;

use sqlx::Row;

use super::lease::fence;
use super::model::{from_millis, millis};
use super::sql::{CHUNK_ROWS, one_list};
use super::{Lease, Store, StoreError};
use crate::plan::{AbsenceChanges, FirstAbsent, ObjectId};

const COLUMNS: [&str; 3] = ["list_key", "member_id", "first_absent_at"];

impl Store {
    /// Every recorded first-absent time, by list then member.
    pub async fn first_absent(&self) -> Result<FirstAbsent, StoreError> {
        let action = || StoreError::query("read the members in their removal grace");
        let rows = sqlx::query("SELECT list_key, member_id, first_absent_at FROM member_absences")
            .fetch_all(&self.pool)
            .await
            .map_err(action())?;
        let mut absent = FirstAbsent::new();
        for row in rows {
            let list: String = row.try_get("list_key").map_err(action())?;
            let member: String = row.try_get("member_id").map_err(action())?;
            let at: i64 = row.try_get("first_absent_at").map_err(action())?;
            // A row that is not an object id was not written by rollcall; skipping it only
            // restarts that member's grace.
            let Ok(member) = member.parse::<ObjectId>() else {
                tracing::warn!(
                    list,
                    member,
                    "ignoring a member_absences row that names no object id"
                );
                continue;
            };
            absent
                .entry(list)
                .or_default()
                .insert(member, from_millis(at));
        }
        Ok(absent)
    }

    /// Records new first-absent times and forgets members back on their lists' sources or
    /// removed, in one transaction under the lease.
    pub async fn record_absences(
        &self,
        lease: &Lease,
        changes: &AbsenceChanges,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let action = || StoreError::query("record the members in their removal grace");
        let mut tx = self.pool.begin().await.map_err(action())?;
        fence(&mut tx, self.backend, lease).await?;
        // A member inserted anew may have a row already (a time the plan moved): it goes
        // first, with the members forgotten.
        let mut stale: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let forgotten = changes.forget.iter().map(|(list, member)| (list, member));
        let replaced = changes
            .insert
            .iter()
            .map(|(list, member, _)| (list, member));
        for (list, member) in forgotten.chain(replaced) {
            stale
                .entry(list.as_str())
                .or_default()
                .push(member.to_string());
        }
        for (list, members) in &stale {
            for chunk in members.chunks(CHUNK_ROWS) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let sql = format!(
                    "DELETE FROM member_absences WHERE list_key = ? AND member_id IN ({marks})"
                );
                let sql = self.backend.sql(&sql);
                let mut delete = sqlx::query(&sql).bind(*list);
                for member in chunk {
                    delete = delete.bind(member.as_str());
                }
                delete.execute(&mut *tx).await.map_err(action())?;
            }
        }
        for chunk in changes.insert.chunks(CHUNK_ROWS) {
            let sql = self
                .backend
                .insert("member_absences", &COLUMNS, chunk.len());
            let sql = self.backend.sql(&sql);
            let mut insert = sqlx::query(&sql);
            for (list, member, since) in chunk {
                insert = insert
                    .bind(list.as_str())
                    .bind(member.to_string())
                    .bind(millis(*since));
            }
            let list = one_list(chunk.iter().map(|(list, _, _)| list.as_str()));
            insert.execute(&mut *tx).await.map_err(StoreError::writing(
                "record the members in their removal grace",
                "member_absences",
                list,
            ))?;
        }
        tx.commit().await.map_err(action())
    }
}
