//! `rollcall doctor`: checks of the state database that name what is wrong and what to do.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use chrono::Utc;
use sqlx::Row;

use super::model::from_millis;
use super::sql::{CHUNK_ROWS, marks};
use super::state::{MEMBER_MIRROR, MirrorTable, OWNER_MIRROR};
use super::{Backend, OpStatus, RunStatus, Store, StoreError, text};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something rollcall recovers from by itself, worth knowing.
    Warning,
    /// Something an operator must act on.
    Error,
}

/// One problem `doctor` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Which check found it (`schema`, `orphans`, `stuck-runs`, …).
    pub check: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{severity} [{}]: {}", self.check, self.message)
    }
}

impl Finding {
    fn error(check: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Error,
            check,
            message: message.into(),
        }
    }

    fn warning(check: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            check,
            message: message.into(),
        }
    }

    /// A check whose own query failed is itself a finding, so the other checks still run.
    fn unchecked(check: &'static str, error: &StoreError) -> Finding {
        Finding::error(check, format!("could not check: {error}"))
    }
}

/// A reference from one table to another that must resolve.
struct Reference {
    child: &'static str,
    column: &'static str,
    parent: &'static str,
    key: &'static str,
    remedy: &'static str,
}

const REFERENCES: [Reference; 4] = [
    Reference {
        child: "mirror",
        column: "list_key",
        parent: "managed_groups",
        key: "list_key",
        remedy: "run `rollcall rebuild --state-only` to rebuild groups and mirror from Microsoft 365",
    },
    Reference {
        child: "owner_mirror",
        column: "list_key",
        parent: "managed_groups",
        key: "list_key",
        remedy: "run `rollcall rebuild --state-only` to rebuild groups and owner mirror from Microsoft 365",
    },
    Reference {
        child: "journal",
        column: "run_id",
        parent: "runs",
        key: "id",
        remedy: "these operations belong to no run and are never resumed; `rollcall rebuild --state-only` deletes them (or restore the runs table)",
    },
    Reference {
        child: "source_snapshots",
        column: "run_id",
        parent: "runs",
        key: "id",
        remedy: "the snapshots' run is gone; `rollcall rebuild --state-only` detaches them",
    },
];

impl Store {
    /// Repairs what `doctor`'s orphan checks find, as `rebuild --state-only` does: mirror rows
    /// of forgotten groups and journal rows of missing runs are deleted (Microsoft 365 and the
    /// next plan say what is true), snapshots of missing runs are detached. Returns how many
    /// rows changed.
    pub async fn remove_orphans(&self) -> Result<u64, StoreError> {
        let mut changed = 0;
        for r in &REFERENCES {
            let orphaned = format!(
                "{column} IS NOT NULL AND {column} NOT IN (SELECT {key} FROM {parent})",
                column = r.column,
                key = r.key,
                parent = r.parent,
            );
            let repair = if r.child == "source_snapshots" {
                format!(
                    "UPDATE {} SET {} = NULL WHERE {orphaned}",
                    r.child, r.column
                )
            } else {
                format!("DELETE FROM {} WHERE {orphaned}", r.child)
            };
            changed += sqlx::query(&repair)
                .execute(&self.pool)
                .await
                .map_err(StoreError::query(format!(
                    "repair orphaned {} rows",
                    r.child
                )))?
                .rows_affected();
        }
        Ok(changed)
    }

