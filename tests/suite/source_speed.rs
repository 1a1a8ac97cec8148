//! Rows per second for each source kind on a generated university, measured, not asserted:
//!
//! ```text
//! cargo test --release --features odbc --test suite source_rows_per_second -- --ignored --nocapture
//! ```
//!
//! `sql` and `odbc` read the same PostgreSQL table (the modules' memberships), `ldap` one
//! entry per person from a private slapd, `entra` every account through the sandbox.
//! ROLLCALL_SPEED_STUDENTS sets the size (default 40,000: the large university); `.ci/run`
//! runs it with 2,000 so that it keeps working.

use std::path::Path;
use std::time::Instant;

use rollcall::config::Config;
use rollcall::generate::{GenerateOptions, University, generate};
use rollcall::graph::GraphClient;
use rollcall::sandbox::{Sandbox, SandboxOptions};
use rollcall::source::{SourceRead, read_source, read_source_with};
use sqlx::Connection;

use crate::common::db::{Backend, TestDatabase};
use crate::common::slapd::{READER_DN, READER_PASSWORD, SUFFIX, Slapd};

fn parse(text: &str) -> Config {
    Config::parse(
        &format!("[[family]]\nname = \"f\"\n{text}"),
        Path::new("rollcall.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn report(kind: &str, read: &SourceRead, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{kind:<28} {:>8} rows {:>8.2} s {:>10.0} rows/s",
        read.rows,
        seconds,
        read.rows as f64 / seconds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (minutes at full size); .ci/run runs it small, see the module's documentation"]
async fn source_rows_per_second() {
    let students = std::env::var("ROLLCALL_SPEED_STUDENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40_000);
    let university = generate(&GenerateOptions {
        students,
        seed: 42,
        drift: false,
    });
    let dir = tempfile::tempdir().unwrap();
    university.write(dir.path()).unwrap();
    println!("university of {students} students:");
    sql_and_odbc(dir.path()).await;
    ldap(&university, dir.path()).await;
    entra(&university, dir.path()).await;
}

async fn sql_and_odbc(dir: &Path) {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE enrolment (list TEXT, member TEXT, role TEXT, display_name TEXT, description TEXT)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let mut copy = conn
        .copy_in_raw("COPY enrolment FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .unwrap();
    copy.send(std::fs::read(dir.join("modules.csv")).unwrap())
        .await
        .unwrap();
    copy.finish().await.unwrap();
    conn.close().await.unwrap();
    let query = "SELECT list, member, role, display_name FROM enrolment";
    let sql = parse(&format!(
        "[[source]]\nname = \"s\"\nfamily = \"f\"\nkind = \"sql\"\nurl = '{}'\nquery = '{query}'\nmember_key = \"upn\"\n",
        db.url
    ));
    let started = Instant::now();
    let by_sql = read_source(&sql.sources[0]).await.unwrap();
    report("sql (PostgreSQL, sqlx)", &by_sql, started);
    #[cfg(feature = "odbc")]
    {
        let url = url::Url::parse(&db.url).unwrap();
        let secret = dir.join("odbc.conn");
        std::fs::write(
            &secret,
            format!(
                "Driver=/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so;Server={};Port={};Database={};Uid={};Pwd={};",
                url.host_str().unwrap(),
                url.port().unwrap_or(5432),
                url.path().trim_start_matches('/'),
                url.username(),
                url.password().unwrap_or_default()
            ),
        )
        .unwrap();
        let odbc = parse(&format!(
            "[[source]]\nname = \"s\"\nfamily = \"f\"\nkind = \"odbc\"\nconnection_string_file = '{}'\nquery = '{query}'\nmember_key = \"upn\"\n",
            secret.display()
        ));
        let started = Instant::now();
        let by_odbc = read_source(&odbc.sources[0]).await.unwrap();
        report("odbc (PostgreSQL, psqlODBC)", &by_odbc, started);
        assert_eq!(by_odbc.checksum, by_sql.checksum);
    }
    db.destroy().await;
}

async fn ldap(university: &University, dir: &Path) {
    let mut ldif = String::new();
    for (n, person) in university.people.iter().enumerate() {
        let department = &university.departments[person.department].name;
        ldif.push_str(&format!(
            "\ndn: uid=p{n},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: p{n}\ncn: {}\nsn: p{n}\nmail: {}\ndepartmentNumber: {department}\n",
            person.display_name, person.upn
        ));
    }
    let Some(slapd) = Slapd::start("sizelimit unlimited", &ldif) else {
        return;
    };
    let secret = dir.join("ldap.password");
    std::fs::write(&secret, READER_PASSWORD).unwrap();
    let config = parse(&format!(
        "[[source]]\nname = \"s\"\nfamily = \"f\"\nkind = \"ldap\"\nurl = \"{}\"\nbind_dn = \"{READER_DN}\"\n\
         password_file = '{}'\nbase = \"ou=people,{SUFFIX}\"\nfilter = \"(objectClass=inetOrgPerson)\"\n\
         list = \"dept-{{departmentNumber|slug}}\"\nmember = \"{{mail}}\"\nmember_key = \"upn\"\n",
        slapd.url,
        secret.display()
    ));
    let started = Instant::now();
    let read = read_source(&config.sources[0]).await.unwrap();
    report("ldap (OpenLDAP, paged)", &read, started);
}

async fn entra(university: &University, dir: &Path) {
    let sandbox = Sandbox::start(SandboxOptions {
        seed: university.sandbox_seed(),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let secret = dir.join("graph.secret");
    std::fs::write(&secret, SandboxOptions::default().client_secret).unwrap();
    let graph = sandbox.graph_toml(&format!("client_secret_file = '{}'", secret.display()));
    let config = parse(&format!(
        "{graph}\n[[source]]\nname = \"s\"\nfamily = \"f\"\nkind = \"entra\"\n\
         users_filter = \"accountEnabled eq true\"\nlist = \"dept-{{department|slug}}\"\nmember_key = \"object_id\"\n"
    ));
    let client = GraphClient::connect(config.graph.as_ref().unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let read = read_source_with(&config.sources[0], Some(&client))
        .await
        .unwrap();
    report("entra (sandbox, 999/page)", &read, started);
}
