//! Configuration: `rollcall.toml`, validated before anything is read or changed.
//!
//! Parsing happens in two steps: serde reads the file into these structs (unknown keys are
//! rejected), then [`Config::validate`] checks everything serde cannot: cross references
//! between families and sources, templates, URLs, schedules, and that every secret named
//! in the file can actually be read. A configuration that loads is one a run can use.

mod certificate;
mod credential;
mod role;
mod secret;
mod source_check;
#[cfg(test)]
pub(crate) mod test_certificates;
mod validate;
mod window;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use certificate::{AssertionAlgorithm, Certificate, EXPIRY_WARNING, Thumbprints};
pub use credential::{Credential, CredentialError, FEDERATION_ENV, read_assertion};
pub use role::Role;
pub use secret::{
    DATABASE_SCHEMES, DEFAULT_STATE_URL, DatabaseUrl, redact_connection_string, redact_url,
};
pub use window::Window;

/// Where the configuration file is looked for when neither `--config` nor `ROLLCALL_CONFIG` says.
pub const DEFAULT_CONFIG_PATH: &str = "rollcall.toml";

/// A configuration problem: which file, which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// There is no file at the path: a first run, or the wrong folder.
    #[error(
        "{file}: no configuration file there; `rollcall init` writes a starter one, or name another with --config or ROLLCALL_CONFIG"
    )]
    Missing {
        /// The path tried.
        file: PathBuf,
    },
    /// The file could not be read at all.
    #[error("{file}: cannot read the configuration file: {source}")]
    Unreadable {
        /// The configuration file.
        file: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not valid TOML for rollcall's schema (syntax, unknown key, wrong type).
    #[error("{file}: {message}")]
    Syntax {
        /// The configuration file.
        file: PathBuf,
        /// toml's message, which names the line, column and key.
        message: String,
    },
    /// A key has a value rollcall cannot use.
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        /// The configuration file.
        file: PathBuf,
        /// The dotted key, e.g. `source[2].query` or `guard.plan_ttl`.
        key: String,
        /// What is wrong and what to do about it.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The state database.
    #[serde(default)]
    pub state: StateConfig,
    /// The Microsoft Graph tenant and app registration. Needed by commands that talk to
    /// Microsoft 365; optional for the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphConfig>,
    /// Safety limits applied before any change is made.
    #[serde(default)]
    pub guard: GuardConfig,
    /// Schedules for `serve`.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// The `serve` daemon's HTTP endpoint.
    #[serde(default)]
    pub serve: ServeConfig,
    /// Optional notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyConfig>,
    /// Families of lists.
    #[serde(default, rename = "family")]
    pub families: Vec<FamilyConfig>,
    /// Sources of membership rows.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Per-list manual additions and exclusions.
    #[serde(default, rename = "override")]
    pub overrides: Vec<OverrideConfig>,
    /// CSV files of many dated exceptions, kept by a helpdesk.
    #[serde(default, rename = "override_source")]
    pub override_sources: Vec<OverrideSourceConfig>,
    /// The file this configuration was read from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
}

/// `[state]`: the state database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `sqlite://…`, `postgres://…` or `mysql://…`; a URL with a password belongs in
    /// `url_env` or `url_file` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable holding the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// A file holding the URL (e.g. a mounted secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// Run history older than this many days is pruned.
    #[serde(default = "default_keep_runs_days")]
    pub keep_runs_days: u32,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_env: None,
            url_file: None,
            keep_runs_days: default_keep_runs_days(),
        }
    }
}

fn default_keep_runs_days() -> u32 {
    90
}

