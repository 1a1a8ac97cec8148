//! Runs and the source snapshot summaries they accepted.

use chrono::Utc;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::model::{from_millis, millis};
use super::{
    Lease, NewSnapshot, OpStatus, Run, RunId, RunKind, RunStatus, Snapshot, Store, StoreError,
    json, text,
};

const RUN_COLUMNS: &str = "id, kind, status, holder, lease_token, started_at, finished_at, exit_code, plan_summary, report, approvals";
const SNAPSHOT_COLUMNS: &str =
    "id, run_id, source, row_count, distinct_count, checksum, accepted_at, recorded_at";

impl Store {
    /// Records a new run in `planning`, under `lease` if it took one, with the operator's
    /// approvals (operator, reason, accept flags).
    pub async fn begin_run(
        &self,
        kind: RunKind,
        lease: Option<&Lease>,
        approvals: Option<&serde_json::Value>,
    ) -> Result<RunId, StoreError> {
        let action = || StoreError::query(format!("record the start of a {kind} run"));
        let mut query = "INSERT INTO runs (kind, status, holder, lease_token, started_at, approvals) VALUES (?, ?, ?, ?, ?, ?)".to_owned();
        if self.backend.returns_id() {
            query.push_str(" RETURNING id");
        }
        let query = self.backend.sql(&query);
        let insert = sqlx::query(&query)
            .bind(kind.as_str())
            .bind(RunStatus::Planning.as_str())
            .bind(lease.map(|l| l.holder.clone()))
            .bind(lease.map(|l| l.token))
            .bind(millis(Utc::now()))
            .bind(approvals.map(|a| a.to_string()));
        let id = if self.backend.returns_id() {
            insert
                .fetch_one(&self.pool)
                .await
                .and_then(|row| row.try_get::<i64, _>(0))
                .map_err(action())?
        } else {
            let done = insert.execute(&self.pool).await.map_err(action())?;
            done.last_insert_id().ok_or_else(|| {
                action()(sqlx::Error::Protocol(
                    "no id came back for the new run".into(),
                ))
            })?
        };
        Ok(RunId(id))
    }

