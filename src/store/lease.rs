//! The run lease (one run at a time per state database, fenced by a token that grows with
//! every takeover) and the pause flag.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use super::model::{from_millis, millis};
use super::script::Stmt;
use super::{Backend, Held, Lease, LeaseState, PauseState, Store, StoreError, text};

/// The name of the lease every run takes.
pub const RUN_LEASE: &str = "run";

/// The single row of the `pause` table.
const PAUSE_ROW: i64 = 1;

impl Store {
    /// Takes the run lease for `ttl`, taking over an expired one with a new, larger fencing
    /// token. The inner `Err` says who holds it when it is taken.
    pub async fn acquire(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Result<Lease, Held>, StoreError> {
        let action = || StoreError::query("take the run lease");
        let now = Utc::now();
        let expires_at = now + ttl_of(ttl);
        let mut tx = self.pool.begin().await.map_err(action())?;
        let seed = format!(
            "{}{}",
            self.backend.insert(
                "lease",
                &[
                    "name",
                    "holder",
                    "token",
                    "acquired_at",
                    "heartbeat_at",
                    "expires_at"
                ],
                1
            ),
            self.backend.on_conflict(&["name"], &[])
        );
        sqlx::query(&self.backend.sql(&seed))
            .bind(RUN_LEASE)
            .bind(None::<String>)
            .bind(0_i64)
            .bind(0_i64)
            .bind(0_i64)
            .bind(0_i64)
            .execute(&mut *tx)
            .await
            .map_err(action())?;
        let taken = claim(
            &mut tx,
            self.backend,
            holder,
            now,
            expires_at,
            Previous::Nobody,
        )
        .await
        .map_err(action())?;
        let state = lease_state(&mut tx, self.backend)
            .await?
            .ok_or_else(|| action()(sqlx::Error::RowNotFound))?;
        tx.commit().await.map_err(action())?;
        if taken {
            Ok(Ok(Lease {
                holder: holder.to_owned(),
                token: state.token,
                expires_at,
            }))
        } else {
            Ok(Err(Held {
                holder: state.holder.unwrap_or_default(),
                since: state.acquired_at,
                expires: state.expires_at,
            }))
        }
    }

    /// Extends a held lease by `ttl` from now; `LeaseLost` when it expired or was taken over.
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError> {
        let action = || StoreError::query("renew the run lease");
        let now = Utc::now();
        let expires_at = now + ttl_of(ttl);
        let mut tx = self.pool.begin().await.map_err(action())?;
        let renewed = sqlx::query(&self.backend.sql(
            "UPDATE lease SET heartbeat_at = ?, expires_at = ? \
             WHERE name = ? AND holder = ? AND token = ? AND expires_at > ?",
        ))
        .bind(millis(now))
        .bind(millis(expires_at))
        .bind(RUN_LEASE)
        .bind(&lease.holder)
        .bind(lease.token)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(action())?
        .rows_affected()
            == 1;
        if !renewed {
            return Err(lease_lost(&mut tx, self.backend).await);
        }
        tx.commit().await.map_err(action())?;
        Ok(Lease {
            expires_at,
            ..lease.clone()
        })
    }

    /// Takes the lease from `dead`, a holder known to have died (a process on this host that
    /// no longer exists), without waiting for it to expire; `None` if someone else holds it
    /// by now. The fencing token still grows, so a holder that was not dead after all is
    /// fenced out.
    pub async fn take_over(
        &self,
        dead: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let action = || StoreError::query(format!("take the run lease over from `{dead}`"));
        let now = Utc::now();
        let expires_at = now + ttl_of(ttl);
        let mut tx = self.pool.begin().await.map_err(action())?;
        let taken = claim(
            &mut tx,
            self.backend,
            holder,
            now,
            expires_at,
            Previous::Dead(dead),
        )
        .await
        .map_err(action())?;
        let state = lease_state(&mut tx, self.backend).await?;
        tx.commit().await.map_err(action())?;
        Ok(state.filter(|_| taken).map(|state| Lease {
            holder: holder.to_owned(),
            token: state.token,
            expires_at,
        }))
    }

    /// Gives the lease up so the next run need not wait for it to expire; a lease already
    /// taken over is left alone.
    pub async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(&self.backend.sql(
            "UPDATE lease SET holder = NULL, expires_at = ? WHERE name = ? AND holder = ? AND token = ?",
        ))
        .bind(millis(Utc::now()))
        .bind(RUN_LEASE)
        .bind(&lease.holder)
        .bind(lease.token)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("release the run lease"))?;
        Ok(())
    }

    /// The lease as it stands, `None` if no run ever took it.
    pub async fn current_lease(&self) -> Result<Option<LeaseState>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("read the run lease"))?;
        let state = lease_state(&mut tx, self.backend).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("read the run lease"))?;
        Ok(state)
    }

    /// Pauses scheduled runs, until `until` if given.
    pub async fn pause(
        &self,
        reason: &str,
        until: Option<DateTime<Utc>>,
        by: &str,
    ) -> Result<(), StoreError> {
        self.write_pause(true, Some(reason), until, Some(by)).await
    }

    /// Lifts the pause.
    pub async fn unpause(&self, by: &str) -> Result<(), StoreError> {
        self.write_pause(false, None, None, Some(by)).await
    }

    /// The pause flag; a pause whose `until` has passed reads as not paused.
    pub async fn pause_state(&self) -> Result<PauseState, StoreError> {
        let decode = StoreError::query("read the pause flag");
        self.trip(1);
        let row = sqlx::query(&self.backend.sql(PAUSE_QUERY))
            .bind(PAUSE_ROW)
            .fetch_optional(&self.pool)
            .await
            .map_err(decode)?;
        pause_of(row.as_ref())
    }

    async fn write_pause(
        &self,
        paused: bool,
        reason: Option<&str>,
        until: Option<DateTime<Utc>>,
        by: Option<&str>,
    ) -> Result<(), StoreError> {
        let columns = ["id", "paused", "reason", "until_at", "set_by", "set_at"];
        let query = format!(
            "{}{}",
            self.backend.insert("pause", &columns, 1),
            self.backend.on_conflict(&["id"], &columns[1..])
        );
        sqlx::query(&self.backend.sql(&query))
            .bind(PAUSE_ROW)
            .bind(i64::from(paused))
            .bind(reason)
            .bind(until.map(millis))
            .bind(by)
            .bind(millis(Utc::now()))
            .execute(&self.pool)
            .await
            .map_err(StoreError::query(if paused {
                "set the pause flag"
            } else {
                "clear the pause flag"
            }))?;
        Ok(())
    }
}

