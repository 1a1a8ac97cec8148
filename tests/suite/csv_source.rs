//! CSV sources end to end: a good export becomes the expected snapshot, and every broken
//! export is refused with a message that names the file and the line.

use std::path::{Path, PathBuf};

use rollcall::config::{Config, MemberKey};
use rollcall::source::{Member, SourceError, read_all, read_source};
use sha2::{Digest, Sha256};

/// A temporary folder with one CSV source (and its control file, if given).
struct Export {
    _dir: tempfile::TempDir,
    csv: PathBuf,
    control: PathBuf,
    config: Config,
}

impl Export {
    fn new(csv: &[u8], control: Option<&str>) -> Self {
        Self::with_config(csv, control, "")
    }

    fn with_config(csv: &[u8], control: Option<&str>, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("enrolments.csv");
        let control_path = dir.path().join("enrolments.csv.ctl");
        std::fs::write(&csv_path, csv).unwrap();
        let control_line = match control {
            Some(text) => {
                std::fs::write(&control_path, text).unwrap();
                format!("control = '{}'\n", control_path.display())
            }
            None => String::new(),
        };
        let text = format!(
            r#"
[[family]]
name = "modules"
display_name = "{{display_name}} (module)"

[[source]]
name = "enrolments"
family = "modules"
kind = "csv"
path = '{}'
{control_line}member_key = "upn"
{extra}"#,
            csv_path.display()
        );
        let config = Config::parse(&text, Path::new("rollcall.toml")).unwrap();
        Export {
            _dir: dir,
            csv: csv_path,
            control: control_path,
            config,
        }
    }

