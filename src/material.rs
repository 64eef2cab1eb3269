//! Key material read from files: the gate's signing keys and the HTTPS
//! listener's certificate and key. Below configuration (it uses only the
//! bounded file reads), so that the configuration can
//! check these files while it loads (every problem reported before a port
//! is bound) and the session and server layers use the same reading.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Smallest accepted key: 32 bytes of randomness.
pub const MIN_KEY_LEN: usize = 32;

/// Reads a key file's text: base64 (standard or URL-safe) or hex, at least 32 bytes.
pub fn parse_key(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let t = text.trim();
    if t.is_empty() {
        return Err("the key file is empty".into());
    }
    let decoded = if t.len().is_multiple_of(2) && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(t).map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
            .map_err(|_| "the key is neither base64 nor hex".to_string())?
    };
    if decoded.len() < MIN_KEY_LEN {
        return Err(format!(
            "the key has {} bytes; at least {MIN_KEY_LEN} are required",
            decoded.len()
        ));
    }
    Ok(decoded)
}

/// A fresh random key, base64-encoded, as `workspace-gate keygen` prints it.
pub fn generate_key() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The cryptography the HTTPS listener uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain and its private key, and checks that they
/// belong together. The error names the file at fault.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsFileError> {
    let cert_pem = crate::files::read(cert, crate::files::SMALL)
        .map_err(|e| TlsFileError::Cert(format!("cannot read {}: {e}", cert.display())))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsFileError::Cert(format!("cannot read {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsFileError::Cert(format!(
            "{} holds no PEM certificate",
            cert.display()
        )));
    }
    let key_pem = crate::files::read(key, crate::files::SMALL)
        .map_err(|e| TlsFileError::Key(format!("cannot read {}: {e}", key.display())))?;
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsFileError::Key(format!(
            "cannot read a PEM private key from {}: {e}",
            key.display()
        ))
    })?;
    let signer = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsFileError::Key(format!("{}: unusable key: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| {
        TlsFileError::Key(format!(
            "{} does not match the first certificate in {}",
            key.display(),
            cert.display()
        ))
    })?;
    Ok(certified)
}

/// Which of the two files a problem is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFileError {
    Cert(String),
    Key(String),
}

impl std::fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFileError::Cert(s) | TlsFileError::Key(s) => f.write_str(s),
        }
    }
}
