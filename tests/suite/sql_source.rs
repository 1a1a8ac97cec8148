//! SQL sources on SQLite, PostgreSQL and MariaDB: rows are read whole inside one read-only
//! snapshot, and every failure names the source.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rollcall::config::{Config, SourceConfig};
use rollcall::source::{SourceError, Witness, read_source, read_source_witnessed};
use sqlx::{AnyConnection, Connection};

use crate::common::db::{Backend, TestDatabase};
use crate::on_every_backend;

/// Opens a writable connection to the test database; an SQLite file is created in WAL mode,
/// which a reader needs to run beside a writer.
async fn connect(db: &TestDatabase) -> AnyConnection {
    sqlx::any::install_default_drivers();
    if db.backend == Backend::Sqlite {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
    }
    AnyConnection::connect(&db.url).await.unwrap()
}

async fn execute(conn: &mut AnyConnection, statements: &[&str]) {
    for statement in statements {
        sqlx::raw_sql(statement)
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

/// A configuration with one SQL source named `roster` over `url`.
fn source(url_line: &str, query: &str, member_key: &str, timeout: &str) -> SourceConfig {
    let text = format!(
        r#"
[[family]]
name = "modules"

[[source]]
name = "roster"
family = "modules"
kind = "sql"
{url_line}
query = '''{query}'''
member_key = "{member_key}"
timeout = "{timeout}"
"#
    );
    let mut config = Config::parse(&text, Path::new("rollcall.toml")).unwrap();
    config.sources.remove(0)
}

fn roster(db: &TestDatabase, query: &str) -> SourceConfig {
    source(&format!("url = '{}'", db.url), query, "upn", "60s")
}

const ENROLMENT: &str =
    "CREATE TABLE enrolment (list VARCHAR(100), member VARCHAR(200), display_name VARCHAR(200))";

fn assert_names(error: &SourceError, check: &str, parts: &[&str]) {
    let message = error.to_string();
    assert_eq!(error.check(), check, "{message}");
    assert_eq!(error.source_name(), "roster");
    assert!(message.contains("source `roster`"), "{message}");
    for part in parts {
        assert!(message.contains(part), "`{part}` missing in: {message}");
    }
}

async fn rows_are_read_and_normalized(db: TestDatabase) {
    let mut conn = connect(&db).await;
    execute(
        &mut conn,
        &[
            ENROLMENT,
            "INSERT INTO enrolment VALUES (' mod-a ', ' Ada@Example.AC.UK ', NULL)",
            "INSERT INTO enrolment VALUES ('mod-a', 'ada@example.ac.uk', 'Algebra')",
            "INSERT INTO enrolment VALUES ('mod-a', 'cy@example.ac.uk', '')",
            "INSERT INTO enrolment VALUES ('mod-b', 'BOB@example.ac.uk', NULL)",
        ],
    )
    .await;
    let query = "SELECT list, member, display_name FROM enrolment";
    let read = read_source(&roster(&db, query)).await.unwrap();
    assert_eq!((read.rows, read.distinct), (4, 3));
    let a = &read.lists["mod-a"];
    assert_eq!(
        a.members.iter().collect::<Vec<_>>(),
        ["ada@example.ac.uk", "cy@example.ac.uk"]
    );
    assert_eq!(a.display_name.as_deref(), Some("Algebra"));
    assert!(read.lists["mod-b"].members.contains("bob@example.ac.uk"));

    let reordered = format!("{query} ORDER BY member DESC, list DESC");
    let again = read_source(&roster(&db, &reordered)).await.unwrap();
    assert_eq!(again.checksum, read.checksum);
}

/// What `rollcall explain` reads: the rows naming one member on one list (any case), by
/// their row number and values; a normal read keeps none, and the lists are the same.
async fn a_witness_keeps_the_query_rows_that_name_one_member(db: TestDatabase) {
    let mut conn = connect(&db).await;
    execute(
        &mut conn,
        &[
            ENROLMENT,
            "INSERT INTO enrolment VALUES ('mod-b', 'ada@example.ac.uk', NULL)",
            "INSERT INTO enrolment VALUES ('MOD-A', ' Ada@Example.AC.UK ', 'Algebra')",
            "INSERT INTO enrolment VALUES ('mod-a', 'bob@example.ac.uk', NULL)",
        ],
    )
    .await;
    let source = roster(&db, "SELECT list, member, display_name FROM enrolment");
    let witness = Witness::new(Some("mod-a"), "upn:ada@example.ac.uk", source.member_key);
    let read = read_source_witnessed(&source, None, witness).await.unwrap();
    assert_eq!(read.sightings.len(), 1, "{:?}", read.sightings);
    let sighting = &read.sightings[0];
    assert_eq!(sighting.list, "MOD-A");
    // Row order is the database's: any of the three.
    assert!(
        ["query row 1", "query row 2", "query row 3"].contains(&sighting.place.as_str()),
        "{}",
        sighting.place
    );
    let values: Vec<(&str, &str)> = sighting
        .values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        values,
        [
            ("list", "MOD-A"),
            ("member", " Ada@Example.AC.UK "),
            ("display_name", "Algebra")
        ]
    );
    let plain = read_source(&source).await.unwrap();
    assert!(plain.sightings.is_empty());
    assert_eq!(plain.checksum, read.checksum);
}

async fn integer_member_column_is_read_as_text(db: TestDatabase) {
    let mut conn = connect(&db).await;
    execute(
        &mut conn,
        &[
            "CREATE TABLE staff (dept VARCHAR(50), employee_id INTEGER, big BIGINT)",
            "INSERT INTO staff VALUES ('cs', 1001, 9000000001)",
            "INSERT INTO staff VALUES ('cs', 1002, 9000000002)",
        ],
    )
    .await;
    let url = format!("url = '{}'", db.url);
    let query = "SELECT dept AS list, employee_id AS member FROM staff";
    let read = read_source(&source(&url, query, "employee_id", "60s"))
        .await
        .unwrap();
    assert_eq!(
        read.lists["cs"].members.iter().collect::<Vec<_>>(),
        ["1001", "1002"]
    );
    let query = "SELECT dept AS list, big AS member FROM staff";
    let read = read_source(&source(&url, query, "employee_id", "60s"))
        .await
        .unwrap();
    assert!(read.lists["cs"].members.contains("9000000002"));
}

async fn missing_column_is_reported_even_without_rows(db: TestDatabase) {
    let mut conn = connect(&db).await;
    execute(&mut conn, &[ENROLMENT]).await;
    let query = "SELECT list, member AS person FROM enrolment";
    let error = read_source(&roster(&db, query)).await.unwrap_err();
    assert_names(&error, "missing-column", &["query", "`member`", "person"]);

    execute(
        &mut conn,
        &["INSERT INTO enrolment VALUES ('l', 'm@x', NULL)"],
    )
    .await;
    let error = read_source(&roster(&db, query)).await.unwrap_err();
    assert_eq!(error.check(), "missing-column");
}

async fn null_member_names_the_row(db: TestDatabase) {
    let mut conn = connect(&db).await;
    execute(
        &mut conn,
        &[
            ENROLMENT,
            "INSERT INTO enrolment VALUES ('mod-a', 'a@x', NULL)",
            "INSERT INTO enrolment VALUES ('mod-a', NULL, NULL)",
        ],
    )
    .await;
    let query = "SELECT list, member FROM enrolment ORDER BY member";
    let error = read_source(&roster(&db, query)).await.unwrap_err();
    // NULL sorts first on SQLite and MariaDB, last on PostgreSQL.
    let row = if db.backend == Backend::Postgres {
        "query row 2"
    } else {
        "query row 1"
    };
    assert_names(&error, "empty-value", &[row, "`member`"]);
}

async fn unreadable_column_type_names_the_column(db: TestDatabase) {
    let _conn = connect(&db).await;
    let query = "SELECT 'mod-a' AS list, 2.5 AS member";
    let error = read_source(&roster(&db, query)).await.unwrap_err();
    assert_names(
        &error,
        "column-type",
        &["query row 1", "`member`", "cast it"],
    );
}

async fn writing_query_is_refused_by_the_read_only_transaction(db: TestDatabase) {
    let mut conn = connect(&db).await;
    execute(&mut conn, &[ENROLMENT]).await;
    let query = match db.backend {
        Backend::Postgres => {
            "WITH x AS (INSERT INTO enrolment (list, member) VALUES ('l', 'm@x') RETURNING list, member) SELECT list, member FROM x"
        }
        Backend::Mysql | Backend::Sqlite => {
            "INSERT INTO enrolment (list, member) VALUES ('l', 'm@x') RETURNING list, member"
        }
    };
    let error = read_source(&roster(&db, query)).await.unwrap_err();
    assert_names(&error, "sql-error", &[]);
    let message = error.to_string().to_lowercase();
    assert!(
        ["read-only", "read only", "readonly"]
            .iter()
            .any(|s| message.contains(s)),
        "{message}"
    );
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM enrolment")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 0, "the write must not have happened");
}

async fn unreachable_database_is_named_without_its_password(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let url = match db.backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("absent.db").display()),
        backend => {
            // A port that was just free and is now closed.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let scheme = if backend == Backend::Postgres {
                "postgres"
            } else {
                "mysql"
            };
            format!("{scheme}://rollcall:hunter2-secret@127.0.0.1:{port}/records")
        }
    };
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, &url).unwrap();
    let config = source(
        &format!("url_file = '{}'", url_file.display()),
        "SELECT list, member FROM enrolment",
        "upn",
        "60s",
    );
    let error = read_source(&config).await.unwrap_err();
    let message = error.to_string();
    assert!(!message.contains("hunter2-secret"), "{message}");
    match db.backend {
        Backend::Sqlite => assert_names(&error, "unreachable", &["absent.db", "does not exist"]),
        _ => assert_names(&error, "unreachable", &["127.0.0.1:", "rollcall:***@"]),
    }
    assert!(
        !dir.path().join("absent.db").exists(),
        "a source database is never created"
    );
}

