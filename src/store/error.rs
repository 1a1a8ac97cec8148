//! The store's one error type, with the retry decision callers make on it, and the line
//! between a database that failed and a write the schema refused (rollcall's own defect).

use std::fmt;
use std::path::PathBuf;

use sqlx::error::{DatabaseError, ErrorKind};

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
    /// The database refused a write: a constraint violation or a value the column cannot
    /// take. The database is reachable and whole and the write was rolled back; the defect is
    /// in what rollcall tried to write. Boxed: it carries the most.
    #[error(transparent)]
    Constraint(Box<RefusedWrite>),
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

/// A write the database refused, with what it broke and whose row it was.
#[derive(Debug, thiserror::Error)]
#[error(
    "the state database refused rollcall's write ({action}): {}; nothing of this write was committed. \
     This is a defect in rollcall (it tried to write what the schema forbids), not a problem \
     with the database: report it with this message and `rollcall show` of this run",
    describe_refusal(*rule, table.as_deref(), constraint.as_deref(), list.as_deref(), cause)
)]
pub struct RefusedWrite {
    /// What the store was doing.
    pub action: String,
    /// Which kind of rule the write broke.
    pub rule: DataRule,
    /// The table written, when the database or the store names it.
    pub table: Option<String>,
    /// The constraint, index or column the database names.
    pub constraint: Option<String>,
    /// The list whose row it was, when the write was for one list.
    pub list: Option<String>,
    /// The database's own error, quoted in the message (not chained, so that it is not
    /// printed twice).
    pub cause: sqlx::Error,
}

/// The kind of rule a refused write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataRule {
    /// A UNIQUE or PRIMARY KEY constraint.
    Unique,
    /// A FOREIGN KEY constraint.
    ForeignKey,
    /// A NOT NULL constraint.
    NotNull,
    /// A CHECK constraint.
    Check,
    /// Another integrity constraint (a trigger's refusal, an exclusion constraint, …).
    Other,
    /// A value the column cannot hold: too long, out of range, of the wrong type.
    Value,
}

impl fmt::Display for DataRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataRule::Unique => "UNIQUE constraint",
            DataRule::ForeignKey => "FOREIGN KEY constraint",
            DataRule::NotNull => "NOT NULL constraint",
            DataRule::Check => "CHECK constraint",
            DataRule::Other => "constraint",
            DataRule::Value => "a value the column cannot hold",
        })
    }
}

fn describe_refusal(
    rule: DataRule,
    table: Option<&str>,
    constraint: Option<&str>,
    list: Option<&str>,
    cause: &sqlx::Error,
) -> String {
    let mut text = rule.to_string();
    if let Some(constraint) = constraint {
        text.push_str(&format!(" `{constraint}`"));
    }
    text.push_str(&format!(" on table `{}`", table.unwrap_or("(not named)")));
    if let Some(list) = list {
        text.push_str(&format!(" for list `{list}`"));
    }
    let said = match cause {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    };
    format!("{text} (the database said: {said})")
}

impl StoreError {
    /// Wraps a query failure with what the store was doing; a write the schema refused
    /// becomes [`StoreError::Constraint`].
    pub(crate) fn query(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
        let action = action.into();
        move |source| StoreError::from_sqlx(action, source)
    }

    /// Wraps a failure of a write to `table` for one list (or for several, `None`), so that a
    /// refusal names both.
    pub(crate) fn writing(
        action: impl Into<String>,
        table: &'static str,
        list: Option<&str>,
    ) -> impl FnOnce(sqlx::Error) -> StoreError {
        let action = action.into();
        let list = list.map(str::to_owned);
        move |source| StoreError::from_sqlx(action, source).about(table, list.as_deref())
    }

    fn from_sqlx(action: String, source: sqlx::Error) -> StoreError {
        match refusal(&source) {
            Some(Refusal {
                rule,
                table,
                constraint,
            }) => StoreError::Constraint(Box::new(RefusedWrite {
                action,
                rule,
                table,
                constraint,
                list: None,
                cause: source,
            })),
            None => StoreError::Query { action, source },
        }
    }

    /// Names the table (when the database did not) and the list of a refused write.
    pub(crate) fn about(mut self, written: &'static str, for_list: Option<&str>) -> StoreError {
        if let StoreError::Constraint(refused) = &mut self {
            if refused.table.is_none() {
                refused.table = Some(written.to_owned());
            }
            if refused.list.is_none() {
                refused.list = for_list.map(str::to_owned);
            }
        }
        self
    }

