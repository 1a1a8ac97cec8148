//! What rollcall knows about Microsoft 365: managed groups, the membership mirror, resolved
//! identities and delta links. All of it can be rebuilt from Microsoft 365.

use std::collections::HashMap;

use chrono::Utc;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::groups::upsert_group;
use super::model::millis;
use super::script::Stmt;
use super::sql::{CHUNK_ROWS, MAX_BINDS, one_list};
use super::{Backend, GroupOrigin, ManagedGroup, Store, StoreError, text, unbounded_group_concat};

const GROUP_COLUMNS: &str = "list_key, group_id, family, origin, mail_nickname, tagged";

impl Store {
    /// Records a managed group, or updates the one with the same list key.
    pub async fn upsert_group(&self, group: &ManagedGroup) -> Result<(), StoreError> {
        let action = || StoreError::query(format!("record managed group `{}`", group.list));
        let mut tx = self.pool.begin().await.map_err(action())?;
        upsert_group(&mut tx, self.backend, group, millis(Utc::now())).await?;
        tx.commit().await.map_err(action())
    }

    /// The managed group of a list.
    pub async fn group(&self, list: &str) -> Result<Option<ManagedGroup>, StoreError> {
        let row = sqlx::query(&self.backend.sql(&format!(
            "SELECT {GROUP_COLUMNS} FROM managed_groups WHERE list_key = ?"
        )))
        .bind(list)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(format!("read managed group `{list}`")))?;
        row.map(|r| group_from_row(&r)).transpose()
    }

    /// Every managed group, by list key.
    pub async fn groups(&self) -> Result<Vec<ManagedGroup>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM managed_groups ORDER BY list_key"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("read the managed groups"))?;
        rows.iter().map(group_from_row).collect()
    }

    /// Forgets a managed group and its mirror.
    pub async fn delete_group(&self, list: &str) -> Result<(), StoreError> {
        sqlx::query(
            &self
                .backend
                .sql("DELETE FROM managed_groups WHERE list_key = ?"),
        )
        .bind(list)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(format!("forget managed group `{list}`")))?;
        Ok(())
    }

    /// Replaces a list's mirrored members with `members` (object ids), e.g. after a full read.
    pub async fn replace_members(&self, list: &str, members: &[String]) -> Result<(), StoreError> {
        self.replace_mirrored(&MEMBER_MIRROR, list, members).await
    }

    /// Replaces a list's rows of a mirror table with `ids`.
    pub(super) async fn replace_mirrored(
        &self,
        mirror: &MirrorTable,
        list: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let action = || StoreError::query(format!("replace the {} of `{list}`", mirror.name));
        let mut tx = self.pool.begin().await.map_err(action())?;
        delete_list(&mut tx, self.backend, mirror.table, list)
            .await
            .map_err(action())?;
        let rows: Vec<(String, String)> =
            ids.iter().map(|m| (list.to_owned(), m.clone())).collect();
        mirror_insert(&mut tx, self.backend, mirror, &rows).await?;
        tx.commit().await.map_err(action())
    }

    /// Applies adds and removes (object ids) to a list's mirror, e.g. from a delta read.
    pub async fn apply_members(
        &self,
        list: &str,
        adds: &[String],
        removes: &[String],
    ) -> Result<(), StoreError> {
        let action = || StoreError::query(format!("update the mirror of `{list}`"));
        let pair = |m: &String| (list.to_owned(), m.clone());
        let mut tx = self.pool.begin().await.map_err(action())?;
        mirror_insert(
            &mut tx,
            self.backend,
            &MEMBER_MIRROR,
            &adds.iter().map(pair).collect::<Vec<_>>(),
        )
        .await?;
        mirror_delete(
            &mut tx,
            self.backend,
            &MEMBER_MIRROR,
            &removes.iter().map(pair).collect::<Vec<_>>(),
        )
        .await?;
        tx.commit().await.map_err(action())
    }

    /// A list's mirrored members (object ids), sorted.
    pub async fn members(&self, list: &str) -> Result<Vec<String>, StoreError> {
        self.read_mirrored(&MEMBER_MIRROR, list).await
    }

    /// One list's ids in a mirror table, sorted.
    pub(super) async fn read_mirrored(
        &self,
        mirror: &MirrorTable,
        list: &str,
    ) -> Result<Vec<String>, StoreError> {
        let MirrorTable { table, column, .. } = mirror;
        let query = format!("SELECT {column} FROM {table} WHERE list_key = ? ORDER BY {column}");
        sqlx::query_scalar(&self.backend.sql(&query))
            .bind(list)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(format!(
                "read the {} of `{list}`",
                mirror.name
            )))
    }

    /// The whole mirror: each list's members (object ids), sorted.
    pub async fn mirror(&self) -> Result<HashMap<String, Vec<String>>, StoreError> {
        self.read_mirror(&MEMBER_MIRROR).await
    }

    /// A whole mirror table: each list's ids, sorted.
    pub(super) async fn read_mirror(
        &self,
        mirror: &MirrorTable,
    ) -> Result<HashMap<String, Vec<String>>, StoreError> {
        let action = || StoreError::query(format!("read the {}", mirror.name));
        let MirrorTable { table, column, .. } = mirror;
        // One row per list rather than per id: the per-row cost of the driver, not the
        // bytes, is what a 300,000-member mirror spends its time on. Object ids hold no comma.
        let query = match self.backend {
            Backend::Sqlite => format!(
                "SELECT list_key, group_concat({column}, ',') AS ids FROM {table} GROUP BY list_key"
            ),
            Backend::Postgres => format!(
                "SELECT list_key, string_agg({column}, ',') AS ids FROM {table} GROUP BY list_key"
            ),
            Backend::Mysql => format!(
                "SELECT list_key, GROUP_CONCAT({column} SEPARATOR ',') AS ids FROM {table} \
                 GROUP BY list_key"
            ),
        };
        let mut conn = self.pool.acquire().await.map_err(action())?;
        unbounded_group_concat(self.backend, &mut conn)
            .await
            .map_err(action())?;
        let rows = sqlx::query(&query)
            .fetch_all(&mut *conn)
            .await
            .map_err(action())?;
        let mut mirror: HashMap<String, Vec<String>> = HashMap::with_capacity(rows.len());
        for row in rows {
            let list: String = row.try_get("list_key").map_err(action())?;
            // MySQL sends a long GROUP_CONCAT as a BLOB.
            let ids = text(&row, "ids").map_err(action())?.unwrap_or_default();
            let mut ids: Vec<String> = ids.split(',').map(str::to_owned).collect();
            ids.sort_unstable();
            mirror.insert(list, ids);
        }
        Ok(mirror)
    }

    /// The managed groups whose mirror holds no member, by list key: either empty groups or
    /// groups whose mirror rows were lost, which only a full read of each tells apart.
    pub async fn lists_without_members(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT g.list_key FROM managed_groups g WHERE NOT EXISTS \
             (SELECT 1 FROM mirror m WHERE m.list_key = g.list_key) ORDER BY g.list_key",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(
            "look for managed groups without a mirror",
        ))
    }

    /// How many groups the store records as managed.
    pub async fn group_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM managed_groups")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query("count the managed groups"))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Mirrored member counts per list, by list key; lists without members are left out.
    pub async fn member_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT list_key, COUNT(*) AS n FROM mirror GROUP BY list_key ORDER BY list_key",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("count the mirror"))?;
        rows.iter()
            .map(|r| Ok((r.try_get("list_key")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query("count the mirror"))
    }

    /// The stored delta link of a scope (`users`, `groups`, …).
    pub async fn delta_link(&self, scope: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            &self
                .backend
                .sql("SELECT link FROM delta_links WHERE scope = ?"),
        )
        .bind(scope)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(format!("read the {scope} delta link")))?;
        row.map(|r| text(&r, "link").map(Option::unwrap_or_default))
            .transpose()
            .map_err(StoreError::query(format!("read the {scope} delta link")))
    }

    /// Stores the delta link of a scope for the next run.
    pub async fn set_delta_link(&self, scope: &str, link: &str) -> Result<(), StoreError> {
        let action = || StoreError::query(format!("store the {scope} delta link"));
        let mut tx = self.pool.begin().await.map_err(action())?;
        store_link(&mut tx, self.backend, scope, link).await?;
        tx.commit().await.map_err(action())
    }

    /// Applies one delta round to the mirror and the owner mirror and stores the link for the
    /// next round, in one transaction: a round is either applied with its link saved or not
    /// at all, so a run that dies half-way replays the round rather than skipping it. Replays
    /// change nothing: adding a mirrored member or removing an absent one is a no-op.
    pub async fn apply_delta_round(
        &self,
        changes: &[MirrorChange],
        forget: &[String],
        scope: &str,
        link: &str,
    ) -> Result<(), StoreError> {
        let action = || StoreError::query(format!("apply a {scope} delta round to the mirror"));
        let mut tx = self.pool.begin().await.map_err(action())?;
        for list in forget {
            for table in [MEMBER_MIRROR.table, OWNER_MIRROR.table, "managed_groups"] {
                delete_list(&mut tx, self.backend, table, list)
                    .await
                    .map_err(action())?;
            }
        }
        let pairs = |pick: fn(&MirrorChange) -> &[String]| -> Vec<(String, String)> {
            changes
                .iter()
                .flat_map(|c| pick(c).iter().map(|m| (c.list.clone(), m.clone())))
                .collect()
        };
        let backend = self.backend;
        mirror_insert(&mut tx, backend, &MEMBER_MIRROR, &pairs(|c| &c.adds)).await?;
        mirror_delete(&mut tx, backend, &MEMBER_MIRROR, &pairs(|c| &c.removes)).await?;
        mirror_insert(&mut tx, backend, &OWNER_MIRROR, &pairs(|c| &c.owner_adds)).await?;
        mirror_delete(
            &mut tx,
            backend,
            &OWNER_MIRROR,
            &pairs(|c| &c.owner_removes),
        )
        .await?;
        store_link(&mut tx, self.backend, scope, link).await?;
        tx.commit().await.map_err(action())
    }

    /// Forgets every delta link, so the next read is a full one (`rebuild`).
    pub async fn clear_delta_links(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM delta_links")
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("forget the delta links"))?;
        Ok(())
    }
}

