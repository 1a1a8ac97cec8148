//! ODBC sources through the distribution's PostgreSQL and MariaDB drivers: the same lists as
//! the equivalent `sql` source, and a hung query stopped at `timeout`. A build without the
//! `odbc` feature refuses the kind with a usage error that says how to build with it.

#[cfg(feature = "odbc")]
mod with_odbc {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use rollcall::config::{Config, SourceConfig};
    use rollcall::source::{Witness, read_source, read_source_witnessed};
    use sqlx::{AnyConnection, Connection};

    use crate::common::db::{Backend, TestDatabase, in_ci};
    use crate::common::numbered;
    use crate::common::scene::Scene;

    /// The Debian drivers, named by path so that no odbcinst.ini needs editing.
    const PSQL_DRIVER: &str = "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so";
    const MARIADB_DRIVER: &str = "/usr/lib/x86_64-linux-gnu/odbc/libmaodbc.so";

    /// The driver for a backend, or `None` (with a line saying so) outside CI when absent.
    fn driver(backend: Backend) -> Option<&'static str> {
        let path = match backend {
            Backend::Postgres => PSQL_DRIVER,
            _ => MARIADB_DRIVER,
        };
        if Path::new(path).exists() {
            return Some(path);
        }
        assert!(
            !in_ci(),
            "{path} is missing (apt-get install odbc-postgresql odbc-mariadb); CI must run the ODBC tests"
        );
        println!("SKIPPED: {path} is missing (apt-get install odbc-postgresql odbc-mariadb)");
        None
    }

    /// An ODBC connection string for the test database behind `db`.
    fn connection_string(db: &TestDatabase, driver: &str) -> String {
        let url = url::Url::parse(&db.url).unwrap();
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port().unwrap_or(match db.backend {
            Backend::Postgres => 5432,
            _ => 3306,
        });
        let database = url.path().trim_start_matches('/');
        let user = url.username();
        let password = url.password().unwrap_or_default();
        match db.backend {
            Backend::Postgres => format!(
                "Driver={driver};Server={host};Port={port};Database={database};Uid={user};Pwd={password};"
            ),
            _ => format!(
                "Driver={driver};Server={host};Port={port};Database={database};User={user};Password={password};CHARSET=utf8mb4;"
            ),
        }
    }

    fn parse_source(text: &str) -> SourceConfig {
        let mut config = Config::parse(
            &format!("[[family]]\nname = \"modules\"\n{text}"),
            Path::new("rollcall.toml"),
        )
        .unwrap();
        config.sources.remove(0)
    }

    const QUERY: &str = "SELECT list, member, display_name FROM enrolment";

    async fn fill(db: &TestDatabase) {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(&db.url).await.unwrap();
        for statement in [
            "CREATE TABLE enrolment (list VARCHAR(100), member VARCHAR(200), display_name VARCHAR(200))",
            "INSERT INTO enrolment VALUES (' mod-a ', ' Ada@Example.AC.UK ', NULL)",
            "INSERT INTO enrolment VALUES ('mod-a', 'ada@example.ac.uk', 'Algebra â Geometreg')",
            "INSERT INTO enrolment VALUES ('mod-a', 'siân@example.ac.uk', '')",
            "INSERT INTO enrolment VALUES ('mod-b', 'BOB@example.ac.uk', NULL)",
        ] {
            sqlx::raw_sql(statement)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        conn.close().await.unwrap();
    }

    async fn odbc_reads_the_same_lists_as_sql(backend: Backend) {
        let Some(driver) = driver(backend) else {
            return;
        };
        let Some(db) = TestDatabase::create(backend).await else {
            return;
        };
        fill(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("odbc.conn");
        std::fs::write(&secret, connection_string(&db, driver)).unwrap();
        let odbc = parse_source(&format!(
            "[[source]]\nname = \"roster\"\nfamily = \"modules\"\nkind = \"odbc\"\n\
             connection_string_file = '{}'\nquery = '{QUERY}'\nmember_key = \"upn\"\n",
            secret.display()
        ));
        let sql = parse_source(&format!(
            "[[source]]\nname = \"roster\"\nfamily = \"modules\"\nkind = \"sql\"\n\
             url = '{}'\nquery = '{QUERY}'\nmember_key = \"upn\"\n",
            db.url
        ));
        let by_odbc = read_source(&odbc).await.unwrap();
        let by_sql = read_source(&sql).await.unwrap();
        assert_eq!(by_odbc.lists, by_sql.lists);
        assert_eq!(
            (by_odbc.rows, by_odbc.distinct, &by_odbc.checksum),
            (by_sql.rows, by_sql.distinct, &by_sql.checksum)
        );
        assert_eq!(
            by_odbc.lists["mod-a"].display_name.as_deref(),
            Some("Algebra â Geometreg")
        );
        // `explain`'s witness sees the same row through either driver.
        let witness = || Witness::new(Some("MOD-A"), "upn:Siân@example.ac.uk", odbc.member_key);
        let by_odbc = read_source_witnessed(&odbc, None, witness()).await.unwrap();
        let by_sql = read_source_witnessed(&sql, None, witness()).await.unwrap();
        assert_eq!(by_odbc.sightings.len(), 1, "{:?}", by_odbc.sightings);
        assert_eq!(by_odbc.sightings[0].values, by_sql.sightings[0].values);
        assert!(by_odbc.sightings[0].place.starts_with("query row "));

        let missing = parse_source(&format!(
            "[[source]]\nname = \"roster\"\nfamily = \"modules\"\nkind = \"odbc\"\n\
             connection_string_file = '{}'\nquery = 'SELECT list AS course, member FROM enrolment'\nmember_key = \"upn\"\n",
            secret.display()
        ));
        let error = read_source(&missing).await.unwrap_err();
        assert_eq!(error.check(), "missing-column", "{error}");
        assert!(error.to_string().contains("course"), "{error}");
        db.destroy().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn odbc_over_the_postgresql_driver_reads_the_same_lists_as_sql() {
        odbc_reads_the_same_lists_as_sql(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn odbc_over_the_mariadb_driver_reads_the_same_lists_as_sql() {
        odbc_reads_the_same_lists_as_sql(Backend::Mysql).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn odbc_hung_query_stops_at_timeout_with_exit_3() {
        let Some(driver) = driver(Backend::Postgres) else {
            return;
        };
        let Some(db) = TestDatabase::create(Backend::Postgres).await else {
            return;
        };
        let mut scene = Scene::start(numbered::seed(2, &[])).await;
        scene.env("ROLLCALL_TEST_ODBC", &connection_string(&db, driver));
        scene.write_config(
            "[[family]]\nname = \"modules\"\n\n[[source]]\nname = \"sis\"\nfamily = \"modules\"\nkind = \"odbc\"\n\
             connection_string_env = \"ROLLCALL_TEST_ODBC\"\n\
             query = \"SELECT 'mod-a' AS list, 'user0@example.ac.uk' AS member FROM pg_sleep(60)\"\n\
             member_key = \"upn\"\ntimeout = \"2s\"\n",
        );
        let started = Instant::now();
        let run = scene.rollcall(&["run"]).await;
        run.expect(3);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            run.stderr.contains("source `sis`") && run.stderr.contains("within 2s"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("Pwd="), "{}", run.stderr);
        db.destroy().await;
    }
}

#[cfg(not(feature = "odbc"))]
#[tokio::test]
async fn odbc_source_without_the_feature_is_a_usage_error_saying_how_to_build() {
    let scene = crate::common::scene::Scene::start(crate::common::numbered::seed(1, &[])).await;
    scene.write_config(
        "[[family]]\nname = \"modules\"\n\n[[source]]\nname = \"sis\"\nfamily = \"modules\"\nkind = \"odbc\"\n\
         connection_string_env = \"ROLLCALL_TEST_ODBC\"\nquery = \"SELECT 1\"\nmember_key = \"upn\"\n",
    );
    let check = scene.rollcall(&["config", "check"]).await;
    check.expect(2);
    assert!(
        check.stderr.contains("source[0].kind") && check.stderr.contains("--features odbc"),
        "{}",
        check.stderr
    );
}