    /// Whether the database refused what rollcall wrote (a constraint violation or a value
    /// the column cannot hold): rollcall's defect, not a database that failed.
    pub fn is_data_error(&self) -> bool {
        matches!(self, StoreError::Constraint(_))
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
            | StoreError::Constraint(_)
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

/// What a refused write broke, as far as the database tells.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    rule: DataRule,
    table: Option<String>,
    constraint: Option<String>,
}

/// The refusal in a database error, if it is one. PostgreSQL names table and constraint in
/// fields of its own; SQLite and MySQL/MariaDB only in the message, so it is read there.
fn refusal(error: &sqlx::Error) -> Option<Refusal> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    let rule = rule_of(db.as_ref())?;
    let (table, constraint) = names_in(db.message());
    Some(Refusal {
        rule,
        table: db.table().map(str::to_owned).or(table),
        constraint: db.constraint().map(str::to_owned).or(constraint),
    })
}

fn rule_of(db: &dyn DatabaseError) -> Option<DataRule> {
    let rule = match db.kind() {
        ErrorKind::UniqueViolation => DataRule::Unique,
        ErrorKind::ForeignKeyViolation => DataRule::ForeignKey,
        ErrorKind::NotNullViolation => DataRule::NotNull,
        ErrorKind::CheckViolation => DataRule::Check,
        _ => {
            let mysql = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number());
            let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
            return rule_of_code(db.code().as_deref()?, mysql, sqlite);
        }
    };
    Some(rule)
}

/// The rule behind an error code that sqlx does not classify: SQLSTATE class 23
/// (integrity) and 22 (data exception) on PostgreSQL and MySQL; MySQL's incorrect value
/// (1366, SQLSTATE HY000); SQLite's other constraint codes (19 with any extension, e.g. a
/// trigger's RAISE), TOOBIG (18) and MISMATCH (20).
fn rule_of_code(code: &str, mysql_number: Option<u16>, sqlite: bool) -> Option<DataRule> {
    if sqlite {
        let code: i64 = code.parse().ok()?;
        return match code & 0xff {
            19 => Some(DataRule::Other),
            18 | 20 => Some(DataRule::Value),
            _ => None,
        };
    }
    if code.starts_with("23") {
        Some(DataRule::Other)
    } else if code.starts_with("22") || mysql_number == Some(1366) {
        Some(DataRule::Value)
    } else {
        None
    }
}

/// The table and the constraint (or index, or column) a refusal's message names:
///
/// - SQLite: `UNIQUE constraint failed: managed_groups.group_id`, `NOT NULL constraint
///   failed: mirror.member_id`, `CHECK constraint failed: name`;
/// - MySQL/MariaDB: `Duplicate entry 'x' for key 'managed_groups.group_id'` (MariaDB: key
///   `'group_id'`), `… a foreign key constraint fails (`db`.`mirror`, CONSTRAINT `fk` …`,
///   `Column 'member_id' cannot be null`, `Check constraint 'c' is violated.`, `CONSTRAINT
///   `c` failed for `db`.`t``, `Data too long for column 'list_key' at row 1`;
/// - PostgreSQL (when its fields are empty): `… in column "c" of relation "t" …`.
fn names_in(message: &str) -> (Option<String>, Option<String>) {
    let owned = |s: &str| Some(s.to_owned());
    if let Some((_, rest)) = message.split_once("constraint failed: ") {
        let first = rest.split(", ").next().unwrap_or(rest).trim();
        return match first.split_once('.') {
            Some((table, _)) => (owned(table), owned(rest.trim())),
            None => (None, owned(first)),
        };
    }
    if let Some(key) = after(message, "for key '").and_then(|r| r.split('\'').next()) {
        return match key.split_once('.') {
            Some((table, index)) => (owned(table), owned(index)),
            None => (None, owned(key)),
        };
    }
    if let Some(rest) = after(message, "foreign key constraint fails (") {
        let table = rest
            .split_once(',')
            .map(|(qualified, _)| qualified.rsplit('.').next().unwrap_or(qualified))
            .map(|t| t.trim_matches('`').to_owned());
        let constraint = after(rest, "CONSTRAINT `")
            .and_then(|r| r.split('`').next())
            .map(str::to_owned);
        return (table, constraint);
    }
    if let Some(rest) = after(message, "CONSTRAINT `") {
        let constraint = rest.split('`').next().map(str::to_owned);
        let table = after(rest, " failed for ")
            .and_then(|r| r.rsplit('.').next())
            .map(|t| t.trim_matches('`').to_owned());
        return (table, constraint);
    }
    for (start, end) in [
        ("Check constraint '", '\''),
        ("Column '", '\''),
        ("for column '", '\''),
    ] {
        if let Some(name) = after(message, start).and_then(|r| r.split(end).next()) {
            return (None, owned(name));
        }
    }
    let table = after(message, "relation \"").and_then(|r| r.split('"').next());
    let column = after(message, "column \"").and_then(|r| r.split('"').next());
    (table.map(str::to_owned), column.map(str::to_owned))
}

