//! A fresh database per test, on SQLite, PostgreSQL and MariaDB.
//!
//! PostgreSQL and MariaDB come from the server `backends.rs` finds: the one a
//! `ROLLCALL_TEST_POSTGRES_URL` / `ROLLCALL_TEST_MYSQL_URL` names (a URL to an existing
//! database the test user may create databases from), else a private one the suite starts.
//! Where neither exists the test is skipped with a visible line; with `CI=true` it fails,
//! because a suite that silently skipped its backends proves nothing.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

pub use super::backends::server_url;
pub use rollcall::store::Backend;

/// A database created for one test and dropped after it.
#[derive(Debug)]
pub struct TestDatabase {
    /// The backend.
    pub backend: Backend,
    /// A URL to the fresh, empty database.
    pub url: String,
    name: String,
    admin_url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("rollcall_t{}_{}_{}", std::process::id(), n, nanos % 100_000)
}

/// Whether the suite runs in CI, where a missing database server is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Replaces the database (path) part of a server URL.
pub fn with_database(server_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(server_url).expect("the test server URL parses");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl TestDatabase {
    /// Creates a fresh database, or returns `None` when the backend is not configured
    /// outside CI.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        let name = unique_name();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let url = format!(
                    "sqlite://{}",
                    dir.path().join(format!("{name}.db")).display()
                );
                Some(TestDatabase {
                    backend,
                    url,
                    name,
                    admin_url: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres | Backend::Mysql => {
                let admin_url = server_url(backend)?;
                execute_admin(backend, &admin_url, &format!("CREATE DATABASE {name}")).await;
                let url = with_database(&admin_url, &name);
                Some(TestDatabase {
                    backend,
                    url,
                    name,
                    admin_url: Some(admin_url),
                    _dir: None,
                })
            }
        }
    }
}

impl TestDatabase {
    /// Loses the database outright, as a crash that takes the disk with it would: SQLite's
    /// file (and its WAL and shared-memory files) deleted, or the server's database dropped
    /// and created again empty.
    pub async fn destroy(&self) {
        match (&self.admin_url, self.backend) {
            (None, _) => {
                let file = self
                    .url
                    .strip_prefix("sqlite://")
                    .expect("an SQLite test URL starts with sqlite://");
                std::fs::remove_file(file)
                    .unwrap_or_else(|e| panic!("the SQLite file {file} cannot be deleted: {e}"));
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{file}{suffix}"));
                }
            }
            (Some(admin_url), backend) => {
                let drop = match backend {
                    Backend::Postgres => format!("DROP DATABASE {} WITH (FORCE)", self.name),
                    _ => format!("DROP DATABASE {}", self.name),
                };
                execute_admin(backend, admin_url, &drop).await;
                execute_admin(
                    backend,
                    admin_url,
                    &format!("CREATE DATABASE {}", self.name),
                )
                .await;
            }
        }
    }
}

async fn execute_admin(backend: Backend, admin_url: &str, sql: &str) {
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(admin_url)
                .await
                .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        Backend::Mysql => {
            let mut conn = sqlx::MySqlConnection::connect(admin_url)
                .await
                .unwrap_or_else(|e| panic!("cannot reach MariaDB at {admin_url}: {e}"));
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        Backend::Sqlite => {}
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.clone() else {
            return;
        };
        let backend = self.backend;
        let sql = match backend {
            Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        // Drop runs inside the test's runtime; a thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(execute_admin(backend, &admin_url, &sql));
            }
        })
        .join();
    }
}

/// Runs a scenario `async fn(TestDatabase)` once per backend, as three tests named
/// `<scenario>::sqlite`, `<scenario>::postgres` and `<scenario>::mysql`.
#[macro_export]
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use $crate::common::db::{Backend, TestDatabase};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(db) = TestDatabase::create(Backend::Sqlite).await {
                        super::$scenario(db).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = TestDatabase::create(Backend::Postgres).await {
                        super::$scenario(db).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() {
                    if let Some(db) = TestDatabase::create(Backend::Mysql).await {
                        super::$scenario(db).await;
                    }
                }
            }
        )*
    };
}

/// The run lease as host `host-a:1` holds it, and a run begun under it: what a store test
/// needs before it records a batch.
pub async fn lease_and_run(
    store: &rollcall::store::Store,
) -> (rollcall::store::Lease, rollcall::store::RunId) {
    let lease = held_lease(store).await;
    let run = store
        .begin_run(rollcall::store::RunKind::Run, Some(&lease), None)
        .await
        .expect("a run begins");
    (lease, run)
}

/// The run lease, taken by host `host-a:1` for a minute.
pub async fn held_lease(store: &rollcall::store::Store) -> rollcall::store::Lease {
    store
        .acquire("host-a:1", std::time::Duration::from_secs(60))
        .await
        .expect("the lease table answers")
        .expect("nobody else holds the lease")
}

/// `(seq, outcome)` pairs joined to the journal's operations, as the apply hands a batch to
/// `record_batch`.
pub fn with_ops<'a>(
    journal: &'a [rollcall::store::JournalOp],
    outcomes: &[(i64, rollcall::store::Outcome)],
) -> Vec<(&'a rollcall::store::JournalOp, rollcall::store::Outcome)> {
    let by_seq: std::collections::HashMap<i64, &rollcall::store::JournalOp> =
        journal.iter().map(|op| (op.seq, op)).collect();
    outcomes
        .iter()
        .map(|(seq, outcome)| (by_seq[seq], outcome.clone()))
        .collect()
}