/// `[graph]`: the tenant and the app registration rollcall signs in as, with exactly one
/// credential: a client secret, a certificate, or a client assertion file (workload
/// identity federation). See [`GraphConfig::credential`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// The directory (tenant) id or a verified domain; `AZURE_TENANT_ID` when empty and
    /// federation comes from the environment.
    #[serde(default)]
    pub tenant_id: String,
    /// The application (client) id; `AZURE_CLIENT_ID` when empty and federation comes from
    /// the environment.
    #[serde(default)]
    pub client_id: String,
    /// The environment variable holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// A PEM file holding the certificate, and its private key unless `private_key_path`
    /// names another file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_path: Option<PathBuf>,
    /// A PEM file holding the certificate's private key (PKCS#8, encrypted or not, or PKCS#1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_path: Option<PathBuf>,
    /// The environment variable holding the password of an encrypted private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_password_env: Option<String>,
    /// How the client assertion is signed: RS256 (the default) or PS256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_algorithm: Option<AssertionAlgorithm>,
    /// A file holding a client assertion from another issuer (workload identity federation),
    /// read afresh for every token request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion_file: Option<PathBuf>,
    /// Microsoft Graph's base URL, including the version segment.
    #[serde(default = "default_graph_endpoint")]
    pub endpoint: String,
    /// The identity platform's base URL.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// Requests in flight at once, across all lists.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// How long one request keeps being retried (throttling, 5xx, dropped connections) before
    /// its operation is left pending for the next run.
    #[serde(default = "default_max_retry_time", with = "humantime_serde")]
    pub max_retry_time: Duration,
}

fn default_max_retry_time() -> Duration {
    Duration::from_secs(300)
}

fn default_graph_endpoint() -> String {
    "https://graph.microsoft.com/v1.0".to_owned()
}

fn default_authority() -> String {
    "https://login.microsoftonline.com".to_owned()
}

fn default_max_concurrency() -> usize {
    4
}

/// `[guard]`: limits that stop a run before its first change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Removals across all lists in one run.
    #[serde(default = "default_max_removals_per_run")]
    pub max_removals_per_run: u64,
    /// Removals from one list, as a percentage of its current members.
    #[serde(default = "default_max_removal_percent_per_list")]
    pub max_removal_percent_per_list: u8,
    /// Lists smaller than this are exempt from the percentage guard.
    #[serde(default = "default_min_list_size_for_percent")]
    pub min_list_size_for_percent: u64,
    /// How far a source may shrink against its last accepted snapshot, in percent.
    #[serde(default = "default_max_source_shrink_percent")]
    pub max_source_shrink_percent: u8,
    /// Additions across all lists in one run; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_additions_per_run: Option<u64>,
    /// Additions to one list, as a percentage of its current members: a list that would grow
    /// by more is held (a join gone wrong). Unlimited when absent; new lists and lists under
    /// `min_list_size_for_percent` are exempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_addition_percent_per_list: Option<u32>,
    /// How long a saved plan stays applicable.
    #[serde(default = "default_plan_ttl", with = "humantime_serde")]
    pub plan_ttl: Duration,
    /// Most owner removals across all lists in one run; more stops the run (exit 3).
    #[serde(default = "default_max_owner_removals_per_run")]
    pub max_owner_removals_per_run: u64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_removals_per_run: default_max_removals_per_run(),
            max_removal_percent_per_list: default_max_removal_percent_per_list(),
            min_list_size_for_percent: default_min_list_size_for_percent(),
            max_source_shrink_percent: default_max_source_shrink_percent(),
            max_additions_per_run: None,
            max_addition_percent_per_list: None,
            plan_ttl: default_plan_ttl(),
            max_owner_removals_per_run: default_max_owner_removals_per_run(),
        }
    }
}

fn default_max_removals_per_run() -> u64 {
    500
}
fn default_max_removal_percent_per_list() -> u8 {
    50
}
fn default_min_list_size_for_percent() -> u64 {
    10
}
fn default_max_source_shrink_percent() -> u8 {
    10
}
fn default_max_owner_removals_per_run() -> u64 {
    50
}
fn default_plan_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// `[schedule]`: cron expressions (seconds field first) for `serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// When `serve` runs `run`.
    #[serde(default = "default_run_schedule")]
    pub run: String,
    /// When `serve` runs `rebuild`; never when absent.
    #[serde(
        default = "default_rebuild_schedule",
        skip_serializing_if = "Option::is_none"
    )]
    pub rebuild: Option<String>,
    /// The timezone the schedules are read in (IANA name).
    #[serde(default = "default_timezone")]
    pub timezone: String,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            run: default_run_schedule(),
            rebuild: default_rebuild_schedule(),
            timezone: default_timezone(),
        }
    }
}