/// The text after the first `marker`.
fn after<'m>(message: &'m str, marker: &str) -> Option<&'m str> {
    message.find(marker).map(|i| &message[i + marker.len()..])
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

    /// The table and constraint a message names, `-` for none.
    fn names(message: &str) -> (String, String) {
        let (table, constraint) = names_in(message);
        let or_dash = |name: Option<String>| name.unwrap_or_else(|| "-".to_owned());
        (or_dash(table), or_dash(constraint))
    }

    fn named(table: &str, constraint: &str) -> (String, String) {
        (table.to_owned(), constraint.to_owned())
    }

    #[test]
    fn sqlite_refusals_name_table_and_columns() {
        assert_eq!(
            names("UNIQUE constraint failed: managed_groups.group_id"),
            named("managed_groups", "managed_groups.group_id")
        );
        assert_eq!(
            names("UNIQUE constraint failed: mirror.list_key, mirror.member_id"),
            named("mirror", "mirror.list_key, mirror.member_id")
        );
        assert_eq!(
            names("NOT NULL constraint failed: mirror.member_id"),
            named("mirror", "mirror.member_id")
        );
        assert_eq!(
            names("CHECK constraint failed: tagged_is_a_flag"),
            named("-", "tagged_is_a_flag")
        );
        assert_eq!(names("FOREIGN KEY constraint failed"), named("-", "-"));
    }

    #[test]
    fn mysql_and_mariadb_refusals_name_key_table_and_column() {
        assert_eq!(
            names("Duplicate entry 'g-1' for key 'managed_groups.group_id'"),
            named("managed_groups", "group_id")
        );
        assert_eq!(
            names("Duplicate entry 'g-1' for key 'group_id'"),
            named("-", "group_id")
        );
        assert_eq!(
            names(
                "Cannot add or update a child row: a foreign key constraint fails (`test`.`mirror`, \
                 CONSTRAINT `mirror_group_fk` FOREIGN KEY (`list_key`) REFERENCES `managed_groups` (`list_key`))"
            ),
            named("mirror", "mirror_group_fk")
        );
        assert_eq!(
            names("Column 'member_id' cannot be null"),
            named("-", "member_id")
        );
        assert_eq!(
            names("Check constraint 'tagged_is_a_flag' is violated."),
            named("-", "tagged_is_a_flag")
        );
        assert_eq!(
            names("CONSTRAINT `tagged_is_a_flag` failed for `test`.`managed_groups`"),
            named("managed_groups", "tagged_is_a_flag")
        );
        assert_eq!(
            names("Data too long for column 'list_key' at row 1"),
            named("-", "list_key")
        );
    }

    #[test]
    fn postgres_messages_name_relation_and_column_when_its_fields_are_empty() {
        assert_eq!(
            names(
                "null value in column \"member_id\" of relation \"mirror\" violates not-null constraint"
            ),
            named("mirror", "member_id")
        );
        assert_eq!(
            names("value too long for type character varying(255)"),
            named("-", "-")
        );
    }

    #[test]
    fn unclassified_codes_are_read_per_backend() {
        assert_eq!(rule_of_code("23P01", None, false), Some(DataRule::Other));
        assert_eq!(
            rule_of_code("22001", Some(1406), false),
            Some(DataRule::Value)
        );
        assert_eq!(
            rule_of_code("HY000", Some(1366), false),
            Some(DataRule::Value)
        );
        assert_eq!(rule_of_code("HY000", Some(1205), false), None);
        assert_eq!(rule_of_code("40001", None, false), None);
        assert_eq!(rule_of_code("1811", None, true), Some(DataRule::Other));
        assert_eq!(rule_of_code("18", None, true), Some(DataRule::Value));
        assert_eq!(rule_of_code("5", None, true), None);
    }

    #[test]
    fn a_refusal_names_rule_constraint_table_and_list_and_says_whose_defect_it_is() {
        let e = StoreError::Constraint(Box::new(RefusedWrite {
            action: "record managed group `mod-b`".into(),
            rule: DataRule::Unique,
            table: None,
            constraint: Some("group_id".into()),
            list: None,
            cause: sqlx::Error::Protocol("Duplicate entry 'g-1' for key 'group_id'".into()),
        }))
        .about("managed_groups", Some("mod-b"));
        assert!(e.is_data_error() && !e.is_transient());
        let message = e.to_string();
        for part in [
            "UNIQUE constraint `group_id`",
            "table `managed_groups`",
            "list `mod-b`",
            "defect in rollcall",
            "not a problem with the database",
        ] {
            assert!(message.contains(part), "`{part}` missing: {message}");
        }
        let lost = StoreError::Query {
            action: "read".into(),
            source: sqlx::Error::PoolTimedOut,
        };
        assert!(!lost.about("mirror", Some("x")).is_data_error());
    }
}