/// One list's part of a delta round, as the mirror takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorChange {
    /// The list key (a managed group's).
    pub list: String,
    /// Members (object ids) the group has now.
    pub adds: Vec<String>,
    /// Members (object ids) it no longer has.
    pub removes: Vec<String>,
    /// Owners (object ids: users or service principals) the group has now.
    pub owner_adds: Vec<String>,
    /// Owners (object ids) it no longer has.
    pub owner_removes: Vec<String>,
}

/// A mirror table: which list holds which object ids.
#[derive(Debug)]
pub(crate) struct MirrorTable {
    /// The table.
    pub table: &'static str,
    /// The id column beside `list_key`.
    pub column: &'static str,
    /// What it holds, for messages ("mirror", "owner mirror").
    pub name: &'static str,
    /// What one id is, plural, for messages.
    pub ids: &'static str,
}

/// The membership mirror.
pub(crate) const MEMBER_MIRROR: MirrorTable = MirrorTable {
    table: "mirror",
    column: "member_id",
    name: "mirror",
    ids: "members",
};

/// The owner mirror.
pub(crate) const OWNER_MIRROR: MirrorTable = MirrorTable {
    table: "owner_mirror",
    column: "owner_id",
    name: "owner mirror",
    ids: "owners",
};

/// Inserts or replaces a scope's delta link.
/// Deletes every row of `list` from `table` (a mirror, or the managed groups).
async fn delete_list(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    table: &str,
    list: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&backend.sql(&format!("DELETE FROM {table} WHERE list_key = ?")))
        .bind(list)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn store_link(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    scope: &str,
    link: &str,
) -> Result<(), StoreError> {
    let columns = ["scope", "link", "updated_at"];
    let query = format!(
        "{}{}",
        backend.insert("delta_links", &columns, 1),
        backend.on_conflict(&["scope"], &columns[1..])
    );
    sqlx::query(&backend.sql(&query))
        .bind(scope)
        .bind(link)
        .bind(millis(Utc::now()))
        .execute(&mut **tx)
        .await
        .map_err(StoreError::writing(
            format!("store the {scope} delta link"),
            "delta_links",
            None,
        ))?;
    Ok(())
}