fn default_run_schedule() -> String {
    "0 */15 * * * *".to_owned()
}
fn default_rebuild_schedule() -> Option<String> {
    Some("0 30 3 * * Sun".to_owned())
}
fn default_timezone() -> String {
    "UTC".to_owned()
}

/// `[serve]`: the daemon's HTTP endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address for `/healthz` and `/metrics`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `/healthz` turns unhealthy after this long without a successful run.
    #[serde(default = "default_max_success_age", with = "humantime_serde")]
    pub max_success_age: Duration,
    /// Whether the status page (`GET /`) may show member identities (the members of failed
    /// operations); off, it shows lists and counts only.
    #[serde(default)]
    pub show_members: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_success_age: default_max_success_age(),
            show_members: false,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9187))
}
fn default_max_success_age() -> Duration {
    Duration::from_secs(2 * 3600)
}

/// `[notify]`: where to tell a person that something needs attention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The environment variable holding the webhook URL (it usually embeds a token).
    pub webhook_url_env: String,
}

/// What happens to a list whose source rows have all gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnVanish {
    /// Leave the group and its members as they are.
    #[default]
    Keep,
    /// Remove every member (counted by the removal guards).
    Empty,
}

/// `[[family]]`: lists that share naming, lifecycle and guard settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyConfig {
    /// The family's name, referenced by sources.
    pub name: String,
    /// Template for a group's mailNickname; `{list}` is the list key.
    #[serde(default = "default_mail_nickname")]
    pub mail_nickname: String,
    /// Template for a group's display name; `{display_name}` falls back to the list key.
    #[serde(default = "default_display_name")]
    pub display_name: String,
    /// Template for a group's description.
    #[serde(default = "default_description")]
    pub description: String,
    /// Create groups for lists that have none.
    #[serde(default = "default_true")]
    pub create: bool,
    /// Take over an existing group whose mailNickname matches a list key.
    #[serde(default)]
    pub adopt_existing: bool,
    /// What happens to a list that no source mentions any more.
    #[serde(default)]
    pub on_vanish: OnVanish,
    /// The most members a list of the family may have: a list whose desired membership is
    /// larger is held (a join gone wrong must not put every student on one list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u64>,
    /// How long a member whom the sources no longer name stays on the family's lists,
    /// counted from the first run that found them absent (`0s`: removed at once).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub remove_after: Duration,
    /// Who can see and join the family's new groups; `Private` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// The `resourceBehaviorOptions` of the family's new groups (set at creation only).
    #[serde(default = "default_behaviors")]
    pub behaviors: Vec<String>,
    /// Fixed owners of every list of the family (`kind:value`, or a bare UPN): a service
    /// account or a team, so that no list is ever without an owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Whether an owner row also makes a membership (owners receive the list's mail).
    #[serde(default = "default_true")]
    pub owners_are_members: bool,
}

/// A Microsoft 365 group's `visibility` (GRAPH.md "Groups").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Visibility {
    /// Owners admit members; the default for rollcall's groups.
    #[default]
    Private,
    /// Anyone in the tenant can join and read.
    Public,
    /// Only members see the member list; set at creation, never changed after.
    HiddenMembership,
}

impl Visibility {
    /// The value Graph takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "Private",
            Visibility::Public => "Public",
            Visibility::HiddenMembership => "HiddenMembership",
        }
    }
}

/// The `resourceBehaviorOptions` Graph documents for Microsoft 365 groups.
pub const GROUP_BEHAVIORS: [&str; 5] = [
    "AllowOnlyMembersToPost",
    "HideGroupInOutlook",
    "SubscribeNewGroupMembers",
    "WelcomeEmailDisabled",
    "SubscribeMembersToCalendarEventsDisabled",
];

/// Members added by a reconciler should not each get a welcome mail.
fn default_behaviors() -> Vec<String> {
    vec!["WelcomeEmailDisabled".to_owned()]
}

fn default_mail_nickname() -> String {
    "{list}".to_owned()
}
fn default_display_name() -> String {
    "{display_name}".to_owned()
}
fn default_description() -> String {
    "{description}".to_owned()
}
fn default_true() -> bool {
    true
}

/// The placeholders a family template may use.
pub const TEMPLATE_PLACEHOLDERS: [&str; 3] = ["list", "display_name", "description"];

