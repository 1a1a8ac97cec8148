//! The store's one error type, with the retry decision callers make on it.

use std::path::PathBuf;

/// A state-store failure. Messages name the database by its redacted URL and never carry a
/// password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend the store speaks.
    #[error(
        "state database `{url}`: unsupported scheme; use sqlite://, postgres:// or mysql:// in [state]"
    )]
    UnsupportedUrl {
        /// The redacted URL.
        url: String,
    },
    /// The SQLite file could not be created with owner-only permissions.
    #[error(
        "cannot create the state database file {path}: {source}; check that the folder exists and is writable"
    )]
    CreateFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error(
        "cannot open the state database `{url}`: {source}; check that the server is reachable and the [state] URL is right"
    )]
    Open {
        /// The redacted URL.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// Applying or reading the migrations failed.
    #[error(
        "state database `{url}`: migration failed: {source}; run `rollcall doctor` for details"
    )]
    Migrate {
        /// The redacted URL.
        url: String,
        /// Why.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("state database: cannot {action}: {source}")]
    Query {
        /// What the store was doing, e.g. "record a batch of 20 outcomes".
        action: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The database holds a value this binary does not understand.
    #[error(
        "state database holds `{value}` in {place}, which this rollcall does not know; run `rollcall doctor`, or upgrade rollcall"
    )]
    Unknown {
        /// Table and column.
        place: &'static str,
        /// The value.
        value: String,
    },
    /// The run's lease was taken over or expired: nothing was written, and the run must stop.
    #[error(
        "the run lease was lost (now {}, token {token}): nothing was written; this run stops and its pending operations stay for `rollcall resume`",
        holder.as_deref().map_or_else(|| "free".to_owned(), |h| format!("held by `{h}`"))
    )]
    LeaseLost {
        /// Who holds the lease now, if anyone.
        holder: Option<String>,
        /// The lease's current fencing token.
        token: i64,
    },
}

impl StoreError {
    /// Wraps a query failure with what the store was doing.
    pub(crate) fn query(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
        let action = action.into();
        move |source| StoreError::Query { action, source }
    }

    /// Whether retrying later may succeed: the connection or pool failed, or the database
    /// asked to retry (deadlock, serialization failure, busy). Everything else is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Open { source, .. } | StoreError::Query { source, .. } => {
                transient_sqlx(source)
            }
            StoreError::Migrate { source, .. } => match source {
                sqlx::migrate::MigrateError::Execute(e) => transient_sqlx(e),
                _ => false,
            },
            StoreError::UnsupportedUrl { .. }
            | StoreError::CreateFile { .. }
            | StoreError::Unknown { .. }
            | StoreError::LeaseLost { .. } => false,
        }
    }
}

fn transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

/// Database error codes that mean "try again": PostgreSQL serialization failure, deadlock,
/// admin shutdown and connection exceptions (class 08); MySQL deadlock, lock wait timeout and
/// lost connection; SQLite BUSY and LOCKED.
fn transient_code(code: &str) -> bool {
    matches!(
        code,
        "40001" | "40P01" | "57P01" | "57P03" | "1213" | "1205" | "2006" | "2013" | "5" | "6"
    ) || code.starts_with("08")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_transient_and_bad_sql_is_not() {
        let lost = StoreError::Query {
            action: "read".into(),
            source: sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        assert!(lost.is_transient());
        let pool = StoreError::Open {
            url: "postgres://db/x".into(),
            source: sqlx::Error::PoolTimedOut,
        };
        assert!(pool.is_transient());
        let missing = StoreError::Query {
            action: "read".into(),
            source: sqlx::Error::RowNotFound,
        };
        assert!(!missing.is_transient());
        assert!(
            !StoreError::LeaseLost {
                holder: None,
                token: 3
            }
            .is_transient()
        );
    }

    #[test]
    fn retry_codes_cover_each_backend() {
        for code in ["40001", "40P01", "08006", "1213", "1205", "5"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["23505", "1062", "19", "42P01"] {
            assert!(!transient_code(code), "{code}");
        }
    }

    #[test]
    fn lease_lost_names_the_new_holder() {
        let e = StoreError::LeaseLost {
            holder: Some("host-b:42".into()),
            token: 7,
        };
        let message = e.to_string();
        assert!(message.contains("held by `host-b:42`"), "{message}");
        assert!(message.contains("token 7"), "{message}");
    }
}
