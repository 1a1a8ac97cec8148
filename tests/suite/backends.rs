//! How many of the three state backends this run of the suite tested for real. A
//! PostgreSQL or MariaDB test without a server returns early and shows `ok`; this test says
//! so in the output, and fails when every backend was required (`ROLLCALL_REQUIRE_BACKENDS=1`
//! or `CI=true`).

use crate::common::backends::{Found, find, visible};
use crate::common::db::{Backend, in_ci};

#[test]
fn backends_available() {
    let found: Vec<(Backend, Found)> = [Backend::Sqlite, Backend::Postgres, Backend::Mysql]
        .into_iter()
        .map(|backend| (backend, find(backend)))
        .collect();
    let ran = found
        .iter()
        .filter(|(_, f)| !matches!(f, Found::Missing(_)))
        .count();
    let each: Vec<String> = found
        .iter()
        .map(|(backend, found)| match found {
            Found::File => format!("{backend:?} (temporary file)"),
            Found::Configured(_) => format!("{backend:?} (server from the environment)"),
            Found::Private(_) => format!("{backend:?} (private server)"),
            Found::Missing(reason) => format!("{backend:?} SKIPPED: {reason}"),
        })
        .collect();
    visible(&format!("backends: {ran} of 3 tested: {}", each.join("; ")));
    let required = in_ci() || std::env::var("ROLLCALL_REQUIRE_BACKENDS").is_ok_and(|v| v == "1");
    assert!(
        !required || ran == 3,
        "only {ran} of 3 backends were tested and ROLLCALL_REQUIRE_BACKENDS=1 or CI=true asks for all: {}",
        each.join("; ")
    );
}