/// Where a source's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A query against a database sqlx speaks.
    Sql,
    /// A CSV file, optionally with a control file.
    Csv,
    /// A query through an ODBC driver (Oracle, SQL Server, …); needs the `odbc` build feature.
    Odbc,
    /// Entries from a directory over LDAP (Active Directory, OpenLDAP).
    Ldap,
    /// Users of Entra ID itself, by `$filter` or by group.
    Entra,
}

impl SourceKind {
    /// The name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Sql => "sql",
            SourceKind::Csv => "csv",
            SourceKind::Odbc => "odbc",
            SourceKind::Ldap => "ldap",
            SourceKind::Entra => "entra",
        }
    }
}

/// How a source names a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKey {
    /// userPrincipalName, compared case-insensitively.
    Upn,
    /// Primary SMTP address, compared case-insensitively.
    Mail,
    /// employeeId, compared exactly.
    EmployeeId,
    /// The directory object id (a GUID), compared case-insensitively.
    ObjectId,
}

impl MemberKey {
    /// The name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKey::Upn => "upn",
            MemberKey::Mail => "mail",
            MemberKey::EmployeeId => "employee_id",
            MemberKey::ObjectId => "object_id",
        }
    }

    /// The member key a configuration or override names (`upn`, `mail`, `employee_id`,
    /// `object_id`).
    pub fn from_name(name: &str) -> Option<MemberKey> {
        [
            MemberKey::Upn,
            MemberKey::Mail,
            MemberKey::EmployeeId,
            MemberKey::ObjectId,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// Brings a trimmed key to its canonical form, so that equal people compare equal.
    pub fn normalize(self, key: &str) -> String {
        let key = key.trim();
        match self {
            MemberKey::EmployeeId => key.to_owned(),
            MemberKey::Upn | MemberKey::Mail | MemberKey::ObjectId => key.to_lowercase(),
        }
    }
}

impl fmt::Display for MemberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[source]]`: a feed of `(list, member)` rows for one family.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source's name, used in reports, checks and `--accept-shrink`.
    pub name: String,
    /// The family whose lists this source feeds.
    pub family: String,
    /// `sql`, `odbc`, `csv`, `ldap` or `entra`.
    pub kind: SourceKind,
    /// SQL: the database URL, when it holds no password; LDAP: the server (`ldaps://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// SQL: the environment variable holding the database URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// SQL: a file holding the database URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// SQL, ODBC: the query; it must return `list` and `member` columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// ODBC: the environment variable holding the connection string (`Driver={…};…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string_env: Option<String>,
    /// ODBC: a file holding the connection string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string_file: Option<PathBuf>,
    /// LDAP: upgrade a plain `ldap://` connection with StartTLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_tls: bool,
    /// LDAP: the DN to bind as (simple bind); anonymous when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_dn: Option<String>,
    /// LDAP: the environment variable holding the bind password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// LDAP: a file holding the bind password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// LDAP: where searches start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// LDAP: one row per matching entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// LDAP: one list per matching group entry, members from its `member` DNs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_filter: Option<String>,
    /// Entra: a Graph `$filter` over users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_filter: Option<String>,
    /// Entra: the members of this existing group (mailNickname or object id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// LDAP, Entra: the list key template, e.g. `dept-{department|slug}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// LDAP, Entra: the member template; the attribute `member_key` names by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// LDAP, Entra: the list's display name template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// SQL, ODBC, LDAP, Entra: how long the read may take.
    #[serde(default = "default_source_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// CSV: the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// CSV: the optional control file (`rows=N`, `sha256=HEX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<PathBuf>,
    /// CSV: the field delimiter, `,` when unset; `;` as Excel writes it in much of Europe,
    /// or a tab (`"\t"` or `"tab"`). See [`SourceConfig::csv_delimiter`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// How the `member` column names a person.
    pub member_key: MemberKey,
    /// What every row of the source makes its person: `member` (the default) or `owner`
    /// (e.g. the timetable's module leaders). A `role` column, where a row fills it, says
    /// so per row instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Fewer rows than this is a failed source.
    #[serde(default)]
    pub min_rows: u64,
    /// Zero rows is a failure unless this is true.
    #[serde(default)]
    pub allow_empty: bool,
}

