//! A certificate credential: the certificate (thumbprints, validity) and its RSA private key,
//! read from PEM files. A file holding the key must be private to rollcall's user, as ssh
//! insists for its keys.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::credential::CredentialError;

/// A certificate that expires within this long is a warning in `config check`, `status` and
/// `/metrics`.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// How the client assertion is signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssertionAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, what most clients send.
    #[default]
    RS256,
    /// RSASSA-PSS with SHA-256, what current Entra documentation shows.
    PS256,
}

impl AssertionAlgorithm {
    /// The JOSE `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AssertionAlgorithm::RS256 => "RS256",
            AssertionAlgorithm::PS256 => "PS256",
        }
    }
}

/// A certificate's SHA-1 and SHA-256 thumbprints (of its DER encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbprints {
    /// SHA-1: the thumbprint the Azure portal shows, and the `x5t` header.
    pub sha1: [u8; 20],
    /// SHA-256: the `x5t#S256` header.
    pub sha256: [u8; 32],
}

impl Thumbprints {
    /// The thumbprints of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Thumbprints {
        Thumbprints {
            sha1: Sha1::digest(der).into(),
            sha256: Sha256::digest(der).into(),
        }
    }

    /// `x5t`: base64url of the SHA-1 thumbprint, unpadded (RFC 7515).
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha1)
    }

    /// `x5t#S256`: base64url of the SHA-256 thumbprint, unpadded.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }

    /// The SHA-1 thumbprint in upper-case hex, as the Azure portal lists certificates.
    pub fn sha1_hex(&self) -> String {
        hex::encode_upper(self.sha1)
    }
}

/// A certificate and the private key that signs client assertions with it.
pub struct Certificate {
    /// The file the certificate was read from.
    pub path: PathBuf,
    /// Its thumbprints.
    pub thumbprints: Thumbprints,
    /// Its subject, for messages.
    pub subject: String,
    /// The start of its validity.
    pub not_before: DateTime<Utc>,
    /// The end of its validity.
    pub not_after: DateTime<Utc>,
    /// How assertions are signed.
    pub algorithm: AssertionAlgorithm,
    key: jsonwebtoken::EncodingKey,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("path", &self.path)
            .field("thumbprint", &self.thumbprints.sha1_hex())
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads the certificate from `certificate_path` and its key from `private_key_path` (or
    /// the same file), decrypting an encrypted key with the password in `password_env`.
    pub fn load(
        certificate_path: &Path,
        private_key_path: Option<&Path>,
        password_env: Option<&str>,
        algorithm: AssertionAlgorithm,
    ) -> Result<Certificate, CredentialError> {
        let cert_error = |message: String| CredentialError::new("certificate_path", message);
        let key_key = if private_key_path.is_some() {
            "private_key_path"
        } else {
            "certificate_path"
        };
        let key_path = private_key_path.unwrap_or(certificate_path);
        check_private(key_path).map_err(|m| CredentialError::new(key_key, m))?;

        let text = std::fs::read_to_string(certificate_path)
            .map_err(|e| cert_error(format!("cannot read {}: {e}", certificate_path.display())))?;
        let blocks = pem::parse_many(&text)
            .map_err(|e| cert_error(format!("{} is not PEM ({e})", certificate_path.display())))?;
        let der = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| {
                cert_error(format!(
                    "{} holds no `-----BEGIN CERTIFICATE-----` block; give the PEM certificate \
                     registered on the app registration",
                    certificate_path.display()
                ))
            })?
            .contents()
            .to_vec();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
            cert_error(format!(
                "{}: the certificate cannot be read ({e})",
                certificate_path.display()
            ))
        })?;
        if parsed.public_key().algorithm.algorithm
            != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
        {
            return Err(cert_error(format!(
                "{}: the certificate's key is not RSA; Entra certificate credentials are RSA \
                 (2048 bits or more)",
                certificate_path.display()
            )));
        }
        let time = |t: x509_parser::time::ASN1Time| {
            DateTime::<Utc>::from_timestamp(t.timestamp(), 0).unwrap_or_default()
        };
        let validity = parsed.validity();
        let (not_before, not_after) = (time(validity.not_before), time(validity.not_after));
        let subject = parsed.subject().to_string();
        drop(blocks);

        let key = read_key(key_path, key_key, password_env)?;
        Ok(Certificate {
            path: certificate_path.to_owned(),
            thumbprints: Thumbprints::of(&der),
            subject,
            not_before,
            not_after,
            algorithm,
            key,
        })
    }

    /// The key client assertions are signed with.
    pub fn signing_key(&self) -> &jsonwebtoken::EncodingKey {
        &self.key
    }

    /// How long until the certificate expires (negative once it has).
    pub fn expires_in(&self, now: DateTime<Utc>) -> chrono::TimeDelta {
        self.not_after - now
    }

    /// Why this certificate cannot sign in at `now`, if it cannot.
    pub fn unusable(&self, now: DateTime<Utc>) -> Option<String> {
        let thumbprint = self.thumbprints.sha1_hex();
        let path = self.path.display();
        if now > self.not_after {
            return Some(format!(
                "the certificate in {path} (thumbprint {thumbprint}) expired on {}; make a new \
                 one, upload it to the app registration (Certificates & secrets) and point \
                 `graph.certificate_path` at it (RUNBOOK: rotating the certificate)",
                self.not_after.format("%F %T UTC")
            ));
        }
        if now < self.not_before {
            return Some(format!(
                "the certificate in {path} (thumbprint {thumbprint}) is valid only from {}; \
                 check this machine's clock",
                self.not_before.format("%F %T UTC")
            ));
        }
        None
    }

    /// A warning when the certificate expires within [`EXPIRY_WARNING`] of `now`, or has.
    pub fn expiry_warning(&self, now: DateTime<Utc>) -> Option<String> {
        if let Some(unusable) = self.unusable(now) {
            return Some(unusable);
        }
        let left = self.expires_in(now);
        (left.to_std().is_ok_and(|left| left < EXPIRY_WARNING)).then(|| {
            format!(
                "the certificate in {} (thumbprint {}) expires on {} ({} days from now); \
                 register its successor now (RUNBOOK: rotating the certificate)",
                self.path.display(),
                self.thumbprints.sha1_hex(),
                self.not_after.format("%F %T UTC"),
                left.num_days()
            )
        })
    }
}

