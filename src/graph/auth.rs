//! Signing in: a client-credentials token fetched from the configured authority, and the
//! graph-rs-sdk client that carries it as its bearer token.
//!
//! The credential is a client secret, a client assertion signed with a certificate (made
//! afresh for every token request), or a client assertion file another issuer rewrites
//! (workload identity federation, read afresh for every token request). Caching and renewal
//! are the same for all three.
//!
//! graph-rs-sdk's own token client cannot be pointed at another authority (GRAPH.md), so
//! rollcall asks `{authority}/{tenant}/oauth2/v2.0/token` itself and builds a graph-rs-sdk
//! client around each token: a new client only when the token is renewed, which happens
//! shortly before it expires and once after Graph answers 401.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use graph_rs_sdk::GraphClientConfiguration;
use graph_rs_sdk::identity::{AllowedHostValidator, HostIs};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::assertion::{self, JWT_BEARER};
use super::counters::Counters;
use super::error::GraphError;
use super::retry::{Attempts, Fault, RetryPolicy, parse_retry_after};
use crate::config::{Credential, GraphConfig, is_loopback};

/// A token is renewed once less than this much of its life is left (or 10 % of it, if less).
const RENEW_MARGIN: Duration = Duration::from_secs(300);

/// Where and as whom rollcall signs in, checked before anything is sent.
pub(crate) struct Credentials {
    token_url: Url,
    client_id: String,
    credential: Credential,
    scope: String,
    /// Graph's base URL, e.g. `https://graph.microsoft.com/v1.0`.
    pub(crate) endpoint: Url,
    /// Whether the endpoint is on this machine (the sandbox): graph-rs-sdk's test endpoint.
    loopback: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("credential", &self.credential.kind())
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

/// Parses `graph.{key}` and refuses anything but https, or http on a loopback host.
fn checked_url(key: &str, value: &str) -> Result<Url, GraphError> {
    let config = |message: String| GraphError::Config {
        key: key.to_owned(),
        message,
    };
    let url = Url::parse(value.trim()).map_err(|e| {
        config(format!(
            "`{value}` is not a URL ({e}); give the full URL, e.g. https://graph.microsoft.com/v1.0"
        ))
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(config(format!(
            "`{value}` is plain http on a non-loopback host; use https (only a sandbox on \
             127.0.0.1, ::1 or localhost may use http)"
        ))),
        other => Err(config(format!("`{value}` has scheme `{other}`; use https"))),
    }
}

impl Credentials {
    /// Checks endpoint and authority and reads the credential (a certificate must be within
    /// its validity).
    pub(crate) fn from_config(config: &GraphConfig) -> Result<Credentials, GraphError> {
        let mut endpoint = checked_url("endpoint", &config.endpoint)?;
        let authority_text = config.effective_authority();
        let authority = checked_url("authority", &authority_text)?;
        let loopback = is_loopback(&endpoint);
        if !loopback && AllowedHostValidator::default().validate_url(&endpoint) == HostIs::Invalid {
            return Err(GraphError::Config {
                key: "endpoint".to_owned(),
                message: format!(
                    "`{}` is not a Microsoft Graph host; use graph.microsoft.com or a national \
                     cloud's host (graph.microsoft.us, dod-graph.microsoft.us, graph.microsoft.de, \
                     microsoftgraph.chinacloudapi.cn)",
                    config.endpoint
                ),
            });
        }
        let tenant_id = config.effective_tenant_id();
        if tenant_id.trim().is_empty() || tenant_id.contains('/') {
            return Err(GraphError::Config {
                key: "tenant_id".to_owned(),
                message: "give the directory (tenant) id or a verified domain".to_owned(),
            });
        }
        let credential = config.credential().map_err(|e| GraphError::Config {
            key: e.key,
            message: e.message,
        })?;
        if let Credential::Certificate(certificate) = &credential
            && let Some(message) = certificate.unusable(chrono::Utc::now())
        {
            return Err(GraphError::Config {
                key: "certificate_path".to_owned(),
                message,
            });
        }
        let mut token_url = authority;
        token_url
            .path_segments_mut()
            .map_err(|()| GraphError::Config {
                key: "authority".to_owned(),
                message: format!("`{authority_text}` cannot take a path"),
            })?
            .pop_if_empty()
            .extend([tenant_id.trim(), "oauth2", "v2.0", "token"]);
        // A trailing slash would make every request path start with `//`.
        if endpoint.path().ends_with('/') {
            let trimmed = endpoint.path().trim_end_matches('/').to_owned();
            endpoint.set_path(&trimmed);
        }
        Ok(Credentials {
            token_url,
            client_id: config.effective_client_id(),
            credential,
            scope: scope_for(&endpoint),
            endpoint,
            loopback,
        })
    }

    /// Asks the identity platform for a token, retrying what the policy allows.
    async fn fetch(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        counters: &Counters,
    ) -> Result<Token, GraphError> {
        let mut attempts = Attempts::start();
        loop {
            counters.token_request();
            let (error, fault) = match self.fetch_once(http).await {
                Ok(token) => return Ok(token),
                Err(failure) => failure,
            };
            let Some(delay) = fault.and_then(|f| policy.next_delay(&mut attempts, f)) else {
                return Err(error);
            };
            tracing::debug!(
                token_url = %self.token_url,
                error = %error,
                delay_ms = delay.as_millis() as u64,
                "retrying the token request"
            );
            counters.retry();
            tokio::time::sleep(delay).await;
        }
    }

    /// One token request; a failure says whether it is worth another try.
    async fn fetch_once(
        &self,
        http: &reqwest::Client,
    ) -> Result<Token, (GraphError, Option<Fault>)> {
        let sign_in = |status: Option<u16>, reason: String, next_step: &str| GraphError::SignIn {
            token_url: self.token_url.to_string(),
            status,
            reason,
            next_step: next_step.to_owned(),
        };
        let proof = self.proof().map_err(|e| (e, None))?;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope.as_str()),
        ];
        form.extend(proof.fields());
        let response = http
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                (
                    sign_in(
                        None,
                        format!("no reply ({})", super::error::describe(&e)),
                        "check `graph.authority` and the network path to it",
                    ),
                    Some(Fault::NoReply),
                )
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 200
            && let Some(access_token) = body["access_token"].as_str()
        {
            let lifetime = match &body["expires_in"] {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .map_or(Duration::from_secs(3_599), Duration::from_secs);
            return Ok(Token {
                bearer: SecretString::from(access_token.to_owned()),
                lifetime,
            });
        }
        let error = body["error"].as_str().unwrap_or_default();
        // The description's first line; the rest is trace and correlation ids.
        let description = body["error_description"]
            .as_str()
            .and_then(|d| d.lines().next())
            .unwrap_or("no description");
        let reason = format!("{status} {error}: {description}");
        let fault = match status {
            429 => Some(Fault::Throttled(retry_after)),
            500..=599 => Some(Fault::Unavailable(retry_after)),
            _ => None,
        };
        Err((
            sign_in(
                Some(status),
                reason,
                next_step(&self.credential, status, error, description),
            ),
            fault,
        ))
    }
}

/// The `AADSTS` code at the start of an identity platform error description.
fn aadsts(description: &str) -> Option<&str> {
    let rest = description.strip_prefix("AADSTS")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// What proves the client's identity in one token request. An assertion lives only in
/// that request: never logged, never kept.
enum Proof<'a> {
    Secret(&'a SecretString),
    Assertion(SecretString),
}

impl Proof<'_> {
    /// The form fields that carry it.
    fn fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            Proof::Secret(secret) => vec![("client_secret", secret.expose_secret())],
            Proof::Assertion(assertion) => vec![
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.expose_secret()),
            ],
        }
    }
}

