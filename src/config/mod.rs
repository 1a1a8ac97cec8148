//! Configuration: `rollcall.toml`, validated before anything is read or changed.
//!
//! Parsing happens in two steps: serde reads the file into these structs (unknown keys are
//! rejected), then [`Config::validate`] checks everything serde cannot: cross references
//! between families and sources, templates, URLs, schedules, and that every secret named
//! in the file can actually be read. A configuration that loads is one a run can use.

mod secret;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use secret::{DatabaseUrl, redact_url};

/// Where the configuration file is looked for when neither `--config` nor `ROLLCALL_CONFIG` says.
pub const DEFAULT_CONFIG_PATH: &str = "rollcall.toml";

/// A configuration problem: which file, which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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

/// `[graph]`: the tenant and the app registration rollcall signs in as.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// The directory (tenant) id or a verified domain.
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// The environment variable holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// Microsoft Graph's base URL, including the version segment.
    #[serde(default = "default_graph_endpoint")]
    pub endpoint: String,
    /// The identity platform's base URL.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// Requests in flight at once, across all lists.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
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
    /// How long a saved plan stays applicable.
    #[serde(default = "default_plan_ttl", with = "humantime_serde")]
    pub plan_ttl: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_removals_per_run: default_max_removals_per_run(),
            max_removal_percent_per_list: default_max_removal_percent_per_list(),
            min_list_size_for_percent: default_min_list_size_for_percent(),
            max_source_shrink_percent: default_max_source_shrink_percent(),
            max_additions_per_run: None,
            plan_ttl: default_plan_ttl(),
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
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_success_age: default_max_success_age(),
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
    /// `sql` or `csv`.
    pub kind: SourceKind,
    /// SQL: the database URL, when it holds no password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// SQL: the environment variable holding the database URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// SQL: a file holding the database URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// SQL: the query; it must return `list` and `member` columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// SQL: how long the query may take.
    #[serde(default = "default_source_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// CSV: the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// CSV: the optional control file (`rows=N`, `sha256=HEX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<PathBuf>,
    /// How the `member` column names a person.
    pub member_key: MemberKey,
    /// Fewer rows than this is a failed source.
    #[serde(default)]
    pub min_rows: u64,
    /// Zero rows is a failure unless this is true.
    #[serde(default)]
    pub allow_empty: bool,
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
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            file: path.to_owned(),
            source,
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

    /// Makes every relative path in the file relative to the file's own folder, so that a
    /// run from cron (whatever its working directory) reads the same files as an operator's
    /// shell: CSV and control files, secret files, and SQLite database files.
    fn resolve_relative_paths(&mut self) {
        let Some(base) = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_owned)
        else {
            return;
        };
        let resolve = |path: &mut Option<PathBuf>| {
            if let Some(p) = path.as_mut()
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.state.url_file);
        if let Some(graph) = &mut self.graph {
            resolve(&mut graph.client_secret_file);
        }
        if self.state.url.is_none() && self.state.url_env.is_none() && self.state.url_file.is_none()
        {
            self.state.url = Some(DEFAULT_STATE_URL.to_owned());
        }
        self.state.url = self
            .state
            .url
            .take()
            .map(|url| resolve_sqlite_url(&url, &base));
        for source in &mut self.sources {
            resolve(&mut source.path);
            resolve(&mut source.control);
            resolve(&mut source.url_file);
            source.url = source.url.take().map(|url| resolve_sqlite_url(&url, &base));
        }
    }

    /// The family a source feeds. Validation guarantees it exists.
    pub fn family(&self, name: &str) -> Option<&FamilyConfig> {
        self.families.iter().find(|f| f.name == name)
    }

    /// The configured Graph section, or an error naming what is missing.
    pub fn graph(&self) -> Result<&GraphConfig, ConfigError> {
        self.graph.as_ref().ok_or_else(|| self.invalid("graph", "this command talks to Microsoft 365 and needs a [graph] section (tenant_id, client_id, client_secret_env)"))
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Checks everything serde cannot; every secret is read once so that a missing one
    /// fails here, before anything else happens.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: String, message: String| self.invalid(key, message);

        self.state
            .database_url()
            .map_err(|m| err("state.url".into(), m))?;

        if let Some(graph) = &self.graph {
            for (key, value) in [
                ("tenant_id", &graph.tenant_id),
                ("client_id", &graph.client_id),
            ] {
                if value.trim().is_empty() {
                    return Err(err(format!("graph.{key}"), "must not be empty".into()));
                }
            }
            graph
                .client_secret()
                .map_err(|m| err("graph.client_secret_env".into(), m))?;
            for (key, value) in [
                ("endpoint", &graph.endpoint),
                ("authority", &graph.authority),
            ] {
                check_graph_url(value).map_err(|m| err(format!("graph.{key}"), m))?;
            }
            if graph.max_concurrency == 0 || graph.max_concurrency > 64 {
                return Err(err(
                    "graph.max_concurrency".into(),
                    format!("{} is out of range: use 1 to 64", graph.max_concurrency),
                ));
            }
        }

        for (key, value) in [
            (
                "guard.max_removal_percent_per_list",
                self.guard.max_removal_percent_per_list,
            ),
            (
                "guard.max_source_shrink_percent",
                self.guard.max_source_shrink_percent,
            ),
        ] {
            if value > 100 {
                return Err(err(
                    key.into(),
                    format!("{value} is not a percentage (0 to 100)"),
                ));
            }
        }
        if self.guard.plan_ttl.is_zero() {
            return Err(err(
                "guard.plan_ttl".into(),
                "must be longer than zero".into(),
            ));
        }

        let timezone: chrono_tz::Tz = self.schedule.timezone.parse().map_err(|_| {
            err(
                "schedule.timezone".into(),
                format!(
                    "`{}` is not an IANA timezone name (e.g. Europe/London)",
                    self.schedule.timezone
                ),
            )
        })?;
        let _ = timezone;
        let schedules = [
            ("schedule.run", Some(&self.schedule.run)),
            ("schedule.rebuild", self.schedule.rebuild.as_ref()),
        ];
        for (key, expr) in schedules {
            if let Some(expr) = expr {
                expr.parse::<cron::Schedule>().map_err(|e| {
                    err(
                        key.into(),
                        format!(
                            "`{expr}` is not a cron expression with a seconds field first ({e})"
                        ),
                    )
                })?;
            }
        }
        if self.serve.max_success_age.is_zero() {
            return Err(err(
                "serve.max_success_age".into(),
                "must be longer than zero".into(),
            ));
        }
        if let Some(notify) = &self.notify {
            notify
                .webhook_url()
                .map_err(|m| err("notify.webhook_url_env".into(), m))?;
        }

        let mut family_names = BTreeSet::new();
        for (i, family) in self.families.iter().enumerate() {
            let at = |field: &str| format!("family[{i}].{field}");
            check_name(&family.name).map_err(|m| err(at("name"), m))?;
            if !family_names.insert(family.name.as_str()) {
                return Err(err(
                    at("name"),
                    format!("family `{}` is defined twice", family.name),
                ));
            }
            for (field, template) in [
                ("mail_nickname", &family.mail_nickname),
                ("display_name", &family.display_name),
                ("description", &family.description),
            ] {
                check_template(template).map_err(|m| err(at(field), m))?;
            }
        }

        let mut source_names = BTreeSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let at = |field: &str| format!("source[{i}].{field}");
            check_name(&source.name).map_err(|m| err(at("name"), m))?;
            if !source_names.insert(source.name.as_str()) {
                return Err(err(
                    at("name"),
                    format!("source `{}` is defined twice", source.name),
                ));
            }
            if !family_names.contains(source.family.as_str()) {
                return Err(err(
                    at("family"),
                    format!(
                        "no [[family]] is named `{}` (known: {})",
                        source.family,
                        join(&family_names)
                    ),
                ));
            }
            match source.kind {
                SourceKind::Sql => {
                    if source.path.is_some() || source.control.is_some() {
                        return Err(err(at("path"), "`path` and `control` belong to csv sources; an sql source has `url_env` and `query`".into()));
                    }
                    source.database_url().map_err(|m| err(at("url"), m))?;
                    match &source.query {
                        Some(q) if !q.trim().is_empty() => {}
                        _ => {
                            return Err(err(
                                at("query"),
                                "an sql source needs a query returning `list` and `member` columns"
                                    .into(),
                            ));
                        }
                    }
                    if source.timeout.is_zero() {
                        return Err(err(at("timeout"), "must be longer than zero".into()));
                    }
                }
                SourceKind::Csv => {
                    if source.url.is_some()
                        || source.url_env.is_some()
                        || source.url_file.is_some()
                        || source.query.is_some()
                    {
                        return Err(err(at("query"), "`url`/`url_env`/`url_file` and `query` belong to sql sources; a csv source has `path`".into()));
                    }
                    if source.path.is_none() {
                        return Err(err(at("path"), "a csv source needs `path`".into()));
                    }
                }
            }
            if source.allow_empty && source.min_rows > 0 {
                return Err(err(
                    at("allow_empty"),
                    format!("contradicts min_rows = {}", source.min_rows),
                ));
            }
        }

        for (i, o) in self.overrides.iter().enumerate() {
            if o.list.trim().is_empty() {
                return Err(err(
                    format!("override[{i}].list"),
                    "must not be empty".into(),
                ));
            }
            if o.include.is_empty() && o.exclude.is_empty() {
                return Err(err(
                    format!("override[{i}]"),
                    "has neither `include` nor `exclude`".into(),
                ));
            }
            if let Some(both) = o.include.iter().find(|m| {
                o.exclude
                    .iter()
                    .any(|x| x.trim().eq_ignore_ascii_case(m.trim()))
            }) {
                return Err(err(
                    format!("override[{i}]"),
                    format!("`{both}` is both included and excluded"),
                ));
            }
        }
        Ok(())
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
        copy
    }
}

