//! SQL sources: one query in one read-only transaction with a consistent snapshot, streamed
//! row by row, on PostgreSQL, MySQL/MariaDB or SQLite.

use std::fmt::Write as _;
use std::str::FromStr;

use futures::TryStreamExt;
use sqlx::mysql::{MySql, MySqlConnectOptions};
use sqlx::postgres::{PgConnectOptions, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions};
use sqlx::{
    Column, ConnectOptions, Connection, Database, Decode, Executor, IntoArguments, Row, Statement,
    Type, TypeInfo, ValueRef,
};

use super::rows::{Accumulator, Columns, RawRow};
use super::{SourceError, SourceRead, Witness};
use crate::config::{DatabaseUrl, SourceConfig};

/// Reads a whole SQL source within its timeout. Nothing is ever committed.
pub(crate) async fn read(
    source: &SourceConfig,
    witness: Option<Witness>,
) -> Result<SourceRead, SourceError> {
    let config_error = |message: String| SourceError::Config {
        source_name: source.name.clone(),
        message,
    };
    let url = source.database_url().map_err(config_error)?;
    let query = source
        .query
        .as_deref()
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| {
            config_error("an sql source needs a query returning `list` and `member`".into())
        })?;
    let read = async {
        match url.scheme().as_str() {
            "postgres" | "postgresql" => read_postgres(source, &url, query, witness).await,
            "mysql" | "mariadb" => read_mysql(source, &url, query, witness).await,
            "sqlite" => read_sqlite(source, &url, query, witness).await,
            other => Err(config_error(format!(
                "`{}` has scheme `{other}`; rollcall reads sqlite://, postgres:// and mysql://",
                url.redacted()
            ))),
        }
    };
    // Dropping the read on timeout drops the connection, which ends the transaction.
    let rows = tokio::time::timeout(source.timeout, read)
        .await
        .map_err(|_| SourceError::Timeout {
            source_name: source.name.clone(),
            after: source.timeout,
        })??;
    Ok(SourceRead::new(source, rows.finish()))
}

async fn read_postgres(
    source: &SourceConfig,
    url: &DatabaseUrl,
    query: &str,
    witness: Option<Witness>,
) -> Result<Accumulator, SourceError> {
    let options = PgConnectOptions::from_str(url.expose())
        .map_err(|e| unreachable(source, url, &e))?
        .application_name("rollcall");
    let mut conn = options
        .connect()
        .await
        .map_err(|e| unreachable(source, url, &e))?;
    execute(
        source,
        url,
        &mut conn,
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    )
    .await?;
    let rows = stream::<Postgres>(source, url, &mut conn, query, witness).await?;
    finish(source, url, conn).await?;
    Ok(rows)
}

