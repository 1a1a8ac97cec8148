//! The write-ahead journal: a run's plan committed before the first change, and each batch's
//! outcomes committed, fenced by the lease, before the next batch is sent.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use chrono::Utc;
use futures::TryStreamExt as _;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::groups::{upsert_group, upsert_groups};
use super::lease::fence;
use super::model::millis;
use super::sql::{CHUNK_ROWS, MAX_BINDS, case, marks};
use super::state::{MEMBER_MIRROR, OWNER_MIRROR, mirror_delete, mirror_insert};
use super::{
    Backend, Batch, JournalCounts, JournalOp, Lease, NewOp, OpKind, OpStatus, Outcome, RunId,
    Store, StoreError, text,
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
        // Row by row: a build's journal is 300,000 operations, and holding every driver row
        // at once beside the operations made from them was the run's peak memory.
        let mut rows = select.fetch(&self.pool);
        let mut ops = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(action())? {
            ops.push(op_from_row(&row)?);
        }
        Ok(ops)
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
    /// groups, and the mirror and owner mirror for done adds and removes. On `LeaseLost`
    /// nothing is written.
    ///
    /// Each kind of write is one multi-row statement (chunked under the bind limits), so
    /// that a batch costs a handful of round trips to the database whatever its size; see
    /// [`Store::round_trips`].
    pub async fn record_batch(&self, lease: &Lease, batch: Batch<'_>) -> Result<(), StoreError> {
        match self.write_batch(lease, &batch).await {
            Err(StoreError::Constraint(refused)) if refused.list.is_none() => Err(self
                .find_refused_list(lease, &batch)
                .await
                .unwrap_or(StoreError::Constraint(refused))),
            written => written,
        }
    }

    async fn write_batch(&self, lease: &Lease, batch: &Batch<'_>) -> Result<(), StoreError> {
        let run = batch.run;
        let action = || {
            StoreError::query(format!(
                "record {} outcomes of run {run}",
                batch.outcomes.len()
            ))
        };
        let mut tx = self.pool.begin().await.map_err(action())?;
        fence(&mut tx, self.backend, lease).await?;
        self.trip(2);
        let now = millis(Utc::now());
        self.trip(upsert_groups(&mut tx, self.backend, batch.groups, now).await?);
        // Each outcome binds its seq once, and a status and an error (2 each) unless done.
        for chunk in batch.outcomes.chunks(MAX_BINDS / 5) {
            record_outcomes(&mut tx, self.backend, run, chunk, now)
                .await
                .map_err(action())?;
            self.trip(1);
        }
        let done = done_seqs(batch);
        for chunk in done.chunks(MAX_BINDS - 1) {
            self.trip(mirror_done(&mut tx, self.backend, run, chunk).await?);
        }
        tx.commit().await.map_err(action())?;
        self.trip(1);
        Ok(())
    }

    /// After a batch was refused by a statement that covered several lists: writes the
    /// batch again one list at a time, in a transaction that is rolled back, to name the
    /// list whose row was refused.
    async fn find_refused_list(&self, lease: &Lease, batch: &Batch<'_>) -> Option<StoreError> {
        let mut tx = self.pool.begin().await.ok()?;
        fence(&mut tx, self.backend, lease).await.ok()?;
        let now = millis(Utc::now());
        for group in batch.groups {
            if let Err(refused) = upsert_group(&mut tx, self.backend, group, now).await {
                return Some(refused);
            }
        }
        let done = done_seqs(batch);
        let mut adds: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut owner_adds: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for chunk in done.chunks(MAX_BINDS - 1) {
            let changes = done_members(&mut tx, self.backend, batch.run, chunk)
                .await
                .ok()?;
            for (list, member) in changes.adds {
                adds.entry(list.clone()).or_default().push((list, member));
            }
            for (list, owner) in changes.owner_adds {
                owner_adds
                    .entry(list.clone())
                    .or_default()
                    .push((list, owner));
            }
        }
        for (mirror, adds) in [(&MEMBER_MIRROR, &adds), (&OWNER_MIRROR, &owner_adds)] {
            for rows in adds.values() {
                if let Err(refused) = mirror_insert(&mut tx, self.backend, mirror, rows).await {
                    return Some(refused);
                }
            }
        }
        None
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

/// The smallest and the largest of `seqs`. Queries name a batch's seqs by range as well as
/// one by one: a batch's seqs are mostly consecutive, and without the range PostgreSQL may
/// plan a long `seq IN (…)` on a journal it has no statistics for yet as a scan of the whole
/// run (tens of milliseconds a batch on the large university).
fn span(seqs: impl Iterator<Item = i64>) -> (i64, i64) {
    seqs.fold((i64::MAX, i64::MIN), |(lo, hi), seq| {
        (lo.min(seq), hi.max(seq))
    })
}

/// The seqs of a batch's done operations.
fn done_seqs(batch: &Batch<'_>) -> Vec<i64> {
    batch
        .outcomes
        .iter()
        .filter(|(_, o)| *o == Outcome::Done)
        .map(|(seq, _)| *seq)
        .collect()
}

/// Records the outcomes of one chunk of a batch in one UPDATE: done ones by default, the
/// others' statuses and errors by seq.
async fn record_outcomes(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    run: RunId,
    outcomes: &[(i64, Outcome)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let other: Vec<(i64, OpStatus, &str)> = outcomes
        .iter()
        .filter_map(|(seq, outcome)| match outcome {
            Outcome::Done => None,
            Outcome::Failed(e) => Some((*seq, OpStatus::Failed, e.as_str())),
            Outcome::Retry(e) => Some((*seq, OpStatus::Pending, e.as_str())),
            Outcome::Superseded(e) => Some((*seq, OpStatus::Superseded, e.as_str())),
        })
        .collect();
    let query = backend
        .sql(&format!(
            "UPDATE journal SET status = {}, last_error = {}, attempts = attempts + 1, \
             updated_at = ? WHERE run_id = ? AND seq BETWEEN ? AND ? AND seq IN ({})",
            case("seq", other.len(), "?"),
            case("seq", other.len(), "NULL"),
            marks(outcomes.len())
        ))
        .into_owned();
    let mut update = sqlx::query(&query);
    for (seq, status, _) in &other {
        update = update.bind(*seq).bind(status.as_str());
    }
    update = update.bind(OpStatus::Done.as_str());
    for (seq, _, error) in &other {
        update = update.bind(*seq).bind(*error);
    }
    let (first, last) = span(outcomes.iter().map(|(seq, _)| *seq));
    update = update.bind(now).bind(run.0).bind(first).bind(last);
    for (seq, _) in outcomes {
        update = update.bind(*seq);
    }
    update.execute(&mut **tx).await?;
    Ok(())
}

/// Applies the done member and owner operations among `seqs` to the mirror and the owner
/// mirror. Returns the statements sent: none for a kind of change the batch has not.
async fn mirror_done(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    run: RunId,
    seqs: &[i64],
) -> Result<u64, StoreError> {
    let done = done_members(tx, backend, run, seqs).await?;
    let mut sent = 1;
    sent += mirror_insert(tx, backend, &MEMBER_MIRROR, &done.adds).await?;
    sent += mirror_delete(tx, backend, &MEMBER_MIRROR, &done.removes).await?;
    sent += mirror_insert(tx, backend, &OWNER_MIRROR, &done.owner_adds).await?;
    sent += mirror_delete(tx, backend, &OWNER_MIRROR, &done.owner_removes).await?;
    Ok(sent)
}

/// The `(list, id)` pairs of the done member and owner adds and removes among `seqs`.
async fn done_members(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    run: RunId,
    seqs: &[i64],
) -> Result<DoneChanges, StoreError> {
    let action = || StoreError::query(format!("update the mirror for run {run}"));
    let query = backend
        .sql(&format!(
            "SELECT list_key, kind, member_id FROM journal WHERE run_id = ? \
             AND seq BETWEEN ? AND ? AND seq IN ({}) AND member_id IS NOT NULL",
            marks(seqs.len())
        ))
        .into_owned();
    let (first, last) = span(seqs.iter().copied());
    let mut select = sqlx::query(&query).bind(run.0).bind(first).bind(last);
    for seq in seqs {
        select = select.bind(*seq);
    }
    let rows = select.fetch_all(&mut **tx).await.map_err(action())?;
    let mut done = DoneChanges::default();
    for row in &rows {
        let list: String = row.try_get("list_key").map_err(action())?;
        let kind: String = row.try_get("kind").map_err(action())?;
        let member: String = row.try_get("member_id").map_err(action())?;
        match OpKind::parse(&kind)? {
            OpKind::AddMember => done.adds.push((list, member)),
            OpKind::RemoveMember => done.removes.push((list, member)),
            OpKind::AddOwner => done.owner_adds.push((list, member)),
            OpKind::RemoveOwner => done.owner_removes.push((list, member)),
            OpKind::CreateGroup | OpKind::TagGroup | OpKind::UpdateGroup => {}
        }
    }
    Ok(done)
}

/// Members and owners added and removed by a batch's done operations: `(list, id)` pairs.
#[derive(Debug, Default)]
struct DoneChanges {
    adds: Vec<(String, String)>,
    removes: Vec<(String, String)>,
    owner_adds: Vec<(String, String)>,
    owner_removes: Vec<(String, String)>,
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
