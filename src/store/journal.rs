//! The write-ahead journal: a run's plan committed before the first change, and each batch's
//! outcomes committed, fenced by the lease, before the next batch is sent.

use std::collections::HashMap;
use std::ops::Range;

use chrono::Utc;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::lease::fence;
use super::model::millis;
use super::sql::CHUNK_ROWS;
use super::{
    Backend, Batch, JournalCounts, JournalOp, Lease, ManagedGroup, NewOp, OpKind, OpStatus,
    Outcome, RunId, Store, StoreError, text,
};

const JOURNAL_COLUMNS: [&str; 9] = [
    "run_id",
    "seq",
    "list_key",
    "kind",
    "member_id",
    "status",
    "attempts",
    "created_at",
    "updated_at",
];

impl Store {
    /// Commits a run's plan summary (with its guard verdicts) and its operations as pending,
    /// in one transaction, under the lease. Returns the sequence numbers given to `ops`, in
    /// order.
    pub async fn insert_plan(
        &self,
        lease: &Lease,
        run: RunId,
        summary: &serde_json::Value,
        ops: &[NewOp],
    ) -> Result<Range<i64>, StoreError> {
        let action = || StoreError::query(format!("journal the plan of run {run}"));
        let mut tx = self.pool.begin().await.map_err(action())?;
        fence(&mut tx, self.backend, lease).await?;
        sqlx::query(
            &self
                .backend
                .sql("UPDATE runs SET plan_summary = ? WHERE id = ?"),
        )
        .bind(summary.to_string())
        .bind(run.0)
        .execute(&mut *tx)
        .await
        .map_err(action())?;
        // A run may journal more than once (resume re-plans); seq keeps counting.
        let last: i64 = sqlx::query_scalar(
            &self
                .backend
                .sql("SELECT COALESCE(MAX(seq), 0) FROM journal WHERE run_id = ?"),
        )
        .bind(run.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(action())?;
        let now = millis(Utc::now());
        let mut seq = last;
        for chunk in ops.chunks(CHUNK_ROWS) {
            let query = self
                .backend
                .insert("journal", &JOURNAL_COLUMNS, chunk.len());
            let query = self.backend.sql(&query);
            let mut insert = sqlx::query(&query);
            for op in chunk {
                seq += 1;
                insert = insert
                    .bind(run.0)
                    .bind(seq)
                    .bind(op.list.as_str())
                    .bind(op.kind.as_str())
                    .bind(op.member.as_deref())
                    .bind(OpStatus::Pending.as_str())
                    .bind(0_i64)
                    .bind(now)
                    .bind(now);
            }
            let list = super::sql::one_list(chunk.iter().map(|op| op.list.as_str()));
            insert.execute(&mut *tx).await.map_err(StoreError::writing(
                format!("journal the plan of run {run}"),
                "journal",
                list,
            ))?;
        }
        tx.commit().await.map_err(action())?;
        Ok(last + 1..seq + 1)
    }

    /// A run's pending operations in sequence order.
    pub async fn pending(&self, run: RunId) -> Result<Vec<JournalOp>, StoreError> {
        self.journal_where(run, Some(OpStatus::Pending)).await
    }

    /// A run's whole journal in sequence order.
    pub async fn journal(&self, run: RunId) -> Result<Vec<JournalOp>, StoreError> {
        self.journal_where(run, None).await
    }

    async fn journal_where(
        &self,
        run: RunId,
        status: Option<OpStatus>,
    ) -> Result<Vec<JournalOp>, StoreError> {
        let action = || StoreError::query(format!("read the journal of run {run}"));
        let filter = if status.is_some() {
            " AND status = ?"
        } else {
            ""
        };
        let query = self.backend.sql(&format!(
            "SELECT run_id, seq, list_key, kind, member_id, status, attempts, last_error FROM journal \
             WHERE run_id = ?{filter} ORDER BY seq"
        )).into_owned();
        let mut select = sqlx::query(&query).bind(run.0);
        if let Some(status) = status {
            select = select.bind(status.as_str());
        }
        let rows = select.fetch_all(&self.pool).await.map_err(action())?;
        rows.iter().map(op_from_row).collect()
    }

    /// How many of a run's operations there are of each kind in each status, counted by the
    /// database.
    pub async fn journal_tally(
        &self,
        run: RunId,
    ) -> Result<HashMap<(OpKind, OpStatus), u64>, StoreError> {
        let action = || StoreError::query(format!("count the journal of run {run}"));
        let rows = sqlx::query(&self.backend.sql(
            "SELECT kind, status, COUNT(*) AS n FROM journal WHERE run_id = ? GROUP BY kind, status",
        ))
        .bind(run.0)
        .fetch_all(&self.pool)
        .await
        .map_err(action())?;
        let mut tally = HashMap::new();
        for row in rows {
            let kind: String = row.try_get("kind").map_err(action())?;
            let status: String = row.try_get("status").map_err(action())?;
            let n: i64 = row.try_get("n").map_err(action())?;
            tally.insert(
                (OpKind::parse(&kind)?, OpStatus::parse(&status)?),
                u64::try_from(n).unwrap_or_default(),
            );
        }
        Ok(tally)
    }

    /// How many of a run's operations are in each status.
    pub async fn journal_counts(&self, run: RunId) -> Result<JournalCounts, StoreError> {
        let mut counts = JournalCounts::default();
        for ((_, status), n) in self.journal_tally(run).await? {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            match status {
                OpStatus::Pending => counts.pending += n,
                OpStatus::Done => counts.done += n,
                OpStatus::Failed => counts.failed += n,
                OpStatus::Superseded => counts.superseded += n,
            }
        }
        Ok(counts)
    }

    /// Pending operations across every run, for `status`.
    pub async fn pending_everywhere(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            &self
                .backend
                .sql("SELECT COUNT(*) FROM journal WHERE status = ?"),
        )
        .bind(OpStatus::Pending.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("count pending operations"))
    }

