//! The client assertion a certificate signs: a JWT made afresh for every token request
//! (identity-platform certificate credentials, GRAPH.md "Authentication").

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

use super::error::GraphError;
use crate::config::{AssertionAlgorithm, Certificate};

/// The `client_assertion_type` of a signed JWT (RFC 7523), for certificates and federation.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is good for: Entra's documentation asks for 10 minutes at most, and
/// each one is used once, at once.
const LIFETIME_SECS: i64 = 600;

/// The claims Entra reads from a certificate's client assertion.
#[derive(Debug, Serialize)]
struct Claims<'a> {
    /// The token endpoint the assertion is sent to.
    aud: &'a str,
    /// The client id, as issuer and subject.
    iss: &'a str,
    sub: &'a str,
    /// Unique per assertion, so that a captured one cannot be replayed.
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// The JOSE header: the algorithm and both thumbprints, so that old and new tenants find
/// the registered certificate.
fn header(certificate: &Certificate) -> jsonwebtoken::Header {
    let mut header = jsonwebtoken::Header::new(match certificate.algorithm {
        AssertionAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        AssertionAlgorithm::PS256 => jsonwebtoken::Algorithm::PS256,
    });
    header.typ = Some("JWT".to_owned());
    header.x5t = Some(certificate.thumbprints.x5t());
    header.x5t_s256 = Some(certificate.thumbprints.x5t_s256());
    header
}

/// A signed assertion for `client_id` at `token_url`, issued at `now`.
pub(crate) fn sign(
    certificate: &Certificate,
    client_id: &str,
    token_url: &str,
    now: DateTime<Utc>,
) -> Result<SecretString, GraphError> {
    let issued = now.timestamp();
    let claims = Claims {
        aud: token_url,
        iss: client_id,
        sub: client_id,
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: issued,
        iat: issued,
        exp: issued + LIFETIME_SECS,
    };
    jsonwebtoken::encode(&header(certificate), &claims, certificate.signing_key())
        .map(SecretString::from)
        .map_err(|e| GraphError::Config {
            key: "certificate_path".to_owned(),
            message: format!(
                "the key in {} cannot sign the client assertion ({e})",
                certificate.path.display()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_certificates::{self, Validity};
    use secrecy::ExposeSecret;
    use serde_json::Value;

    fn parts(jwt: &str) -> (Value, Value) {
        use base64::Engine;
        let decode = |part: &str| -> Value {
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .unwrap(),
            )
            .unwrap()
        };
        let mut split = jwt.split('.');
        (decode(split.next().unwrap()), decode(split.next().unwrap()))
    }

    #[test]
    fn assertion_carries_thumbprints_and_the_claims_entra_reads() {
        let made = test_certificates::make(Validity::Current, AssertionAlgorithm::RS256);
        let certificate = made.load();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let url = "https://login.microsoftonline.com/t/oauth2/v2.0/token";
        let jwt = sign(&certificate, "client-1", url, now).unwrap();
        let (header, claims) = parts(jwt.expose_secret());
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["x5t"], certificate.thumbprints.x5t());
        assert_eq!(header["x5t#S256"], certificate.thumbprints.x5t_s256());
        assert_eq!(claims["aud"], url);
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["nbf"], 1_800_000_000);
        assert_eq!(claims["iat"], 1_800_000_000);
        assert_eq!(claims["exp"], 1_800_000_600);
        let again = sign(&certificate, "client-1", url, now).unwrap();
        assert_ne!(parts(again.expose_secret()).1["jti"], claims["jti"]);

        // The signature verifies against the certificate's public key.
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_exp = false;
        validation.set_audience(&[url]);
        jsonwebtoken::decode::<Value>(jwt.expose_secret(), &made.decoding_key(), &validation)
            .unwrap();
    }

    #[test]
    fn ps256_is_signed_as_configured() {
        let made = test_certificates::make(Validity::Current, AssertionAlgorithm::PS256);
        let certificate = made.load();
        let jwt = sign(
            &certificate,
            "c",
            "https://x/t/oauth2/v2.0/token",
            Utc::now(),
        )
        .unwrap();
        assert_eq!(parts(jwt.expose_secret()).0["alg"], "PS256");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(jwt.expose_secret(), &made.decoding_key(), &validation)
            .unwrap();
    }
}