    /// Deletes mirror and owner mirror rows of lists that are no managed group (foreign keys
    /// switched off, or a partial restore): a run's reading must not extend them. Returns how
    /// many went.
    ///
    /// Runs before every delta read, so it seeks one key per list rather than reading every
    /// row, and deletes only where it found an orphan: `DELETE … WHERE list_key NOT IN
    /// (SELECT …)` scanned the whole mirror (0.1 s on SQLite, and 0.47 s on MariaDB, which
    /// also locked it, for the large university's 300,000 rows); the seeks take about 10 ms.
    pub async fn forget_orphaned_mirror(&self) -> Result<u64, StoreError> {
        let keys = async |table: &str, query: &str| {
            // The first column; the mirrors' queries carry a second one for MariaDB's sake.
            sqlx::query_scalar::<_, String>(query)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query(format!("look for orphaned {table} rows")))
        };
        let managed: HashSet<String> =
            keys("managed_groups", "SELECT list_key FROM managed_groups")
                .await?
                .into_iter()
                .collect();
        let mut deleted = 0;
        for MirrorTable { table, column, .. } in [MEMBER_MIRROR, OWNER_MIRROR] {
            let query = match self.backend {
                // A skip scan: one index seek per list.
                Backend::Sqlite | Backend::Postgres => format!(
                    "WITH RECURSIVE listed (list_key) AS (SELECT MIN(list_key) FROM {table} \
                     UNION ALL SELECT (SELECT MIN(m.list_key) FROM {table} m \
                     WHERE m.list_key > listed.list_key) FROM listed \
                     WHERE listed.list_key IS NOT NULL) \
                     SELECT list_key FROM listed WHERE list_key IS NOT NULL"
                ),
                // MySQL 8 caps recursion at 1,000 rows; its loose index scan does the same,
                // and the MIN is what makes MariaDB choose it without fresh statistics.
                Backend::Mysql => {
                    format!("SELECT list_key, MIN({column}) FROM {table} GROUP BY list_key")
                }
            };
            let listed = keys(table, &query).await?;
            let orphans: Vec<String> = listed
                .into_iter()
                .filter(|list| !managed.contains(list))
                .collect();
            for chunk in orphans.chunks(CHUNK_ROWS) {
                let query = format!(
                    "DELETE FROM {table} WHERE list_key IN ({})",
                    marks(chunk.len())
                );
                let query = self.backend.sql(&query);
                let mut delete = sqlx::query(&query);
                for list in chunk {
                    delete = delete.bind(list.as_str());
                }
                deleted += delete
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::query(format!("repair orphaned {table} rows")))?
                    .rows_affected();
            }
        }
        Ok(deleted)
    }

    /// Checks the database without changing it (not even migrating): schema version,
    /// SQLite's own integrity and foreign-key checks, orphaned rows, stuck runs, a stale
    /// lease and pending operations of finished runs. Empty means healthy.
    pub async fn doctor(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        match self.check_schema().await {
            Ok(Some(finding)) => findings.push(finding),
            Ok(None) => {}
            Err(e) => findings.push(Finding::unchecked("schema", &e)),
        }
        if !self.table_exists("runs").await.unwrap_or(false) {
            // Nothing else to check in an empty database; the schema finding says what to do.
            return findings;
        }
        if self.backend == Backend::Sqlite {
            match self.check_sqlite().await {
                Ok(found) => findings.extend(found),
                Err(e) => findings.push(Finding::unchecked("sqlite", &e)),
            }
        }
        for reference in &REFERENCES {
            match self.check_orphans(reference).await {
                Ok(found) => findings.extend(found),
                Err(e) => findings.push(Finding::unchecked("orphans", &e)),
            }
        }
        match self.check_lost_rows().await {
            Ok(found) => findings.extend(found),
            Err(e) => findings.push(Finding::unchecked("lost-rows", &e)),
        }
        match self.check_runs_and_lease().await {
            Ok(found) => findings.extend(found),
            Err(e) => findings.push(Finding::unchecked("runs", &e)),
        }
        findings
    }

    async fn check_schema(&self) -> Result<Option<Finding>, StoreError> {
        let applied = self.applied_migrations().await?;
        let known: BTreeSet<i64> = self.backend.migrator().iter().map(|m| m.version).collect();
        if applied.is_empty() {
            let message = if self.table_exists("runs").await? {
                "rollcall's tables exist but their migration record (_sqlx_migrations) is missing, so `rollcall migrate` would fail; restore the database from a backup, or point [state] at a fresh database and run `rollcall rebuild --state-only`"
            } else {
                "the state database has no rollcall schema yet; run `rollcall migrate` for a new installation, or, if the database was lost, `rollcall rebuild --state-only` to restore it from Microsoft 365 and the sources"
            };
            return Ok(Some(Finding::error("schema", message)));
        }
        if self.table_exists("_sqlx_migrations").await? {
            let failed: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = FALSE")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(StoreError::query("read failed migrations"))?;
            if failed > 0 {
                return Ok(Some(Finding::error(
                    "schema",
                    format!(
                        "{failed} migration(s) failed part-way; restore the database from a backup, or rebuild it with `rollcall rebuild --state-only` into a fresh database"
                    ),
                )));
            }
        }
        let ahead: Vec<String> = applied.difference(&known).map(i64::to_string).collect();
        if !ahead.is_empty() {
            return Ok(Some(Finding::error(
                "schema",
                format!(
                    "the database has migration(s) {} that this rollcall {} does not know: it is older than the database; upgrade rollcall",
                    ahead.join(", "),
                    env!("CARGO_PKG_VERSION")
                ),
            )));
        }
        let behind: Vec<String> = known.difference(&applied).map(i64::to_string).collect();
        if !behind.is_empty() {
            return Ok(Some(Finding::error(
                "schema",
                format!(
                    "schema version {} is behind this rollcall's {}: migration(s) {} not applied; run `rollcall migrate`",
                    applied.last().copied().unwrap_or_default(),
                    known.last().copied().unwrap_or_default(),
                    behind.join(", ")
                ),
            )));
        }
        Ok(None)
    }

    async fn check_sqlite(&self) -> Result<Vec<Finding>, StoreError> {
        let mut findings = Vec::new();
        let rows = sqlx::query("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("run PRAGMA integrity_check"))?;
        let problems: Vec<String> = rows
            .iter()
            .filter_map(|r| text(r, "integrity_check").ok().flatten())
            .filter(|line| line != "ok")
            .collect();
        if !problems.is_empty() {
            findings.push(Finding::error(
                "sqlite-integrity",
                format!(
                    "the SQLite file is damaged ({}); stop rollcall, move the file aside and run `rollcall rebuild --state-only`",
                    problems.join("; ")
                ),
            ));
        }
        let rows = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("run PRAGMA foreign_key_check"))?;
        let mut broken: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                let table = text(r, "table").ok().flatten()?;
                let parent = text(r, "parent").ok().flatten()?;
                Some(format!("{table} → {parent}"))
            })
            .collect();
        broken.dedup();
        if !broken.is_empty() {
            findings.push(Finding::error(
                "foreign-keys",
                format!(
                    "{} row(s) break foreign keys ({}); see the orphan findings for what to do",
                    rows.len(),
                    broken.join(", ")
                ),
            ));
        }
        Ok(findings)
    }

    async fn check_orphans(&self, r: &Reference) -> Result<Vec<Finding>, StoreError> {
        let query = format!(
            "SELECT c.{column} AS missing, COUNT(*) AS n FROM {child} c LEFT JOIN {parent} p ON p.{key} = c.{column} \
             WHERE c.{column} IS NOT NULL AND p.{key} IS NULL GROUP BY c.{column} ORDER BY c.{column}",
            column = r.column,
            child = r.child,
            parent = r.parent,
            key = r.key,
        );
        let action = || StoreError::query(format!("look for orphaned {} rows", r.child));
        let rows = sqlx::query(&query)
            .fetch_all(&self.pool)
            .await
            .map_err(action())?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut total = 0;
        let mut missing = Vec::new();
        for row in &rows {
            let n: i64 = row.try_get("n").map_err(action())?;
            total += n;
            // The key is text for mirror and a number for the others.
            let key = row
                .try_get::<String, _>("missing")
                .or_else(|_| row.try_get::<i64, _>("missing").map(|id| id.to_string()))
                .map_err(action())?;
            missing.push(key);
        }
        let shown = missing.len().min(5);
        let more = if missing.len() > shown {
            format!(" and {} more", missing.len() - shown)
        } else {
            String::new()
        };
        Ok(vec![Finding::error(
            "orphans",
            format!(
                "{total} {child} row(s) point at {parent} that do not exist ({column} {}{more}); {}",
                missing[..shown].join(", "),
                r.remedy,
                child = r.child,
                parent = r.parent,
                column = r.column,
            ),
        )])
    }

    /// The directory mirror emptied behind a delta link that says it is filled: a crash that
    /// lost recent rows leaves no orphan to find there. (An empty membership mirror proves
    /// nothing: a group created by a run killed before its adds has no member yet, and runs
    /// read members from Microsoft 365 afresh anyway.)
    async fn check_lost_rows(&self) -> Result<Vec<Finding>, StoreError> {
        let count = |table: &'static str| async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::query(format!("count the rows of {table}")))
        };
        let mut findings = Vec::new();
        if count("delta_links").await? > 0 && count("identities").await? == 0 {
            findings.push(Finding::error(
                "lost-rows",
                "the directory mirror (identities) is empty although a delta link says it is up to date, so runs would look up every member one by one: its rows were lost; run `rollcall rebuild --state-only` to read the directory again",
            ));
        }
        Ok(findings)
    }

    async fn check_runs_and_lease(&self) -> Result<Vec<Finding>, StoreError> {
        let mut findings = Vec::new();
        let now = Utc::now();
        let lease = self.current_lease().await?;
        if let Some(lease) = &lease
            && let Some(holder) = &lease.holder
            && lease.expires_at <= now
        {
            findings.push(Finding::warning(
                "stale-lease",
                format!(
                    "the run lease is still held by `{holder}` (token {}) but expired at {}; its holder stopped without releasing it; the next run takes it over",
                    lease.token,
                    lease.expires_at.to_rfc3339()
                ),
            ));
        }
        let action = || StoreError::query("look for stuck runs");
        let rows = sqlx::query(&self.backend.sql(
            "SELECT id, status, holder, lease_token, started_at FROM runs WHERE status IN (?, ?) ORDER BY id",
        ))
        .bind(RunStatus::Planning.as_str())
        .bind(RunStatus::Applying.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(action())?;
        for row in &rows {
            let id: i64 = row.try_get("id").map_err(action())?;
            let status: String = row.try_get("status").map_err(action())?;
            let holder: Option<String> = row.try_get("holder").map_err(action())?;
            let token: Option<i64> = row.try_get("lease_token").map_err(action())?;
            let started = from_millis(row.try_get("started_at").map_err(action())?);
            let alive = lease
                .as_ref()
                .is_some_and(|l| l.is_held(now) && l.holder == holder && Some(l.token) == token);
            if !alive {
                findings.push(Finding::error(
                    "stuck-runs",
                    format!(
                        "run {id} is still `{status}` (started {}) but no longer holds the lease: it died without finishing; the next `rollcall run` marks it interrupted and resumes its pending operations",
                        started.to_rfc3339()
                    ),
                ));
            }
        }
        let action = || StoreError::query("look for pending operations of finished runs");
        let rows = sqlx::query(&self.backend.sql(
            "SELECT r.id, r.status, COUNT(*) AS n FROM runs r JOIN journal j ON j.run_id = r.id \
             WHERE j.status = ? AND r.status IN (?, ?, ?, ?) GROUP BY r.id, r.status ORDER BY r.id",
        ))
        .bind(OpStatus::Pending.as_str())
        .bind(RunStatus::Succeeded.as_str())
        .bind(RunStatus::Failed.as_str())
        .bind(RunStatus::Stopped.as_str())
        .bind(RunStatus::Skipped.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(action())?;
        for row in &rows {
            let id: i64 = row.try_get("id").map_err(action())?;
            let status: String = row.try_get("status").map_err(action())?;
            let n: i64 = row.try_get("n").map_err(action())?;
            findings.push(Finding::error(
                "pending-ops",
                format!(
                    "run {id} ended `{status}` with {n} pending operation(s) that no resume will pick up; the next `rollcall run` re-plans from source and Microsoft 365, so nothing is lost, but the journal is inconsistent: report it as a bug"
                ),
            ));
        }
        Ok(findings)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::config::{DatabaseUrl, MemberKey};
    use crate::store::{GroupOrigin, Identity, ManagedGroup};

    #[tokio::test]
    async fn emptied_identities_behind_a_delta_link_are_lost_rows_and_an_empty_group_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::new(format!(
            "sqlite://{}",
            dir.path().join("state.db").display()
        ));
        let store = Store::open(&url).await.unwrap();
        store
            .set_delta_link("users", "https://graph.example/delta")
            .await
            .unwrap();
        store
            .upsert_group(&ManagedGroup {
                list: "mod-a".into(),
                group_id: "g-a".into(),
                family: "modules".into(),
                origin: GroupOrigin::Created,
                mail_nickname: "mod-a".into(),
                tagged: true,
            })
            .await
            .unwrap();
        let findings = store.doctor().await;
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].check, "lost-rows");
        assert!(
            findings[0].message.contains("identities")
                && findings[0].message.contains("rebuild --state-only"),
            "{}",
            findings[0]
        );

        store
            .upsert_identities(&[Identity {
                kind: MemberKey::ObjectId,
                value: "u1".into(),
                object_id: Some("u1".into()),
                checked_at: Utc::now(),
            }])
            .await
            .unwrap();
        assert_eq!(
            store.doctor().await,
            [],
            "a group without members is no loss"
        );
        store.close().await;
    }
}
