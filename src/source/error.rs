//! What can go wrong while reading a source, named so an operator can find and fix it.

use std::path::PathBuf;
use std::time::Duration;

/// A source that could not be read whole. Any of these stops the run before planning
/// (exit 3): a half-read source must never turn into removals.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source's configuration cannot be used (no URL, unknown family, bad URL).
    #[error("source `{source_name}`: {message}")]
    Config {
        /// The source.
        source_name: String,
        /// What is wrong and what to change.
        message: String,
    },
    /// A file could not be opened or read.
    #[error(
        "source `{source_name}`: cannot read {}: {error}; check the path and that rollcall may read it",
        path.display()
    )]
    Unreadable {
        /// The source.
        source_name: String,
        /// The CSV or control file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// A CSV row does not parse (most often: a different number of fields than the header).
    #[error("source `{source_name}`: {}:{line}: {message}", path.display())]
    CsvSyntax {
        /// The source.
        source_name: String,
        /// The CSV file.
        path: PathBuf,
        /// The line the row starts on (1 is the header).
        line: u64,
        /// What is wrong with the row.
        message: String,
    },
    /// A CSV row holds bytes that are not UTF-8.
    #[error(
        "source `{source_name}`: {}:{line}: the row is not valid UTF-8; export the file as UTF-8",
        path.display()
    )]
    CsvEncoding {
        /// The source.
        source_name: String,
        /// The CSV file.
        path: PathBuf,
        /// The line the row starts on.
        line: u64,
    },
    /// The file does not end with a line break: the exporter was probably cut off.
    #[error(
        "source `{source_name}`: {}:{last_line}: the file ends without a line break after line {last_line}, so it looks truncated (cut off mid-write); re-run the export",
        path.display()
    )]
    Truncated {
        /// The source.
        source_name: String,
        /// The CSV file.
        path: PathBuf,
        /// The last line in the file.
        last_line: u64,
    },
    /// The CSV header or the query result lacks `list` or `member`.
    #[error(
        "source `{source_name}`: {place}: no `{column}` column (found: {found}); the source must provide `list` and `member` columns"
    )]
    MissingColumn {
        /// The source.
        source_name: String,
        /// The CSV file's header (`path:1`) or `query`.
        place: String,
        /// The missing column.
        column: &'static str,
        /// The columns that are there, comma-separated.
        found: String,
    },
    /// Two columns share a name rollcall reads, so it cannot tell which one is meant.
    #[error(
        "source `{source_name}`: {place}: the `{column}` column appears twice; keep one of them"
    )]
    DuplicateColumn {
        /// The source.
        source_name: String,
        /// The CSV file's header or `query`.
        place: String,
        /// The column.
        column: &'static str,
    },
    /// A row's `role` is neither `member` nor `owner`.
    #[error("source `{source_name}`: {place}: {message}")]
    BadRole {
        /// The source.
        source_name: String,
        /// `path:line` for a CSV file, `query row N` for SQL.
        place: String,
        /// What is wrong.
        message: String,
    },
    /// A row's `list` or `member` is empty (or NULL) after trimming.
    #[error(
        "source `{source_name}`: {place}: `{column}` is empty; every row needs a list and a member"
    )]
    EmptyValue {
        /// The source.
        source_name: String,
        /// `path:line` for a CSV file, `query row N` for SQL.
        place: String,
        /// `list` or `member`.
        column: &'static str,
    },
    /// A query column has a type rollcall cannot read as text.
    #[error(
        "source `{source_name}`: query row {row}: column `{column}` has type {type_name}; cast it to text or an integer in the query"
    )]
    ColumnType {
        /// The source.
        source_name: String,
        /// The 1-based row of the result.
        row: u64,
        /// The column.
        column: &'static str,
        /// The database's name for the type.
        type_name: String,
    },
    /// The control file is not `rows=N` and `sha256=HEX` lines.
    #[error("source `{source_name}`: {}:{line}: {message}", path.display())]
    ControlSyntax {
        /// The source.
        source_name: String,
        /// The control file.
        path: PathBuf,
        /// The offending line (0 when a required line is missing altogether).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The CSV file has a different number of data rows than its control file says.
    #[error(
        "source `{source_name}`: {}: the control file says rows={expected} but {} has {found} data rows; the file is incomplete or changed after the control file was written",
        control.display(), path.display()
    )]
    ControlRows {
        /// The source.
        source_name: String,
        /// The CSV file.
        path: PathBuf,
        /// The control file.
        control: PathBuf,
        /// What the control file says.
        expected: u64,
        /// What the CSV file holds.
        found: u64,
    },
    /// The CSV file's digest differs from its control file's.
    #[error(
        "source `{source_name}`: {}: the control file says sha256={expected} but {} hashes to {found}; the file is incomplete or changed after the control file was written",
        control.display(), path.display()
    )]
    ControlSha256 {
        /// The source.
        source_name: String,
        /// The CSV file.
        path: PathBuf,
        /// The control file.
        control: PathBuf,
        /// What the control file says.
        expected: String,
        /// The digest of the bytes read.
        found: String,
    },
    /// The database could not be reached or refused the login.
    #[error(
        "source `{source_name}`: cannot connect to {url}: {message}; check the URL, that the database is up, and the credentials"
    )]
    Unreachable {
        /// The source.
        source_name: String,
        /// The URL without its password.
        url: String,
        /// The driver's reason.
        message: String,
    },
    /// The database rejected the query or failed while running it.
    #[error("source `{source_name}`: the query failed: {message}")]
    Sql {
        /// The source.
        source_name: String,
        /// The database's message.
        message: String,
    },
    /// A directory (LDAP server, Microsoft Graph) refused or failed a read.
    #[error("source `{source_name}`: {message}")]
    Directory {
        /// The source.
        source_name: String,
        /// What failed, naming the server, DN or request.
        message: String,
    },
    /// A directory read ended before its end: a size or time limit, a referral rollcall does
    /// not follow, or a ranged attribute not read to its end.
    #[error(
        "source `{source_name}`: {message}; the read is incomplete, so nothing is planned from it"
    )]
    CutShort {
        /// The source.
        source_name: String,
        /// Where and why the read stopped.
        message: String,
    },
    /// An `entra` source's `group` names no group.
    #[error(
        "source `{source_name}`: Microsoft 365 has no group `{group}` (by mailNickname or id); check `group`, or whether the group was deleted"
    )]
    NoGroup {
        /// The source.
        source_name: String,
        /// The configured group.
        group: String,
    },
    /// The read did not finish within the source's `timeout`.
    #[error(
        "source `{source_name}`: the read did not finish within {}; raise the source's `timeout` or speed up the query",
        humantime::format_duration(*after)
    )]
    Timeout {
        /// The source.
        source_name: String,
        /// The configured timeout.
        after: Duration,
    },
    /// A row of an `[[override_source]]` file cannot be read.
    #[error("{place}: {message}")]
    OverrideRow {
        /// The file, as the configuration names it.
        source_name: String,
        /// `file:line`.
        place: String,
        /// What is wrong and how to write it.
        message: String,
    },
    /// An `[[override]]` value cannot be matched to a member key.
    #[error("override[{index}] for list `{list}`: {message}")]
    Override {
        /// The first source feeding the list.
        source_name: String,
        /// The override's position in the configuration.
        index: usize,
        /// The list key.
        list: String,
        /// What is wrong and how to write it.
        message: String,
    },
    /// The source returned no rows and `allow_empty` is not set.
    #[error(
        "source `{source_name}`: it returned zero rows; check that the export or query ran against the complete data, or set `allow_empty = true` if this source may truly be empty"
    )]
    Empty {
        /// The source.
        source_name: String,
    },
    /// The source returned fewer rows than its `min_rows`.
    #[error(
        "source `{source_name}`: it returned {rows} rows, fewer than min_rows = {min_rows}, so it looks incomplete; check the export or query, or lower `min_rows` if the source truly shrank"
    )]
    MinRows {
        /// The source.
        source_name: String,
        /// Data rows read.
        rows: u64,
        /// The configured minimum.
        min_rows: u64,
    },
    /// The source shrank against its last accepted snapshot by more than
    /// `[guard].max_source_shrink_percent`.
    #[error(
        "source `{source_name}`: it returned {rows} rows, {percent:.1}% fewer than the {accepted} rows of its last accepted snapshot (the limit is [guard].max_source_shrink_percent = {limit}%); check that the source is complete, and if the shrink is real, run again with `--accept-shrink {source_name}`"
    )]
    Shrink {
        /// The source.
        source_name: String,
        /// Data rows read now.
        rows: u64,
        /// Data rows of the last accepted snapshot.
        accepted: u64,
        /// How much smaller, in percent.
        percent: f64,
        /// The configured limit, in percent.
        limit: u8,
    },
    /// A failure inside rollcall itself (a reading task died).
    #[error("source `{source_name}`: {error:#}")]
    Unexpected {
        /// The source.
        source_name: String,
        /// What happened.
        error: anyhow::Error,
    },
}