    /// Moves a run to `status` (e.g. from `planning` to `applying`).
    pub async fn set_run_status(&self, run: RunId, status: RunStatus) -> Result<(), StoreError> {
        sqlx::query(&self.backend.sql("UPDATE runs SET status = ? WHERE id = ?"))
            .bind(status.as_str())
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query(format!("mark run {run} {status}")))?;
        Ok(())
    }

    /// Ends a run with its status, exit code and report. A failed run is never resumed, so
    /// its pending operations (a batch whose outcomes the database refused) are marked
    /// superseded in the same transaction: the next run plans again from the sources and
    /// Microsoft 365, and the journal holds no pending operation that nothing will pick up.
    pub async fn finish_run(
        &self,
        run: RunId,
        status: RunStatus,
        exit_code: i32,
        report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let action = || StoreError::query(format!("record the end of run {run}"));
        let now = millis(Utc::now());
        let mut tx = self.pool.begin().await.map_err(action())?;
        sqlx::query(&self.backend.sql(
            "UPDATE runs SET status = ?, exit_code = ?, report = ?, finished_at = ? WHERE id = ?",
        ))
        .bind(status.as_str())
        .bind(i64::from(exit_code))
        .bind(report.to_string())
        .bind(now)
        .bind(run.0)
        .execute(&mut *tx)
        .await
        .map_err(action())?;
        if status == RunStatus::Failed {
            sqlx::query(&self.backend.sql(
                "UPDATE journal SET status = ?, updated_at = ? WHERE run_id = ? AND status = ?",
            ))
            .bind(OpStatus::Superseded.as_str())
            .bind(now)
            .bind(run.0)
            .bind(OpStatus::Pending.as_str())
            .execute(&mut *tx)
            .await
            .map_err(action())?;
        }
        tx.commit().await.map_err(action())
    }

    /// Marks a run interrupted: its pending operations stay for `resume`.
    pub async fn mark_interrupted(&self, run: RunId) -> Result<(), StoreError> {
        sqlx::query(
            &self
                .backend
                .sql("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?"),
        )
        .bind(RunStatus::Interrupted.as_str())
        .bind(millis(Utc::now()))
        .bind(run.0)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(format!("mark run {run} interrupted")))?;
        Ok(())
    }

    /// Marks interrupted every `planning`/`applying` run other than `current`'s: with the
    /// lease in hand, any other such run died without finishing. Returns their ids, newest
    /// last, so the caller can resume them.
    pub async fn interrupt_stuck_runs(&self, current: &Lease) -> Result<Vec<RunId>, StoreError> {
        let action = || StoreError::query("mark stuck runs interrupted");
        let mut tx = self.pool.begin().await.map_err(action())?;
        super::lease::fence(&mut tx, self.backend, current).await?;
        let stuck: Vec<i64> = sqlx::query_scalar(&self.backend.sql(
            "SELECT id FROM runs WHERE status IN (?, ?) AND (lease_token IS NULL OR lease_token <> ?) ORDER BY id",
        ))
        .bind(RunStatus::Planning.as_str())
        .bind(RunStatus::Applying.as_str())
        .bind(current.token)
        .fetch_all(&mut *tx)
        .await
        .map_err(action())?;
        let now = millis(Utc::now());
        let mut interrupted = Vec::with_capacity(stuck.len());
        for id in stuck {
            // The status is checked again: a run that ended since the SELECT (a skipped run's
            // record, written by another instance in between) keeps the end it recorded.
            let updated = sqlx::query(&self.backend.sql(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ? AND status IN (?, ?)",
            ))
            .bind(RunStatus::Interrupted.as_str())
            .bind(now)
            .bind(id)
            .bind(RunStatus::Planning.as_str())
            .bind(RunStatus::Applying.as_str())
            .execute(&mut *tx)
            .await
            .map_err(action())?
            .rows_affected();
            if updated > 0 {
                interrupted.push(RunId(id));
            }
        }
        tx.commit().await.map_err(action())?;
        Ok(interrupted)
    }

    /// One run.
    pub async fn run(&self, run: RunId) -> Result<Option<Run>, StoreError> {
        let action = || StoreError::query(format!("read run {run}"));
        let row = sqlx::query(
            &self
                .backend
                .sql(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?")),
        )
        .bind(run.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(action())?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    /// The most recent runs, newest first.
    pub async fn recent_runs(&self, limit: u32) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(&self.backend.sql(&format!(
            "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("list recent runs"))?;
        rows.iter().map(run_from_row).collect()
    }

    /// The run of one of `kinds` that most recently finished in `status` (what `serve`'s
    /// health and metrics read, so that they survive a restart and see every instance).
    pub async fn last_finished_run(
        &self,
        kinds: &[RunKind],
        status: RunStatus,
    ) -> Result<Option<Run>, StoreError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let placeholders = vec!["?"; kinds.len()].join(", ");
        let query = self
            .backend
            .sql(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE status = ? AND finished_at IS NOT NULL \
             AND kind IN ({placeholders}) ORDER BY finished_at DESC, id DESC LIMIT 1"
            ))
            .into_owned();
        let mut select = sqlx::query(&query).bind(status.as_str());
        for kind in kinds {
            select = select.bind(kind.as_str());
        }
        let row = select
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(format!("find the last {status} run")))?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    /// The newest interrupted run that still has pending operations: what `resume` finishes.
    pub async fn last_interrupted_run(&self) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query(&self.backend.sql(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = ? AND EXISTS \
             (SELECT 1 FROM journal j WHERE j.run_id = runs.id AND j.status = ?) \
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(RunStatus::Interrupted.as_str())
        .bind(OpStatus::Pending.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("find the last interrupted run"))?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    /// Deletes finished runs (and with them their journals) that started more than `days`
    /// days ago. Kept whatever their age: a run with pending operations (or still planning or
    /// applying), the latest run of each kind (what `status` and `/healthz` look back at), and
    /// the last accepted snapshot of every source (its run link is cleared when its run goes).
    /// Snapshots whose run is gone and that are not the last accepted one of their source go
    /// too. Returns how many runs went.
    pub async fn prune_runs(&self, days: u32) -> Result<u64, StoreError> {
        let cutoff = millis(Utc::now() - chrono::Duration::days(i64::from(days)));
        let action = || StoreError::query(format!("prune runs older than {days} days"));
        let mut tx = self.pool.begin().await.map_err(action())?;
        // The derived tables let MySQL read the table it deletes from.
        let deleted = sqlx::query(&self.backend.sql(
            "DELETE FROM runs WHERE started_at < ? AND status NOT IN (?, ?) AND NOT EXISTS \
             (SELECT 1 FROM journal j WHERE j.run_id = runs.id AND j.status = ?) AND id NOT IN \
             (SELECT id FROM (SELECT MAX(id) AS id FROM runs GROUP BY kind) AS latest)",
        ))
        .bind(cutoff)
        .bind(RunStatus::Planning.as_str())
        .bind(RunStatus::Applying.as_str())
        .bind(OpStatus::Pending.as_str())
        .execute(&mut *tx)
        .await
        .map_err(action())?
        .rows_affected();
        sqlx::query(
            "DELETE FROM source_snapshots WHERE run_id IS NULL AND id NOT IN \
             (SELECT id FROM (SELECT MAX(id) AS id FROM source_snapshots WHERE accepted = 1 GROUP BY source) AS keep)",
        )
        .execute(&mut *tx)
        .await
        .map_err(action())?;
        tx.commit().await.map_err(action())?;
        Ok(deleted)
    }

    /// Records what a run read from a source; returns the snapshot's id for [`Store::accept_snapshot`].
    pub async fn record_snapshot(
        &self,
        run: RunId,
        snapshot: &NewSnapshot,
    ) -> Result<i64, StoreError> {
        let action = || {
            StoreError::query(format!(
                "record the snapshot of source `{}` for run {run}",
                snapshot.source
            ))
        };
        let mut query = "INSERT INTO source_snapshots (run_id, source, row_count, distinct_count, checksum, accepted, recorded_at) VALUES (?, ?, ?, ?, ?, 0, ?)".to_owned();
        if self.backend.returns_id() {
            query.push_str(" RETURNING id");
        }
        let query = self.backend.sql(&query);
        let insert = sqlx::query(&query)
            .bind(run.0)
            .bind(&snapshot.source)
            .bind(snapshot.rows)
            .bind(snapshot.distinct)
            .bind(&snapshot.checksum)
            .bind(millis(Utc::now()));
        if self.backend.returns_id() {
            insert
                .fetch_one(&self.pool)
                .await
                .and_then(|row| row.try_get::<i64, _>(0))
                .map_err(action())
        } else {
            let done = insert.execute(&self.pool).await.map_err(action())?;
            done.last_insert_id().ok_or_else(|| {
                action()(sqlx::Error::Protocol(
                    "no id came back for the new snapshot".into(),
                ))
            })
        }
    }

    /// Marks a snapshot complete: later runs compare their sources against it.
    pub async fn accept_snapshot(&self, snapshot: i64) -> Result<(), StoreError> {
        sqlx::query(
            &self
                .backend
                .sql("UPDATE source_snapshots SET accepted = 1, accepted_at = ? WHERE id = ?"),
        )
        .bind(millis(Utc::now()))
        .bind(snapshot)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(format!("accept snapshot {snapshot}")))?;
        Ok(())
    }

    /// The last accepted snapshot of one source.
    pub async fn last_accepted_snapshot(
        &self,
        source: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let action = || StoreError::query(format!("read the last accepted snapshot of `{source}`"));
        let row = sqlx::query(&self.backend.sql(&format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM source_snapshots WHERE source = ? AND accepted = 1 \
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(source)
        .fetch_optional(&self.pool)
        .await
        .map_err(action())?;
        row.map(|r| snapshot_from_row(&r).map_err(action()))
            .transpose()
    }

    /// The last accepted snapshot of every source, by source name.
    pub async fn last_accepted_snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        let action = || StoreError::query("read the last accepted snapshots");
        let rows = sqlx::query(&format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM source_snapshots WHERE id IN \
             (SELECT MAX(id) FROM source_snapshots WHERE accepted = 1 GROUP BY source) ORDER BY source"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(action())?;
        rows.iter()
            .map(|r| snapshot_from_row(r).map_err(action()))
            .collect()
    }
}

fn run_from_row(row: &AnyRow) -> Result<Run, StoreError> {
    let decode = |e| StoreError::Query {
        action: "read a run".into(),
        source: e,
    };
    let kind: String = row.try_get("kind").map_err(decode)?;
    let status: String = row.try_get("status").map_err(decode)?;
    Ok(Run {
        id: RunId(row.try_get("id").map_err(decode)?),
        kind: RunKind::parse(&kind)?,
        status: RunStatus::parse(&status)?,
        holder: row.try_get("holder").map_err(decode)?,
        lease_token: row.try_get("lease_token").map_err(decode)?,
        started_at: from_millis(row.try_get("started_at").map_err(decode)?),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")
            .map_err(decode)?
            .map(from_millis),
        exit_code: row.try_get("exit_code").map_err(decode)?,
        plan_summary: json(row, "plan_summary").map_err(decode)?,
        report: json(row, "report").map_err(decode)?,
        approvals: json(row, "approvals").map_err(decode)?,
    })
}

fn snapshot_from_row(row: &AnyRow) -> Result<Snapshot, sqlx::Error> {
    Ok(Snapshot {
        id: row.try_get("id")?,
        run: row.try_get::<Option<i64>, _>("run_id")?.map(RunId),
        summary: NewSnapshot {
            source: row.try_get("source")?,
            rows: row.try_get("row_count")?,
            distinct: row.try_get("distinct_count")?,
            checksum: text(row, "checksum")?.unwrap_or_default(),
        },
        accepted_at: row
            .try_get::<Option<i64>, _>("accepted_at")?
            .map(from_millis),
        recorded_at: from_millis(row.try_get("recorded_at")?),
    })
}