    /// Commits one batch's outcomes in one transaction that first proves the lease is still
    /// current: statuses, attempts and errors in the journal, the batch's new or tagged
    /// groups, and the mirror for done adds and removes. On `LeaseLost` nothing is written.
    pub async fn record_batch(&self, lease: &Lease, batch: Batch<'_>) -> Result<(), StoreError> {
        let run = batch.run;
        let action = || {
            StoreError::query(format!(
                "record {} outcomes of run {run}",
                batch.outcomes.len()
            ))
        };
        let mut tx = self.pool.begin().await.map_err(action())?;
        fence(&mut tx, self.backend, lease).await?;
        let now = millis(Utc::now());
        for group in batch.groups {
            upsert_group(&mut tx, self.backend, group, now).await?;
        }
        let done: Vec<i64> = batch
            .outcomes
            .iter()
            .filter(|(_, o)| *o == Outcome::Done)
            .map(|(seq, _)| *seq)
            .collect();
        for (seq, outcome) in batch.outcomes {
            let (status, error) = match outcome {
                Outcome::Done => continue,
                Outcome::Failed(e) => (OpStatus::Failed, e),
                Outcome::Retry(e) => (OpStatus::Pending, e),
                Outcome::Superseded(e) => (OpStatus::Superseded, e),
            };
            sqlx::query(&self.backend.sql(
                "UPDATE journal SET status = ?, attempts = attempts + 1, last_error = ?, updated_at = ? \
                 WHERE run_id = ? AND seq = ?",
            ))
            .bind(status.as_str())
            .bind(error.as_str())
            .bind(now)
            .bind(run.0)
            .bind(*seq)
            .execute(&mut *tx)
            .await
            .map_err(action())?;
        }
        if !done.is_empty() {
            let marks = vec!["?"; done.len()].join(", ");
            let query = self.backend.sql(&format!(
                "UPDATE journal SET status = ?, attempts = attempts + 1, last_error = NULL, updated_at = ? \
                 WHERE run_id = ? AND seq IN ({marks})"
            )).into_owned();
            let mut update = sqlx::query(&query)
                .bind(OpStatus::Done.as_str())
                .bind(now)
                .bind(run.0);
            for seq in &done {
                update = update.bind(*seq);
            }
            update.execute(&mut *tx).await.map_err(action())?;
            mirror_done(&mut tx, self.backend, run, &done).await?;
        }
        tx.commit().await.map_err(action())
    }

