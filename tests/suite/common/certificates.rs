//! Test certificates and assertions, made when a test runs: no key is ever committed. RSA
//! keys come from the rsa crate (generated once per test binary), certificates around them
//! from rcgen, federated tokens from jsonwebtoken.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;

/// Which of the suite's RSA keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// The app's key.
    App,
    /// Another key: the wrong one, or another certificate's.
    Other,
    /// The key a federated issuer (a Kubernetes cluster) signs its tokens with.
    Issuer,
}

fn rsa_key(key: Key) -> &'static rsa::RsaPrivateKey {
    static KEYS: [OnceLock<rsa::RsaPrivateKey>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match key {
        Key::App => 0,
        Key::Other => 1,
        Key::Issuer => 2,
    };
    KEYS[slot].get_or_init(|| {
        rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("an RSA key is generated")
    })
}

/// A key as PKCS#8 PEM.
pub fn key_pem(key: Key) -> String {
    rsa_key(key)
        .to_pkcs8_pem(LineEnding::LF)
        .expect("the key encodes")
        .to_string()
}

/// A key as encrypted PKCS#8 PEM.
pub fn encrypted_key_pem(key: Key, password: &str) -> String {
    rsa_key(key)
        .to_pkcs8_encrypted_pem(&mut rand::thread_rng(), password, LineEnding::LF)
        .expect("the key encrypts")
        .to_string()
}

/// A self-signed certificate for `key`, valid from `days_from_now.0` to `days_from_now.1`
/// days from now, as PEM.
pub fn certificate_pem(key: Key, days_from_now: (i64, i64)) -> String {
    let key_pair =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem(key), &rcgen::PKCS_RSA_SHA256)
            .expect("rcgen takes the RSA key");
    let mut params = rcgen::CertificateParams::new(vec!["rollcall-test.example.ac.uk".to_owned()])
        .expect("certificate parameters");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(days_from_now.0);
    params.not_after = now + time::Duration::days(days_from_now.1);
    params
        .self_signed(&key_pair)
        .expect("the certificate is signed")
        .pem()
}

/// A certificate valid from a year ago for ten years.
pub fn current_certificate(key: Key) -> String {
    certificate_pem(key, (-365, 3650))
}

/// Writes `text` to `path` with permission bits `mode`.
pub fn write_private(path: &Path, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("the file is written");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("the mode is set");
    path.to_owned()
}

/// The issuer and subject of the suite's federated tokens, as a cluster's OIDC issuer and a
/// service account.
pub const ISSUER: &str = "https://oidc.cluster.example.ac.uk/rollcall";
/// The service account the federated credential trusts.
pub const SUBJECT: &str = "system:serviceaccount:rollcall:rollcall";

/// A token as a Kubernetes cluster projects it for a service account: issued by [`ISSUER`]
/// about `subject` for the Entra token exchange, signed by [`Key::Issuer`], valid from
/// `iat` for `lifetime` seconds.
pub fn federated_token(subject: &str, iat: i64, lifetime: i64) -> String {
    federated_token_from(ISSUER, subject, iat, lifetime)
}

/// [`federated_token`] from another issuer.
pub fn federated_token_from(issuer: &str, subject: &str, iat: i64, lifetime: i64) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem(Key::Issuer).as_bytes())
        .expect("jsonwebtoken takes the RSA key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("cluster-signing-key".to_owned());
    jsonwebtoken::encode(
        &header,
        &json!({
            "iss": issuer,
            "sub": subject,
            "aud": [rollcall::sandbox::FEDERATION_AUDIENCE],
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime,
            "kubernetes.io": { "namespace": "rollcall", "serviceaccount": { "name": "rollcall" } },
        }),
        &key,
    )
    .expect("the token is signed")
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