impl Credentials {
    /// The secret, or a client assertion: signed now with the certificate, or read now from
    /// the assertion file (a platform rewrites it).
    fn proof(&self) -> Result<Proof<'_>, GraphError> {
        match &self.credential {
            Credential::Secret(secret) => Ok(Proof::Secret(secret)),
            Credential::Certificate(certificate) => assertion::sign(
                certificate,
                &self.client_id,
                self.token_url.as_str(),
                chrono::Utc::now(),
            )
            .map(Proof::Assertion),
            Credential::AssertionFile {
                path,
                from_environment,
            } => crate::config::read_assertion(path)
                .map(Proof::Assertion)
                .map_err(|message| GraphError::Config {
                    key: "client_assertion_file".to_owned(),
                    message: if *from_environment {
                        format!("(from AZURE_FEDERATED_TOKEN_FILE) {message}")
                    } else {
                        message
                    },
                }),
        }
    }
}

/// Which setting an identity platform refusal points at.
fn next_step(credential: &Credential, status: u16, error: &str, description: &str) -> &'static str {
    match (credential, aadsts(description).unwrap_or_default()) {
        (_, "700016") => {
            return "check `graph.client_id`: it must be the application (client) id of an app \
                    registration in this tenant";
        }
        (_, "700024") => {
            return "the assertion was outside its validity window: check this machine's clock \
                    (the identity platform allows 5 minutes of skew), or the platform that \
                    writes the assertion file";
        }
        (_, "700023") => {
            return "the assertion's audience is not this token endpoint: check \
                    `graph.authority` and `graph.tenant_id`";
        }
        (_, "700021") => {
            return "the assertion's issuer and subject must be the client id: check \
                    `graph.client_id`";
        }
        (Credential::Certificate(_), "700027") => {
            return "the certificate is not registered on the app registration, or the key \
                    does not belong to it: upload the certificate in `graph.certificate_path` \
                    (Certificates & secrets) or fix `graph.private_key_path`";
        }
        (Credential::Certificate(_), "5002738") => {
            return "the identity platform refuses the signing algorithm: set \
                    `graph.certificate_algorithm` to RS256 or PS256";
        }
        (Credential::AssertionFile { .. }, code)
            if code.starts_with("70021") || code.starts_with("700027") || code == "7000272" =>
        {
            return "no federated credential on the app registration matches the assertion: \
                    its issuer, subject and audience must match exactly (case-sensitive)";
        }
        _ => {}
    }
    match error {
        "invalid_client" => match credential {
            Credential::Secret(_) => {
                "check the secret that `graph.client_secret_env` or `graph.client_secret_file` \
                 names: it must be the secret's value (not its id) and not expired"
            }
            Credential::Certificate(_) => {
                "check the certificate in `graph.certificate_path`: it must be registered on \
                 the app registration and current"
            }
            Credential::AssertionFile { .. } => {
                "check the federated credential on the app registration and the assertion file \
                 (`graph.client_assertion_file` or AZURE_FEDERATED_TOKEN_FILE)"
            }
        },
        "unauthorized_client" => {
            "check `graph.client_id`: it must be the application (client) id of an app \
             registration in this tenant"
        }
        "invalid_scope" => "check `graph.endpoint`: the token's scope is taken from its host",
        _ if description.contains("AADSTS90002") || description.contains("Tenant") => {
            "check `graph.tenant_id`: it must be the directory (tenant) id or a verified domain"
        }
        _ if status == 404 => "check `graph.authority` and `graph.tenant_id`",
        _ => "check `graph.tenant_id`, `graph.client_id` and the credential",
    }
}

