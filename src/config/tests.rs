use std::path::Path;

use rstest::rstest;

use super::secret::resolve_sqlite_url;
use super::*;

const FAMILY_AND_SOURCE: &str = r#"
[[family]]
name = "modules"

[[source]]
name = "enrolments"
family = "modules"
kind = "csv"
path = "/var/spool/sis/modules.csv"
member_key = "upn"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/rollcall/rollcall.toml"))
}

fn error(text: &str) -> String {
    parse(text)
        .expect_err("the configuration is rejected")
        .to_string()
}

#[test]
fn empty_file_gets_every_default() {
    let config = parse("").unwrap();
    assert_eq!(config.guard.max_removals_per_run, 500);
    assert_eq!(config.guard.max_removal_percent_per_list, 50);
    assert_eq!(config.guard.min_list_size_for_percent, 10);
    assert_eq!(config.guard.max_source_shrink_percent, 10);
    assert_eq!(config.guard.max_additions_per_run, None);
    assert_eq!(config.guard.plan_ttl, Duration::from_secs(3600));
    assert_eq!(config.schedule.run, "0 */15 * * * *");
    assert_eq!(config.serve.listen.to_string(), "127.0.0.1:9187");
    assert_eq!(config.serve.max_success_age, Duration::from_secs(7200));
    assert!(!config.serve.show_members);
    assert_eq!(config.state.keep_runs_days, 90);
    assert_eq!(
        config.state.database_url().unwrap().expose(),
        "sqlite:///etc/rollcall/rollcall.db"
    );
}

#[test]
fn relative_paths_resolve_against_the_configuration_folder() {
    let text = format!(
        "[state]\nurl = \"sqlite:state/rollcall.db?mode=rwc\"\n{FAMILY_AND_SOURCE}\n[[source]]\nname = \"hr\"\nfamily = \"modules\"\nkind = \"csv\"\npath = \"hr/staff.csv\"\ncontrol = \"hr/staff.csv.ctl\"\nmember_key = \"employee_id\"\n"
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.state.database_url().unwrap().expose(),
        "sqlite:///etc/rollcall/state/rollcall.db?mode=rwc"
    );
    assert_eq!(
        config.sources[0].path.as_deref(),
        Some(Path::new("/var/spool/sis/modules.csv"))
    );
    assert_eq!(
        config.sources[1].path.as_deref(),
        Some(Path::new("/etc/rollcall/hr/staff.csv"))
    );
    assert_eq!(
        config.sources[1].control.as_deref(),
        Some(Path::new("/etc/rollcall/hr/staff.csv.ctl"))
    );
}

#[rstest]
#[case::memory("sqlite::memory:", "sqlite::memory:")]
#[case::absolute("sqlite:///var/lib/rollcall/r.db", "sqlite:///var/lib/rollcall/r.db")]
#[case::relative_with_slashes("sqlite://r.db", "sqlite:///etc/rollcall/r.db")]
#[case::relative_without_slashes("sqlite:r.db", "sqlite:///etc/rollcall/r.db")]
#[case::postgres(
    "postgres://db.example.ac.uk/rollcall",
    "postgres://db.example.ac.uk/rollcall"
)]
fn sqlite_urls_resolve_and_others_stay(#[case] url: &str, #[case] expected: &str) {
    assert_eq!(
        resolve_sqlite_url(url, Path::new("/etc/rollcall")),
        expected
    );
}

#[test]
fn family_and_source_defaults_are_filled_in() {
    let config = parse(FAMILY_AND_SOURCE).unwrap();
    let family = config.family("modules").unwrap();
    assert_eq!(family.mail_nickname, "{list}");
    assert_eq!(family.display_name, "{display_name}");
    assert!(family.create);
    assert!(!family.adopt_existing);
    assert_eq!(family.on_vanish, OnVanish::Keep);
    let source = &config.sources[0];
    assert_eq!(source.member_key, MemberKey::Upn);
    assert_eq!(source.min_rows, 0);
    assert!(!source.allow_empty);
}

#[test]
fn durations_read_as_human_durations() {
    let config =
        parse("[guard]\nplan_ttl = \"90m\"\n[serve]\nmax_success_age = \"1day\"\n").unwrap();
    assert_eq!(config.guard.plan_ttl, Duration::from_secs(5400));
    assert_eq!(config.serve.max_success_age, Duration::from_secs(86400));
}

