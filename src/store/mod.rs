//! The state store (DESIGN.md "State database"): runs, snapshot summaries, managed groups,
//! the membership mirror, identities, the journal, the lease and the pause flag, on SQLite,
//! PostgreSQL or MySQL/MariaDB.
//!
//! One `Store` over sqlx's `Any` driver rather than one implementation per backend: the
//! queries are the same on all three once times are `i64` milliseconds and flags are
//! `SMALLINT`, so one code path gives the same behaviour everywhere. The few places where the
//! dialects differ (placeholders, upserts, the id of a new row) live in [`sql`].
//!
//! Every writing transaction starts with its write (usually the lease fence), so that on
//! SQLite it takes the write lock up front and waits out the busy timeout, rather than
//! failing at once when it would have to upgrade a read lock.

mod absences;
mod doctor;
mod error;
mod groups;
mod identities;
mod journal;
mod lease;
mod model;
mod notify;
mod owners;
mod runs;
mod script;
mod sql;
mod state;
mod titles;
mod trail;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

use crate::config::DatabaseUrl;

pub use doctor::{Finding, Severity};
pub use error::{DataRule, RefusedWrite, StoreError};
pub use lease::RUN_LEASE;
pub use model::{
    Batch, GroupOrigin, Held, Identity, JournalCounts, JournalOp, Lease, LeaseState, ManagedGroup,
    NewOp, NewSnapshot, OpKind, OpStatus, Outcome, PauseState, Run, RunId, RunKind, RunStatus,
    Snapshot,
};
pub use notify::Notified;
pub use state::MirrorChange;
pub use trail::{ListChange, TracedOp};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("migrations/mysql");

/// How long an SQLite writer waits for another before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a query waits for a connection, including reconnecting to a server that refuses.
/// A run has at most a few queries in flight, so waiting longer only ever means the server is
/// gone; and a run that lost its database makes three more attempts (the journal counts, the
/// run's end, the lease) before it exits 4, so this bounds that exit to about 20 seconds.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The database kind behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl Backend {
    /// The backend a URL names, if the store speaks it.
    pub fn of(url: &DatabaseUrl) -> Option<Backend> {
        match url.scheme().as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            "mysql" | "mariadb" => Some(Backend::Mysql),
            _ => None,
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Mysql => &MYSQL_MIGRATIONS,
        }
    }
}

/// The schema versions before and after `migrate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The newest applied migration before, `None` for an empty database.
    pub before: Option<i64>,
    /// The newest applied migration after.
    pub after: Option<i64>,
    /// The migrations applied now, as `(version, description)`.
    pub applied: Vec<(i64, String)>,
}

/// How often an SQLite migration is tried when another process may be running it too.
const SQLITE_MIGRATE_ATTEMPTS: u32 = 5;

/// How long opening a MySQL/MariaDB database waits for another process's migration.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(60);

/// The state store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// Round trips to the database on a run's apply path (pause checks, batch commits,
    /// titles), shared by the store's clones.
    trips: Arc<AtomicU64>,
}

