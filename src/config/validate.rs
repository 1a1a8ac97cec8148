//! Validation: everything serde cannot check, and relative paths made absolute.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::credential::{self, Credential};
use super::secret::resolve_sqlite_url;
use super::source_check::check_source;
use super::{Config, ConfigError, DEFAULT_STATE_URL, TEMPLATE_PLACEHOLDERS, is_loopback};

impl Config {
    /// Makes every relative path in the file relative to the file's own folder, so that a
    /// run from cron (whatever its working directory) reads the same files as an operator's
    /// shell: CSV and control files, secret files, and SQLite database files.
    pub(super) fn resolve_relative_paths(&mut self) {
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
            for path in [
                &mut graph.client_secret_file,
                &mut graph.certificate_path,
                &mut graph.private_key_path,
                &mut graph.client_assertion_file,
            ] {
                if !credential::expand_credentials_directory(path) {
                    resolve(path);
                }
            }
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
        for source in &mut self.override_sources {
            if source.path.is_relative() {
                source.path = base.join(&source.path);
            }
            resolve(&mut source.control);
        }
        for source in &mut self.sources {
            resolve(&mut source.path);
            resolve(&mut source.control);
            resolve(&mut source.url_file);
            resolve(&mut source.connection_string_file);
            resolve(&mut source.password_file);
            source.url = source.url.take().map(|url| resolve_sqlite_url(&url, &base));
        }
    }

    /// An error about one key of this configuration file.
    pub(super) fn invalid(
        &self,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
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
            let credential = graph
                .credential()
                .map_err(|e| err(format!("graph.{}", e.key), e.message))?;
            for (key, value) in [
                ("tenant_id", graph.effective_tenant_id()),
                ("client_id", graph.effective_client_id()),
            ] {
                if value.trim().is_empty() {
                    return Err(err(format!("graph.{key}"), "must not be empty".into()));
                }
            }
            if let Credential::AssertionFile { path, .. } = &credential {
                credential::read_assertion(path)
                    .map_err(|m| err("graph.client_assertion_file".into(), m))?;
            }
            for (key, value) in [
                ("endpoint", graph.endpoint.clone()),
                ("authority", graph.effective_authority()),
            ] {
                check_graph_url(&value).map_err(|m| err(format!("graph.{key}"), m))?;
            }
            if graph.max_retry_time.is_zero() {
                return Err(err(
                    "graph.max_retry_time".into(),
                    "must be longer than zero (e.g. \"5m\")".to_owned(),
                ));
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
        if self.guard.max_addition_percent_per_list == Some(0) {
            return Err(err(
                "guard.max_addition_percent_per_list".into(),
                "0 would hold every list that gains a member; leave it out for no limit".into(),
            ));
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
            if let Some(unknown) = family
                .behaviors
                .iter()
                .find(|b| !super::GROUP_BEHAVIORS.contains(&b.as_str()))
            {
                return Err(err(
                    at("behaviors"),
                    format!(
                        "`{unknown}` is not a Microsoft 365 group behaviour; use some of {}",
                        super::GROUP_BEHAVIORS.join(", ")
                    ),
                ));
            }
            if family.max_members == Some(0) {
                return Err(err(
                    at("max_members"),
                    "0 would hold every list of the family; leave it out for no limit".into(),
                ));
            }
            if !family_names.insert(family.name.as_str()) {
                return Err(err(
                    at("name"),
                    format!("family `{}` is defined twice", family.name),
                ));
            }
            for (n, owner) in family.owners.iter().enumerate() {
                check_owner(owner).map_err(|m| err(at(&format!("owners[{n}]")), m))?;
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
            check_source(source).map_err(|(field, m)| err(at(field), m))?;
            if source.allow_empty && source.min_rows > 0 {
                return Err(err(
                    at("allow_empty"),
                    format!("contradicts min_rows = {}", source.min_rows),
                ));
            }
        }

        crate::clock::configured().map_err(|m| err(crate::clock::NOW_VAR.into(), m))?;
        for (i, o) in self.overrides.iter().enumerate() {
            super::Window::parse(o.from.as_deref(), o.until.as_deref(), self.timezone()).map_err(
                |m| {
                    let (end, message) = m.split_once(": ").unwrap_or(("from", m.as_str()));
                    err(format!("override[{i}].{end}"), message.to_owned())
                },
            )?;
            if o.list.trim().is_empty() {
                return Err(err(
                    format!("override[{i}].list"),
                    "must not be empty".into(),
                ));
            }
            if o.include.is_empty()
                && o.exclude.is_empty()
                && o.owners_include.is_empty()
                && o.owners_exclude.is_empty()
            {
                return Err(err(
                    format!("override[{i}]"),
                    "has none of `include`, `exclude`, `owners_include`, `owners_exclude`".into(),
                ));
            }
            for (include, exclude, what) in [
                (&o.include, &o.exclude, "included and excluded"),
                (
                    &o.owners_include,
                    &o.owners_exclude,
                    "an owner included and excluded",
                ),
            ] {
                if let Some(both) = include.iter().find(|m| {
                    exclude
                        .iter()
                        .any(|x| x.trim().eq_ignore_ascii_case(m.trim()))
                }) {
                    return Err(err(
                        format!("override[{i}]"),
                        format!("`{both}` is both {what}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A family's fixed owner: `kind:value`, or a bare UPN.
fn check_owner(owner: &str) -> Result<(), String> {
    let (kind, value) = crate::source::split_member(owner);
    let kind = kind.unwrap_or(super::MemberKey::Upn);
    if value.is_empty() {
        return Err("must name somebody".into());
    }
    if matches!(kind, super::MemberKey::Upn | super::MemberKey::Mail) && !value.contains('@') {
        return Err(format!(
            "`{owner}` is no {}: write a user principal name such as `it.lists@example.ac.uk`, or `employee_id:…` / `object_id:…`",
            kind.as_str()
        ));
    }
    Ok(())
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