/// Adds `(list, id)` pairs to a mirror table; pairs already there stay as they are. Returns
/// the statements sent.
pub(crate) async fn mirror_insert<S: AsRef<str>>(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    mirror: &MirrorTable,
    rows: &[(S, S)],
) -> Result<u64, StoreError> {
    let mut sent = 0;
    for chunk in rows.chunks(MIRROR_INSERT_ROWS) {
        sent += 1;
        mirror_insert_stmt(backend, mirror, chunk)
            .execute(backend, tx)
            .await
            .map_err(StoreError::writing(
                format!(
                    "add {} {} to the {} (is every list a managed group?)",
                    chunk.len(),
                    mirror.ids,
                    mirror.name
                ),
                mirror.table,
                one_list(chunk.iter().map(|(list, _)| list.as_ref())),
            ))?;
    }
    Ok(sent)
}

/// Rows per mirror INSERT: two values each, under the bind limits.
pub(crate) const MIRROR_INSERT_ROWS: usize = MAX_BINDS / 2;

/// Rows per mirror DELETE: smaller than the inserts', since a long row-value IN list can make
/// MySQL's range optimizer give up and scan the whole mirror.
pub(crate) const MIRROR_DELETE_ROWS: usize = CHUNK_ROWS;

/// One multi-row INSERT of `(list, id)` pairs into a mirror, keeping pairs already there.
pub(crate) fn mirror_insert_stmt<'a, S: AsRef<str>>(
    backend: Backend,
    mirror: &MirrorTable,
    rows: &'a [(S, S)],
) -> Stmt<'a> {
    let columns = ["list_key", mirror.column];
    let mut insert = Stmt::new(format!(
        "{}{}",
        backend.insert(mirror.table, &columns, rows.len()),
        backend.on_conflict(&columns, &[])
    ));
    for (list, member) in rows {
        insert = insert.bind(list.as_ref()).bind(member.as_ref());
    }
    insert
}