impl SourceError {
    /// The source the error is about (for a list fed by two families: the second one).
    pub fn source_name(&self) -> &str {
        match self {
            SourceError::Config { source_name, .. }
            | SourceError::Unreadable { source_name, .. }
            | SourceError::CsvSyntax { source_name, .. }
            | SourceError::CsvEncoding { source_name, .. }
            | SourceError::Truncated { source_name, .. }
            | SourceError::MissingColumn { source_name, .. }
            | SourceError::DuplicateColumn { source_name, .. }
            | SourceError::EmptyValue { source_name, .. }
            | SourceError::BadRole { source_name, .. }
            | SourceError::ColumnType { source_name, .. }
            | SourceError::ControlSyntax { source_name, .. }
            | SourceError::ControlRows { source_name, .. }
            | SourceError::ControlSha256 { source_name, .. }
            | SourceError::Unreachable { source_name, .. }
            | SourceError::Sql { source_name, .. }
            | SourceError::Directory { source_name, .. }
            | SourceError::CutShort { source_name, .. }
            | SourceError::NoGroup { source_name, .. }
            | SourceError::Timeout { source_name, .. }
            | SourceError::Override { source_name, .. }
            | SourceError::OverrideRow { source_name, .. }
            | SourceError::Empty { source_name }
            | SourceError::MinRows { source_name, .. }
            | SourceError::Shrink { source_name, .. }
            | SourceError::Unexpected { source_name, .. } => source_name,
        }
    }

