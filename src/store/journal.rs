//! The write-ahead journal: a run's plan committed before the first change, and each batch's
//! outcomes committed, fenced by the lease, before the next batch is sent.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use chrono::Utc;
use futures::TryStreamExt as _;
use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Executor as _, Row};

use super::groups::{upsert_group, upsert_group_stmts};
use super::lease::{fence, fence_stmt, fenced_stmt, lease_lost, pause_of, pause_stmt};
use super::model::millis;
use super::script::{Script, Stmt};
use super::sql::{CHUNK_ROWS, MAX_BINDS, case, marks};
use super::state::{
    MEMBER_MIRROR, MIRROR_DELETE_ROWS, MIRROR_INSERT_ROWS, OWNER_MIRROR, mirror_delete_stmt,
    mirror_insert, mirror_insert_stmt,
};
use super::titles::titles_stmts;
use super::{
    Backend, Batch, JournalCounts, JournalOp, Lease, NewOp, OpKind, OpStatus, Outcome, PauseState,
    RunId, Store, StoreError, text,
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
    /// Two round trips whatever the batch's size (see [`Store::round_trips`]): `BEGIN` with
    /// the lease fence, and then every write and the `COMMIT` as one [`Script`]. A script
    /// that fails is rolled back whole.
    ///
    /// Returns the pause flag as it stood just after the commit, read by the same script:
    /// the check before the next batch needs no round trip of its own.
    pub async fn record_batch(
        &self,
        lease: &Lease,
        batch: Batch<'_>,
    ) -> Result<PauseState, StoreError> {
        match self.write_batch(lease, &batch).await {
            Err(StoreError::Constraint(refused)) if refused.list.is_none() => Err(self
                .find_refused_list(lease, &batch)
                .await
                .unwrap_or(StoreError::Constraint(refused))),
            written => written,
        }
    }

    async fn write_batch(
        &self,
        lease: &Lease,
        batch: &Batch<'_>,
    ) -> Result<PauseState, StoreError> {
        let action = format!(
            "record {} outcomes of run {}",
            batch.outcomes.len(),
            batch.run
        );
        let now = millis(Utc::now());
        // Built before BEGIN, so that the transaction is open for two round trips only.
        let writes = batch_script(self.backend, batch, now);
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::query(action.clone()))?;
        let mut begin = Script::new(self.backend);
        begin.push_sql("BEGIN");
        begin.push(&fence_stmt(lease, now));
        begin.push(&fenced_stmt(lease, now));
        let fenced = begin.fetch_all(&mut conn).await;
        self.trip(1);
        let written = match fenced {
            Ok(rows) if rows.len() == 1 => {
                let written = writes.fetch_all(&mut conn).await;
                self.trip(1);
                match written {
                    Ok(pause) => pause_of(pause.first()),
                    Err(e) => Err(StoreError::writing(action, "journal", None)(e)),
                }
            }
            Ok(_) => Err(lease_lost(&mut conn, self.backend).await),
            Err(e) => Err(StoreError::query("check the run lease")(e)),
        };
        if written.is_err() {
            roll_back(conn).await;
        }
        written
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
        let done = DoneChanges::of(batch);
        for (mirror, adds) in [
            (&MEMBER_MIRROR, &done.adds),
            (&OWNER_MIRROR, &done.owner_adds),
        ] {
            let mut by_list: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
            for &(list, id) in adds {
                by_list.entry(list).or_default().push((list, id));
            }
            for rows in by_list.values() {
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

/// Rolls back what a failed batch commit began. A connection that cannot even roll back is
/// closed rather than given back to the pool with its transaction open.
async fn roll_back(mut conn: PoolConnection<Any>) {
    if conn.execute("ROLLBACK").await.is_err() {
        let _ = conn.close().await;
    }
}

/// A batch's writes and its COMMIT, to be sent after the fence: each group's upsert, the
/// titles, the outcomes, then the mirror's and the owner mirror's adds and removes; after
/// the COMMIT, the pause flag is read.
fn batch_script(backend: Backend, batch: &Batch<'_>, now: i64) -> Script {
    let mut script = Script::new(backend);
    for group in batch.groups {
        for stmt in upsert_group_stmts(group, now) {
            script.push(&stmt);
        }
    }
    for stmt in titles_stmts(batch.titles) {
        script.push(&stmt);
    }
    // Each outcome binds its seq once, and a status and an error (2 each) unless done.
    for chunk in batch.outcomes.chunks(MAX_BINDS / 5) {
        script.push(&outcomes_stmt(batch.run, chunk, now));
    }
    let done = DoneChanges::of(batch);
    for (mirror, adds, removes) in [
        (&MEMBER_MIRROR, &done.adds, &done.removes),
        (&OWNER_MIRROR, &done.owner_adds, &done.owner_removes),
    ] {
        for chunk in adds.chunks(MIRROR_INSERT_ROWS) {
            script.push(&mirror_insert_stmt(backend, mirror, chunk));
        }
        for chunk in removes.chunks(MIRROR_DELETE_ROWS) {
            script.push(&mirror_delete_stmt(mirror, chunk));
        }
    }
    script.push_sql("COMMIT");
    script.push(&pause_stmt());
    script
}

/// The outcomes of one chunk of a batch as one UPDATE: done ones by default, the others'
/// statuses and errors by seq.
fn outcomes_stmt<'a>(run: RunId, outcomes: &'a [(&JournalOp, Outcome)], now: i64) -> Stmt<'a> {
    let other: Vec<(i64, OpStatus, &str)> = outcomes
        .iter()
        .filter_map(|(op, outcome)| match outcome {
            Outcome::Done => None,
            Outcome::Failed(e) => Some((op.seq, OpStatus::Failed, e.as_str())),
            Outcome::Retry(e) => Some((op.seq, OpStatus::Pending, e.as_str())),
            Outcome::Superseded(e) => Some((op.seq, OpStatus::Superseded, e.as_str())),
        })
        .collect();
    let mut update = Stmt::new(format!(
        "UPDATE journal SET status = {}, last_error = {}, attempts = attempts + 1, \
         updated_at = ? WHERE run_id = ? AND seq BETWEEN ? AND ? AND seq IN ({})",
        case("seq", other.len(), "?"),
        case("seq", other.len(), "NULL"),
        marks(outcomes.len())
    ));
    for (seq, status, _) in &other {
        update = update.bind(*seq).bind(status.as_str());
    }
    update = update.bind(OpStatus::Done.as_str());
    for (seq, _, error) in &other {
        update = update.bind(*seq).bind(*error);
    }
    let (first, last) = span(outcomes.iter().map(|(op, _)| op.seq));
    update = update.bind(now).bind(run.0).bind(first).bind(last);
    for (op, _) in outcomes {
        update = update.bind(op.seq);
    }
    update
}

/// Members and owners added and removed by a batch's done operations: `(list, id)` pairs.
#[derive(Debug, Default)]
struct DoneChanges<'a> {
    adds: Vec<(&'a str, &'a str)>,
    removes: Vec<(&'a str, &'a str)>,
    owner_adds: Vec<(&'a str, &'a str)>,
    owner_removes: Vec<(&'a str, &'a str)>,
}

impl<'a> DoneChanges<'a> {
    fn of(batch: &Batch<'a>) -> Self {
        let mut done = DoneChanges::default();
        for (op, outcome) in batch.outcomes {
            let (Outcome::Done, Some(id)) = (outcome, op.op.member.as_deref()) else {
                continue;
            };
            let pair = (op.op.list.as_str(), id);
            match op.op.kind {
                OpKind::AddMember => done.adds.push(pair),
                OpKind::RemoveMember => done.removes.push(pair),
                OpKind::AddOwner => done.owner_adds.push(pair),
                OpKind::RemoveOwner => done.owner_removes.push(pair),
                OpKind::CreateGroup | OpKind::TagGroup | OpKind::UpdateGroup => {}
            }
        }
        done
    }
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
