//! Replays of the incidents rollcall exists to prevent (DESIGN.md "Why it exists").
//!
//! Half-copied data: after a converged first run, a source arrives incomplete (a CSV cut off
//! mid-row or at a row boundary, a header without rows, a stale control file, a shrink
//! against the last accepted snapshot, an SQL table with half its rows deleted, an
//! unreachable database). Each time the run stops with exit 3 before the first change: the
//! sandbox sees no write and keeps every member, and the run report names the source and
//! the check.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Connection};

use crate::common::db::{Backend, TestDatabase};
use crate::common::tenant::{Tenant, TenantOptions};
use crate::on_every_backend;

on_every_backend!(
    incomplete_csv_sources_stop_the_run_before_any_change,
    a_shrunk_source_stops_the_run_until_the_operator_accepts_the_shrink,
    a_half_deleted_or_unreachable_sql_source_stops_the_run_before_any_change,
);

/// The generated module lists' source.
const ENROLMENTS: &str = "enrolments";

/// The SQL source the SQL scenario adds.
const REGISTRY: &str = "registry";

/// A tenant after a first run that built every list.
async fn converged(db: TestDatabase) -> Tenant {
    let tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the first run");
    tenant
}

/// A CSV source as written, to cut up and put back.
struct CsvFile {
    path: PathBuf,
    control: PathBuf,
    bytes: Vec<u8>,
    control_bytes: Vec<u8>,
}

impl CsvFile {
    fn of(dir: &Path, name: &str) -> CsvFile {
        let path = dir.join(name);
        let control = dir.join(format!("{name}.ctl"));
        CsvFile {
            bytes: std::fs::read(&path).expect("the CSV is readable"),
            control_bytes: std::fs::read(&control).expect("the control file is readable"),
            path,
            control,
        }
    }

    /// The header line and each data row, line breaks included.
    fn lines(&self) -> Vec<&[u8]> {
        self.bytes.split_inclusive(|b| *b == b'\n').collect()
    }

    /// Replaces the CSV with `bytes`, leaving the control file as it was (stale).
    fn write_stale(&self, bytes: &[u8]) {
        std::fs::write(&self.path, bytes).expect("the CSV is written");
    }

    /// Replaces the CSV with `bytes` and writes a control file that agrees with them, as an
    /// exporter that copied only part of the data would.
    fn write_consistent(&self, bytes: &[u8]) {
        self.write_stale(bytes);
        let rows = bytes.iter().filter(|b| **b == b'\n').count() - 1;
        let control = format!(
            "rows={rows}\nsha256={}\n",
            hex::encode(Sha256::digest(bytes))
        );
        std::fs::write(&self.control, control).expect("the control file is written");
    }

    /// Puts back the CSV and control file as written.
    fn restore(&self) {
        std::fs::write(&self.path, &self.bytes).expect("the CSV is restored");
        std::fs::write(&self.control, &self.control_bytes).expect("the control file is restored");
    }

    /// The header and every data row except each `nth` one.
    fn without_every(&self, nth: usize) -> Vec<u8> {
        let lines = self.lines();
        let mut kept = lines[0].to_vec();
        for (i, line) in lines[1..].iter().enumerate() {
            if (i + 1) % nth != 0 {
                kept.extend_from_slice(line);
            }
        }
        kept
    }
}

/// Runs `rollcall ARGS…` and checks that it stopped before any change because `source`
/// failed `check`: exit 3, the check named on stderr, no write at the sandbox and every
/// group exactly as it was, and `show RUN` (JSON and text) naming the source and check.
async fn assert_stopped_by(tenant: &Tenant, args: &[&str], source: &str, check: &str) {
    let when = format!(
        "`rollcall {}` with `{source}` failing `{check}`",
        args.join(" ")
    );
    let (run, show) = tenant
        .assert_stopped_before_any_change(args, &format!("source check `{check}` failed"), &when)
        .await;
    assert_eq!(
        show["report"]["failed_check"],
        json!({"source": source, "check": check}),
        "{when}: the report does not name the failed check: {show}"
    );
    let text = tenant.rollcall(&["show", &run]).await;
    text.expect(0);
    let line = format!("source check failed: `{check}` on source {source}");
    assert!(
        text.stdout.contains(&line),
        "{when}: `show {run}` lacks `{line}`:\n{}",
        text.stdout
    );
}