async fn syntax_error_names_the_source(db: TestDatabase) {
    let mut conn = connect(&db).await;
    execute(&mut conn, &[ENROLMENT]).await;
    let error = read_source(&roster(&db, "SELEC list, member FROM enrolment"))
        .await
        .unwrap_err();
    assert_names(&error, "sql-error", &["the query failed"]);
}

async fn slow_query_times_out_naming_the_limit(db: TestDatabase) {
    let _conn = connect(&db).await;
    let query = match db.backend {
        Backend::Postgres => "SELECT 'l' AS list, 'm' AS member FROM pg_sleep(3)",
        Backend::Mysql => "SELECT 'l' AS list, 'm' AS member FROM (SELECT SLEEP(3) AS s) AS pause",
        // SQLite has no sleep; a query that never ends does as well.
        Backend::Sqlite => {
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT 'l' AS list, x AS member FROM n"
        }
    };
    let config = source(
        &format!("url = '{}'", db.url),
        query,
        "employee_id",
        "200ms",
    );
    let error = read_source(&config).await.unwrap_err();
    assert_names(&error, "timeout", &["200ms"]);
}

/// Runs statements in one transaction (a named function keeps the future `Send` for spawn).
async fn in_transaction(conn: &mut AnyConnection, statements: &[&String]) {
    let mut tx = conn.begin().await.unwrap();
    for statement in statements {
        sqlx::raw_sql(statement.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// People in the concurrent-writer scenario; each is on exactly one of two lists at a time.
const PEOPLE: u64 = 300;

async fn concurrent_writer_never_yields_a_torn_read(db: TestDatabase) {
    let mut conn = connect(&db).await;
    execute(
        &mut conn,
        &[
            "CREATE TABLE roster_a (member VARCHAR(50) PRIMARY KEY)",
            "CREATE TABLE roster_b (member VARCHAR(50) PRIMARY KEY)",
        ],
    )
    .await;
    let mut tx = conn.begin().await.unwrap();
    for person in 0..PEOPLE {
        let insert = format!("INSERT INTO roster_a (member) VALUES ('p{person}@x')");
        sqlx::raw_sql(&insert).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();

    let query = if db.backend == Backend::Postgres {
        // A volatile function's statements take a fresh snapshot under READ COMMITTED, so
        // this read stays whole only under a transaction-wide snapshot (REPEATABLE READ).
        // MariaDB and SQLite keep one read view per statement whatever the isolation, so
        // there the plain query guards the invariant, not the isolation level.
        execute(
            &mut conn,
            &[
                "CREATE FUNCTION roster_b_now() RETURNS SETOF roster_b AS $$ \
               BEGIN PERFORM pg_sleep(0.002); RETURN QUERY SELECT * FROM roster_b; END \
               $$ LANGUAGE plpgsql VOLATILE",
            ],
        )
        .await;
        "SELECT 'list-a' AS list, member FROM roster_a \
         UNION ALL SELECT 'list-b' AS list, member FROM roster_b_now()"
    } else {
        "SELECT 'list-a' AS list, member FROM roster_a \
         UNION ALL SELECT 'list-b' AS list, member FROM roster_b"
    };

    // The writer moves one person at a time between the two tables. Half the moves insert
    // before deleting, half delete before inserting, so a torn read would show someone
    // twice or not at all.
    let stop = Arc::new(AtomicBool::new(false));
    let moves = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, moves) = (stop.clone(), moves.clone());
        async move {
            let mut in_a = vec![true; PEOPLE as usize];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let person = (n * 7919) % PEOPLE;
                let (from, to) = if in_a[person as usize] {
                    ("roster_a", "roster_b")
                } else {
                    ("roster_b", "roster_a")
                };
                let delete = format!("DELETE FROM {from} WHERE member = 'p{person}@x'");
                let insert = format!("INSERT INTO {to} (member) VALUES ('p{person}@x')");
                let order = if n.is_multiple_of(2) {
                    [&insert, &delete]
                } else {
                    [&delete, &insert]
                };
                in_transaction(&mut conn, &order).await;
                in_a[person as usize] = !in_a[person as usize];
                n += 1;
                moves.store(n, Ordering::Relaxed);
            }
        }
    };

    let config = roster(&db, query);
    let reader = async {
        let mut reads = 0;
        // Keep reading until the writer has demonstrably run alongside many reads.
        while reads < 20 || moves.load(Ordering::Relaxed) < 50 {
            assert!(reads < 5_000, "the writer made no progress");
            let read = read_source(&config).await.unwrap();
            let on_lists: u64 = read.lists.values().map(|l| l.members.len() as u64).sum();
            let distinct: std::collections::BTreeSet<&String> =
                read.lists.values().flat_map(|l| &l.members).collect();
            assert_eq!(read.rows, PEOPLE, "read {reads} saw a torn snapshot");
            assert_eq!(
                on_lists, PEOPLE,
                "read {reads} saw someone twice or not at all"
            );
            assert_eq!(
                distinct.len() as u64,
                PEOPLE,
                "read {reads} saw a torn snapshot"
            );
            reads += 1;
        }
        stop.store(true, Ordering::Relaxed);
    };
    // One task drives both; each awaits the database, so their transactions overlap there.
    tokio::join!(writer, reader);
}

on_every_backend!(
    rows_are_read_and_normalized,
    a_witness_keeps_the_query_rows_that_name_one_member,
    integer_member_column_is_read_as_text,
    missing_column_is_reported_even_without_rows,
    null_member_names_the_row,
    unreadable_column_type_names_the_column,
    writing_query_is_refused_by_the_read_only_transaction,
    unreachable_database_is_named_without_its_password,
    syntax_error_names_the_source,
    slow_query_times_out_naming_the_limit,
    concurrent_writer_never_yields_a_torn_read,
);
