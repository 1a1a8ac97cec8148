//! Signing in three ways, end to end: the `rollcall` binary against the sandbox with a client
//! secret, a certificate (a client assertion rollcall signs), or workload identity
//! federation (an assertion file a platform rewrites, or Azure Workload Identity's
//! environment). Refusals fail before any write and name their cause; key files open to
//! others are refused like ssh refuses them; no secret, key or assertion is ever written
//! anywhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rollcall::config::{GraphConfig, Thumbprints};
use rollcall::graph::{GraphClient, RetryPolicy};
use rollcall::sandbox::{Faults, Sandbox, SandboxOptions};

use crate::common::certificates::{
    ISSUER, Key, SUBJECT, certificate_pem, current_certificate, encrypted_key_pem, federated_token,
    federated_token_from, key_pem, now, write_private,
};
use crate::common::db::{Backend, TestDatabase};
use crate::common::tenant::{Ran, Tenant, TenantOptions};

async fn tenant() -> Tenant {
    let db = TestDatabase::create(Backend::Sqlite)
        .await
        .expect("SQLite needs no server");
    Tenant::start(db, TenantOptions::new()).await
}

fn text(value: &Path) -> toml::Value {
    toml::Value::String(value.display().to_string())
}

/// Writes the certificate and key into one PEM file of mode `mode` and signs in with it.
fn sign_in_with_certificate(
    tenant: &mut Tenant,
    certificate: &str,
    key: Key,
    mode: u32,
) -> PathBuf {
    let path = write_private(
        &tenant.dir().join("app.pem"),
        &format!("{certificate}{}", key_pem(key)),
        mode,
    );
    tenant.sign_in_with(&[("certificate_path", text(&path))]);
    path
}

/// Registers a federated credential for [`ISSUER`] and [`SUBJECT`], signed by the issuer key.
fn trust_the_cluster(tenant: &Tenant) {
    tenant
        .sandbox
        .register_federated_credential(ISSUER, SUBJECT, &current_certificate(Key::Issuer))
        .expect("the federated credential registers");
}

