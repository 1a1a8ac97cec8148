//! Secrets: read from environment variables or files, never printed.

use std::fmt;
use std::path::Path;

use super::{GraphConfig, NotifyConfig, SourceConfig, StateConfig};

use secrecy::{ExposeSecret, SecretString};

/// A database URL that may carry a password. Its `Debug` and [`DatabaseUrl::redacted`]
/// never show the password.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    /// The URL with its password, for connecting.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with its password replaced by `***`, for logs and messages.
    pub fn redacted(&self) -> String {
        redact_url(self.expose())
    }

    /// The lower-case scheme (`sqlite`, `postgres`, `mysql`, …).
    pub fn scheme(&self) -> String {
        let url = self.expose();
        url.split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password in a URL by `***`; anything that is not a URL comes back unchanged
/// unless it looks like it carries credentials, which are then hidden whole.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                // set_password fails only for URLs that cannot have credentials.
                let _ = url.set_password(Some("***"));
            }
            let mut out = url.to_string();
            // url adds a trailing slash to bare hosts; keep the operator's spelling otherwise.
            if !raw.ends_with('/') && out.ends_with('/') && url.path() == "/" {
                out.pop();
            }
            out
        }
        Err(_) if raw.contains('@') => "***".to_owned(),
        Err(_) => raw.to_owned(),
    }
}

/// Reads a secret from exactly one of: a literal allowed in the file, an environment
/// variable, or a file. Returns `Ok(None)` when none is given.
pub(crate) fn read_secret(
    literal: Option<&str>,
    env: Option<&str>,
    file: Option<&Path>,
    names: [&str; 3],
) -> Result<Option<SecretString>, String> {
    let given = [literal.is_some(), env.is_some(), file.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        let used: Vec<&str> = names
            .iter()
            .zip(given)
            .filter(|(_, g)| *g)
            .map(|(n, _)| *n)
            .collect();
        return Err(format!("give only one of {}", used.join(", ")));
    }
    if let Some(value) = literal {
        return Ok(Some(SecretString::from(value.to_owned())));
    }
    if let Some(var) = env {
        if var.trim().is_empty() {
            return Err(format!("`{}` names no environment variable", names[1]));
        }
        return match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => {
                Ok(Some(SecretString::from(value.trim().to_owned())))
            }
            Ok(_) => Err(format!("environment variable {var} is empty")),
            Err(std::env::VarError::NotPresent) => {
                Err(format!("environment variable {var} is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable {var} is not valid UTF-8"))
            }
        };
    }
    if let Some(path) = file {
        return match std::fs::read_to_string(path) {
            Ok(value) if !value.trim().is_empty() => {
                Ok(Some(SecretString::from(value.trim().to_owned())))
            }
            Ok(_) => Err(format!("{} is empty", path.display())),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        };
    }
    Ok(None)
}

/// The state database when the configuration names none, next to the configuration file.
pub const DEFAULT_STATE_URL: &str = "sqlite://rollcall.db";