/// The state database when the configuration names none, next to the configuration file.
pub const DEFAULT_STATE_URL: &str = "sqlite://rollcall.db";

/// Rewrites a relative SQLite URL (`sqlite://rollcall.db`, `sqlite:state/r.db?mode=rwc`) to
/// an absolute one under `base`; every other URL comes back unchanged.
fn resolve_sqlite_url(url: &str, base: &Path) -> String {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return url.to_owned();
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (file, query) = rest
        .split_once('?')
        .map_or((rest, None), |(f, q)| (f, Some(q)));
    if file.is_empty() || file.starts_with(':') || Path::new(file).is_absolute() {
        return url.to_owned();
    }
    let absolute = base.join(file);
    match query {
        Some(query) => format!("sqlite://{}?{query}", absolute.display()),
        None => format!("sqlite://{}", absolute.display()),
    }
}

/// The database schemes rollcall connects to.
pub const DATABASE_SCHEMES: [&str; 5] = ["sqlite", "postgres", "postgresql", "mysql", "mariadb"];

/// Resolves a `url`/`url_env`/`url_file` trio into a database URL and checks its scheme.
fn database_url(
    url: Option<&str>,
    url_env: Option<&str>,
    url_file: Option<&Path>,
) -> Result<Option<DatabaseUrl>, String> {
    if let Some(literal) = url
        && url::Url::parse(literal).is_ok_and(|u| u.password().is_some())
    {
        return Err(format!(
            "`{}` holds a password; secrets never go in the file: put the URL in an environment variable (url_env) or a file (url_file)",
            redact_url(literal)
        ));
    }
    let Some(secret) = secret::read_secret(url, url_env, url_file, ["url", "url_env", "url_file"])?
    else {
        return Ok(None);
    };
    let url = DatabaseUrl::new(secrecy::ExposeSecret::expose_secret(&secret).to_owned());
    let scheme = url.scheme();
    if !DATABASE_SCHEMES.contains(&scheme.as_str()) {
        return Err(format!(
            "`{}` has scheme `{scheme}`; rollcall speaks sqlite://, postgres:// and mysql://",
            url.redacted()
        ));
    }
    Ok(Some(url))
}

