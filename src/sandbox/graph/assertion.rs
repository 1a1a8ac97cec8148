//! Client assertions at the token endpoint: certificates registered on the app, and federated
//! credentials (workload identity federation), checked the way GRAPH.md "Authentication"
//! records Entra answering.
//!
//! A real federated credential trusts an issuer through its OpenID metadata (JWKS). The
//! sandbox has no network to fetch that from, so a federated credential is registered with
//! the issuer's signing certificate instead: the same signature check as for a certificate
//! credential, then Entra's exact match on issuer, audience and subject.

use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The audience Azure Workload Identity asks the platform to put in its tokens.
pub const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Entra's allowance for clock skew on an assertion's `exp` and `nbf`.
const SKEW_SECS: f64 = 300.0;

/// A certificate's public key and validity, known by its thumbprints.
#[derive(Clone)]
struct Registered {
    sha1: [u8; 20],
    sha256: [u8; 32],
    key: DecodingKey,
    not_before: i64,
    not_after: i64,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("sha1", &hex::encode_upper(self.sha1))
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Registered {
    /// The first certificate in a PEM text.
    fn from_pem(pem_text: &str) -> Result<Registered, String> {
        let blocks = pem::parse_many(pem_text).map_err(|e| format!("not PEM: {e}"))?;
        let block = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or("no `-----BEGIN CERTIFICATE-----` block")?;
        let der = block.contents();
        let (_, certificate) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        if certificate.public_key().algorithm.algorithm
            != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
        {
            return Err("the certificate's key is not RSA".to_owned());
        }
        let validity = certificate.validity();
        Ok(Registered {
            sha1: Sha1::digest(der).into(),
            sha256: Sha256::digest(der).into(),
            // The subjectPublicKey of an RSA certificate is the PKCS#1 RSAPublicKey.
            key: DecodingKey::from_rsa_der(&certificate.public_key().subject_public_key.data),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// Whether a header thumbprint (base64url, padded as MSAL sends it or not) names this one.
    fn named_by(&self, header: &jsonwebtoken::Header) -> bool {
        let matches = |given: &Option<String>, digest: &[u8]| {
            given.as_deref().is_some_and(|t| {
                URL_SAFE_NO_PAD
                    .decode(t.trim_end_matches('='))
                    .or_else(|_| URL_SAFE.decode(t))
                    .is_ok_and(|bytes| bytes == digest)
            })
        };
        matches(&header.x5t_s256, &self.sha256) || matches(&header.x5t, &self.sha1)
    }
}

/// A federated identity credential: whose tokens the app accepts as its own assertion.
#[derive(Debug, Clone)]
struct Federated {
    issuer: String,
    subject: String,
    audience: String,
    signer: Registered,
}

/// The app registration's certificates and federated credentials.
#[derive(Debug, Default)]
pub struct Registrations {
    certificates: RwLock<Vec<Registered>>,
    federated: RwLock<Vec<Federated>>,
}

impl Registrations {
    /// Registers a certificate credential (the PEM certificate, no key); answers its
    /// thumbprints as the admin endpoint shows them.
    pub fn add_certificate(&self, pem_text: &str) -> Result<Value, String> {
        let registered = Registered::from_pem(pem_text)?;
        let described = serde_json::json!({
            "thumbprint": hex::encode_upper(registered.sha1),
            "x5t#S256": URL_SAFE_NO_PAD.encode(registered.sha256),
            "not_after": registered.not_after,
        });
        self.certificates
            .write()
            .expect("certificates lock")
            .push(registered);
        Ok(described)
    }

    /// Registers a federated credential: tokens from `issuer` about `subject` for `audience`,
    /// signed by the key of `signer_pem`'s certificate.
    pub fn add_federated(
        &self,
        issuer: &str,
        subject: &str,
        audience: Option<&str>,
        signer_pem: &str,
    ) -> Result<(), String> {
        let signer = Registered::from_pem(signer_pem)?;
        self.federated
            .write()
            .expect("federated lock")
            .push(Federated {
                issuer: issuer.to_owned(),
                subject: subject.to_owned(),
                audience: audience.unwrap_or(FEDERATION_AUDIENCE).to_owned(),
                signer,
            });
        Ok(())
    }
}

/// Why an assertion is refused: the status, OAuth error and `AADSTS…` description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The OAuth `error`.
    pub error: &'static str,
    /// `error_description`, starting with its `AADSTS` code.
    pub description: String,
}

fn refuse(status: u16, error: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        status,
        error,
        description: description.into(),
    }
}

fn invalid_client(description: impl Into<String>) -> Refusal {
    refuse(401, "invalid_client", description)
}

/// The claims as sent, before the signature is checked (to pick the key that checks it).
fn unverified_claims(assertion: &str) -> Option<Value> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `aud` (a string or an array) holds one of `expected`.
fn audience_matches(aud: &Value, expected: &[String]) -> bool {
    let holds = |a: &Value| a.as_str().is_some_and(|a| expected.iter().any(|e| e == a));
    match aud {
        Value::Array(values) => values.iter().any(holds),
        other => holds(other),
    }
}

/// The signature check alone; every claim is checked by [`check`] with Entra's codes.
fn signature_holds(assertion: &str, algorithm: Algorithm, key: &DecodingKey) -> bool {
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(assertion, key, &validation).is_ok()
}

/// `exp` (required) and `nbf` (optional: MSAL leaves it out), both with 5 minutes of skew.
fn within_validity(claims: &Value, now: f64) -> Result<(), Refusal> {
    let outside = || {
        invalid_client(
            "AADSTS700024: Client assertion is not within its valid time range. Ensure that \
             the client assertion is within its validity window.",
        )
    };
    let Some(exp) = claims["exp"].as_f64() else {
        return Err(refuse(
            400,
            "invalid_request",
            "AADSTS50027: JWT token is invalid or malformed (no exp claim).",
        ));
    };
    if now > exp + SKEW_SECS {
        return Err(outside());
    }
    if let Some(nbf) = claims["nbf"].as_f64()
        && now + SKEW_SECS < nbf
    {
        return Err(outside());
    }
    Ok(())
}

/// Checks a `client_assertion` for `client_id` whose audience must be one of `audiences` (the
/// token endpoint), at `now` (seconds since the epoch).
pub fn check(
    registrations: &Registrations,
    client_id: &str,
    audiences: &[String],
    assertion: &str,
    now: f64,
) -> Result<(), Refusal> {
    let malformed = || {
        refuse(
            400,
            "invalid_request",
            "AADSTS50027: JWT token is invalid or malformed.",
        )
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| malformed())?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(invalid_client(format!(
            "AADSTS5002738: Invalid JWT token. '{:?}' is not a supported signature algorithm. \
             Supported signing algorithms are: 'RS256,PS256'",
            header.alg
        )));
    }
    let claims = unverified_claims(assertion).ok_or_else(malformed)?;
    let issuer = claims["iss"].as_str().unwrap_or_default();
    let subject = claims["sub"].as_str().unwrap_or_default();

    if issuer == client_id {
        if subject != client_id {
            return Err(invalid_client(
                "AADSTS700021: Client assertion application identifier doesn't match \
                 'client_id' parameter.",
            ));
        }
        let certificates = self_certificates(registrations);
        let Some(certificate) = certificates.iter().find(|c| c.named_by(&header)) else {
            return Err(invalid_client(format!(
                "AADSTS700027: The certificate with identifier used to sign the client \
                 assertion is not registered on application. [Reason - The key was not found., \
                 Thumbprint of key used by client: '{}']",
                header.x5t.as_deref().unwrap_or("none")
            )));
        };
        if (now as i64) > certificate.not_after || (now as i64) < certificate.not_before {
            return Err(invalid_client(
                "AADSTS700027: The certificate with identifier used to sign the client \
                 assertion is expired on application.",
            ));
        }
        if !signature_holds(assertion, header.alg, &certificate.key) {
            return Err(invalid_client(
                "AADSTS700027: Client assertion contains an invalid signature. [Reason - The \
                 key was not found.]",
            ));
        }
        if !audience_matches(&claims["aud"], audiences) {
            return Err(invalid_client(format!(
                "AADSTS700023: Client assertion audience claim does not match Realm issuer. \
                 Expected '{}'.",
                audiences.first().map(String::as_str).unwrap_or_default()
            )));
        }
        return within_validity(&claims, now);
    }

    let federated = registrations
        .federated
        .read()
        .expect("federated lock")
        .clone();
    let by_issuer: Vec<&Federated> = federated.iter().filter(|f| f.issuer == issuer).collect();
    if by_issuer.is_empty() {
        if subject == client_id
            || self_certificates(registrations)
                .iter()
                .any(|c| c.named_by(&header))
        {
            return Err(invalid_client(
                "AADSTS700021: Client assertion application identifier doesn't match \
                 'client_id' parameter.",
            ));
        }
        return Err(invalid_client(format!(
            "AADSTS700211: No matching federated identity record found for presented \
             assertion issuer '{issuer}'."
        )));
    }
    let by_audience: Vec<&Federated> = by_issuer
        .into_iter()
        .filter(|f| audience_matches(&claims["aud"], std::slice::from_ref(&f.audience)))
        .collect();
    if by_audience.is_empty() {
        return Err(invalid_client(
            "AADSTS700212: No matching federated identity record found for presented \
             assertion audience.",
        ));
    }
    let Some(credential) = by_audience.into_iter().find(|f| f.subject == subject) else {
        return Err(invalid_client(format!(
            "AADSTS700213: No matching federated identity record found for presented \
             assertion subject '{subject}'."
        )));
    };
    if !signature_holds(assertion, header.alg, &credential.signer.key) {
        return Err(invalid_client(format!(
            "AADSTS7000272: The signing key of the presented assertion was not found in the \
             metadata of issuer '{issuer}'."
        )));
    }
    within_validity(&claims, now)
}

fn self_certificates(registrations: &Registrations) -> Vec<Registered> {
    registrations
        .certificates
        .read()
        .expect("certificates lock")
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_may_be_a_string_or_an_array() {
        let expected = vec!["https://a/t/oauth2/v2.0/token".to_owned()];
        assert!(audience_matches(&serde_json::json!(expected[0]), &expected));
        assert!(audience_matches(
            &serde_json::json!(["x", expected[0]]),
            &expected
        ));
        assert!(!audience_matches(
            &serde_json::json!("https://b"),
            &expected
        ));
    }

    #[test]
    fn nbf_is_optional_and_both_bounds_allow_five_minutes() {
        assert!(within_validity(&serde_json::json!({ "exp": 1000.5 }), 1200.0).is_ok());
        assert!(within_validity(&serde_json::json!({ "exp": 1000 }), 1301.0).is_err());
        assert!(within_validity(&serde_json::json!({ "exp": 9000, "nbf": 1200 }), 1000.0).is_ok());
        let early = within_validity(&serde_json::json!({ "exp": 9000, "nbf": 1400 }), 1000.0);
        assert!(early.unwrap_err().description.starts_with("AADSTS700024"));
    }

    #[test]
    fn a_malformed_assertion_is_50027() {
        let refusal = check(&Registrations::default(), "c", &[], "not.a.jwt", 0.0).unwrap_err();
        assert_eq!(refusal.status, 400);
        assert!(refusal.description.starts_with("AADSTS50027"));
    }
}