/// A run with the sources as they were changes nothing and leaves every list converged.
async fn assert_recovers_without_a_write(tenant: &Tenant, when: &str) {
    let writes = tenant.stat("writes");
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(tenant.stat("writes"), writes, "{when}: writes were sent");
    tenant.assert_converged(when);
}

async fn incomplete_csv_sources_stop_the_run_before_any_change(db: TestDatabase) {
    let tenant = converged(db).await;
    let modules = CsvFile::of(tenant.dir(), "modules.csv");
    let lines = modules.lines();
    let rows = lines.len() - 1;

    // Cut off mid-row: the last line has no line break.
    let cut = lines[..rows * 2 / 3].concat().len() + lines[rows * 2 / 3].len() / 2;
    modules.write_stale(&modules.bytes[..cut]);
    assert_stopped_by(&tenant, &["run"], ENROLMENTS, "truncated").await;

    // Cut off at a row boundary: every row parses, but the control file disagrees.
    let at_boundary = lines[..rows * 2 / 3].concat();
    modules.write_stale(&at_boundary);
    assert_stopped_by(&tenant, &["run"], ENROLMENTS, "control-rows").await;

    // The same cut with a control file that agrees: fewer rows than `min_rows`.
    modules.write_consistent(&at_boundary);
    assert_stopped_by(&tenant, &["run"], ENROLMENTS, "min-rows").await;
    assert_stopped_by(&tenant, &["plan"], ENROLMENTS, "min-rows").await;

    // A header without rows, its control file saying so: an empty source.
    modules.write_consistent(lines[0]);
    assert_stopped_by(&tenant, &["run"], ENROLMENTS, "empty").await;

    // Every row there, but the last one's list key changed after the control file was
    // written: a stale control file, caught by its digest.
    modules.restore();
    let mut changed = modules.bytes.clone();
    let last = changed.len() - lines[rows].len();
    changed[last] = if changed[last] == b'x' { b'y' } else { b'x' };
    modules.write_stale(&changed);
    assert_stopped_by(&tenant, &["run"], ENROLMENTS, "control-sha256").await;

    modules.restore();
    assert_recovers_without_a_write(&tenant, "after the sources were restored").await;
    tenant.finish();
}

async fn a_shrunk_source_stops_the_run_until_the_operator_accepts_the_shrink(db: TestDatabase) {
    let mut tenant = converged(db).await;
    // Only the shrink check may catch this cut, so `min_rows` must not.
    tenant.set_source(ENROLMENTS, "min_rows", 0);
    let modules = CsvFile::of(tenant.dir(), "modules.csv");
    // A third of the rows gone, the control file rewritten to match: 33 % > 10 %.
    modules.write_consistent(&modules.without_every(3));

    assert_stopped_by(&tenant, &["run"], ENROLMENTS, "shrink").await;
    assert_stopped_by(&tenant, &["plan"], ENROLMENTS, "shrink").await;
    let stopped = tenant.rollcall(&["run"]).await;
    for part in ["--accept-shrink enrolments", "max_source_shrink_percent"] {
        assert!(
            stopped.stderr.contains(part),
            "the shrink message lacks `{part}`:\n{}",
            stopped.stderr
        );
    }
    // A stopped run's snapshot is no baseline: the shrink still counts from the first run.
    assert_stopped_by(&tenant, &["run"], ENROLMENTS, "shrink").await;

    // Another source's name accepts nothing; an unknown one is a usage error.
    assert_stopped_by(
        &tenant,
        &["run", "--accept-shrink", "people"],
        ENROLMENTS,
        "shrink",
    )
    .await;
    tenant
        .rollcall(&["run", "--accept-shrink", "enrolment"])
        .await
        .expect(2);

    // Accepted: the plan goes ahead (its removals approved as well, since they are real).
    let writes = tenant.stat("writes");
    let accepted = [
        "run",
        "--accept-shrink",
        ENROLMENTS,
        "--accept-removals",
        "100000",
        "--reason",
        "a third of the modules closed",
    ];
    tenant.rollcall(&accepted).await.expect(0);
    assert!(
        tenant.stat("writes") > writes,
        "the accepted run removed nobody"
    );
    let show = tenant.show_last_run().await;
    assert_eq!(
        show["approvals"]["accept_shrink"],
        json!([ENROLMENTS]),
        "{show}"
    );
    assert_eq!(show["report"]["failed_check"], Value::Null, "{show}");
    let warned = show["report"]["warnings"].as_array().is_some_and(|w| {
        w.iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("shrank")))
    });
    assert!(
        warned,
        "the accepted shrink is not among the warnings: {show}"
    );

    // The accepted snapshot is the new baseline: the same rows pass without approval, and
    // growing back to the full source passes too.
    let writes = tenant.stat("writes");
    tenant.rollcall(&["run"]).await.expect(0);
    assert_eq!(
        tenant.stat("writes"),
        writes,
        "a run on the accepted rows wrote"
    );
    modules.restore();
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_converged("after the full source came back");
    tenant.finish();
}

