//! What each kind of `[[source]]` takes: the keys it may set and the checks on their values
//! (URLs, templates, required queries), apart from what every source shares.

use super::{MemberKey, SourceConfig, SourceKind, redact_url};

/// The optional keys a source of each kind may set; any other is refused by name.
fn allowed_keys(kind: SourceKind) -> &'static [&'static str] {
    match kind {
        SourceKind::Sql => &["url", "url_env", "url_file", "query", "timeout"],
        SourceKind::Csv => &["path", "control", "delimiter"],
        SourceKind::Odbc => &[
            "connection_string_env",
            "connection_string_file",
            "query",
            "timeout",
        ],
        SourceKind::Ldap => &[
            "url",
            "start_tls",
            "bind_dn",
            "password_env",
            "password_file",
            "base",
            "filter",
            "groups_filter",
            "list",
            "member",
            "display_name",
            "timeout",
        ],
        SourceKind::Entra => &[
            "users_filter",
            "group",
            "list",
            "member",
            "display_name",
            "timeout",
        ],
    }
}

/// The kind-specific keys a source sets.
fn keys_set(source: &SourceConfig) -> Vec<&'static str> {
    let set = [
        ("url", source.url.is_some()),
        ("url_env", source.url_env.is_some()),
        ("url_file", source.url_file.is_some()),
        ("query", source.query.is_some()),
        ("path", source.path.is_some()),
        ("control", source.control.is_some()),
        ("delimiter", source.delimiter.is_some()),
        (
            "connection_string_env",
            source.connection_string_env.is_some(),
        ),
        (
            "connection_string_file",
            source.connection_string_file.is_some(),
        ),
        ("start_tls", source.start_tls),
        ("bind_dn", source.bind_dn.is_some()),
        ("password_env", source.password_env.is_some()),
        ("password_file", source.password_file.is_some()),
        ("base", source.base.is_some()),
        ("filter", source.filter.is_some()),
        ("groups_filter", source.groups_filter.is_some()),
        ("users_filter", source.users_filter.is_some()),
        ("group", source.group.is_some()),
        ("list", source.list.is_some()),
        ("member", source.member.is_some()),
        ("display_name", source.display_name.is_some()),
    ];
    set.into_iter()
        .filter(|(_, on)| *on)
        .map(|(key, _)| key)
        .collect()
}

fn required(
    value: &Option<String>,
    field: &'static str,
    what: &str,
) -> Result<(), (&'static str, String)> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(()),
        _ => Err((field, what.to_owned())),
    }
}

