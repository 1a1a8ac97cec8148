//! The managed groups' titles and descriptions as last read from Microsoft 365 (or written
//! to it): what lets a run see that the sources retitled a list without reading every group.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::script::Stmt;
use super::sql::{MAX_BINDS, case, marks};
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

    /// Records the titles of managed groups, by list key (a list given twice keeps its last
    /// title); lists without a managed group are ignored, and a title without a visibility
    /// keeps the one recorded. One transaction, one UPDATE per few thousand titles.
    pub async fn set_titles(&self, titles: &[(String, Title)]) -> Result<(), StoreError> {
        if titles.is_empty() {
            return Ok(());
        }
        let action = || StoreError::query("record the managed groups' titles");
        let mut tx = self.pool.begin().await.map_err(action())?;
        for update in titles_stmts(titles) {
            update
                .execute(self.backend, &mut tx)
                .await
                .map_err(action())?;
        }
        tx.commit().await.map_err(action())
    }
}

/// The UPDATEs that record `titles` as [`Store::set_titles`] does.
pub(crate) fn titles_stmts(titles: &[(String, Title)]) -> Vec<Stmt<'_>> {
    let mut seen = HashSet::new();
    let mut last: Vec<&(String, Title)> = titles
        .iter()
        .rev()
        .filter(|(list, _)| seen.insert(list.as_str()))
        .collect();
    last.reverse();
    // Each title binds its key four times and three values.
    last.chunks(MAX_BINDS / 7)
        .map(|chunk| {
            let mut update = Stmt::new(format!(
                "UPDATE managed_groups SET display_name = {}, description = {}, \
                 visibility = COALESCE({}, visibility) WHERE list_key IN ({})",
                case("list_key", chunk.len(), "display_name"),
                case("list_key", chunk.len(), "description"),
                case("list_key", chunk.len(), "NULL"),
                marks(chunk.len())
            ));
            for (list, title) in chunk {
                update = update.bind(list.as_str()).bind(title.display_name.as_str());
            }
            for (list, title) in chunk {
                update = update
                    .bind(list.as_str())
                    .bind(title.description.as_deref());
            }
            for (list, title) in chunk {
                update = update
                    .bind(list.as_str())
                    .bind(title.visibility.map(Visibility::as_str));
            }
            for (list, _) in chunk {
                update = update.bind(list.as_str());
            }
            update
        })
        .collect()
}
