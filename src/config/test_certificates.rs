//! Test certificates, made when a test runs (no key is ever committed): an RSA key from the
//! rsa crate, a self-signed certificate around it from rcgen.

use std::path::PathBuf;
use std::sync::OnceLock;

use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use super::{AssertionAlgorithm, Certificate};

/// When a test certificate is valid.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Validity {
    /// From a year ago for ten years.
    Current,
    /// From a year ago until ten days from now.
    ExpiringSoon,
}

/// One RSA key for every unit test (generating one takes a while).
fn key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("an RSA key is generated")
    })
}

/// A certificate and key written to a temporary folder.
#[derive(Debug)]
pub(crate) struct Made {
    /// The certificate and key in one PEM file, mode 0600.
    pub combined: PathBuf,
    /// The key's PEM text.
    pub key_pem: String,
    algorithm: AssertionAlgorithm,
    _dir: tempfile::TempDir,
}

/// A certificate valid as `validity` says, signing as `algorithm`.
pub(crate) fn make(validity: Validity, algorithm: AssertionAlgorithm) -> Made {
    let key_pem = key().to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let key_pair =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["rollcall-test".to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(365);
    params.not_after = match validity {
        Validity::Current => now + time::Duration::days(3650),
        Validity::ExpiringSoon => now + time::Duration::days(10),
    };
    let certificate = params.self_signed(&key_pair).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let combined = dir.path().join("app.pem");
    std::fs::write(&combined, format!("{}{key_pem}", certificate.pem())).unwrap();
    set_mode(&combined, 0o600);
    Made {
        combined,
        key_pem,
        algorithm,
        _dir: dir,
    }
}

/// Sets a file's permission bits.
pub(crate) fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Made {
    /// The certificate as rollcall loads it.
    pub(crate) fn load(&self) -> Certificate {
        Certificate::load(&self.combined, None, None, self.algorithm).unwrap()
    }

    /// The certificate's public key, for checking signatures.
    pub(crate) fn decoding_key(&self) -> jsonwebtoken::DecodingKey {
        let public = key().to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap()
    }

    /// The key encrypted with `password`, as PEM.
    pub(crate) fn encrypted_key_pem(&self, password: &str) -> String {
        key()
            .to_pkcs8_encrypted_pem(&mut rand::thread_rng(), password, LineEnding::LF)
            .unwrap()
            .to_string()
    }
}