    async fn error(&self) -> SourceError {
        read_source(&self.config.sources[0]).await.unwrap_err()
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn control_for(bytes: &[u8], rows: u64) -> String {
    format!("rows={rows}\nsha256={}\n", sha256(bytes))
}

fn assert_names(error: &SourceError, check: &str, parts: &[&str]) {
    let message = error.to_string();
    assert_eq!(error.check(), check, "{message}");
    assert_eq!(error.source_name(), "enrolments");
    for part in parts {
        assert!(message.contains(part), "`{part}` missing in: {message}");
    }
}

const GOOD: &[u8] = b"\xEF\xBB\xBFList, Member ,display_name,term\r\n\
mod-a, Ada@Example.AC.UK ,Algebra,autumn\r\n\
mod-a,ada@example.ac.uk,,autumn\r\n\
\"mod-b\",\"bob@example.ac.uk\",\"Biology, with labs\",spring\r\n\
mod-a,cy@example.ac.uk,,autumn\r\n";

#[tokio::test]
async fn good_export_becomes_the_expected_snapshot() {
    let export = Export::new(GOOD, Some(&control_for(GOOD, 4)));
    let snapshot = read_all(&export.config).await.unwrap();

    let summary = &snapshot.sources[0];
    assert_eq!(summary.name, "enrolments");
    assert_eq!(summary.family, "modules");
    assert_eq!(summary.rows, 4);
    assert_eq!(summary.distinct, 3);
    assert_eq!(summary.checksum.len(), 64);

    let a = &snapshot.lists["mod-a"];
    let upn = |value: &str| Member {
        key: MemberKey::Upn,
        value: value.to_owned(),
    };
    assert_eq!(
        a.members.iter().cloned().collect::<Vec<_>>(),
        [upn("ada@example.ac.uk"), upn("cy@example.ac.uk")]
    );
    assert_eq!(a.display_name, "Algebra (module)");
    assert_eq!(a.mail_nickname, "mod-a");
    assert_eq!(a.sources, ["enrolments"]);
    assert_eq!(
        snapshot.lists["mod-b"].display_name,
        "Biology, with labs (module)"
    );
    assert_eq!(snapshot.lists.len(), 2);
    assert!(snapshot.warnings.is_empty());
}

#[tokio::test]
async fn row_order_does_not_change_the_checksum() {
    let forward = Export::new(b"list,member\nmod-a,a@x\nmod-b,b@x\n", None);
    let backward = Export::new(b"list,member\nmod-b,B@X\nmod-a,a@x\nmod-a,a@x\n", None);
    let forward = read_source(&forward.config.sources[0]).await.unwrap();
    let backward = read_source(&backward.config.sources[0]).await.unwrap();
    assert_eq!(forward.checksum, backward.checksum);
    assert_eq!((forward.rows, backward.rows), (2, 3));
}

#[tokio::test]
async fn missing_member_header_names_the_file() {
    let export = Export::new(b"list,person\nmod-a,a@x\n", None);
    let error = export.error().await;
    let place = format!("{}:1", export.csv.display());
    assert_names(
        &error,
        "missing-column",
        &[&place, "`member`", "list, person"],
    );
}

#[tokio::test]
async fn bad_utf8_names_file_and_line() {
    let export = Export::new(b"list,member\nmod-a,a@x\nmod-a,b\xFF@x\nmod-b,c@x\n", None);
    let error = export.error().await;
    let place = format!("{}:3", export.csv.display());
    assert_names(&error, "csv-encoding", &[&place, "UTF-8"]);
}

#[tokio::test]
async fn wrong_field_count_names_file_and_line() {
    let export = Export::new(b"list,member\na,x\nb,y\nc,z,extra\nd,w\n", None);
    let error = export.error().await;
    let place = format!("{}:4", export.csv.display());
    assert_names(&error, "csv-syntax", &[&place, "3 fields", "header has 2"]);
}

#[tokio::test]
async fn line_numbers_count_quoted_line_breaks() {
    let export = Export::new(
        b"list,member,description\na,x,\"two\nlines\"\nb,y,\"\"\nc,z\n",
        None,
    );
    let error = export.error().await;
    let place = format!("{}:5", export.csv.display());
    assert_names(&error, "csv-syntax", &[&place]);
}

#[tokio::test]
async fn empty_member_names_file_and_line() {
    let export = Export::new(b"list,member\na,1@x\nb,2@x\nc,3@x\nd,  \ne,5@x\n", None);
    let error = export.error().await;
    let place = format!("{}:5", export.csv.display());
    assert_names(&error, "empty-value", &[&place, "`member`"]);
}

#[tokio::test]
async fn missing_final_line_break_is_truncation() {
    let export = Export::new(b"list,member\na,x@y\nb,y@y", None);
    let error = export.error().await;
    let place = format!("{}:3", export.csv.display());
    assert_names(&error, "truncated", &[&place, "truncated"]);
}

#[tokio::test]
async fn row_cut_off_mid_write_is_truncation_not_a_syntax_error() {
    let export = Export::new(b"list,member,display_name\na,x@y,Algebra\nb,y@", None);
    let error = export.error().await;
    let place = format!("{}:3", export.csv.display());
    assert_names(&error, "truncated", &[&place]);
}

#[tokio::test]
async fn control_rows_mismatch_names_control_file_and_counts() {
    let csv = b"list,member\na,x@y\nb,y@y\n";
    let export = Export::new(csv, Some(&control_for(csv, 5)));
    let error = export.error().await;
    let control = export.control.display().to_string();
    assert_names(
        &error,
        "control-rows",
        &[&control, "rows=5", "has 2 data rows"],
    );
}

#[tokio::test]
async fn control_sha256_mismatch_names_control_file_and_digests() {
    let csv = b"list,member\na,x@y\nb,y@y\n";
    let stale = control_for(b"list,member\na,x@y\nb,z@y\n", 2);
    let export = Export::new(csv, Some(&stale));
    let error = export.error().await;
    let control = export.control.display().to_string();
    let actual = sha256(csv);
    assert_names(&error, "control-sha256", &[&control, &actual]);
}

#[tokio::test]
async fn malformed_control_line_names_control_file_and_line() {
    let csv = b"list,member\na,x@y\n";
    let text = format!("{}\nexported_by=hr\n", control_for(csv, 1));
    let export = Export::new(csv, Some(&text));
    let error = export.error().await;
    let place = format!("{}:4", export.control.display());
    assert_names(&error, "control-syntax", &[&place, "exported_by"]);
}

#[tokio::test]
async fn missing_file_names_the_path() {
    let export = Export::new(b"list,member\n", None);
    std::fs::remove_file(&export.csv).unwrap();
    let error = export.error().await;
    let path = export.csv.display().to_string();
    assert_names(&error, "unreadable", &[&path]);
}

#[tokio::test]
async fn any_faulty_source_fails_the_whole_snapshot() {
    let extra = r#"
[[source]]
name = "broken"
family = "modules"
kind = "csv"
path = "/nonexistent/rollcall/broken.csv"
member_key = "upn"
"#;
    let export = Export::with_config(b"list,member\na,x@y\n", None, extra);
    let error = read_all(&export.config).await.unwrap_err();
    assert_eq!(error.source_name(), "broken");
    assert_eq!(error.check(), "unreadable");
}

/// `GOOD` written again with another field delimiter (fields quoted only where they must be).
fn with_delimiter(delimiter: u8) -> Vec<u8> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(GOOD);
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for record in reader.records() {
        writer.write_record(&record.unwrap()).unwrap();
    }
    writer.into_inner().unwrap()
}

#[tokio::test]
async fn semicolon_and_tab_exports_give_the_same_lists_as_the_comma_one() {
    let comma = Export::new(GOOD, Some(&control_for(GOOD, 4)));
    let expected = read_all(&comma.config).await.unwrap().lists;
    for (setting, byte) in [
        (r#"delimiter = ";""#, b';'),
        (r#"delimiter = "\t""#, b'\t'),
        (r#"delimiter = "tab""#, b'\t'),
    ] {
        let bytes = with_delimiter(byte);
        let export = Export::with_config(&bytes, Some(&control_for(&bytes, 4)), setting);
        let snapshot = read_all(&export.config)
            .await
            .unwrap_or_else(|e| panic!("{setting}: {e}"));
        assert_eq!(snapshot.lists, expected, "{setting}");
        assert_eq!(snapshot.sources[0].rows, 4, "{setting}");
    }
}

#[tokio::test]
async fn a_comma_export_read_with_semicolons_is_refused_not_misread() {
    let export = Export::with_config(GOOD, None, r#"delimiter = ";""#);
    let error = export.error().await;
    assert_names(&error, "missing-column", &["list"]);
}

#[test]
fn a_delimiter_that_is_not_one_character_is_a_config_error_naming_the_key() {
    for bad in [r#""||""#, r#""""#, r#""\"""#, r#""\n""#, r#""a""#, "','"] {
        let text = format!(
            "[[family]]\nname = \"modules\"\n\n[[source]]\nname = \"enrolments\"\nfamily = \"modules\"\n\
             kind = \"csv\"\npath = \"enrolments.csv\"\nmember_key = \"upn\"\ndelimiter = {bad}\n"
        );
        let result = Config::parse(&text, Path::new("rollcall.toml"));
        if bad == "','" {
            result.unwrap_or_else(|e| panic!("a comma is a delimiter: {e}"));
            continue;
        }
        let message = result
            .expect_err(&format!("delimiter = {bad} was accepted"))
            .to_string();
        assert!(
            message.contains("source[0].delimiter"),
            "delimiter = {bad}: {message}"
        );
    }
}