async fn read_mysql(
    source: &SourceConfig,
    url: &DatabaseUrl,
    query: &str,
    witness: Option<Witness>,
) -> Result<Accumulator, SourceError> {
    let options =
        MySqlConnectOptions::from_str(url.expose()).map_err(|e| unreachable(source, url, &e))?;
    let mut conn = options
        .connect()
        .await
        .map_err(|e| unreachable(source, url, &e))?;
    // A consistent snapshot is only as consistent as the isolation level behind it; a
    // server default of READ COMMITTED would make it per statement.
    execute(
        source,
        url,
        &mut conn,
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await?;
    execute(
        source,
        url,
        &mut conn,
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    )
    .await?;
    let rows = stream::<MySql>(source, url, &mut conn, query, witness).await?;
    finish(source, url, conn).await?;
    Ok(rows)
}

async fn read_sqlite(
    source: &SourceConfig,
    url: &DatabaseUrl,
    query: &str,
    witness: Option<Witness>,
) -> Result<Accumulator, SourceError> {
    let options = SqliteConnectOptions::from_str(url.expose())
        .map_err(|e| unreachable(source, url, &e))?
        .read_only(true)
        .create_if_missing(false);
    let file = options.get_filename();
    if !file.exists() {
        return Err(SourceError::Unreachable {
            source_name: source.name.clone(),
            url: url.redacted(),
            message: format!(
                "the database file {} does not exist (rollcall never creates a source database)",
                file.display()
            ),
        });
    }
    let mut conn = options
        .connect()
        .await
        .map_err(|e| unreachable(source, url, &e))?;
    // A read transaction holds one WAL snapshot from the first read to the rollback.
    execute(source, url, &mut conn, "BEGIN").await?;
    let rows = stream::<Sqlite>(source, url, &mut conn, query, witness).await?;
    finish(source, url, conn).await?;
    Ok(rows)
}

/// Runs a transaction-control statement (not prepared: MySQL cannot prepare some of them).
async fn execute<C>(
    source: &SourceConfig,
    url: &DatabaseUrl,
    conn: &mut C,
    statement: &str,
) -> Result<(), SourceError>
where
    for<'c> &'c mut C: Executor<'c>,
{
    sqlx::raw_sql(statement)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(|e| query_error(source, url, &e))
}

/// Rolls back (a read never commits anything) and closes the connection politely.
async fn finish<C>(source: &SourceConfig, url: &DatabaseUrl, mut conn: C) -> Result<(), SourceError>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c>,
{
    execute(source, url, &mut conn, "ROLLBACK").await?;
    // The rows are already read and the transaction is over; a failed goodbye loses nothing.
    if let Err(error) = conn.close().await {
        tracing::debug!(source = %source.name, %error, "closing the source connection failed");
    }
    Ok(())
}

/// Checks the columns, then streams the rows into an accumulator one at a time.
async fn stream<DB>(
    source: &SourceConfig,
    url: &DatabaseUrl,
    conn: &mut DB::Connection,
    query: &str,
    witness: Option<Witness>,
) -> Result<Accumulator, SourceError>
where
    DB: TextCells,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    // Preparing first reports missing columns even when the query returns no rows.
    let statement = (&mut *conn)
        .prepare(query)
        .await
        .map_err(|e| query_error(source, url, &e))?;
    let columns = Columns::locate(statement.columns().iter().map(|c| c.name()))
        .map_err(|fault| fault.into_error(&source.name, "query".to_owned()))?;

    let mut rows = Accumulator::new(source.member_key)
        .with_role(source.role, columns.role.is_some())
        .watching(witness);
    // One buffer per column, reused for every row.
    let [
        mut list,
        mut member,
        mut display_name,
        mut description,
        mut role,
    ] = std::array::from_fn::<String, 5, _>(|_| String::new());
    let mut number = 0u64;
    let mut stream = statement.query().fetch(&mut *conn);
    while let Some(row) = stream
        .try_next()
        .await
        .map_err(|e| query_error(source, url, &e))?
    {
        number += 1;
        let cell = |column: &'static str, index: usize, out: &mut String| {
            out.clear();
            DB::cell_text(&row, index, out).map_err(|fault| match fault {
                CellFault::Type(type_name) => SourceError::ColumnType {
                    source_name: source.name.clone(),
                    row: number,
                    column,
                    type_name,
                },
                CellFault::Decode(message) => SourceError::Sql {
                    source_name: source.name.clone(),
                    message: format!("row {number}, column `{column}`: {message}"),
                },
            })
        };
        cell("list", columns.list, &mut list)?;
        cell("member", columns.member, &mut member)?;
        let has_display_name = match columns.display_name {
            Some(index) => cell("display_name", index, &mut display_name)?,
            None => false,
        };
        let has_description = match columns.description {
            Some(index) => cell("description", index, &mut description)?,
            None => false,
        };
        let has_role = match columns.role {
            Some(index) => cell("role", index, &mut role)?,
            None => false,
        };
        let row = RawRow {
            list: &list,
            member: &member,
            display_name: has_display_name.then_some(display_name.as_str()),
            description: has_description.then_some(description.as_str()),
            role: has_role.then_some(role.as_str()),
        };
        rows.push_at(row, || format!("query row {number}"))
            .map_err(|fault| fault.into_error(&source.name, format!("query row {number}")))?;
    }
    Ok(rows)
}

/// Why a cell cannot be read as text.
#[derive(Debug)]
enum CellFault {
    /// The column's type is neither text nor an integer; carries the database's type name.
    Type(String),
    /// The value did not decode.
    Decode(String),
}

/// How each backend turns a `list`/`member`/metadata cell into text without allocating.
trait TextCells: Database {
    /// Appends the cell's text to `out`; `Ok(false)` for NULL.
    fn cell_text(row: &Self::Row, index: usize, out: &mut String) -> Result<bool, CellFault>;
}