/// Rewrites a relative SQLite URL (`sqlite://rollcall.db`, `sqlite:state/r.db?mode=rwc`) to
/// an absolute one under `base`; every other URL comes back unchanged.
pub(super) fn resolve_sqlite_url(url: &str, base: &Path) -> String {
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
    let Some(secret) = read_secret(url, url_env, url_file, ["url", "url_env", "url_file"])? else {
        return Ok(None);
    };
    let url = DatabaseUrl::new(secret.expose_secret().to_owned());
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

impl SourceConfig {
    /// An ODBC source's connection string, from the environment or a file (never the config).
    pub fn connection_string(&self) -> Result<SecretString, String> {
        read_secret(
            None,
            self.connection_string_env.as_deref(),
            self.connection_string_file.as_deref(),
            ["", "connection_string_env", "connection_string_file"],
        )?
        .ok_or_else(|| {
            "an odbc source needs `connection_string_env` or `connection_string_file` (the connection string holds credentials, so it never sits in the config)".to_owned()
        })
    }

    /// An LDAP source's bind password; `None` for an anonymous bind.
    pub fn bind_password(&self) -> Result<Option<SecretString>, String> {
        read_secret(
            None,
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            ["", "password_env", "password_file"],
        )
    }
}

/// An ODBC connection string fit for messages: every credential's value (`PWD`, `Password`,
/// keys, tokens, secrets) replaced by `***`, braces respected.
pub fn redact_connection_string(raw: &str) -> String {
    const SECRET_KEYS: [&str; 5] = ["pwd", "password", "secret", "token", "key"];
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            out.push_str(rest);
            break;
        };
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        // A braced value may hold `;` and `}}` (an escaped brace).
        let value_end = if after.starts_with('{') {
            let mut i = 1;
            let bytes = after.as_bytes();
            loop {
                match bytes.get(i) {
                    None => break after.len(),
                    Some(b'}') if bytes.get(i + 1) == Some(&b'}') => i += 2,
                    Some(b'}') => break i + 1,
                    Some(_) => i += 1,
                }
            }
        } else {
            after.find(';').unwrap_or(after.len())
        };
        let value = &after[..value_end];
        let name = key.trim().to_ascii_lowercase();
        out.push_str(key);
        out.push('=');
        if SECRET_KEYS.iter().any(|k| name == *k || name.ends_with(k)) {
            out.push_str("***");
        } else {
            out.push_str(value);
        }
        rest = &after[value_end..];
        if let Some(next) = rest.strip_prefix(';') {
            out.push(';');
            rest = next;
        }
    }
    out
}

impl GraphConfig {
    /// The app registration's client secret.
    pub fn client_secret(&self) -> Result<SecretString, String> {
        read_secret(None, self.client_secret_env.as_deref(), self.client_secret_file.as_deref(), ["", "client_secret_env", "client_secret_file"])?
            .ok_or_else(|| "the app registration's secret is missing: set `client_secret_env` (an environment variable's name) or `client_secret_file`".to_owned())
    }
}

impl NotifyConfig {
    /// The webhook URL.
    pub fn webhook_url(&self) -> Result<SecretString, String> {
        read_secret(
            None,
            Some(&self.webhook_url_env),
            None,
            ["", "webhook_url_env", ""],
        )?
        .ok_or_else(|| "missing".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_lose_every_credential_and_keep_the_rest() {
        assert_eq!(
            redact_connection_string(
                "Driver={ODBC Driver 18 for SQL Server};Server=tcp:sis.example.ac.uk,1433;UID=rollcall;PWD={p;a}}ss};Encrypt=yes"
            ),
            "Driver={ODBC Driver 18 for SQL Server};Server=tcp:sis.example.ac.uk,1433;UID=rollcall;PWD=***;Encrypt=yes"
        );
        assert_eq!(
            redact_connection_string("DSN=sits; Password=hunter2 ;ClientSecret=abc"),
            "DSN=sits; Password=***;ClientSecret=***"
        );
        assert_eq!(
            redact_connection_string("Driver=/usr/lib/psqlodbcw.so;Pwd=x"),
            "Driver=/usr/lib/psqlodbcw.so;Pwd=***"
        );
        assert_eq!(redact_connection_string("no pairs"), "no pairs");
        assert!(!redact_connection_string("PWD={unterminated;x").contains("unterminated"));
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.example.ac.uk:5432/sis"),
            "postgres://app:***@db.example.ac.uk:5432/sis"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1:3306/test"),
            "mysql://root@127.0.0.1:3306/test"
        );
        assert_eq!(redact_url("sqlite://rollcall.db"), "sqlite://rollcall.db");
        assert_eq!(redact_url("not a url with user:pw@host"), "***");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let url = DatabaseUrl::new("postgres://app:s3cret@db/sis");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(!url.to_string().contains("s3cret"));
        assert_eq!(url.scheme(), "postgres");
    }

    #[test]
    fn two_ways_of_giving_one_secret_is_an_error() {
        let err =
            read_secret(Some("x"), Some("VAR"), None, ["url", "url_env", "url_file"]).unwrap_err();
        assert_eq!(err, "give only one of url, url_env");
    }

    #[test]
    fn unset_environment_variable_is_named() {
        let err = read_secret(
            None,
            Some("ROLLCALL_TEST_SURELY_UNSET_VAR"),
            None,
            ["url", "url_env", "url_file"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "environment variable ROLLCALL_TEST_SURELY_UNSET_VAR is not set"
        );
    }
}