/// A source's kind-specific checks; `Err` names the key at fault.
pub(super) fn check_source(source: &SourceConfig) -> Result<(), (&'static str, String)> {
    let kind = source.kind;
    let allowed = allowed_keys(kind);
    if let Some(key) = keys_set(source).into_iter().find(|k| !allowed.contains(k)) {
        return Err((
            key,
            format!(
                "`{key}` does not belong to `{}` sources (they take: {})",
                kind.as_str(),
                allowed.join(", ")
            ),
        ));
    }
    if source.timeout.is_zero() {
        return Err(("timeout", "must be longer than zero".into()));
    }
    match kind {
        SourceKind::Sql => {
            source.database_url().map_err(|m| ("url", m))?;
            required(
                &source.query,
                "query",
                "an sql source needs a query returning `list` and `member` columns",
            )?;
        }
        SourceKind::Csv => {
            if source.path.is_none() {
                return Err(("path", "a csv source needs `path`".into()));
            }
            source.csv_delimiter().map_err(|m| ("delimiter", m))?;
        }
        SourceKind::Odbc => {
            if !cfg!(feature = "odbc") {
                return Err((
                    "kind",
                    "this rollcall was built without ODBC; build it with `cargo build --release --features odbc` (needs unixODBC: apt-get install unixodbc-dev) or use the container image, which has it".into(),
                ));
            }
            source
                .connection_string()
                .map_err(|m| ("connection_string_env", m))?;
            required(
                &source.query,
                "query",
                "an odbc source needs a query returning `list` and `member` columns",
            )?;
        }
        SourceKind::Ldap => {
            let url = source.url.as_deref().unwrap_or_default();
            check_ldap_url(url, source.start_tls).map_err(|m| ("url", m))?;
            source.bind_password().map_err(|m| ("password_env", m))?;
            if source.bind_dn.is_none()
                && (source.password_env.is_some() || source.password_file.is_some())
            {
                return Err((
                    "bind_dn",
                    "a bind password needs the `bind_dn` to bind as".into(),
                ));
            }
            required(
                &source.base,
                "base",
                "an ldap source needs `base`, the DN its searches start from",
            )?;
            if source.member_key == MemberKey::ObjectId && source.member.is_none() {
                return Err((
                    "member",
                    "a directory holds no Entra object ids (Active Directory's objectGUID is another id); use member_key = \"upn\", \"mail\" or \"employee_id\", or give `member` naming an attribute that holds the object id".into(),
                ));
            }
            match (&source.filter, &source.groups_filter) {
                (Some(_), Some(_)) => {
                    return Err((
                        "groups_filter",
                        "give `filter` (one row per entry) or `groups_filter` (one list per group entry), not both".into(),
                    ));
                }
                (None, None) => {
                    return Err((
                        "filter",
                        "an ldap source needs `filter` (one row per entry, with `list` and `member` templates) or `groups_filter` (one list per group entry)".into(),
                    ));
                }
                (Some(_), None) => required(
                    &source.list,
                    "list",
                    "an ldap source with `filter` needs a `list` template, e.g. \"dept-{department|slug}\"",
                )?,
                (None, Some(_)) => {}
            }
            check_templates(source)?;
        }
        SourceKind::Entra => {
            match (&source.users_filter, &source.group) {
                (Some(_), Some(_)) => {
                    return Err(("group", "give `users_filter` or `group`, not both".into()));
                }
                (None, None) => {
                    return Err((
                        "users_filter",
                        "an entra source needs `users_filter` (a Graph $filter over users) or `group` (an existing group's mailNickname or id)".into(),
                    ));
                }
                _ => {}
            }
            required(
                &source.list,
                "list",
                "an entra source needs a `list` template, e.g. \"dept-{department|slug}\"",
            )?;
            check_templates(source)?;
        }
    }
    Ok(())
}

fn check_templates(source: &SourceConfig) -> Result<(), (&'static str, String)> {
    for (field, template) in [
        ("list", &source.list),
        ("member", &source.member),
        ("display_name", &source.display_name),
    ] {
        if let Some(text) = template {
            crate::source::Template::parse(text).map_err(|m| (field, m))?;
        }
    }
    Ok(())
}

/// Whether an LDAP URL's host is this machine (`url` leaves the host of a non-special scheme
/// as text, so an address is parsed here).
fn ldap_loopback(url: &url::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `ldaps://`, or `ldap://` with StartTLS; plain `ldap://` only on loopback.
fn check_ldap_url(value: &str, start_tls: bool) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("an ldap source needs `url`, e.g. \"ldaps://ad.example.ac.uk\"".into());
    }
    let url = url::Url::parse(value).map_err(|e| format!("`{value}` is not a URL ({e})"))?;
    if url.password().is_some() || !url.username().is_empty() {
        return Err(format!(
            "`{}` holds credentials; give `bind_dn` and `password_env` instead",
            redact_url(value)
        ));
    }
    match url.scheme() {
        "ldaps" if start_tls => {
            Err("`start_tls` is for ldap:// URLs; ldaps:// is already TLS".into())
        }
        "ldaps" => Ok(()),
        "ldap" if start_tls || ldap_loopback(&url) => Ok(()),
        "ldap" => Err(format!(
            "`{value}` is plain LDAP to another machine, which would send the bind password in clear text; use ldaps:// or set `start_tls = true`"
        )),
        other => Err(format!(
            "`{value}` has scheme `{other}`; use ldaps:// or ldap://"
        )),
    }
}