impl SourceConfig {
    /// The CSV field delimiter as a byte: `,` when unset, a tab for `"\t"` or `"tab"`, or
    /// one ASCII punctuation character other than the quote `"`. Anything else (several
    /// characters, a letter or digit, a quote, a line break) is refused with the reason.
    pub fn csv_delimiter(&self) -> Result<u8, String> {
        let Some(text) = self.delimiter.as_deref() else {
            return Ok(b',');
        };
        if text == "\t" || text.eq_ignore_ascii_case("tab") {
            return Ok(b'\t');
        }
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some('"'), None) => Err(
                "`\"` is the CSV quote character and cannot also separate fields; use \",\", \";\" or \"tab\""
                    .to_owned(),
            ),
            (Some('\t'), None) => Ok(b'\t'),
            (Some(c), None) if c.is_ascii_punctuation() => Ok(c as u8),
            _ => Err(format!(
                "`{}` is not a field delimiter: give one character such as \",\" (the default), \";\" or \"|\", or \"tab\"",
                text.escape_default()
            )),
        }
    }
}

fn default_source_timeout() -> Duration {
    Duration::from_secs(300)
}

/// `[[override]]`: members added to or kept out of one list whatever the sources say.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    /// The list key.
    pub list: String,
    /// Members always on the list (in the list's source's member key).
    #[serde(default)]
    pub include: Vec<String>,
    /// Members never on the list.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Owners the list's group always has (its family must manage owners, or this list's
    /// owners become managed by it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners_include: Vec<String>,
    /// Owners the list's group never has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners_exclude: Vec<String>,
    /// The first day (or RFC 3339 time) it applies; always when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The last day it applies (inclusive), or the RFC 3339 time it stops; always when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// `[[override_source]]`: a CSV of dated exceptions with columns `list, member, action,
/// from, until, reason` (`action`: `include` or `exclude`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSourceConfig {
    /// The CSV file (relative to the configuration file's folder).
    pub path: PathBuf,
    /// The optional control file (`rows=N`, `sha256=HEX`), as for CSV sources: a file that
    /// does not match it is refused whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<PathBuf>,
}

impl Config {
    /// The time zone dates in the configuration are read in (`[schedule].timezone`).
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.schedule.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// The window of `[[override]]` number `index` (validation has refused a bad one).
    pub fn override_window(&self, index: usize) -> Window {
        self.overrides
            .get(index)
            .and_then(|o| {
                Window::parse(o.from.as_deref(), o.until.as_deref(), self.timezone()).ok()
            })
            .unwrap_or_default()
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::Missing {
                    file: path.to_owned(),
                }
            } else {
                ConfigError::Unreadable {
                    file: path.to_owned(),
                    source,
                }
            }
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.path = path.to_owned();
        config.resolve_relative_paths();
        config.validate()?;
        Ok(config)
    }

    /// The family a source feeds. Validation guarantees it exists.
    pub fn family(&self, name: &str) -> Option<&FamilyConfig> {
        self.families.iter().find(|f| f.name == name)
    }

    /// The configured Graph section, or an error naming what is missing.
    pub fn graph(&self) -> Result<&GraphConfig, ConfigError> {
        self.graph.as_ref().ok_or_else(|| self.invalid("graph", "this command talks to Microsoft 365 and needs a [graph] section (tenant_id, client_id and one credential: client_secret_env, certificate_path or client_assertion_file)"))
    }

    /// The effective configuration as TOML, every default filled in and secrets redacted.
    pub fn render_effective(&self) -> String {
        toml::to_string_pretty(&self.redacted())
            .unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// A copy with every secret value removed (URLs keep all but their password). Secrets
    /// from the environment or files are not in the struct at all, only their names.
    pub fn redacted(&self) -> Config {
        let mut copy = self.clone();
        copy.state.url = copy.state.url.as_deref().map(redact_url);
        for source in &mut copy.sources {
            source.url = source.url.as_deref().map(redact_url);
        }
        // ODBC connection strings and LDAP passwords never sit in the struct, only the names
        // of where they come from.
        copy
    }
}

/// Whether a URL points at this machine.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests;