    /// A short, stable id of the check that failed, for run reports and metrics.
    pub fn check(&self) -> &'static str {
        match self {
            SourceError::Config { .. } => "config",
            SourceError::Unreadable { .. } => "unreadable",
            SourceError::CsvSyntax { .. } => "csv-syntax",
            SourceError::CsvEncoding { .. } => "csv-encoding",
            SourceError::Truncated { .. } => "truncated",
            SourceError::MissingColumn { .. } => "missing-column",
            SourceError::DuplicateColumn { .. } => "duplicate-column",
            SourceError::EmptyValue { .. } => "empty-value",
            SourceError::BadRole { .. } => "bad-role",
            SourceError::ColumnType { .. } => "column-type",
            SourceError::ControlSyntax { .. } => "control-syntax",
            SourceError::ControlRows { .. } => "control-rows",
            SourceError::ControlSha256 { .. } => "control-sha256",
            SourceError::Unreachable { .. } => "unreachable",
            SourceError::Sql { .. } => "sql-error",
            SourceError::Directory { .. } => "directory-error",
            SourceError::CutShort { .. } => "cut-short",
            SourceError::NoGroup { .. } => "no-group",
            SourceError::Timeout { .. } => "timeout",
            SourceError::Override { .. } => "override",
            SourceError::OverrideRow { .. } => "override-row",
            SourceError::Empty { .. } => "empty",
            SourceError::MinRows { .. } => "min-rows",
            SourceError::Shrink { .. } => "shrink",
            SourceError::Unexpected { .. } => "internal",
        }
    }
}
