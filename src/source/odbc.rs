//! ODBC sources (the `odbc` build feature): one query through the vendor's driver, inside one
//! transaction that is rolled back, its cells read as UTF-8 text with the same column rules
//! as `sql`.

use odbc_api::buffers::TextRowSet;
use odbc_api::{ConnectionOptions, Cursor, ResultSetMetadata, environment};
use secrecy::{ExposeSecret, SecretString};

use super::rows::{Accumulator, Columns, RawRow};
use super::{SourceError, SourceRead, Witness};
use crate::config::{SourceConfig, redact_connection_string};

/// Rows fetched per round trip.
const BATCH: usize = 1_000;
/// The longest cell rollcall reads, in bytes; a longer one is an error, never cut short.
const MAX_CELL: usize = 4_096;

/// Reads a whole ODBC source within its timeout.
pub(crate) async fn read(
    source: &SourceConfig,
    witness: Option<Witness>,
) -> Result<SourceRead, SourceError> {
    let connection = source
        .connection_string()
        .map_err(|message| SourceError::Config {
            source_name: source.name.clone(),
            message,
        })?;
    let query = source
        .query
        .clone()
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| SourceError::Config {
            source_name: source.name.clone(),
            message: "an odbc source needs a query returning `list` and `member`".to_owned(),
        })?;
    let owned = source.clone();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    // ODBC calls block. A plain thread, not `spawn_blocking`: a driver stuck in a hung query
    // must not keep the process alive after the timeout has ended the run.
    std::thread::Builder::new()
        .name(format!("odbc-{}", source.name))
        .spawn(move || {
            let _ = sender.send(read_blocking(&owned, &connection, &query, witness));
        })
        .map_err(|e| SourceError::Unexpected {
            source_name: source.name.clone(),
            error: anyhow::anyhow!("cannot start the ODBC reading thread: {e}"),
        })?;
    let rows = tokio::time::timeout(source.timeout, receiver)
        .await
        .map_err(|_| SourceError::Timeout {
            source_name: source.name.clone(),
            after: source.timeout,
        })?
        .map_err(|_| SourceError::Unexpected {
            source_name: source.name.clone(),
            error: anyhow::anyhow!("the ODBC reading thread ended without an answer"),
        })??;
    Ok(SourceRead::new(source, rows.finish()))
}

fn read_blocking(
    source: &SourceConfig,
    connection: &SecretString,
    query: &str,
    witness: Option<Witness>,
) -> Result<Accumulator, SourceError> {
    let unreachable = |error: odbc_api::Error| SourceError::Unreachable {
        source_name: source.name.clone(),
        url: redact_connection_string(connection.expose_secret()),
        message: error.to_string(),
    };
    let failed = |error: odbc_api::Error| SourceError::Sql {
        source_name: source.name.clone(),
        message: error.to_string(),
    };
    let env = environment().map_err(unreachable)?;
    let login_timeout = u32::try_from(source.timeout.as_secs().max(1)).unwrap_or(u32::MAX);
    let conn = env
        .connect_with_connection_string(
            connection.expose_secret(),
            ConnectionOptions {
                login_timeout_sec: Some(login_timeout),
                ..ConnectionOptions::default()
            },
        )
        .map_err(unreachable)?;
    // Manual commit: the query runs inside one transaction, which is rolled back below (a
    // driver without transactions refuses, and then the single statement is its own).
    let transaction = conn.set_autocommit(false).is_ok();
    let timeout = usize::try_from(source.timeout.as_secs().max(1)).ok();
    let mut cursor = conn
        .execute(query, (), timeout)
        .map_err(failed)?
        .ok_or_else(|| SourceError::Sql {
            source_name: source.name.clone(),
            message: "the query returned no result set; it must be a SELECT".to_owned(),
        })?;
    let names: Vec<String> = cursor
        .column_names()
        .map_err(failed)?
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    let columns = Columns::locate(names.iter().map(String::as_str))
        .map_err(|fault| fault.into_error(&source.name, "query".to_owned()))?;
    let buffer = TextRowSet::for_cursor(BATCH, &mut cursor, Some(MAX_CELL)).map_err(failed)?;
    let mut block = cursor.bind_buffer(buffer).map_err(failed)?;
    let mut rows = Accumulator::new(source.member_key)
        .with_role(source.role, columns.role.is_some())
        .watching(witness);
    let mut number = 0u64;
    while let Some(batch) =
        block
            .fetch_with_truncation_check(true)
            .map_err(|e| SourceError::Sql {
                source_name: source.name.clone(),
                message: format!("after row {number}: {e} (a cell longer than {MAX_CELL} bytes?)"),
            })?
    {
        for row in 0..batch.num_rows() {
            number += 1;
            let cell = |column: &'static str, index: usize| -> Result<Option<&str>, SourceError> {
                batch
                    .at(index, row)
                    .map(std::str::from_utf8)
                    .transpose()
                    .map_err(|_| SourceError::Sql {
                        source_name: source.name.clone(),
                        message: format!(
                            "row {number}, column `{column}`: the value is not UTF-8 text; use a UTF-8 client character set in the connection string (e.g. CharSet=UTF8) or convert it in the query"
                        ),
                    })
            };
            let list = cell("list", columns.list)?.unwrap_or_default();
            let member = cell("member", columns.member)?.unwrap_or_default();
            let display_name = match columns.display_name {
                Some(index) => cell("display_name", index)?,
                None => None,
            };
            let description = match columns.description {
                Some(index) => cell("description", index)?,
                None => None,
            };
            let role = match columns.role {
                Some(index) => cell("role", index)?,
                None => None,
            };
            let row = RawRow {
                list,
                member,
                display_name,
                description,
                role,
            };
            rows.push_at(row, || format!("query row {number}"))
                .map_err(|fault| fault.into_error(&source.name, format!("query row {number}")))?;
        }
    }
    drop(block);
    if transaction {
        // A read never commits anything.
        conn.rollback().map_err(failed)?;
    }
    Ok(rows)
}