impl Store {
    /// Connects (creating an SQLite file with mode 0600 on first use) and applies the
    /// embedded migrations.
    pub async fn open(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating, for `doctor`, which must see the schema as it is.
    pub async fn connect(url: &DatabaseUrl) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let redacted = url.redacted();
        let backend = Backend::of(url).ok_or_else(|| StoreError::UnsupportedUrl {
            url: redacted.clone(),
        })?;
        let open_error = |source| StoreError::Open {
            url: redacted.clone(),
            source,
        };
        let mut connect_url = url.expose().to_owned();
        let mut options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        match backend {
            Backend::Sqlite => {
                let path = sqlite_path(url.expose()).map_err(open_error)?;
                let in_memory = path.is_none();
                // Only a missing file is created: opening and closing a descriptor on a database
                // this process already has open drops its POSIX locks (serve opens one store
                // per run beside the one its endpoints read).
                if let Some(path) = path.as_ref().filter(|p| !p.exists()) {
                    create_private_file(path)?;
                }
                // An in-memory database lives only while a connection to it is open: keep
                // exactly one, forever.
                if in_memory {
                    options = options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                } else {
                    options = options.max_connections(4);
                }
                options = options.after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(sqlite_pragmas().as_str()).await?;
                        Ok(())
                    })
                });
            }
            Backend::Postgres => {
                options = options.max_connections(4);
            }
            Backend::Mysql => {
                // sqlx's Any driver knows only `mysql://`.
                if let Some(rest) = connect_url.strip_prefix("mariadb:") {
                    connect_url = format!("mysql:{rest}");
                }
                options = options.max_connections(4);
            }
        }
        if backend == Backend::Postgres && connect_url.starts_with("postgresql:") {
            connect_url = connect_url.replacen("postgresql:", "postgres:", 1);
        }
        let pool = options.connect(&connect_url).await.map_err(open_error)?;
        Ok(Store {
            pool,
            backend,
            url: redacted,
            trips: Arc::default(),
        })
    }

    /// How many round trips to the database the apply path has made so far (a pause check at
    /// the start of each pass, and two for each batch commit: BEGIN with the lease fence, then
    /// one script of its writes, COMMIT and the pause flag for the next batch's check):
    /// divided by the batches sent, the cost of a batch in a production server's network
    /// latency. Not counted: the pool's liveness ping of the idle connection each commit
    /// takes (sqlx's `test_before_acquire`, which lets a run outlive a restarted server).
    pub fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Counts `n` round trips.
    fn trip(&self, n: u64) {
        self.trips.fetch_add(n, Ordering::Relaxed);
    }

    /// Applies the embedded migrations that are not applied yet; on MySQL/MariaDB under a
    /// named lock, so that two processes opening a fresh database at once apply them once.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        if self.backend == Backend::Sqlite {
            return self.migrate_sqlite().await;
        }
        if self.backend != Backend::Mysql {
            return self.migrate_unlocked().await;
        }
        // sqlx's own lock there is `GET_LOCK(name, -1)`, which MariaDB answers with NULL
        // instead of waiting: both processes would apply the schema, and the second would
        // find the first's migration half done ("partially applied") and fail.
        let action = || {
            StoreError::query(
                "take the migration lock (another rollcall may be migrating this database; wait and try again)",
            )
        };
        let mut holder = self.pool.acquire().await.map_err(action())?;
        holder.close_on_drop();
        let answer: Option<i64> = sqlx::query_scalar(
            "SELECT GET_LOCK(LEFT(CONCAT('rollcall-migrate:', DATABASE()), 64), ?)",
        )
        .bind(MIGRATION_LOCK_WAIT.as_secs() as i64)
        .fetch_one(&mut *holder)
        .await
        .map_err(action())?;
        if answer != Some(1) {
            return Err(action()(sqlx::Error::Protocol(format!(
                "GET_LOCK answered {answer:?} after waiting up to {MIGRATION_LOCK_WAIT:?}"
            ))));
        }
        let report = match self.forget_unfinished_migrations().await {
            Ok(()) => self.migrate_unlocked().await,
            Err(e) => Err(e),
        };
        // Ending the session releases the lock, whatever became of the migration; a close
        // that fails ends it too.
        let _ = holder.close().await;
        report
    }

    /// sqlx takes no lock to migrate SQLite: two processes opening a fresh file at once both
    /// see no migration applied, one commits the schema, and the other's `CREATE TABLE` then
    /// fails. The migration runs in a transaction, so nothing is half done: looking again
    /// finds it applied.
    async fn migrate_sqlite(&self) -> Result<MigrationReport, StoreError> {
        let mut attempt = 1;
        loop {
            match self.migrate_unlocked().await {
                Err(e) if attempt < SQLITE_MIGRATE_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "migrating SQLite failed; another process may be migrating it, looking again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// MySQL cannot roll DDL back, so sqlx records a migration there as unfinished before it
    /// runs it and as finished after; a process killed in between (a first run killed early)
    /// leaves it "partially applied", and sqlx then refuses to go on. The MySQL migrations are
    /// written to run again safely (`IF NOT EXISTS`), so the unfinished record is dropped and
    /// the migration simply runs again.
    async fn forget_unfinished_migrations(&self) -> Result<(), StoreError> {
        let action = || StoreError::query("look for migrations cut off halfway");
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(action())?;
        if tables == 0 {
            return Ok(());
        }
        let forgotten = sqlx::query("DELETE FROM _sqlx_migrations WHERE success = 0")
            .execute(&self.pool)
            .await
            .map_err(action())?
            .rows_affected();
        if forgotten > 0 {
            tracing::warn!(
                migrations = forgotten,
                "a migration was cut off halfway (a process killed while migrating); running it again"
            );
        }
        Ok(())
    }

    async fn migrate_unlocked(&self) -> Result<MigrationReport, StoreError> {
        let before = self.applied_migrations().await?;
        self.backend
            .migrator()
            .run(&self.pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: self.url.clone(),
                source,
            })?;
        let after = self.applied_migrations().await?;
        let applied = self
            .backend
            .migrator()
            .iter()
            .filter(|m| after.contains(&m.version) && !before.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        Ok(MigrationReport {
            before: before.last().copied(),
            after: after.last().copied(),
            applied,
        })
    }

    /// The newest applied migration, `None` for an empty database.
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.applied_migrations().await?.last().copied())
    }

    /// The newest migration this binary carries.
    pub fn latest_known_version(&self) -> Option<i64> {
        self.backend.migrator().iter().map(|m| m.version).max()
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL with any password redacted, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes every connection; later calls fail as a lost database would.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Successfully applied migration versions, ascending; empty when sqlx's table is absent.
    async fn applied_migrations(&self) -> Result<BTreeSet<i64>, StoreError> {
        if !self.table_exists("_sqlx_migrations").await? {
            return Ok(BTreeSet::new());
        }
        let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("read the applied migrations"))?;
        rows.iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()
            .map_err(StoreError::query("read the applied migrations"))
    }

    async fn table_exists(&self, table: &str) -> Result<bool, StoreError> {
        let query = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
            }
            Backend::Mysql => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
            }
        };
        let count: i64 = sqlx::query_scalar(query)
            .bind(table)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query(format!("look for table {table}")))?;
        Ok(count > 0)
    }
}

