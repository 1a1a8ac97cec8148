//! Which of the three ways `[graph]` signs in: a client secret, a certificate, or a client
//! assertion file (workload identity federation), exactly one of them.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::GraphConfig;
use super::certificate::Certificate;

/// The variables Azure Workload Identity injects into a pod: the assertion file, the client,
/// the tenant, and (optionally) the authority.
pub const FEDERATION_ENV: [&str; 4] = [
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
];

/// The `[graph]` keys that each name a credential; exactly one may be given.
const CREDENTIAL_KEYS: [&str; 4] = [
    "client_secret_env",
    "client_secret_file",
    "certificate_path",
    "client_assertion_file",
];

/// A credential problem: the `[graph]` key it concerns and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    /// The key under `[graph]`.
    pub key: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl CredentialError {
    /// A problem with `graph.{key}`.
    pub fn new(key: &str, message: impl Into<String>) -> CredentialError {
        CredentialError {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// How rollcall proves who it is to the identity platform.
#[derive(Debug)]
pub enum Credential {
    /// A client secret (`client_secret_env` or `client_secret_file`).
    Secret(SecretString),
    /// A certificate whose key signs a client assertion for every token request.
    Certificate(Box<Certificate>),
    /// A file holding an assertion from another issuer, read afresh for every token request.
    AssertionFile {
        /// The file.
        path: PathBuf,
        /// Whether it came from `AZURE_FEDERATED_TOKEN_FILE` rather than the configuration.
        from_environment: bool,
    },
}

impl Credential {
    /// Which way this is, for messages: `client secret`, `certificate` or `federation`.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Secret(_) => "client secret",
            Credential::Certificate(_) => "certificate",
            Credential::AssertionFile { .. } => "workload identity federation",
        }
    }
}

/// A variable's value, when it is set and not blank.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the environment holds what Azure Workload Identity injects (the file, the client
/// and the tenant).
fn federation_from_environment() -> Option<PathBuf> {
    let file = env_value(FEDERATION_ENV[0])?;
    env_value(FEDERATION_ENV[1])?;
    env_value(FEDERATION_ENV[2])?;
    Some(PathBuf::from(file))
}

/// How a `[graph]` file path names systemd's credentials directory (`LoadCredential=`),
/// whose path depends on the unit: `$CREDENTIALS_DIRECTORY/app.pem`.
const CREDENTIALS_DIRECTORY: [&str; 2] = ["$CREDENTIALS_DIRECTORY", "${CREDENTIALS_DIRECTORY}"];

/// Replaces a leading `$CREDENTIALS_DIRECTORY` with the directory systemd gives the unit.
/// Returns whether the path starts with it (set or not): such a path is never made
/// relative to the configuration's folder.
pub(super) fn expand_credentials_directory(path: &mut Option<PathBuf>) -> bool {
    let Some(text) = path.as_ref().and_then(|p| p.to_str()) else {
        return false;
    };
    let Some(rest) = CREDENTIALS_DIRECTORY
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))
    else {
        return false;
    };
    if let Some(directory) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let expanded = PathBuf::from(directory).join(rest.trim_start_matches('/'));
        *path = Some(expanded);
    }
    true
}

/// A hint for a path that still names `$CREDENTIALS_DIRECTORY`: systemd did not set it.
pub(super) fn unexpanded_hint(path: &Path) -> &'static str {
    if path.starts_with("$CREDENTIALS_DIRECTORY") || path.starts_with("${CREDENTIALS_DIRECTORY}") {
        " (CREDENTIALS_DIRECTORY is not set: systemd sets it for a unit with LoadCredential=; \
         outside one, set it to the folder holding the file)"
    } else {
        ""
    }
}

/// Reads a client assertion; it is handed on as it is and never kept.
pub fn read_assertion(path: &Path) -> Result<SecretString, String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(SecretString::from(text.trim().to_owned())),
        Ok(_) => Err(format!(
            "{} is empty; the platform that writes the assertion (e.g. the Kubernetes \
             projected service-account token) has not written it",
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot read the client assertion {}: {e}",
            path.display()
        )),
    }
}