/// Whom a claim takes the lease from.
enum Previous<'a> {
    /// Nobody: the lease is free or expired.
    Nobody,
    /// This holder, known to be dead, whatever the expiry says.
    Dead(&'a str),
}

/// Makes `holder` the lease's holder with a larger fencing token, if the lease is the
/// `from` kind; says whether it did.
async fn claim(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    holder: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    from: Previous<'_>,
) -> Result<bool, sqlx::Error> {
    let condition = match from {
        Previous::Nobody => "(holder IS NULL OR expires_at <= ?)",
        Previous::Dead(_) => "holder = ?",
    };
    let query = backend
        .sql(&format!(
            "UPDATE lease SET holder = ?, token = token + 1, acquired_at = ?, heartbeat_at = ?, expires_at = ? \
             WHERE name = ? AND {condition}"
        ))
        .into_owned();
    let update = sqlx::query(&query)
        .bind(holder)
        .bind(millis(now))
        .bind(millis(now))
        .bind(millis(expires_at))
        .bind(RUN_LEASE);
    let update = match from {
        Previous::Nobody => update.bind(millis(now)),
        Previous::Dead(dead) => update.bind(dead),
    };
    Ok(update.execute(&mut **tx).await?.rows_affected() == 1)
}

/// Inside a batch's transaction: proves `lease` is still current and unexpired, and records a
/// heartbeat. The row lock this UPDATE takes holds off a takeover until the batch commits.
pub(crate) async fn fence(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    lease: &Lease,
) -> Result<(), StoreError> {
    let current = fence_stmt(lease, millis(Utc::now()))
        .execute(backend, tx)
        .await
        .map_err(StoreError::query("check the run lease"))?
        .rows_affected()
        == 1;
    if current {
        Ok(())
    } else {
        Err(lease_lost(tx, backend).await)
    }
}

