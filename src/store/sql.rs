//! Where the three SQL dialects differ: placeholders, upserts, and the id of a new row.
//!
//! Queries are written once with `?` placeholders; PostgreSQL gets them numbered.

use std::borrow::Cow;

use super::Backend;

/// Rows per multi-row INSERT. Nine columns × 1,000 rows stays under every backend's bind
/// limit (SQLite 32,766; PostgreSQL and MySQL 65,535) while cutting round trips a
/// thousandfold.
pub(crate) const CHUNK_ROWS: usize = 1_000;

/// Bind parameters one statement may carry on every backend (SQLite's limit is 32,766;
/// PostgreSQL's and MySQL's 65,535): multi-row writes are chunked to stay under it.
pub(crate) const MAX_BINDS: usize = 30_000;

/// `?, ?, …` for `n` placeholders.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `CASE key WHEN ? THEN ? … ELSE otherwise END` for `n` pairs: one column of a multi-row
/// UPDATE, each row's value bound after its key. With no pairs, just `otherwise` (a CASE
/// needs a WHEN).
pub(crate) fn case(key: &str, n: usize, otherwise: &str) -> String {
    if n == 0 {
        return otherwise.to_owned();
    }
    format!(
        "CASE {key}{} ELSE {otherwise} END",
        " WHEN ? THEN ?".repeat(n)
    )
}

/// The list that every row of a write belongs to, if they all belong to one: a refused
/// write then names it.
pub(crate) fn one_list<'a>(mut lists: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = lists.next()?;
    lists.all(|l| l == first).then_some(first)
}

impl Backend {
    /// The query in this backend's placeholder style.
    pub(crate) fn sql<'q>(self, query: &'q str) -> Cow<'q, str> {
        if self != Backend::Postgres || !query.contains('?') {
            return Cow::Borrowed(query);
        }
        // The store's queries carry no `?` inside string literals, so every `?` is a
        // placeholder.
        let mut out = String::with_capacity(query.len() + 16);
        let mut n = 0;
        for c in query.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// `INSERT INTO table (columns) VALUES (?, …), … ` for `rows` rows.
    pub(crate) fn insert(self, table: &str, columns: &[&str], rows: usize) -> String {
        let row = format!("({})", vec!["?"; columns.len()].join(", "));
        let values = vec![row.as_str(); rows].join(", ");
        format!(
            "INSERT INTO {table} ({}) VALUES {values}",
            columns.join(", ")
        )
    }

    /// The clause that turns an INSERT into an upsert on the `key` columns, overwriting
    /// `update`; with no `update` columns an existing row is kept as it is.
    pub(crate) fn on_conflict(self, key: &[&str], update: &[&str]) -> String {
        match self {
            Backend::Sqlite | Backend::Postgres => {
                if update.is_empty() {
                    format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "))
                } else {
                    let sets: Vec<String> = update
                        .iter()
                        .map(|c| format!("{c} = excluded.{c}"))
                        .collect();
                    format!(
                        " ON CONFLICT ({}) DO UPDATE SET {}",
                        key.join(", "),
                        sets.join(", ")
                    )
                }
            }
            Backend::Mysql => {
                // Not INSERT IGNORE: that would also swallow foreign-key violations.
                // VALUES() is what both MySQL 8 and MariaDB accept.
                let columns = if update.is_empty() { &key[..1] } else { update };
                let sets: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect();
                format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
        }
    }

    /// Whether a new row's generated id comes back with `RETURNING id` rather than as the
    /// last insert id: MySQL has no RETURNING, and sqlx's Any driver does not pass SQLite's
    /// last insert id on.
    pub(crate) fn returns_id(self) -> bool {
        self != Backend::Mysql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_numbered_placeholders() {
        assert_eq!(
            Backend::Postgres.sql("UPDATE t SET a = ? WHERE b = ? AND c = ?"),
            "UPDATE t SET a = $1 WHERE b = $2 AND c = $3"
        );
        assert_eq!(Backend::Mysql.sql("SELECT ?"), "SELECT ?");
        assert_eq!(Backend::Sqlite.sql("SELECT ?"), "SELECT ?");
    }

    #[test]
    fn multi_row_insert_has_one_group_per_row() {
        assert_eq!(
            Backend::Sqlite.insert("mirror", &["list_key", "member_id"], 2),
            "INSERT INTO mirror (list_key, member_id) VALUES (?, ?), (?, ?)"
        );
    }

    #[test]
    fn a_case_has_one_branch_per_row() {
        assert_eq!(
            case("seq", 2, "NULL"),
            "CASE seq WHEN ? THEN ? WHEN ? THEN ? ELSE NULL END"
        );
        assert_eq!(case("seq", 0, "NULL"), "NULL");
        assert_eq!(marks(3), "?, ?, ?");
        assert_eq!(
            Backend::Postgres.sql(&format!("SELECT {}", case("k", 1, "?"))),
            "SELECT CASE k WHEN $1 THEN $2 ELSE $3 END"
        );
    }

    #[test]
    fn upserts_per_dialect() {
        assert_eq!(
            Backend::Postgres.on_conflict(&["scope"], &["link"]),
            " ON CONFLICT (scope) DO UPDATE SET link = excluded.link"
        );
        assert_eq!(
            Backend::Mysql.on_conflict(&["scope"], &["link"]),
            " ON DUPLICATE KEY UPDATE link = VALUES(link)"
        );
        assert_eq!(
            Backend::Sqlite.on_conflict(&["a", "b"], &[]),
            " ON CONFLICT (a, b) DO NOTHING"
        );
        assert_eq!(
            Backend::Mysql.on_conflict(&["a", "b"], &[]),
            " ON DUPLICATE KEY UPDATE a = VALUES(a)"
        );
    }
}