impl StateConfig {
    /// The state database URL; [`DEFAULT_STATE_URL`] when none is configured.
    pub fn database_url(&self) -> Result<DatabaseUrl, String> {
        Ok(database_url(
            self.url.as_deref(),
            self.url_env.as_deref(),
            self.url_file.as_deref(),
        )?
        .unwrap_or_else(|| DatabaseUrl::new("sqlite://rollcall.db")))
    }
}

impl SourceConfig {
    /// An SQL source's database URL.
    pub fn database_url(&self) -> Result<DatabaseUrl, String> {
        database_url(
            self.url.as_deref(),
            self.url_env.as_deref(),
            self.url_file.as_deref(),
        )?
        .ok_or_else(|| {
            "an sql source needs `url_env`, `url_file` or (for a URL without a password) `url`"
                .to_owned()
        })
    }
}

impl GraphConfig {
    /// The app registration's client secret.
    pub fn client_secret(&self) -> Result<secrecy::SecretString, String> {
        secret::read_secret(None, self.client_secret_env.as_deref(), self.client_secret_file.as_deref(), ["", "client_secret_env", "client_secret_file"])?
            .ok_or_else(|| "the app registration's secret is missing: set `client_secret_env` (an environment variable's name) or `client_secret_file`".to_owned())
    }
}

impl NotifyConfig {
    /// The webhook URL.
    pub fn webhook_url(&self) -> Result<secrecy::SecretString, String> {
        secret::read_secret(
            None,
            Some(&self.webhook_url_env),
            None,
            ["", "webhook_url_env", ""],
        )?
        .ok_or_else(|| "missing".to_owned())
    }
}

fn join(names: &BTreeSet<&str>) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` must be 1 to 64 characters of a-z, A-Z, 0-9, '-', '_' or '.'"
        ))
    }
}

fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("`{template}` has a `{{` without a closing `}}`"))?;
        let name = &after[..close];
        if !TEMPLATE_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "`{template}` uses `{{{name}}}`; the placeholders are {{list}}, {{display_name}} and {{description}}"
            ));
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("`{template}` has a `}}` without an opening `{{`"));
    }
    Ok(())
}

/// A Graph endpoint or authority must be https, except on a loopback address (the sandbox).
fn check_graph_url(value: &str) -> Result<(), String> {
    let url = url::Url::parse(value).map_err(|e| format!("`{value}` is not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "`{value}` is plain http on a non-loopback host; only the sandbox on 127.0.0.1/::1/localhost may use http"
        )),
        other => Err(format!("`{value}` has scheme `{other}`; use https")),
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