/// One DELETE of `(list, id)` pairs from a mirror.
pub(crate) fn mirror_delete_stmt<'a, S: AsRef<str>>(
    mirror: &MirrorTable,
    rows: &'a [(S, S)],
) -> Stmt<'a> {
    let marks = vec!["(?, ?)"; rows.len()].join(", ");
    let mut delete = Stmt::new(format!(
        "DELETE FROM {} WHERE (list_key, {}) IN ({marks})",
        mirror.table, mirror.column
    ));
    for (list, member) in rows {
        delete = delete.bind(list.as_ref()).bind(member.as_ref());
    }
    delete
}

/// Removes `(list, id)` pairs from a mirror table. Returns the statements sent.
pub(crate) async fn mirror_delete(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    mirror: &MirrorTable,
    rows: &[(String, String)],
) -> Result<u64, StoreError> {
    let mut sent = 0;
    for chunk in rows.chunks(MIRROR_DELETE_ROWS) {
        sent += 1;
        mirror_delete_stmt(mirror, chunk)
            .execute(backend, tx)
            .await
            .map_err(StoreError::writing(
                format!(
                    "remove {} {} from the {}",
                    chunk.len(),
                    mirror.ids,
                    mirror.name
                ),
                mirror.table,
                one_list(chunk.iter().map(|(list, _)| list.as_str())),
            ))?;
    }
    Ok(sent)
}

fn group_from_row(row: &AnyRow) -> Result<ManagedGroup, StoreError> {
    let decode = || StoreError::query("read a managed group");
    let origin: String = row.try_get("origin").map_err(decode())?;
    Ok(ManagedGroup {
        list: row.try_get("list_key").map_err(decode())?,
        group_id: row.try_get("group_id").map_err(decode())?,
        family: row.try_get("family").map_err(decode())?,
        origin: GroupOrigin::parse(&origin)?,
        mail_nickname: row.try_get("mail_nickname").map_err(decode())?,
        tagged: row.try_get::<i64, _>("tagged").map_err(decode())? != 0,
    })
}