/// Refuses a key file that its group or others may open: the key signs in as an app that
/// can rewrite every list in the tenant.
#[cfg(unix)]
pub(super) fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|e| {
        format!(
            "cannot read {}: {e}{}",
            path.display(),
            super::credential::unexpanded_hint(path)
        )
    })?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} holds a private key but its group or others may open it (mode {mode:04o}); a \
             key must be private to the user rollcall runs as: run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// No mode bits to check off Unix; the file's ACL is the operator's to keep.
#[cfg(not(unix))]
pub(super) fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// The RSA private key in `path`: PKCS#8 (encrypted or not) or PKCS#1, as PEM.
fn read_key(
    path: &Path,
    key: &str,
    password_env: Option<&str>,
) -> Result<jsonwebtoken::EncodingKey, CredentialError> {
    let error = |message: String| CredentialError::new(key, message);
    let text = SecretString::from(
        std::fs::read_to_string(path)
            .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?,
    );
    let blocks = pem::parse_many(text.expose_secret())
        .map_err(|e| error(format!("{} is not PEM ({e})", path.display())))?;
    let block = blocks
        .iter()
        .find(|b| b.tag().ends_with("PRIVATE KEY"))
        .ok_or_else(|| {
            error(format!(
                "{} holds no private key; give the key in the same PEM file as the certificate \
                 or name its file in `graph.private_key_path`",
                path.display()
            ))
        })?;
    let plain = match block.tag() {
        "PRIVATE KEY" | "RSA PRIVATE KEY" => pem::encode(block),
        "ENCRYPTED PRIVATE KEY" => decrypt(path, block.contents(), password_env)?,
        other => {
            return Err(error(format!(
                "{} holds a `{other}`; rollcall signs with an RSA key (PKCS#8 or PKCS#1)",
                path.display()
            )));
        }
    };
    let plain = SecretString::from(plain);
    jsonwebtoken::EncodingKey::from_rsa_pem(plain.expose_secret().as_bytes()).map_err(|e| {
        error(format!(
            "{}: the private key is not an RSA key rollcall can sign with ({e})",
            path.display()
        ))
    })
}