#[rstest]
#[case::unknown_top_level_key("colour = \"blue\"\n", &["rollcall.toml", "line 1", "unknown field `colour`"])]
#[case::unknown_guard_key("[guard]\nmax_removal = 3\n", &["rollcall.toml", "line 2", "unknown field `max_removal`"])]
#[case::wrong_type("[guard]\nmax_removals_per_run = \"many\"\n", &["rollcall.toml", "line 2", "max_removals_per_run"])]
#[case::bad_duration("[guard]\nplan_ttl = \"soon\"\n", &["rollcall.toml", "plan_ttl"])]
#[case::bad_member_key(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"csv\"\npath = \"x.csv\"\nmember_key = \"email\"\n",
    &["rollcall.toml", "line 8", "member_key", "upn"]
)]
#[case::percentage_over_100("[guard]\nmax_removal_percent_per_list = 150\n", &["`guard.max_removal_percent_per_list`", "150 is not a percentage"])]
#[case::zero_plan_ttl("[guard]\nplan_ttl = \"0s\"\n", &["`guard.plan_ttl`", "longer than zero"])]
#[case::bad_cron("[schedule]\nrun = \"every five minutes\"\n", &["`schedule.run`", "cron expression"])]
#[case::bad_timezone("[schedule]\ntimezone = \"Mars/Olympus\"\n", &["`schedule.timezone`", "IANA"])]
#[case::unknown_family(
    "[[source]]\nname = \"s\"\nfamily = \"nope\"\nkind = \"csv\"\npath = \"x.csv\"\nmember_key = \"upn\"\n",
    &["`source[0].family`", "no [[family]] is named `nope`"]
)]
#[case::duplicate_family("[[family]]\nname = \"m\"\n[[family]]\nname = \"m\"\n", &["`family[1].name`", "defined twice"])]
#[case::bad_family_name("[[family]]\nname = \"my modules\"\n", &["`family[0].name`", "1 to 64 characters"])]
#[case::unknown_placeholder("[[family]]\nname = \"m\"\nmail_nickname = \"{code}\"\n", &["`family[0].mail_nickname`", "{code}"])]
#[case::unclosed_placeholder("[[family]]\nname = \"m\"\ndisplay_name = \"{list\"\n", &["`family[0].display_name`", "closing"])]
#[case::csv_without_path(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"csv\"\nmember_key = \"upn\"\n",
    &["`source[0].path`", "needs `path`"]
)]
#[case::sql_without_query(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"sql\"\nurl = \"sqlite:///srv/sis.db\"\nmember_key = \"upn\"\n",
    &["`source[0].query`", "needs a query"]
)]
#[case::sql_without_url(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"sql\"\nquery = \"SELECT 1\"\nmember_key = \"upn\"\n",
    &["`source[0].url`", "url_env"]
)]
#[case::sql_with_path(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"sql\"\nquery = \"SELECT 1\"\npath = \"x.csv\"\nurl = \"sqlite:///x.db\"\nmember_key = \"upn\"\n",
    &["`source[0].path`", "does not belong to `sql` sources"]
)]
#[case::ldap_plain_to_another_host(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"ldap\"\nurl = \"ldap://ad.example.ac.uk\"\nbase = \"dc=x\"\nfilter = \"(uid=*)\"\nlist = \"{ou}\"\nmember_key = \"upn\"\n",
    &["`source[0].url`", "start_tls = true"]
)]
#[case::ldap_both_forms(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"ldap\"\nurl = \"ldaps://ad.example.ac.uk\"\nbase = \"dc=x\"\nfilter = \"(uid=*)\"\ngroups_filter = \"(cn=*)\"\nlist = \"{ou}\"\nmember_key = \"upn\"\n",
    &["`source[0].groups_filter`", "not both"]
)]
#[case::ldap_bad_template(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"ldap\"\nurl = \"ldaps://ad.example.ac.uk\"\nbase = \"dc=x\"\nfilter = \"(uid=*)\"\nlist = \"dept-{department|upper}\"\nmember_key = \"upn\"\n",
    &["`source[0].list`", "the only filter is `slug`"]
)]
#[case::ldap_object_id_without_member(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"ldap\"\nurl = \"ldaps://ad.example.ac.uk\"\nbase = \"dc=x\"\nfilter = \"(uid=*)\"\nlist = \"{ou}\"\nmember_key = \"object_id\"\n",
    &["`source[0].member`", "no Entra object ids"]
)]
#[case::entra_without_list(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"entra\"\nusers_filter = \"department eq 'Physics'\"\nmember_key = \"object_id\"\n",
    &["`source[0].list`", "needs a `list` template"]
)]
#[case::entra_with_a_query(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"entra\"\ngroup = \"all-staff\"\nlist = \"staff\"\nquery = \"SELECT 1\"\nmember_key = \"object_id\"\n",
    &["`source[0].query`", "does not belong to `entra` sources"]
)]
#[case::odbc_without_connection_string(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"odbc\"\nconnection_string_env = \"ROLLCALL_TEST_UNSET_ODBC\"\nquery = \"SELECT 1\"\nmember_key = \"upn\"\n",
    &[if cfg!(feature = "odbc") { "`source[0].connection_string_env`" } else { "`source[0].kind`" },
      if cfg!(feature = "odbc") { "ROLLCALL_TEST_UNSET_ODBC is not set" } else { "--features odbc" }]
)]
#[case::duplicate_source(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"csv\"\npath = \"a.csv\"\nmember_key = \"upn\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"csv\"\npath = \"b.csv\"\nmember_key = \"upn\"\n",
    &["`source[1].name`", "defined twice"]
)]
#[case::allow_empty_with_min_rows(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"csv\"\npath = \"a.csv\"\nmember_key = \"upn\"\nmin_rows = 5\nallow_empty = true\n",
    &["`source[0].allow_empty`", "min_rows = 5"]
)]
#[case::state_scheme("[state]\nurl = \"redis://127.0.0.1\"\n", &["`state.url`", "scheme `redis`"])]
#[case::two_ways_to_give_the_state_url("[state]\nurl = \"sqlite://a.db\"\nurl_env = \"STATE_URL\"\n", &["`state.url`", "give only one of url, url_env"])]
#[case::unreadable_secret_file(
    "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_file = \"/dev/null/none\"\nauthority = \"http://login.example.com\"\n",
    &["`graph.client_secret_file`", "cannot read /dev/null/none"]
)]
#[case::graph_without_credential("[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\n", &["`graph.client_secret_env`", "no credential", "certificate_path", "AZURE_FEDERATED_TOKEN_FILE"])]
#[case::graph_with_two_credentials(
    "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"\nclient_assertion_file = \"/var/run/token\"\n",
    &["`graph.client_assertion_file`", "`graph.client_secret_env` names a credential too", "give exactly one of"]
)]
#[case::key_without_certificate(
    "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"\nprivate_key_path = \"k.pem\"\n",
    &["`graph.private_key_path`", "give `certificate_path` too"]
)]
#[case::missing_certificate(
    "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\ncertificate_path = \"/dev/null/app.pem\"\n",
    &["`graph.certificate_path`", "cannot read /dev/null/app.pem"]
)]
#[case::empty_client_id_without_federation(
    "[graph]\ntenant_id = \"t\"\nclient_id = \"\"\nclient_secret_env = \"PATH\"\n",
    &["`graph.client_id`", "must not be empty"]
)]
#[case::unreadable_assertion_file(
    "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_assertion_file = \"/dev/null/token\"\n",
    &["`graph.client_assertion_file`", "cannot read the client assertion /dev/null/token"]
)]
#[case::override_without_changes("[[override]]\nlist = \"mod-x\"\n", &["`override[0]`", "has none of"])]
#[case::override_owner_both_ways(
    "[[override]]\nlist = \"mod-x\"\nowners_include = [\"a@x.ac.uk\"]\nowners_exclude = [\"a@x.ac.uk\"]\n",
    &["`override[0]`", "an owner included and excluded"]
)]
#[case::family_owner_not_a_upn(
    "[[family]]\nname = \"modules\"\nowners = [\"it lists\"]\n",
    &["`family[0].owners[0]`", "no upn"]
)]
#[case::source_role_unknown(
    "[[family]]\nname = \"m\"\n[[source]]\nname = \"s\"\nfamily = \"m\"\nkind = \"csv\"\npath = \"x.csv\"\nmember_key = \"upn\"\nrole = \"leader\"\n",
    &["role", "leader"]
)]
#[case::override_both_ways(
    "[[override]]\nlist = \"mod-x\"\ninclude = [\"a@x.ac.uk\"]\nexclude = [\"A@x.ac.uk\"]\n",
    &["`override[0]`", "both included and excluded"]
)]
fn bad_configuration_is_named_by_file_and_key(#[case] text: &str, #[case] expected: &[&str]) {
    let message = error(text);
    assert!(
        message.contains("/etc/rollcall/rollcall.toml"),
        "no file in: {message}"
    );
    for part in expected {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
}

#[test]
fn a_password_in_the_file_is_refused_and_not_repeated() {
    let message =
        error("[state]\nurl = \"postgres://rollcall:hunter2@db.example.ac.uk/rollcall\"\n");
    assert!(message.contains("`state.url`"), "{message}");
    assert!(message.contains("url_env"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );
}

#[test]
fn plain_http_is_refused_off_loopback_and_allowed_on_it() {
    let secret = std::env::temp_dir().join("rollcall-config-test-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let graph = |endpoint: &str| {
        format!(
            "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_file = \"{}\"\nendpoint = \"{endpoint}\"\n",
            secret.display()
        )
    };
    let message = error(&graph("http://graph.example.com/v1.0"));
    assert!(
        message.contains("`graph.endpoint`") && message.contains("loopback"),
        "{message}"
    );
    for ok in [
        "http://127.0.0.1:8080/v1.0",
        "http://[::1]:8080/v1.0",
        "http://localhost:1/v1.0",
        "https://graph.microsoft.us/v1.0",
    ] {
        let config = parse(&graph(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        let secret = config.graph().unwrap().client_secret().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&secret), "s3cret");
    }
}

#[test]
fn effective_configuration_names_secret_sources_but_never_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("sis-url");
    std::fs::write(
        &url_file,
        "postgres://reader:topsecret@sis.example.ac.uk/sis",
    )
    .unwrap();
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, "client-topsecret").unwrap();
    let text = format!(
        "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_file = \"{}\"\n{FAMILY_AND_SOURCE}\n[[source]]\nname = \"sis\"\nfamily = \"modules\"\nkind = \"sql\"\nurl_file = \"{}\"\nquery = \"SELECT list, member FROM v\"\nmember_key = \"upn\"\n",
        secret_file.display(),
        url_file.display()
    );
    let config = parse(&text).unwrap();
    let rendered = config.render_effective();
    assert!(!rendered.contains("topsecret"), "{rendered}");
    assert!(rendered.contains("url_file"), "{rendered}");
    assert!(rendered.contains("client_secret_file"), "{rendered}");
    assert!(
        rendered.contains("max_removals_per_run = 500"),
        "{rendered}"
    );
    let debug = format!("{config:?} {:?}", config.sources[1].database_url().unwrap());
    assert!(!debug.contains("topsecret"), "{debug}");
}