impl GraphConfig {
    /// The one credential the section names (or the environment provides), read and checked:
    /// a secret read, a certificate and key loaded, an assertion file's path.
    pub fn credential(&self) -> Result<Credential, CredentialError> {
        let given: Vec<&str> = CREDENTIAL_KEYS
            .iter()
            .zip([
                self.client_secret_env.is_some(),
                self.client_secret_file.is_some(),
                self.certificate_path.is_some(),
                self.client_assertion_file.is_some(),
            ])
            .filter(|(_, given)| *given)
            .map(|(key, _)| *key)
            .collect();
        if let [first, second, ..] = given[..] {
            return Err(CredentialError::new(
                second,
                format!(
                    "`graph.{first}` names a credential too; give exactly one of {}",
                    given
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if self.certificate_path.is_none() {
            for (key, set) in [
                ("private_key_path", self.private_key_path.is_some()),
                (
                    "certificate_password_env",
                    self.certificate_password_env.is_some(),
                ),
                (
                    "certificate_algorithm",
                    self.certificate_algorithm.is_some(),
                ),
            ] {
                if set {
                    return Err(CredentialError::new(
                        key,
                        "belongs to a certificate credential: give `certificate_path` too, or \
                         remove it",
                    ));
                }
            }
        }
        match given.first().copied() {
            Some("client_secret_env" | "client_secret_file") => {
                self.client_secret().map(Credential::Secret).map_err(|m| {
                    let key = if self.client_secret_env.is_some() {
                        "client_secret_env"
                    } else {
                        "client_secret_file"
                    };
                    CredentialError::new(key, m)
                })
            }
            Some("certificate_path") => {
                let path = self.certificate_path.as_deref().unwrap_or(Path::new(""));
                Certificate::load(
                    path,
                    self.private_key_path.as_deref(),
                    self.certificate_password_env.as_deref(),
                    self.certificate_algorithm.unwrap_or_default(),
                )
                .map(|c| Credential::Certificate(Box::new(c)))
            }
            Some(_) => Ok(Credential::AssertionFile {
                path: self.client_assertion_file.clone().unwrap_or_default(),
                from_environment: false,
            }),
            None => match federation_from_environment() {
                Some(path) => Ok(Credential::AssertionFile {
                    path,
                    from_environment: true,
                }),
                None => Err(CredentialError::new(
                    "client_secret_env",
                    "no credential: give one of `client_secret_env`, `client_secret_file`, \
                     `certificate_path` or `client_assertion_file`, or run where Azure \
                     Workload Identity sets AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and \
                     AZURE_TENANT_ID",
                )),
            },
        }
    }

    /// Whether the section names no credential and the environment provides federation.
    fn federated_by_environment(&self) -> bool {
        self.client_secret_env.is_none()
            && self.client_secret_file.is_none()
            && self.certificate_path.is_none()
            && self.client_assertion_file.is_none()
            && federation_from_environment().is_some()
    }

    /// `tenant_id`, or `AZURE_TENANT_ID` when it is empty and federation comes from the
    /// environment.
    pub fn effective_tenant_id(&self) -> String {
        match self.tenant_id.trim() {
            "" if self.federated_by_environment() => {
                env_value(FEDERATION_ENV[2]).unwrap_or_default()
            }
            tenant => tenant.to_owned(),
        }
    }

    /// `client_id`, or `AZURE_CLIENT_ID` when it is empty and federation comes from the
    /// environment.
    pub fn effective_client_id(&self) -> String {
        match self.client_id.trim() {
            "" if self.federated_by_environment() => {
                env_value(FEDERATION_ENV[1]).unwrap_or_default()
            }
            client => client.to_owned(),
        }
    }

    /// `authority`, or `AZURE_AUTHORITY_HOST` when the section leaves the authority at its
    /// default and federation comes from the environment.
    pub fn effective_authority(&self) -> String {
        if self.authority == super::default_authority()
            && self.federated_by_environment()
            && let Some(host) = env_value(FEDERATION_ENV[3])
        {
            return host;
        }
        self.authority.clone()
    }
}

impl super::Config {
    /// What does not stop a run but needs a person soon: a certificate that expires within
    /// 30 days (or has expired).
    pub fn warnings(&self) -> Vec<String> {
        let now = crate::clock::now();
        let mut warnings: Vec<String> = self
            .graph
            .as_ref()
            .and_then(GraphConfig::certificate)
            .and_then(|c| c.expiry_warning(chrono::Utc::now()))
            .into_iter()
            .collect();
        for (index, rule) in self.overrides.iter().enumerate() {
            if self.override_window(index).ended(now) {
                warnings.push(format!(
                    "override[{index}] for list `{}` ended (until = {}); it no longer applies and can be removed",
                    rule.list.trim(),
                    rule.until.as_deref().unwrap_or_default()
                ));
            }
        }
        if self.serve.show_members && !self.serve.listen.ip().is_loopback() {
            warnings.push(format!(
                "[serve] show_members = true and listen = \"{}\": the status page shows member identities to anyone who can reach that address; put it behind authentication or listen on 127.0.0.1",
                self.serve.listen
            ));
        }
        warnings
    }
}

impl GraphConfig {
    /// The certificate rollcall signs in with, when that is the credential and it loads.
    pub fn certificate(&self) -> Option<Certificate> {
        self.certificate_path.as_ref()?;
        match self.credential() {
            Ok(Credential::Certificate(certificate)) => Some(*certificate),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(extra: &str) -> GraphConfig {
        toml::from_str(&format!("tenant_id = \"t\"\nclient_id = \"c\"\n{extra}")).unwrap()
    }

    #[test]
    fn two_credentials_are_refused_naming_both() {
        let err = graph("client_secret_env = \"PATH\"\ncertificate_path = \"/x.pem\"")
            .credential()
            .unwrap_err();
        assert_eq!(err.key, "certificate_path");
        assert!(err.message.contains("`graph.client_secret_env`"), "{err:?}");
        let err = graph("certificate_path = \"/x.pem\"\nclient_assertion_file = \"/t\"")
            .credential()
            .unwrap_err();
        assert_eq!(err.key, "client_assertion_file");
    }

    #[test]
    fn certificate_settings_without_a_certificate_are_refused() {
        let err = graph("client_secret_env = \"PATH\"\nprivate_key_path = \"/k.pem\"")
            .credential()
            .unwrap_err();
        assert_eq!(err.key, "private_key_path");
        let err = graph("client_secret_env = \"PATH\"\ncertificate_algorithm = \"PS256\"")
            .credential()
            .unwrap_err();
        assert_eq!(err.key, "certificate_algorithm");
    }

    #[test]
    fn an_assertion_file_is_a_credential_of_its_own() {
        let credential = graph("client_assertion_file = \"/var/run/token\"")
            .credential()
            .unwrap();
        assert!(
            matches!(credential, Credential::AssertionFile { ref path, from_environment: false } if path == Path::new("/var/run/token"))
        );
        assert_eq!(credential.kind(), "workload identity federation");
    }

    #[test]
    fn an_unknown_algorithm_is_a_syntax_error() {
        let err = toml::from_str::<GraphConfig>(
            "tenant_id = \"t\"\nclient_id = \"c\"\ncertificate_algorithm = \"HS256\"",
        )
        .unwrap_err();
        assert!(err.to_string().contains("RS256"), "{err}");
    }
}