/// The SQL scenario's lists: `sql-list-N`, each with a few people of the university.
const SQL_LISTS: usize = 4;
const SQL_MEMBERS: usize = 12;

async fn a_half_deleted_or_unreachable_sql_source_stops_the_run_before_any_change(
    db: TestDatabase,
) {
    // SQLite's source is a file of its own; the server backends keep `v_lists` in the test
    // database, beside the state tables.
    let sqlite_dir = tempfile::tempdir().expect("a temporary folder");
    let source_url = match db.backend {
        Backend::Sqlite => format!(
            "sqlite://{}",
            sqlite_dir.path().join("registry.db").display()
        ),
        Backend::Postgres | Backend::Mysql => db.url.clone(),
    };
    let backend = db.backend;
    let mut tenant = converged(db).await;

    let mut conn = connect(backend, &source_url).await;
    execute(
        &mut conn,
        "CREATE TABLE v_lists (list VARCHAR(100) NOT NULL, member VARCHAR(200) NOT NULL)",
    )
    .await;
    let people: Vec<String> = tenant
        .initial
        .users
        .iter()
        .map(|u| u.user_principal_name.clone())
        .collect();
    for list in 0..SQL_LISTS {
        for member in 0..SQL_MEMBERS {
            let upn = &people[(list * SQL_MEMBERS + member) % people.len()];
            execute(
                &mut conn,
                &format!("INSERT INTO v_lists (list, member) VALUES ('sql-list-{list}', '{upn}')"),
            )
            .await;
        }
    }
    tenant.add_config(&format!(
        "[[family]]\nname = \"registry\"\nmail_nickname = \"{{list}}\"\n\n\
         [[source]]\nname = \"{REGISTRY}\"\nfamily = \"registry\"\nkind = \"sql\"\n\
         url = '{source_url}'\nquery = \"SELECT list, member FROM v_lists\"\nmember_key = \"upn\"\n"
    ));
    tenant.rollcall(&["run"]).await.expect(0);
    let groups_with_sql = tenant.sandbox.state().groups.len();

    // Half the rows deleted: the query succeeds, but the source shrank by 50 %.
    execute(
        &mut conn,
        "DELETE FROM v_lists WHERE list IN ('sql-list-0', 'sql-list-1')",
    )
    .await;
    assert_stopped_by(&tenant, &["run"], REGISTRY, "shrink").await;

    // The database is not there at all: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = closed.local_addr().expect("the port").port();
    drop(closed);
    let scheme = if backend == Backend::Mysql {
        "mysql://root"
    } else {
        "postgres://postgres"
    };
    tenant.set_source(
        REGISTRY,
        "url",
        format!("{scheme}@127.0.0.1:{port}/registry"),
    );
    assert_stopped_by(&tenant, &["run"], REGISTRY, "unreachable").await;
    assert_eq!(
        tenant.sandbox.state().groups.len(),
        groups_with_sql,
        "a group appeared or vanished"
    );
    conn.close().await.expect("the source connection closes");
    tenant.finish();
}

async fn connect(backend: Backend, url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    if backend == Backend::Sqlite {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("the SQLite URL parses")
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("the SQLite source is created")
            .close()
            .await
            .expect("the SQLite source closes");
    }
    AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the SQL source {url}: {e}"))
}

async fn execute(conn: &mut AnyConnection, statement: &str) {
    sqlx::raw_sql(statement)
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}