fn sqlite_pragmas() -> String {
    // WAL lets readers (status, doctor) run beside the writer; foreign keys are off by
    // default in SQLite and the schema relies on them.
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON;",
        SQLITE_BUSY_TIMEOUT.as_millis()
    )
}

/// The SQLite file a state URL names, if it names one (not PostgreSQL, MySQL or in-memory),
/// so that `doctor` can report a missing database instead of creating an empty one.
pub fn sqlite_file(url: &DatabaseUrl) -> Option<PathBuf> {
    match Backend::of(url) {
        Some(Backend::Sqlite) => sqlite_path(url.expose()).ok().flatten(),
        _ => None,
    }
}

/// The file an SQLite URL names, or `None` for an in-memory database.
fn sqlite_path(url: &str) -> Result<Option<PathBuf>, sqlx::Error> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    Ok(Some(options.get_filename().to_path_buf()))
}

/// Creates the SQLite file owner-only before SQLite sees it, since SQLite would create it with
/// the umask's mode and the WAL and shared-memory files copy the main file's mode.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::CreateFile {
            path: path.to_path_buf(),
            source,
        })
}

/// On MySQL/MariaDB, lifts the session's cap on `GROUP_CONCAT` (and MariaDB's
/// `JSON_ARRAYAGG`), which otherwise cuts a result at 1,024 bytes; the other backends have
/// none.
async fn unbounded_group_concat(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Mysql {
        sqlx::query("SET SESSION group_concat_max_len = 4294967295")
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Reads a text column that MySQL may return as a BLOB (its `TEXT` types) and the others as
/// text.
fn text(row: &AnyRow, column: &str) -> Result<Option<String>, sqlx::Error> {
    match row.try_get::<Option<String>, _>(column) {
        Ok(value) => Ok(value),
        Err(sqlx::Error::ColumnDecode { .. }) => row
            .try_get::<Option<Vec<u8>>, _>(column)?
            .map(|bytes| {
                String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
                    index: column.to_owned(),
                    source: Box::new(e),
                })
            })
            .transpose(),
        Err(e) => Err(e),
    }
}

/// Reads a JSON text column.
fn json(row: &AnyRow, column: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
    text(row, column)?
        .map(|t| {
            serde_json::from_str(&t).map_err(|e| sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: Box::new(e),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_scheme() {
        let of = |u: &str| Backend::of(&DatabaseUrl::new(u));
        assert_eq!(of("sqlite://x.db"), Some(Backend::Sqlite));
        assert_eq!(of("postgresql://h/db"), Some(Backend::Postgres));
        assert_eq!(of("mariadb://h/db"), Some(Backend::Mysql));
        assert_eq!(of("redis://h"), None);
    }

    #[test]
    fn sqlite_memory_has_no_file() {
        assert_eq!(sqlite_path("sqlite::memory:").unwrap(), None);
        assert_eq!(
            sqlite_path("sqlite://state/rollcall.db").unwrap(),
            Some(PathBuf::from("state/rollcall.db"))
        );
    }

    #[tokio::test]
    async fn a_server_that_refuses_connections_is_given_up_after_the_acquire_timeout() {
        // A port nobody listens on: connections are refused, which the pool retries.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let url = DatabaseUrl::new(format!("postgres://rollcall@127.0.0.1:{port}/state"));
        let opened = tokio::time::timeout(ACQUIRE_TIMEOUT * 2, Store::connect(&url)).await;
        let error = opened
            .expect("the store gave up on the refusing server")
            .expect_err("nothing listens on the port");
        assert!(
            matches!(error, StoreError::Open { .. }) && error.is_transient(),
            "{error}"
        );
    }

    #[test]
    fn every_backend_carries_the_same_migrations() {
        let versions = |b: Backend| b.migrator().iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(versions(Backend::Sqlite), versions(Backend::Postgres));
        assert_eq!(versions(Backend::Sqlite), versions(Backend::Mysql));
    }
}
