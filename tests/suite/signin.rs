//! Signing in three ways, end to end: the `rollcall` binary against the sandbox with a client
//! secret, a certificate (a client assertion rollcall signs), or workload identity
//! federation (an assertion file a platform rewrites, or Azure Workload Identity's
//! environment). Refusals fail before any write and name their cause; key files open to
//! others are refused like ssh refuses them; no secret, key or assertion is ever written
//! anywhere.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rollcall::config::Thumbprints;
use rollcall::sandbox::SandboxOptions;

use crate::common::certificates::{
    ISSUER, Key, SUBJECT, certificate_pem, current_certificate, encrypted_key_pem, federated_token,
    key_pem, now, write_private,
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