    /// Marks a run's remaining pending operations superseded (a newer plan replaces them).
    pub async fn supersede_pending(&self, run: RunId) -> Result<u64, StoreError> {
        let done =
            sqlx::query(&self.backend.sql(
                "UPDATE journal SET status = ?, updated_at = ? WHERE run_id = ? AND status = ?",
            ))
            .bind(OpStatus::Superseded.as_str())
            .bind(millis(Utc::now()))
            .bind(run.0)
            .bind(OpStatus::Pending.as_str())
            .execute(&self.pool)
            .await
            .map_err(StoreError::query(format!(
                "supersede the pending operations of run {run}"
            )))?;
        Ok(done.rows_affected())
    }
}

/// Applies the done member operations among `seqs` to the mirror.
async fn mirror_done(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    run: RunId,
    seqs: &[i64],
) -> Result<(), StoreError> {
    let action = || StoreError::query(format!("update the mirror for run {run}"));
    let marks = vec!["?"; seqs.len()].join(", ");
    let query = backend.sql(&format!(
        "SELECT list_key, kind, member_id FROM journal WHERE run_id = ? AND seq IN ({marks}) AND member_id IS NOT NULL"
    )).into_owned();
    let mut select = sqlx::query(&query).bind(run.0);
    for seq in seqs {
        select = select.bind(*seq);
    }
    let rows = select.fetch_all(&mut **tx).await.map_err(action())?;
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    for row in &rows {
        let list: String = row.try_get("list_key").map_err(action())?;
        let kind: String = row.try_get("kind").map_err(action())?;
        let member: String = row.try_get("member_id").map_err(action())?;
        match OpKind::parse(&kind)? {
            OpKind::AddMember => adds.push((list, member)),
            OpKind::RemoveMember => removes.push((list, member)),
            OpKind::CreateGroup | OpKind::TagGroup | OpKind::UpdateGroup => {}
        }
    }
    super::state::mirror_insert(tx, backend, &adds).await?;
    super::state::mirror_delete(tx, backend, &removes).await
}

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
    let refused = || {
        StoreError::writing(
            format!("record managed group `{}`", group.list),
            "managed_groups",
            Some(&group.list),
        )
    };
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
    .map_err(refused())?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    let columns = [
        "list_key",
        "group_id",
        "family",
        "origin",
        "mail_nickname",
        "tagged",
        "created_at",
        "updated_at",
    ];
    sqlx::query(&backend.sql(&backend.insert("managed_groups", &columns, 1)))
        .bind(group.list.as_str())
        .bind(group.group_id.as_str())
        .bind(group.family.as_str())
        .bind(group.origin.as_str())
        .bind(group.mail_nickname.as_str())
        .bind(i64::from(group.tagged))
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(refused())?;
    Ok(())
}

pub(super) fn op_from_row(row: &AnyRow) -> Result<JournalOp, StoreError> {
    let decode = StoreError::query("read a journal operation");
    let read = || -> Result<_, sqlx::Error> {
        Ok((
            row.try_get::<i64, _>("run_id")?,
            row.try_get::<i64, _>("seq")?,
            row.try_get::<String, _>("list_key")?,
            row.try_get::<String, _>("kind")?,
            row.try_get::<Option<String>, _>("member_id")?,
            row.try_get::<String, _>("status")?,
            row.try_get::<i32, _>("attempts")?,
            text(row, "last_error")?,
        ))
    };
    let (run, seq, list, kind, member, status, attempts, last_error) = read().map_err(decode)?;
    Ok(JournalOp {
        run: RunId(run),
        seq,
        op: NewOp {
            list,
            kind: OpKind::parse(&kind)?,
            member,
        },
        status: OpStatus::parse(&status)?,
        attempts,
        last_error,
    })
}
