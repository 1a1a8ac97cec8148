//! CSV sources as they really arrive, end to end: the same university exported with `;` (as
//! Excel writes it in much of Europe) and with tabs builds the same lists as with commas; a
//! delimiter that is no delimiter is a configuration error (exit 2); an export in another
//! encoding than UTF-8 stops the run before any change (exit 3) naming file and line.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::common::db::{Backend, TestDatabase};
use crate::common::tenant::{Tenant, TenantOptions};

async fn tenant() -> Option<Tenant> {
    let db = TestDatabase::create(Backend::Sqlite).await?;
    Some(Tenant::start(db, TenantOptions::new()).await)
}

/// Rewrites the generated export `name` (and its control file) with `delimiter` between
/// fields, as another exporter would write the same records.
fn export_with(dir: &Path, name: &str, delimiter: u8) {
    let path = dir.join(name);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(&path)
        .expect("the generated export opens");
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    let mut rows = 0_u64;
    for record in reader.records() {
        writer
            .write_record(&record.expect("the generated export parses"))
            .expect("the row is written");
        rows += 1;
    }
    let bytes = writer.into_inner().expect("the export is complete");
    std::fs::write(&path, &bytes).expect("the export is written");
    let control = format!(
        "rows={}\nsha256={}\n",
        rows - 1,
        hex::encode(Sha256::digest(&bytes))
    );
    std::fs::write(dir.join(format!("{name}.ctl")), control).expect("the control file is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_with_semicolons_and_tabs_build_the_same_lists_as_with_commas() {
    let Some(mut tenant) = tenant().await else {
        return;
    };
    export_with(tenant.dir(), "modules.csv", b';');
    export_with(tenant.dir(), "departments.csv", b'\t');
    let modules = std::fs::read_to_string(tenant.dir().join("modules.csv")).unwrap();
    assert!(
        modules
            .lines()
            .next()
            .is_some_and(|h| h.contains(';') && !h.contains(',')),
        "the export was not rewritten with semicolons:\n{}",
        &modules[..modules.len().min(200)]
    );
    tenant.set_source("enrolments", "delimiter", ";");
    tenant.set_source("people", "delimiter", "tab");

    tenant.rollcall(&["run"]).await.expect(0);
    tenant
        .assert_verified("after a build from `;` and tab exports")
        .await;
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delimiter_that_is_no_delimiter_is_exit_2_naming_the_key() {
    let Some(mut tenant) = tenant().await else {
        return;
    };
    for bad in ["::", "\"", "\n", "x"] {
        tenant.set_source("enrolments", "delimiter", bad);
        let ran = tenant.rollcall(&["run"]).await;
        ran.expect(2);
        assert!(
            ran.stderr.contains("source[0].delimiter"),
            "delimiter = {bad:?}: stderr does not name the key:\n{}",
            ran.stderr
        );
    }
    assert_eq!(tenant.stat("writes"), 0, "a config error wrote");
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_that_is_not_utf8_stops_the_run_naming_file_and_line() {
    let Some(tenant) = tenant().await else {
        return;
    };
    let path = tenant.dir().join("modules.csv");
    let mut latin1 = std::fs::read(&path).unwrap();
    // Line 3 gets a Latin-1 "é" in its list key, as an export in Windows-1252 writes it.
    let third = latin1
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .map(|(i, _)| i + 1)
        .expect("the export has three lines");
    latin1[third + 1] = 0xE9;
    std::fs::write(&path, latin1).unwrap();

    tenant
        .assert_stopped_before_any_change(
            &["run"],
            &format!("{}:3: the row is not valid UTF-8", path.display()),
            "a Latin-1 export",
        )
        .await;
    tenant.finish();
}
