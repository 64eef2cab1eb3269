//! A throwaway certificate authority and one wildcard server certificate per
//! run: `*.<domain>` and `<domain>`, so the controller terminates real TLS and
//! browsers accept `__Host-` cookies.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use sha2::Digest;

pub struct TestCa {
    /// CA certificate, DER (what clients trust).
    pub ca_der: Vec<u8>,
    pub ca_pem: String,
    /// Server certificate chain (leaf then CA) and key, PEM files for the controller.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
    /// base64(sha256(SubjectPublicKeyInfo)) of the server key, for Chromium's
    /// `--ignore-certificate-errors-spki-list`.
    pub spki_sha256: String,
}

impl TestCa {
    pub fn create(dir: &Path, domain: &str) -> anyhow::Result<TestCa> {
        Self::issue(dir, &[format!("*.{domain}"), domain.to_string()])
    }

    /// A CA and one certificate for `names` (an IP address becomes an IP
    /// name), written as `tls.crt`, `tls.key` and `ca.crt` in `dir`.
    pub fn issue(dir: &Path, names: &[String]) -> anyhow::Result<TestCa> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "workspace-gate test CA");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().map_or("", |n| n.as_str()));
        leaf_params.distinguished_name = dn;
        let leaf = leaf_params.signed_by(&leaf_key, &ca)?;

        let spki = leaf_key.subject_public_key_info();
        let spki_sha256 =
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&spki));

        let cert_file = dir.join("tls.crt");
        let key_file = dir.join("tls.key");
        let ca_file = dir.join("ca.crt");
        std::fs::write(&cert_file, format!("{}{}", leaf.pem(), ca.pem()))
            .context("writing tls.crt")?;
        std::fs::write(&key_file, leaf_key.serialize_pem()).context("writing tls.key")?;
        std::fs::write(&ca_file, ca.pem()).context("writing ca.crt")?;
        Ok(TestCa {
            ca_der: ca.der().to_vec(),
            ca_pem: ca.pem(),
            cert_file,
            key_file,
            ca_file,
            spki_sha256,
        })
    }

    /// A rustls client configuration trusting only this CA (WebSocket clients).
    pub fn rustls_client_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        super::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(self.ca_der.clone()))?;
        Ok(rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}
