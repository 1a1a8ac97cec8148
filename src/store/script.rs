//! Statements built once and sent either with bound parameters or, several together, as one
//! script in one round trip with their values written in as literals.
//!
//! sqlx does not pipeline: every statement is a round trip to the server, and on PostgreSQL a
//! multi-row statement of a size not seen before is one more (its Parse). A batch commit is
//! the same handful of statements every time, so it is sent as one text over the simple
//! query protocol (MySQL/MariaDB: multi-statements; SQLite: one call into its worker), with
//! each value quoted so that no text can end its literal (see [`Backend::literal`]).

use std::fmt::Write as _;

use sqlx::any::{AnyQueryResult, AnyRow};
use sqlx::{AnyConnection, Executor as _};

use super::Backend;

/// A value for a statement's `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Int(i64),
    Text(&'a str),
    /// A NULL text.
    Null,
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}

/// One statement written with `?` placeholders, and the values that fill them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stmt<'a> {
    sql: String,
    values: Vec<Value<'a>>,
}

impl<'a> Stmt<'a> {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Stmt {
            sql: sql.into(),
            values: Vec::new(),
        }
    }

    /// Gives the next `?` its value.
    pub(crate) fn bind(mut self, value: impl Into<Value<'a>>) -> Self {
        self.values.push(value.into());
        self
    }

    /// Sends the statement alone, its values bound as parameters.
    pub(crate) async fn execute(
        &self,
        backend: Backend,
        conn: &mut AnyConnection,
    ) -> Result<AnyQueryResult, sqlx::Error> {
        let sql = backend.sql(&self.sql);
        let mut query = sqlx::query(&sql);
        for value in &self.values {
            query = match *value {
                Value::Int(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Null => query.bind(None::<&str>),
            };
        }
        query.execute(conn).await
    }
}

/// Statements sent as one text in one round trip. The server runs them in order and stops
/// at the first that fails; what they did stays inside the caller's transaction, which the
/// caller then rolls back.
#[derive(Debug)]
pub(crate) struct Script {
    backend: Backend,
    text: String,
}

impl Script {
    pub(crate) fn new(backend: Backend) -> Self {
        Script {
            backend,
            text: String::new(),
        }
    }

    /// Appends a statement with its values written in.
    pub(crate) fn push(&mut self, stmt: &Stmt<'_>) {
        let mut values = stmt.values.iter();
        for c in stmt.sql.chars() {
            if c == '?' {
                let value = values.next().expect("a value for every `?`");
                self.backend.literal(*value, &mut self.text);
            } else {
                self.text.push(c);
            }
        }
        assert!(values.next().is_none(), "a `?` for every value");
        self.text.push_str(";\n");
    }

    /// Appends a statement that has no values (`BEGIN`, `COMMIT`).
    pub(crate) fn push_sql(&mut self, sql: &str) {
        self.text.push_str(sql);
        self.text.push_str(";\n");
    }

    /// Sends the script and returns the rows its statements return.
    pub(crate) async fn fetch_all(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        conn.fetch_all(sqlx::raw_sql(&self.text)).await
    }

    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

impl Backend {
    /// Writes `value` as a literal of this backend. Texts cannot end their literal early:
    /// PostgreSQL gets an escape string (`E'…'`, quote and backslash escaped, whatever
    /// `standard_conforming_strings` says), SQLite a quoted string (quote doubled, it has no
    /// backslash escapes), MySQL/MariaDB a hexadecimal utf8mb4 string (`_utf8mb4 X'…'`, the
    /// same under every `sql_mode`). A NUL, which no backend's text column holds, becomes
    /// U+FFFD.
    pub(crate) fn literal(self, value: Value<'_>, out: &mut String) {
        let text = match value {
            Value::Int(v) => {
                let _ = write!(out, "{v}");
                return;
            }
            Value::Null => {
                out.push_str("NULL");
                return;
            }
            Value::Text(text) => text,
        };
        match self {
            Backend::Mysql => {
                out.push_str("_utf8mb4 X'");
                let mut buf = [0; 4];
                for c in text.chars() {
                    let c = if c == '\0' { '\u{FFFD}' } else { c };
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "{byte:02X}");
                    }
                }
                out.push('\'');
            }
            Backend::Postgres | Backend::Sqlite => {
                out.push_str(if self == Backend::Postgres { "E'" } else { "'" });
                for c in text.chars() {
                    match c {
                        '\'' => out.push_str("''"),
                        '\\' if self == Backend::Postgres => out.push_str("\\\\"),
                        '\0' => out.push('\u{FFFD}'),
                        c => out.push(c),
                    }
                }
                out.push('\'');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(backend: Backend, value: Value<'_>) -> String {
        let mut out = String::new();
        backend.literal(value, &mut out);
        out
    }

    #[test]
    fn texts_cannot_end_their_literal() {
        let nasty = "O'Brien\\'; DROP TABLE journal; --\0é";
        assert_eq!(
            literal(Backend::Postgres, Value::Text(nasty)),
            "E'O''Brien\\\\''; DROP TABLE journal; --\u{FFFD}é'"
        );
        assert_eq!(
            literal(Backend::Sqlite, Value::Text(nasty)),
            "'O''Brien\\''; DROP TABLE journal; --\u{FFFD}é'"
        );
        assert_eq!(
            literal(Backend::Mysql, Value::Text("a'\\é")),
            "_utf8mb4 X'61275CC3A9'"
        );
        assert_eq!(literal(Backend::Mysql, Value::Text("")), "_utf8mb4 X''");
        assert_eq!(literal(Backend::Sqlite, Value::Int(-42)), "-42");
        assert_eq!(literal(Backend::Postgres, Value::Null), "NULL");
    }

    #[test]
    fn a_script_writes_each_statement_with_its_values() {
        let mut script = Script::new(Backend::Sqlite);
        script.push_sql("BEGIN");
        script.push(
            &Stmt::new("UPDATE t SET a = ?, b = ? WHERE c = ?")
                .bind(1_i64)
                .bind(None::<&str>)
                .bind("x"),
        );
        script.push_sql("COMMIT");
        assert_eq!(
            script.text(),
            "BEGIN;\nUPDATE t SET a = 1, b = NULL WHERE c = 'x';\nCOMMIT;\n"
        );
    }

    #[test]
    #[should_panic(expected = "a value for every `?`")]
    fn a_missing_value_is_a_bug() {
        Script::new(Backend::Sqlite).push(&Stmt::new("SELECT ?"));
    }
}