#[test]
fn member_keys_normalize_as_the_design_says() {
    assert_eq!(
        MemberKey::Upn.normalize("  Ada.Lovelace@Example.AC.UK "),
        "ada.lovelace@example.ac.uk"
    );
    assert_eq!(MemberKey::Mail.normalize("X@Y.Z"), "x@y.z");
    assert_eq!(MemberKey::EmployeeId.normalize(" E00012a "), "E00012a");
    assert_eq!(
        MemberKey::ObjectId.normalize("0F8FAD5B-D9CB-469F-A165-70867728950E"),
        "0f8fad5b-d9cb-469f-a165-70867728950e"
    );
}

#[test]
fn show_members_on_a_reachable_address_is_warned_about() {
    let quiet = parse("[serve]\nshow_members = true\n").unwrap();
    assert!(quiet.serve.show_members);
    assert!(quiet.warnings().iter().all(|w| !w.contains("show_members")));
    let open = parse("[serve]\nlisten = \"0.0.0.0:9187\"\nshow_members = true\n").unwrap();
    assert!(
        open.warnings()
            .iter()
            .any(|w| w.contains("show_members = true") && w.contains("0.0.0.0:9187")),
        "{:?}",
        open.warnings()
    );
    assert!(
        parse("[serve]\nshow_members = \"yes\"\n")
            .unwrap_err()
            .to_string()
            .contains("show_members")
    );
}

#[test]
fn a_missing_file_names_the_path_and_rollcall_init() {
    let path = Path::new("/nonexistent/rollcall.toml");
    let error = Config::load(path).unwrap_err().to_string();
    assert!(error.starts_with("/nonexistent/rollcall.toml: "), "{error}");
    assert!(error.contains("rollcall init"), "{error}");
}