/// The token scope: Graph's own for the public cloud, else the endpoint host's `/.default`.
fn scope_for(endpoint: &Url) -> String {
    match (endpoint.scheme(), endpoint.host_str()) {
        ("https", Some(host)) if !is_loopback(endpoint) => format!("https://{host}/.default"),
        _ => "https://graph.microsoft.com/.default".to_owned(),
    }
}

/// An access token and how long it was issued for.
struct Token {
    bearer: SecretString,
    lifetime: Duration,
}

/// A graph-rs-sdk client holding one token.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client requests go through.
    pub(crate) sdk: graph_rs_sdk::GraphClient,
    /// Which token this is; a 401 renews only the token it was sent with.
    pub(crate) generation: u64,
    /// The token's `roles` claim, when the token is a JWT that has one.
    pub(crate) roles: Option<Vec<String>>,
    renew_at: Instant,
}

/// The current session, renewed before its token runs out.
#[derive(Debug)]
pub(crate) struct SignIn {
    credentials: Credentials,
    http: reqwest::Client,
    current: RwLock<Option<Arc<Session>>>,
    renewing: tokio::sync::Mutex<()>,
    generations: AtomicU64,
}

impl SignIn {
    /// Ready to sign in with these credentials; nothing is sent yet.
    pub(crate) fn new(
        credentials: Credentials,
        policy: &RetryPolicy,
    ) -> Result<SignIn, GraphError> {
        let http = reqwest::Client::builder()
            .https_only(!is_loopback(&credentials.token_url))
            .timeout(policy.request_timeout)
            .build()
            .map_err(|e| {
                GraphError::Other(format!("cannot build the HTTP client for signing in: {e}"))
            })?;
        Ok(SignIn {
            credentials,
            http,
            current: RwLock::new(None),
            renewing: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
        })
    }

    /// Graph's base URL.
    pub(crate) fn endpoint(&self) -> &Url {
        &self.credentials.endpoint
    }

    /// A session whose token is good for a while yet.
    pub(crate) async fn session(
        &self,
        policy: &RetryPolicy,
        counters: &Counters,
    ) -> Result<Arc<Session>, GraphError> {
        if let Some(session) = self.current.read().expect("session lock").as_ref()
            && Instant::now() < session.renew_at
        {
            return Ok(session.clone());
        }
        self.renew(None, policy, counters).await
    }

    /// A new token, unless another task renewed it since `stale` (a generation Graph
    /// refused with 401) or since the caller found it due.
    pub(crate) async fn renew(
        &self,
        stale: Option<u64>,
        policy: &RetryPolicy,
        counters: &Counters,
    ) -> Result<Arc<Session>, GraphError> {
        let _renewing = self.renewing.lock().await;
        if let Some(session) = self.current.read().expect("session lock").as_ref()
            && Instant::now() < session.renew_at
            && stale.is_none_or(|g| g != session.generation)
        {
            return Ok(session.clone());
        }
        let received = Instant::now();
        let token = self.credentials.fetch(&self.http, policy, counters).await?;
        let session = Arc::new(self.session_for(token, received, policy));
        tracing::debug!(
            generation = session.generation,
            "signed in to Microsoft Graph"
        );
        *self.current.write().expect("session lock") = Some(session.clone());
        Ok(session)
    }

