//! The state the last notification told about, per channel (`[notify]`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::model::{from_millis, millis};
use super::{RunId, Store, StoreError, text};

/// What the last delivered notification of a channel said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    /// The state it told about (`ok`, `failed`, `stopped`, `tripped`, `drift`).
    pub state: String,
    /// The run it was about.
    pub run: Option<RunId>,
    /// When it was delivered.
    pub at: DateTime<Utc>,
}

impl Store {
    /// The state the last delivered notification of `channel` told about, if any.
    pub async fn notified(&self, channel: &str) -> Result<Option<Notified>, StoreError> {
        let action = || StoreError::query(format!("read the last {channel} notification"));
        let row = sqlx::query(
            &self
                .backend
                .sql("SELECT state, run_id, notified_at FROM notify_state WHERE channel = ?"),
        )
        .bind(channel)
        .fetch_optional(&self.pool)
        .await
        .map_err(action())?;
        row.map(|r| {
            Ok(Notified {
                state: text(&r, "state")?.unwrap_or_default(),
                run: r.try_get::<Option<i64>, _>("run_id")?.map(RunId),
                at: from_millis(r.try_get("notified_at")?),
            })
        })
        .transpose()
        .map_err(action())
    }

    /// Records that `channel` told about `state` (of `run`).
    pub async fn set_notified(
        &self,
        channel: &str,
        state: &str,
        run: RunId,
    ) -> Result<(), StoreError> {
        let columns = ["channel", "state", "run_id", "notified_at"];
        let query = format!(
            "{}{}",
            self.backend.insert("notify_state", &columns, 1),
            self.backend.on_conflict(&["channel"], &columns[1..])
        );
        sqlx::query(&self.backend.sql(&query))
            .bind(channel)
            .bind(state)
            .bind(run.0)
            .bind(millis(Utc::now()))
            .execute(&self.pool)
            .await
            .map_err(StoreError::query(format!(
                "record the {channel} notification"
            )))?;
        Ok(())
    }
}