/// The fence's UPDATE: it touches exactly one row while `lease` is current at `now`.
pub(crate) fn fence_stmt(lease: &Lease, now: i64) -> Stmt<'_> {
    Stmt::new(
        "UPDATE lease SET heartbeat_at = ? WHERE name = ? AND holder = ? AND token = ? \
         AND expires_at > ?",
    )
    .bind(now)
    .bind(RUN_LEASE)
    .bind(lease.holder.as_str())
    .bind(lease.token)
    .bind(now)
}

/// A row if and only if the fence's UPDATE at `now` found `lease` current. Sent after it in a
/// script, whose summed row counts cannot tell (SQLite reports a stale count for `BEGIN`).
pub(crate) fn fenced_stmt(lease: &Lease, now: i64) -> Stmt<'_> {
    Stmt::new(
        "SELECT token FROM lease WHERE name = ? AND holder = ? AND token = ? AND heartbeat_at = ?",
    )
    .bind(RUN_LEASE)
    .bind(lease.holder.as_str())
    .bind(lease.token)
    .bind(now)
}

/// The error for a fence that found `lease` gone, naming who holds the lease now.
pub(crate) async fn lease_lost(conn: &mut AnyConnection, backend: Backend) -> StoreError {
    match lease_state(conn, backend).await {
        Ok(state) => StoreError::LeaseLost {
            holder: state.as_ref().and_then(|s| s.holder.clone()),
            token: state.map_or(0, |s| s.token),
        },
        Err(e) => e,
    }
}

async fn lease_state(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<Option<LeaseState>, StoreError> {
    let decode = || StoreError::query("read the run lease");
    let row = sqlx::query(&backend.sql(
        "SELECT holder, token, acquired_at, heartbeat_at, expires_at FROM lease WHERE name = ?",
    ))
    .bind(RUN_LEASE)
    .fetch_optional(conn)
    .await
    .map_err(decode())?;
    row.map(|row| {
        Ok(LeaseState {
            holder: row.try_get("holder")?,
            token: row.try_get("token")?,
            acquired_at: from_millis(row.try_get("acquired_at")?),
            heartbeat_at: from_millis(row.try_get("heartbeat_at")?),
            expires_at: from_millis(row.try_get("expires_at")?),
        })
    })
    .transpose()
    .map_err(decode())
}

/// Reads the pause flag.
const PAUSE_QUERY: &str = "SELECT paused, reason, until_at, set_by, set_at FROM pause WHERE id = ?";

/// The statement that reads the pause flag, for a script.
pub(crate) fn pause_stmt() -> Stmt<'static> {
    Stmt::new(PAUSE_QUERY).bind(PAUSE_ROW)
}

/// The pause flag from its row; no row reads as not paused.
pub(crate) fn pause_of(row: Option<&AnyRow>) -> Result<PauseState, StoreError> {
    row.map_or(Ok(PauseState::default()), |row| {
        pause_from_row(row, Utc::now()).map_err(StoreError::query("read the pause flag"))
    })
}

fn pause_from_row(row: &AnyRow, now: DateTime<Utc>) -> Result<PauseState, sqlx::Error> {
    let flag: i64 = row.try_get("paused")?;
    let until = row.try_get::<Option<i64>, _>("until_at")?.map(from_millis);
    Ok(PauseState {
        paused: flag != 0 && until.is_none_or(|u| u > now),
        reason: text(row, "reason")?,
        until,
        by: row.try_get("set_by")?,
        at: Some(from_millis(row.try_get("set_at")?)),
    })
}

/// A lease's lifetime, capped at a year so that adding it to now cannot overflow.
fn ttl_of(ttl: Duration) -> chrono::Duration {
    let year = chrono::Duration::days(365);
    chrono::Duration::from_std(ttl).map_or(year, |ttl| ttl.min(year))
}
