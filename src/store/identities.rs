//! The identity cache: each member key's resolved directory object (or none), so that a run
//! resolves only keys it has not seen, and the directory's delta keeps it current.

use std::collections::HashSet;

use chrono::Utc;
use sqlx::any::Any;
use sqlx::{Row, Transaction};

use super::model::{from_millis, millis};
use super::sql::CHUNK_ROWS;
use super::{Backend, Identity, Store, StoreError, text, unbounded_group_concat};
use crate::config::MemberKey;

/// From how many keys an identity lookup reads the whole kind in one query rather than in
/// IN lists of [`CHUNK_ROWS`].
const WHOLE_KIND_FROM: usize = 4 * CHUNK_ROWS;

impl Store {
    /// Whether the directory mirror holds any identity at all.
    pub async fn has_identities(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT key_value FROM identities LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("look for identities"))?;
        Ok(row.is_some())
    }

    /// Records resolved and unresolved identities in bulk, replacing earlier lookups.
    pub async fn upsert_identities(&self, identities: &[Identity]) -> Result<(), StoreError> {
        let action = || StoreError::query(format!("record {} identities", identities.len()));
        let mut tx = self.pool.begin().await.map_err(action())?;
        insert_identities(&mut tx, self.backend, identities).await?;
        tx.commit().await.map_err(action())
    }

    /// Replaces every recorded identity with `identities` in one transaction: a full read of
    /// the directory, after which people no longer in it are unknown again.
    pub async fn replace_identities(&self, identities: &[Identity]) -> Result<(), StoreError> {
        let action =
            || StoreError::query(format!("replace the identities with {}", identities.len()));
        let mut tx = self.pool.begin().await.map_err(action())?;
        sqlx::query("DELETE FROM identities")
            .execute(&mut *tx)
            .await
            .map_err(action())?;
        insert_identities(&mut tx, self.backend, identities).await?;
        tx.commit().await.map_err(action())
    }

    /// Forgets the object ids of deleted users: their keys resolve to nobody until the
    /// directory shows them again.
    pub async fn forget_objects(&self, object_ids: &[String]) -> Result<(), StoreError> {
        let action = || StoreError::query(format!("forget {} deleted users", object_ids.len()));
        let mut tx = self.pool.begin().await.map_err(action())?;
        for chunk in object_ids.chunks(CHUNK_ROWS) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let query = self
                .backend
                .sql(&format!(
                    "UPDATE identities SET object_id = NULL, checked_at = ? WHERE object_id IN ({marks})"
                ))
                .into_owned();
            let mut update = sqlx::query(&query).bind(millis(Utc::now()));
            for id in chunk {
                update = update.bind(id.as_str());
            }
            update.execute(&mut *tx).await.map_err(action())?;
        }
        tx.commit().await.map_err(action())
    }

    /// The recorded lookups among `values` (normalised keys of one kind); keys never looked
    /// up are absent, keys the directory did not know have no object id.
    pub async fn lookup_identities(
        &self,
        kind: MemberKey,
        values: &[String],
    ) -> Result<Vec<Identity>, StoreError> {
        let action = || StoreError::query(format!("look up {} {kind} identities", values.len()));
        if values.len() > WHOLE_KIND_FROM {
            return self
                .identities_of_kind(kind, values)
                .await
                .map_err(action());
        }
        let mut found = Vec::new();
        for chunk in values.chunks(CHUNK_ROWS) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let query = self.backend.sql(&format!(
                "SELECT key_value, object_id, checked_at FROM identities WHERE key_kind = ? AND key_value IN ({marks})"
            )).into_owned();
            let mut select = sqlx::query(&query).bind(kind.as_str());
            for value in chunk {
                select = select.bind(value.as_str());
            }
            for row in select.fetch_all(&self.pool).await.map_err(action())? {
                found.push(Identity {
                    kind,
                    value: row.try_get("key_value").map_err(action())?,
                    object_id: row.try_get("object_id").map_err(action())?,
                    checked_at: from_millis(row.try_get("checked_at").map_err(action())?),
                });
            }
        }
        found.sort_by(|a, b| a.value.cmp(&b.value));
        Ok(found)
    }

    /// Every identity of `kind` that `values` names, read in one pass over the kind rather
    /// than in IN lists of a thousand: for a whole university's keys, one query costs far
    /// less than dozens of large statements prepared one by one. The kind comes back as one
    /// JSON array, not a row per key: the driver's cost per row, not the bytes, is what
    /// reading 45,000 keys spent its time on (0.19–0.31 s a kind on SQLite).
    async fn identities_of_kind(
        &self,
        kind: MemberKey,
        values: &[String],
    ) -> Result<Vec<Identity>, sqlx::Error> {
        let wanted: HashSet<&str> = values.iter().map(String::as_str).collect();
        let query = match self.backend {
            Backend::Sqlite => {
                "SELECT json_group_array(json_array(key_value, object_id, checked_at)) AS packed \
                 FROM identities WHERE key_kind = ?"
            }
            Backend::Postgres => {
                "SELECT CAST(json_agg(json_build_array(key_value, object_id, checked_at)) AS TEXT) \
                 AS packed FROM identities WHERE key_kind = $1"
            }
            Backend::Mysql => {
                "SELECT JSON_ARRAYAGG(JSON_ARRAY(key_value, object_id, checked_at)) AS packed \
                 FROM identities WHERE key_kind = ?"
            }
        };
        let mut conn = self.pool.acquire().await?;
        unbounded_group_concat(self.backend, &mut conn).await?;
        let row = sqlx::query(query)
            .bind(kind.as_str())
            .fetch_one(&mut *conn)
            .await?;
        let packed: Vec<(String, Option<String>, i64)> = match text(&row, "packed")? {
            Some(packed) => {
                serde_json::from_str(&packed).map_err(|e| sqlx::Error::ColumnDecode {
                    index: "packed".to_owned(),
                    source: Box::new(e),
                })?
            }
            None => Vec::new(),
        };
        let mut found: Vec<Identity> = packed
            .into_iter()
            .filter(|(value, _, _)| wanted.contains(value.as_str()))
            .map(|(value, object_id, checked_at)| Identity {
                kind,
                value,
                object_id,
                checked_at: from_millis(checked_at),
            })
            .collect();
        found.sort_by(|a, b| a.value.cmp(&b.value));
        Ok(found)
    }
}

/// Inserts identities, replacing earlier lookups of the same keys.
pub(super) async fn insert_identities(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    identities: &[Identity],
) -> Result<(), StoreError> {
    let action_text = || format!("record {} identities", identities.len());
    let columns = ["key_kind", "key_value", "object_id", "checked_at"];
    for chunk in identities.chunks(CHUNK_ROWS) {
        let query = format!(
            "{}{}",
            backend.insert("identities", &columns, chunk.len()),
            backend.on_conflict(&columns[..2], &["object_id", "checked_at"])
        );
        let query = backend.sql(&query);
        let mut insert = sqlx::query(&query);
        for identity in chunk {
            insert = insert
                .bind(identity.kind.as_str())
                .bind(identity.value.as_str())
                .bind(identity.object_id.as_deref())
                .bind(millis(identity.checked_at));
        }
        insert
            .execute(&mut **tx)
            .await
            .map_err(StoreError::writing(action_text(), "identities", None))?;
    }
    Ok(())
}