/// Decodes `value` as `T` and appends it to `out`.
fn append<'r, DB, T>(value: DB::ValueRef<'r>, out: &mut String) -> Result<bool, CellFault>
where
    DB: Database,
    T: Decode<'r, DB> + std::fmt::Display,
{
    let decoded = T::decode(value).map_err(|e| CellFault::Decode(e.to_string()))?;
    // Writing to a String cannot fail.
    let _ = write!(out, "{decoded}");
    Ok(true)
}

fn raw_value<R: Row>(
    row: &R,
    index: usize,
) -> Result<<R::Database as Database>::ValueRef<'_>, CellFault>
where
    usize: sqlx::ColumnIndex<R>,
{
    row.try_get_raw(index)
        .map_err(|e| CellFault::Decode(e.to_string()))
}

fn unsupported<DB: Database>(ty: &DB::TypeInfo) -> Result<bool, CellFault> {
    Err(CellFault::Type(ty.name().to_owned()))
}

impl TextCells for Postgres {
    fn cell_text(row: &Self::Row, index: usize, out: &mut String) -> Result<bool, CellFault> {
        let value = raw_value(row, index)?;
        if value.is_null() {
            return Ok(false);
        }
        let ty = value.type_info().into_owned();
        if <&str as Type<Self>>::compatible(&ty) {
            append::<Self, &str>(value, out)
        } else if <i64 as Type<Self>>::compatible(&ty) {
            append::<Self, i64>(value, out)
        } else if <i32 as Type<Self>>::compatible(&ty) {
            append::<Self, i32>(value, out)
        } else if <i16 as Type<Self>>::compatible(&ty) {
            append::<Self, i16>(value, out)
        } else {
            unsupported::<Self>(&ty)
        }
    }
}

impl TextCells for MySql {
    fn cell_text(row: &Self::Row, index: usize, out: &mut String) -> Result<bool, CellFault> {
        let value = raw_value(row, index)?;
        if value.is_null() {
            return Ok(false);
        }
        let ty = value.type_info().into_owned();
        if <&str as Type<Self>>::compatible(&ty) {
            append::<Self, &str>(value, out)
        } else if <&[u8] as Type<Self>>::compatible(&ty) {
            // Binary-collated strings (`utf8mb4_bin`, CONCAT over binary) arrive as bytes.
            let bytes = <&[u8] as Decode<Self>>::decode(value)
                .map_err(|e| CellFault::Decode(e.to_string()))?;
            let text = std::str::from_utf8(bytes)
                .map_err(|_| CellFault::Decode("the value is not UTF-8 text".to_owned()))?;
            out.push_str(text);
            Ok(true)
        } else if <i64 as Type<Self>>::compatible(&ty) {
            append::<Self, i64>(value, out)
        } else if <u64 as Type<Self>>::compatible(&ty) {
            append::<Self, u64>(value, out)
        } else {
            unsupported::<Self>(&ty)
        }
    }
}

impl TextCells for Sqlite {
    fn cell_text(row: &Self::Row, index: usize, out: &mut String) -> Result<bool, CellFault> {
        let value = raw_value(row, index)?;
        if value.is_null() {
            return Ok(false);
        }
        // SQLite types values, not columns: this is the value's own storage class.
        let ty = value.type_info().into_owned();
        if <&str as Type<Self>>::compatible(&ty) {
            append::<Self, &str>(value, out)
        } else if <i64 as Type<Self>>::compatible(&ty) {
            append::<Self, i64>(value, out)
        } else {
            unsupported::<Self>(&ty)
        }
    }
}

fn unreachable(source: &SourceConfig, url: &DatabaseUrl, error: &sqlx::Error) -> SourceError {
    SourceError::Unreachable {
        source_name: source.name.clone(),
        url: url.redacted(),
        message: error.to_string(),
    }
}

/// A failure after connecting: a lost connection is `unreachable`, the rest the query's fault.
fn query_error(source: &SourceConfig, url: &DatabaseUrl, error: &sqlx::Error) -> SourceError {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => unreachable(source, url, error),
        sqlx::Error::Database(db) => SourceError::Sql {
            source_name: source.name.clone(),
            message: match db.code() {
                Some(code) => format!("{} (code {code})", db.message()),
                None => db.message().to_owned(),
            },
        },
        other => SourceError::Sql {
            source_name: source.name.clone(),
            message: other.to_string(),
        },
    }
}