/// Runs `rollcall ARGS…` and checks that it failed with exit 1 saying `says`, before any
/// write reached the tenant.
async fn assert_refused_before_any_write(tenant: &Tenant, args: &[&str], says: &[&str]) -> Ran {
    let writes = tenant.stat("writes");
    let before = tenant.sandbox.state();
    let ran = tenant.rollcall(args).await;
    ran.expect(1);
    for words in says {
        assert!(
            ran.stderr.contains(words),
            "stderr does not say `{words}`:\n{}",
            ran.stderr
        );
    }
    assert_eq!(tenant.stat("writes"), writes, "a write was sent");
    assert!(tenant.sandbox.state() == before, "the tenant changed");
    ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_signs_in_and_converges() {
    let mut tenant = tenant().await;
    let certificate = current_certificate(Key::App);
    tenant
        .sandbox
        .register_client_certificate(&certificate)
        .expect("the certificate registers");
    sign_in_with_certificate(&mut tenant, &certificate, Key::App, 0o600);

    tenant.rollcall(&["run"]).await.expect(0);
    tenant
        .assert_verified("after a run signed in with a certificate")
        .await;
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_key_in_its_own_file_signs_ps256_assertions() {
    let mut tenant = tenant().await;
    let certificate = current_certificate(Key::App);
    tenant
        .sandbox
        .register_client_certificate(&certificate)
        .expect("the certificate registers");
    let certificate_path = tenant.dir().join("app.crt");
    std::fs::write(&certificate_path, &certificate).unwrap();
    let key_path = write_private(
        &tenant.dir().join("app.key"),
        &encrypted_key_pem(Key::App, "correct horse battery staple"),
        0o400,
    );
    tenant.sign_in_with(&[
        ("certificate_path", text(&certificate_path)),
        ("private_key_path", text(&key_path)),
        (
            "certificate_password_env",
            "ROLLCALL_TEST_KEY_PASSWORD".into(),
        ),
        ("certificate_algorithm", "PS256".into()),
    ]);

    let ran = tenant.rollcall(&["plan"]).await;
    assert!(
        ran.stderr.contains("ROLLCALL_TEST_KEY_PASSWORD is not set"),
        "an encrypted key without its password: {}",
        ran.stderr
    );
    ran.expect(2);
    tenant.set_env("ROLLCALL_TEST_KEY_PASSWORD", "correct horse battery staple");
    tenant.rollcall(&["plan"]).await.expect(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_an_unregistered_or_expired_certificate_and_a_wrong_audience_fail_before_any_write()
 {
    let mut tenant = tenant().await;
    let registered = current_certificate(Key::App);
    tenant
        .sandbox
        .register_client_certificate(&registered)
        .expect("the certificate registers");

    // The registered certificate, with a key that is not its own: the signature fails.
    sign_in_with_certificate(&mut tenant, &registered, Key::Other, 0o600);
    assert_refused_before_any_write(
        &tenant,
        &["run"],
        &[
            "AADSTS700027",
            "invalid signature",
            "graph.private_key_path",
        ],
    )
    .await;

    // A certificate the app registration does not know.
    sign_in_with_certificate(
        &mut tenant,
        &current_certificate(Key::Other),
        Key::Other,
        0o600,
    );
    assert_refused_before_any_write(
        &tenant,
        &["run"],
        &["AADSTS700027", "not registered on application"],
    )
    .await;

    // An expired certificate (registered, but past its end): rollcall says so itself.
    let expired = certificate_pem(Key::App, (-400, -1));
    tenant
        .sandbox
        .register_client_certificate(&expired)
        .expect("the certificate registers");
    sign_in_with_certificate(&mut tenant, &expired, Key::App, 0o600);
    let ran = tenant.rollcall(&["config", "check"]).await;
    ran.expect(0);
    assert!(
        ran.stderr.contains("warning: the certificate"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("expired on"), "{}", ran.stderr);
    assert_refused_before_any_write(&tenant, &["run"], &["graph.certificate_path", "expired on"])
        .await;

    // The right certificate sent to the wrong audience: the authority as `localhost`, while
    // the tenant's token endpoint is at 127.0.0.1.
    sign_in_with_certificate(&mut tenant, &registered, Key::App, 0o600);
    let localhost = tenant.sandbox.authority().replace("127.0.0.1", "localhost");
    tenant.set_graph("authority", Some(localhost.into()));
    assert_refused_before_any_write(&tenant, &["run"], &["AADSTS700023", "graph.authority"]).await;
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_its_group_can_read_is_refused_with_exit_2_and_the_chmod_to_run() {
    let mut tenant = tenant().await;
    let certificate = current_certificate(Key::App);
    tenant
        .sandbox
        .register_client_certificate(&certificate)
        .expect("the certificate registers");
    let path = sign_in_with_certificate(&mut tenant, &certificate, Key::App, 0o640);
    let chmod = format!("run `chmod 600 {}`", path.display());
    for args in [&["run"][..], &["config", "check"]] {
        let ran = tenant.rollcall(args).await;
        ran.expect(2);
        assert!(
            ran.stderr.contains("`graph.certificate_path`"),
            "{}",
            ran.stderr
        );
        assert!(ran.stderr.contains(&chmod), "{}", ran.stderr);
    }
    assert_eq!(tenant.stat("writes"), 0);
    write_private(&path, &std::fs::read_to_string(&path).unwrap(), 0o600);
    tenant.rollcall(&["config", "check"]).await.expect(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_names_the_key_when_no_credential_or_two_are_given() {
    let mut tenant = tenant().await;
    tenant.set_graph("client_secret_env", None);
    let ran = tenant.rollcall(&["config", "check"]).await;
    ran.expect(2);
    assert!(
        ran.stderr
            .contains("`graph.client_secret_env`: no credential"),
        "{}",
        ran.stderr
    );

    let token = write_private(&tenant.dir().join("token"), "x.y.z", 0o600);
    tenant.set_graph(
        "client_secret_env",
        Some("ROLLCALL_TEST_GRAPH_SECRET".into()),
    );
    tenant.set_graph("client_assertion_file", Some(text(&token)));
    let ran = tenant.rollcall(&["config", "check"]).await;
    ran.expect(2);
    assert!(
        ran.stderr.contains("`graph.client_assertion_file`"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("give exactly one of"), "{}", ran.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_expiring_within_30_days_is_a_warning_in_config_check_and_status() {
    let mut tenant = tenant().await;
    let certificate = certificate_pem(Key::App, (-365, 10));
    tenant
        .sandbox
        .register_client_certificate(&certificate)
        .expect("the certificate registers");
    sign_in_with_certificate(&mut tenant, &certificate, Key::App, 0o600);
    let ran = tenant.rollcall(&["config", "check"]).await;
    ran.expect(0);
    assert!(
        ran.stderr.contains("warning: the certificate"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("expires on"), "{}", ran.stderr);
    tenant.rollcall(&["run"]).await.expect(0);
    let status = tenant.rollcall(&["status"]).await;
    status.expect(0);
    assert!(status.stdout.contains("certificate: "), "{}", status.stdout);
    assert!(
        status.stdout.contains("warning: the certificate"),
        "{}",
        status.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_file_signs_in_and_is_read_afresh_for_every_run() {
    let mut tenant = tenant().await;
    trust_the_cluster(&tenant);
    let token = tenant.dir().join("azure-identity-token");
    std::fs::write(&token, federated_token(SUBJECT, now(), 3600)).unwrap();
    tenant.sign_in_with(&[("client_assertion_file", text(&token))]);
    tenant.rollcall(&["run"]).await.expect(0);
    tenant.assert_verified("after a federated run").await;

    // The platform rewrites the file: an expired token, then one for another service
    // account, then a fresh good one. Each run reads what is there.
    std::fs::write(&token, federated_token(SUBJECT, now() - 7200, 3600)).unwrap();
    assert_refused_before_any_write(&tenant, &["run"], &["AADSTS700024", "clock"]).await;
    std::fs::write(
        &token,
        federated_token("system:serviceaccount:other:other", now(), 3600),
    )
    .unwrap();
    assert_refused_before_any_write(&tenant, &["run"], &["AADSTS700213", "federated credential"])
        .await;
    std::fs::write(&token, federated_token(SUBJECT, now(), 3600)).unwrap();
    tenant.rollcall(&["verify"]).await.expect(0);
    tenant.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_workload_identity_environment_signs_in_without_a_credential_in_the_file() {
    let mut tenant = tenant().await;
    trust_the_cluster(&tenant);
    let token = tenant.dir().join("azure-identity-token");
    std::fs::write(&token, federated_token(SUBJECT, now(), 3600)).unwrap();
    let defaults = SandboxOptions::default();
    for key in ["client_secret_env", "tenant_id", "client_id", "authority"] {
        tenant.set_graph(key, None);
    }
    tenant.set_env("AZURE_FEDERATED_TOKEN_FILE", &token.display().to_string());
    tenant.set_env("AZURE_CLIENT_ID", &defaults.client_id);
    tenant.set_env("AZURE_TENANT_ID", &defaults.tenant_id);
    tenant.set_env(
        "AZURE_AUTHORITY_HOST",
        &format!("{}/", tenant.sandbox.authority()),
    );
    tenant.rollcall(&["run"]).await.expect(0);
    tenant
        .assert_verified("after a run signed in through the environment")
        .await;
    tenant.finish();
}

/// The first segment of the assertions rollcall signs with `certificate`: their header.
fn assertion_header(certificate: &str) -> String {
    let der = pem::parse(certificate).unwrap().into_contents();
    let thumbprints = Thumbprints::of(&der);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("JWT".to_owned());
    header.x5t = Some(thumbprints.x5t());
    header.x5t_s256 = Some(thumbprints.x5t_s256());
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap())
}

/// Everything rollcall wrote or printed about its runs: the logs at trace level, every run's
/// `show` and the run list, and the state database's file.
async fn everything_written(tenant: &Tenant, logs: &[Ran]) -> String {
    let mut all = String::new();
    for ran in logs {
        all.push_str(&ran.stdout);
        all.push_str(&ran.stderr);
    }
    let runs = tenant.rollcall(&["runs", "--output", "json"]).await;
    all.push_str(&runs.stdout);
    for run in runs.json().as_array().into_iter().flatten() {
        let id = run["id"].to_string().trim_matches('"').to_owned();
        all.push_str(
            &tenant
                .rollcall(&["show", &id, "--output", "json"])
                .await
                .stdout,
        );
    }
    let file = tenant
        .db()
        .url
        .strip_prefix("sqlite://")
        .unwrap()
        .to_owned();
    for suffix in ["", "-wal"] {
        if let Ok(bytes) = std::fs::read(format!("{file}{suffix}")) {
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_state_row_or_report_holds_a_secret_key_or_assertion() {
    let mut tenant = tenant().await;
    tenant.set_env("RUST_LOG", "trace");
    let mut logs = vec![tenant.rollcall(&["-vv", "run"]).await];
    logs[0].expect(0);

    let certificate = current_certificate(Key::App);
    tenant
        .sandbox
        .register_client_certificate(&certificate)
        .expect("the certificate registers");
    sign_in_with_certificate(&mut tenant, &certificate, Key::App, 0o600);
    tenant.churn(0.02, 7);
    logs.push(tenant.rollcall(&["-vv", "run"]).await);
    logs[1].expect(0);

    trust_the_cluster(&tenant);
    let assertion = federated_token(SUBJECT, now(), 3600);
    let token = write_private(&tenant.dir().join("token"), &assertion, 0o600);
    tenant.sign_in_with(&[("client_assertion_file", text(&token))]);
    tenant.set_graph("certificate_path", None);
    tenant.churn(0.02, 8);
    logs.push(tenant.rollcall(&["-vv", "run"]).await);
    logs[2].expect(0);
    logs.push(tenant.rollcall(&["-vv", "verify"]).await);
    logs[3].expect(0);
    logs.push(tenant.rollcall(&["config", "check"]).await);

    let written = everything_written(&tenant, &logs).await;
    assert!(
        written.contains("signed in"),
        "the trace logs were not captured"
    );
    let secret = SandboxOptions::default().client_secret;
    let key = key_pem(Key::App);
    let key_line = key.lines().nth(5).unwrap();
    let signature = assertion.rsplit('.').next().unwrap();
    for (what, needle) in [
        ("the client secret", secret.as_str()),
        ("a line of the private key", key_line),
        ("the federated assertion", assertion.as_str()),
        ("the federated assertion's signature", signature),
        ("a certificate assertion", &assertion_header(&certificate)),
    ] {
        assert!(!written.contains(needle), "{what} was written somewhere");
    }
}

/// Posts a client assertion to the sandbox's token endpoint as `client_id`; answers the
/// status and the JSON reply.
async fn post_assertion(
    tenant: &Tenant,
    client_id: &str,
    assertion: &str,
) -> (u16, serde_json::Value) {
    let defaults = SandboxOptions::default();
    let reply = reqwest::Client::new()
        .post(token_endpoint(tenant, &defaults.tenant_id))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_id", client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("client_info", "1"),
        ])
        .send()
        .await
        .expect("the token endpoint answers");
    let status = reply.status().as_u16();
    (status, reply.json().await.expect("the reply is JSON"))
}

fn token_endpoint(tenant: &Tenant, tenant_id: &str) -> String {
    format!(
        "{}/{tenant_id}/oauth2/v2.0/token",
        tenant.sandbox.authority()
    )
}

/// An assertion shaped as MSAL sends it (padded `x5t` and `x5t#S256`, an `x5c` header,
/// fractional `exp`, no `nbf`), with `edit` applied to its header and claims first.
fn msal_assertion(
    certificate: &str,
    key: Key,
    edit: impl FnOnce(&mut jsonwebtoken::Header, &mut serde_json::Value),
) -> String {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use sha2::Digest;
    let der = pem::parse(certificate).unwrap().into_contents();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some(URL_SAFE.encode(sha1::Sha1::digest(&der)));
    header.x5t_s256 = Some(URL_SAFE.encode(sha2::Sha256::digest(&der)));
    header.x5c = Some(vec![STANDARD.encode(&der)]);
    let defaults = SandboxOptions::default();
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let mut claims = serde_json::json!({
        "aud": "",
        "iss": defaults.client_id,
        "sub": defaults.client_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "exp": now + 600.5,
    });
    edit(&mut header, &mut claims);
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem(key).as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_accepts_msals_assertions_and_answers_entras_codes_for_bad_ones() {
    let tenant = tenant().await;
    let defaults = SandboxOptions::default();
    let certificate = current_certificate(Key::App);
    // Registered through the admin endpoint, as `rollcall sandbox --client-cert` would.
    let registered: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/client-certs",
            tenant.sandbox.base_url()
        ))
        .body(certificate.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let der = pem::parse(&certificate).unwrap().into_contents();
    assert_eq!(registered["thumbprint"], Thumbprints::of(&der).sha1_hex());
    trust_the_cluster(&tenant);
    let audience = token_endpoint(&tenant, &defaults.tenant_id);
    let good = |header: &mut jsonwebtoken::Header, claims: &mut serde_json::Value| {
        let _ = header;
        claims["aud"] = audience.clone().into();
    };

    let (status, reply) = post_assertion(
        &tenant,
        &defaults.client_id,
        &msal_assertion(&certificate, Key::App, good),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["access_token"].is_string(), "{reply}");
    let (status, reply) = post_assertion(
        &tenant,
        &defaults.client_id,
        &federated_token(SUBJECT, now(), 600),
    )
    .await;
    assert_eq!(status, 200, "a federated token: {reply}");

    type Edit = Box<dyn Fn(&mut jsonwebtoken::Header, &mut serde_json::Value)>;
    let with = |edit: Edit| {
        let audience = audience.clone();
        move |header: &mut jsonwebtoken::Header, claims: &mut serde_json::Value| {
            claims["aud"] = audience.into();
            edit(header, claims);
        }
    };
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        (
            "unknown client",
            msal_assertion(&certificate, Key::App, with(Box::new(|_, _| {}))),
            400,
            "unauthorized_client",
            "AADSTS700016",
        ),
        (
            "issuer is not the client",
            msal_assertion(
                &certificate,
                Key::App,
                with(Box::new(|_, c| c["sub"] = "someone-else".into())),
            ),
            401,
            "invalid_client",
            "AADSTS700021",
        ),
        (
            "wrong audience",
            msal_assertion(
                &certificate,
                Key::App,
                with(Box::new(|_, c| {
                    c["aud"] = "https://login.microsoftonline.com/x/oauth2/v2.0/token".into();
                })),
            ),
            401,
            "invalid_client",
            "AADSTS700023",
        ),
        (
            "expired",
            msal_assertion(
                &certificate,
                Key::App,
                with(Box::new(|_, c| c["exp"] = (now() - 400).into())),
            ),
            401,
            "invalid_client",
            "AADSTS700024",
        ),
        (
            "not yet valid",
            msal_assertion(
                &certificate,
                Key::App,
                with(Box::new(|_, c| c["nbf"] = (now() + 400).into())),
            ),
            401,
            "invalid_client",
            "AADSTS700024",
        ),
        (
            "signed by another key",
            msal_assertion(&certificate, Key::Other, with(Box::new(|_, _| {}))),
            401,
            "invalid_client",
            "AADSTS700027",
        ),
        (
            "a certificate the app does not have",
            msal_assertion(
                &current_certificate(Key::Other),
                Key::Other,
                with(Box::new(|_, _| {})),
            ),
            401,
            "invalid_client",
            "AADSTS700027",
        ),
        (
            "a federated token from an unknown issuer",
            federated_token_from("https://oidc.elsewhere.example", SUBJECT, now(), 600),
            401,
            "invalid_client",
            "AADSTS700211",
        ),
        (
            "an algorithm Entra does not take",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &serde_json::json!({ "iss": defaults.client_id, "sub": defaults.client_id }),
                &jsonwebtoken::EncodingKey::from_secret(b"shared"),
            )
            .unwrap(),
            401,
            "invalid_client",
            "AADSTS5002738",
        ),
        (
            "a federated token for another subject",
            federated_token("system:serviceaccount:x:y", now(), 600),
            401,
            "invalid_client",
            "AADSTS700213",
        ),
        (
            "malformed",
            "not-a-jwt".to_owned(),
            400,
            "invalid_request",
            "AADSTS50027",
        ),
    ];
    for (i, (what, assertion, status, error, code)) in cases.into_iter().enumerate() {
        let client = if i == 0 {
            "no-such-app"
        } else {
            defaults.client_id.as_str()
        };
        let (got, reply) = post_assertion(&tenant, client, &assertion).await;
        assert_eq!(
            (got, reply["error"].as_str()),
            (status, Some(error)),
            "{what}: {reply}"
        );
        let description = reply["error_description"].as_str().unwrap();
        assert!(description.starts_with(code), "{what}: {description}");
        let number: u64 = code.trim_start_matches("AADSTS").parse().unwrap();
        assert_eq!(reply["error_codes"], serde_json::json!([number]), "{what}");
    }
}

/// A `[graph]` section for `sandbox` signing in with `credential` (TOML lines).
fn graph_config(sandbox: &rollcall::sandbox::SandboxHandle, credential: &str) -> GraphConfig {
    let text = sandbox.graph_toml(credential);
    let table: toml::Table = toml::from_str(&text).unwrap();
    table["graph"].clone().try_into().unwrap()
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        max_elapsed: Duration::from_secs(10),
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        request_timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_renewal_signs_a_fresh_assertion_or_rereads_the_file() {
    let sandbox = Sandbox::start(SandboxOptions {
        faults: Faults {
            token_ttl_secs: 1,
            throttling: false,
            ..Faults::default()
        },
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let renewals = |sandbox: &rollcall::sandbox::SandboxHandle| {
        sandbox.stats()["requests"]["POST /{tenant}/oauth2/v2.0/token"]["200"]
            .as_u64()
            .unwrap_or(0)
    };

    // A certificate: a token for 1 s is renewed before each later call, each time with a
    // newly signed assertion.
    let certificate = current_certificate(Key::App);
    sandbox.register_client_certificate(&certificate).unwrap();
    let pem = write_private(
        &dir.path().join("app.pem"),
        &format!("{certificate}{}", key_pem(Key::App)),
        0o600,
    );
    let config = graph_config(
        &sandbox,
        &format!("certificate_path = {:?}", pem.display().to_string()),
    );
    let client = GraphClient::connect_with(&config, quick()).await.unwrap();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        client.groups().await.unwrap();
    }
    assert_eq!(client.stats().token_requests, 3);
    assert_eq!(renewals(&sandbox), 3);

    // An assertion file: each renewal reads the file again, so a token the platform
    // replaced with a bad one fails the very next renewal.
    sandbox
        .register_federated_credential(ISSUER, SUBJECT, &current_certificate(Key::Issuer))
        .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, federated_token(SUBJECT, now(), 3600)).unwrap();
    let config = graph_config(
        &sandbox,
        &format!("client_assertion_file = {:?}", token.display().to_string()),
    );
    let client = GraphClient::connect_with(&config, quick()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client.groups().await.unwrap();
    assert_eq!(client.stats().token_requests, 2);
    std::fs::write(
        &token,
        federated_token("system:serviceaccount:x:y", now(), 3600),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let err = client.groups().await.unwrap_err();
    assert!(err.to_string().contains("AADSTS700213"), "{err}");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollcall_sandbox_registers_client_certs_given_on_its_command_line() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command as Process, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let certificate = current_certificate(Key::App);
    let crt = dir.path().join("app.crt");
    std::fs::write(&crt, &certificate).unwrap();
    let binary = env!("CARGO_BIN_EXE_rollcall");

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let refused = Process::new(binary)
        .args(["sandbox", "--client-cert", not_pem.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("client certificate 1"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let mut child = Process::new(binary)
        .args(["sandbox", "--client-cert", crt.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("  admin:");
        printed.push(line);
        if done {
            break;
        }
    }
    let value = |label: &str| {
        printed
            .iter()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no `{label}` in {printed:?}"))
            .trim()
            .to_owned()
    };
    assert_eq!(value("client certs:"), "1 registered (--client-cert FILE)");
    let pem = write_private(
        &dir.path().join("app.pem"),
        &format!("{certificate}{}", key_pem(Key::App)),
        0o600,
    );
    let config: GraphConfig = toml::from_str(&format!(
        "tenant_id = {:?}\nclient_id = {:?}\ncertificate_path = {:?}\nendpoint = {:?}\nauthority = {:?}\n",
        value("tenant id:"),
        value("client id:"),
        pem.display().to_string(),
        value("graph endpoint:"),
        value("authority:"),
    ))
    .unwrap();
    let connected = GraphClient::connect_with(&config, quick()).await;
    let _ = child.kill();
    let _ = child.wait();
    connected.expect("signs in with the certificate registered on the command line");
}