    fn session_for(&self, token: Token, received: Instant, policy: &RetryPolicy) -> Session {
        let credentials = &self.credentials;
        let configuration = GraphClientConfiguration::new()
            .access_token(token.bearer.expose_secret())
            .timeout(policy.request_timeout)
            .https_only(credentials.endpoint.scheme() == "https");
        let mut sdk = graph_rs_sdk::GraphClient::from(configuration);
        if credentials.loopback {
            sdk.use_test_endpoint(&credentials.endpoint);
        } else {
            // Checked against graph-rs-sdk's own host list in `Credentials::from_config`.
            sdk.use_endpoint(&credentials.endpoint);
        }
        let margin = RENEW_MARGIN.min(token.lifetime / 10);
        Session {
            sdk,
            roles: super::permissions::roles_of(token.bearer.expose_secret()),
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
            renew_at: received + token.lifetime.saturating_sub(margin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: &str, authority: &str) -> GraphConfig {
        GraphConfig {
            tenant_id: "t".to_owned(),
            client_id: "c".to_owned(),
            // Any variable that is set will do: these tests never send the secret.
            client_secret_env: Some("PATH".to_owned()),
            client_secret_file: None,
            certificate_path: None,
            private_key_path: None,
            certificate_password_env: None,
            certificate_algorithm: None,
            client_assertion_file: None,
            endpoint: endpoint.to_owned(),
            authority: authority.to_owned(),
            max_concurrency: 4,
            max_retry_time: Duration::from_secs(300),
        }
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let err = Credentials::from_config(&config(
            "http://graph.example.org/v1.0",
            "https://login.microsoftonline.com",
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`graph.endpoint`: `http://graph.example.org/v1.0` is plain http"),
            "{err}"
        );
        let err = Credentials::from_config(&config(
            "https://graph.microsoft.com/v1.0",
            "http://login.example.org",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("graph.authority"), "{err}");
    }

    #[test]
    fn loopback_http_is_accepted_and_token_url_is_built_from_authority() {
        let credentials =
            Credentials::from_config(&config("http://127.0.0.1:9/v1.0/", "http://localhost:9/"))
                .unwrap();
        assert_eq!(
            credentials.token_url.as_str(),
            "http://localhost:9/t/oauth2/v2.0/token"
        );
        assert_eq!(credentials.endpoint.as_str(), "http://127.0.0.1:9/v1.0");
        assert!(credentials.loopback);
    }

    #[test]
    fn hosts_graph_rs_sdk_refuses_are_a_config_error_not_a_panic() {
        let err = Credentials::from_config(&config(
            "https://graph.example.org/v1.0",
            "https://login.microsoftonline.com",
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("not a Microsoft Graph host"),
            "{err}"
        );
    }

    #[test]
    fn scope_follows_the_endpoint_host() {
        let scope = |u: &str| scope_for(&Url::parse(u).unwrap());
        assert_eq!(
            scope("https://graph.microsoft.com/v1.0"),
            "https://graph.microsoft.com/.default"
        );
        assert_eq!(
            scope("https://graph.microsoft.us/v1.0"),
            "https://graph.microsoft.us/.default"
        );
        assert_eq!(
            scope("http://127.0.0.1:8080/v1.0"),
            "https://graph.microsoft.com/.default"
        );
    }

    #[test]
    fn refusals_name_the_setting_to_check() {
        let secret = Credential::Secret(SecretString::from("s"));
        let next_step = |status, error, description| next_step(&secret, status, error, description);
        assert!(next_step(401, "invalid_client", "AADSTS7000215").contains("client_secret_env"));
        assert!(next_step(400, "unauthorized_client", "AADSTS700016").contains("graph.client_id"));
        assert!(
            next_step(400, "invalid_request", "AADSTS90002: Tenant 'x' not found.")
                .contains("graph.tenant_id")
        );
    }

    #[test]
    fn assertion_refusals_name_their_cause() {
        let federation = Credential::AssertionFile {
            path: "/t".into(),
            from_environment: false,
        };
        assert!(
            next_step(
                &federation,
                401,
                "invalid_client",
                "AADSTS700024: not within its valid time range"
            )
            .contains("clock")
        );
        assert!(
            next_step(&federation, 401, "invalid_client", "AADSTS700023: audience")
                .contains("graph.authority")
        );
        assert!(
            next_step(
                &federation,
                401,
                "invalid_client",
                "AADSTS700213: No matching federated identity record"
            )
            .contains("federated credential")
        );
        assert_eq!(aadsts("AADSTS700027: Client assertion"), Some("700027"));
        assert_eq!(aadsts("no code"), None);
    }
}
