//! The managed groups' titles and descriptions as last read from Microsoft 365 (or written
//! to it): what lets a run see that the sources retitled a list without reading every group.

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreError, text};
use crate::config::Visibility;
use crate::plan::Title;

impl Store {
    /// The known title of every managed group, by list key (groups whose title is not known
    /// yet are left out).
    pub async fn titles(&self) -> Result<HashMap<String, Title>, StoreError> {
        let rows = sqlx::query(
            "SELECT list_key, display_name, description, visibility FROM managed_groups \
             WHERE display_name IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read the managed groups' titles"))?;
        let mut titles = HashMap::with_capacity(rows.len());
        for row in rows {
            let read = || -> Result<(String, Title), sqlx::Error> {
                let list: String = row.try_get("list_key")?;
                let title = Title {
                    display_name: text(&row, "display_name")?.unwrap_or_default(),
                    description: text(&row, "description")?,
                    // A value this version does not know reads as unknown: the next full
                    // read records what Graph says.
                    visibility: text(&row, "visibility")?
                        .and_then(|v| serde_json::from_value(v.into()).ok()),
                };
                Ok((list, title))
            };
            let (list, title) =
                read().map_err(StoreError::query("read a managed group's title"))?;
            titles.insert(list, title);
        }
        Ok(titles)
    }

    /// Records the titles of managed groups, by list key; lists without a managed group are
    /// ignored; a title without a visibility keeps the one recorded. One transaction.
    pub async fn set_titles(&self, titles: &[(String, Title)]) -> Result<(), StoreError> {
        if titles.is_empty() {
            return Ok(());
        }
        let action = || StoreError::query("record the managed groups' titles");
        let mut tx = self.pool.begin().await.map_err(action())?;
        let sql = self.backend.sql(
            "UPDATE managed_groups SET display_name = ?, description = ?, \
             visibility = COALESCE(?, visibility) WHERE list_key = ?",
        );
        for (list, title) in titles {
            sqlx::query(&sql)
                .bind(&title.display_name)
                .bind(title.description.as_deref())
                .bind(title.visibility.map(Visibility::as_str))
                .bind(list)
                .execute(&mut *tx)
                .await
                .map_err(action())?;
        }
        tx.commit().await.map_err(action())
    }
}