/// An encrypted PKCS#8 key, opened with the password in `password_env`, as plain PEM.
fn decrypt(path: &Path, der: &[u8], password_env: Option<&str>) -> Result<String, CredentialError> {
    let Some(var) = password_env else {
        return Err(CredentialError::new(
            "certificate_password_env",
            format!(
                "the private key in {} is encrypted: name the environment variable holding its \
                 password in `graph.certificate_password_env`",
                path.display()
            ),
        ));
    };
    let password_error =
        |message: String| CredentialError::new("certificate_password_env", message);
    let password = std::env::var(var)
        .map(SecretString::from)
        .map_err(|_| password_error(format!("environment variable {var} is not set")))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der).map_err(|e| {
        CredentialError::new(
            "private_key_path",
            format!("{}: the encrypted key cannot be read ({e})", path.display()),
        )
    })?;
    let document = info
        .decrypt(password.expose_secret().as_bytes())
        .map_err(|_| {
            password_error(format!(
                "the password in {var} does not open the private key in {}",
                path.display()
            ))
        })?;
    Ok(pem::encode(&pem::Pem::new(
        "PRIVATE KEY",
        document.as_bytes(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_certificates::{Validity, make, set_mode};

    #[test]
    fn thumbprints_are_base64url_of_the_der_digests() {
        let thumbprints = Thumbprints::of(b"not really a certificate");
        assert_eq!(
            thumbprints.sha1,
            <[u8; 20]>::from(Sha1::digest(b"not really a certificate"))
        );
        assert_eq!(
            thumbprints.x5t(),
            URL_SAFE_NO_PAD.encode(Sha1::digest(b"not really a certificate"))
        );
        assert!(!thumbprints.x5t_s256().contains('='));
        assert_eq!(thumbprints.x5t_s256().len(), 43);
        assert_eq!(thumbprints.sha1_hex().len(), 40);
        assert_eq!(
            thumbprints.sha1_hex(),
            thumbprints.sha1_hex().to_uppercase()
        );
    }

    #[test]
    fn a_loaded_certificate_has_the_thumbprint_of_its_der() {
        let made = make(Validity::Current, AssertionAlgorithm::RS256);
        let certificate = made.load();
        let text = std::fs::read_to_string(&made.combined).unwrap();
        let der = pem::parse_many(&text)
            .unwrap()
            .into_iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .unwrap();
        assert_eq!(certificate.thumbprints, Thumbprints::of(der.contents()));
        assert!(certificate.unusable(Utc::now()).is_none());
        assert!(certificate.expiry_warning(Utc::now()).is_none());
        assert!(!format!("{certificate:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_key_file_its_group_can_read_is_refused_with_the_chmod_to_run() {
        let made = make(Validity::Current, AssertionAlgorithm::RS256);
        set_mode(&made.combined, 0o640);
        let err =
            Certificate::load(&made.combined, None, None, AssertionAlgorithm::RS256).unwrap_err();
        assert_eq!(err.key, "certificate_path");
        assert!(
            err.message
                .contains(&format!("run `chmod 600 {}`", made.combined.display())),
            "{err:?}"
        );
        assert!(err.message.contains("mode 0640"), "{err:?}");
        set_mode(&made.combined, 0o604);
        assert!(Certificate::load(&made.combined, None, None, AssertionAlgorithm::RS256).is_err());
        set_mode(&made.combined, 0o400);
        assert!(Certificate::load(&made.combined, None, None, AssertionAlgorithm::RS256).is_ok());
    }

    #[test]
    fn a_separate_key_file_is_checked_and_named() {
        let made = make(Validity::Current, AssertionAlgorithm::RS256);
        let key = made.combined.with_file_name("app.key");
        std::fs::write(&key, &made.key_pem).unwrap();
        set_mode(&key, 0o644);
        let err = Certificate::load(&made.combined, Some(&key), None, AssertionAlgorithm::RS256)
            .unwrap_err();
        assert_eq!(err.key, "private_key_path");
        set_mode(&key, 0o600);
        Certificate::load(&made.combined, Some(&key), None, AssertionAlgorithm::RS256).unwrap();
    }

    #[test]
    fn an_encrypted_key_needs_its_password_variable() {
        let made = make(Validity::Current, AssertionAlgorithm::RS256);
        let key = made.combined.with_file_name("app.key");
        std::fs::write(&key, made.encrypted_key_pem("correct horse")).unwrap();
        set_mode(&key, 0o600);
        let err = Certificate::load(&made.combined, Some(&key), None, AssertionAlgorithm::RS256)
            .unwrap_err();
        assert_eq!(err.key, "certificate_password_env");
        assert!(err.message.contains("is encrypted"), "{err:?}");
        // PATH is set in every test environment and is not the password.
        let err = Certificate::load(
            &made.combined,
            Some(&key),
            Some("PATH"),
            AssertionAlgorithm::RS256,
        )
        .unwrap_err();
        assert!(err.message.contains("does not open"), "{err:?}");
    }

    #[test]
    fn a_certificate_expiring_within_30_days_is_a_warning() {
        let made = make(Validity::ExpiringSoon, AssertionAlgorithm::RS256);
        let certificate = made.load();
        let warning = certificate.expiry_warning(Utc::now()).unwrap();
        assert!(warning.contains("expires on"), "{warning}");
        assert!(
            warning.contains(&certificate.thumbprints.sha1_hex()),
            "{warning}"
        );
        let later = Utc::now() + chrono::TimeDelta::days(11);
        assert!(certificate.unusable(later).unwrap().contains("expired on"));
    }
}
