//! Configuration: a YAML file, overridden key by key by environment
//! variables `WORKSPACE_GATE_<KEY>` (dots and dashes become `_`, upper-case:
//! `oidc.client_id` is `WORKSPACE_GATE_OIDC_CLIENT_ID`). Secrets are read from
//! files. Every section, discovery's included, is read once by one reader
//! ([`reader`]), and every problem is reported together, each with its key,
//! before anything listens.
//!
//! The result is plain values: this module imports no other module of the
//! crate but the leaves (file reading, host syntax, key material), and the
//! modules that use a setting receive it from `server`'s wiring.
//!
//! - [`keys`]: the table of every key, its default and meaning (the
//!   README's reference);
//! - `reader`: file, environment, typed values, unknown keys;
//! - `gate`: hosts, listeners, TLS, provider, keys, session, workspaces,
//!   authorization, logs;
//! - [`discovery`]: the `discovery` and `routing` sections.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod discovery;
mod gate;
pub(crate) mod keys;
mod reader;
mod ssh;

pub use discovery::DiscoveryConfig;
pub use keys::{KEYS, KeyDoc};
use reader::Reader;
pub use ssh::SshConfig;

pub use crate::scheme::Scheme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMethod {
    /// In the callback URL's fragment, moved to a cookie by the hand-over
    /// page: works behind every controller and reaches no server's log.
    Fragment,
    /// In a POST body: only where the gate serves the callback itself
    /// (ingress-nginx's reserved Ingress).
    FormPost,
    /// In the callback URL's query: every access log records it.
    Query,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceSource {
    File(PathBuf),
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzMode {
    Gitlab,
    OwnerAnnotation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub grpc: Option<SocketAddr>,
    /// `listen.https`; set only together with [`Config::tls`].
    pub https: Option<SocketAddr>,
    pub https_max_connection_age: Duration,
    /// `listen.header_read_timeout`, `listen.idle_timeout` and
    /// `listen.shutdown_grace`: every listener.
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Certificate and key files of `listen.https` (checked at load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone)]
pub struct Oidc {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub username_claim: String,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub pass_ttl: Duration,
    pub login_ttl: Duration,
    pub transfer_ttl: Duration,
    pub transfer: TransferMethod,
}

#[derive(Debug, Clone)]
pub struct Authorization {
    pub mode: AuthzMode,
    pub gitlab_url: String,
    pub cache_ttl: Duration,
}

/// A validated configuration. Secrets have been read; key material is raw bytes.
#[derive(Clone)]
pub struct Config {
    pub auth_host: String,
    pub workspace_domain: String,
    pub public_scheme: Scheme,
    pub public_port: Option<u16>,
    pub listen: Listen,
    pub tls: Option<TlsFiles>,
    pub oidc: Oidc,
    pub keys: Vec<Vec<u8>>,
    pub session: Session,
    pub workspaces: WorkspaceSource,
    pub authorization: Authorization,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Discovery and routing (used when `workspaces.source` is
    /// `kubernetes`, and by `workspace-gate render`).
    pub discovery: DiscoveryConfig,
    /// The SSH gateway; `None` when `listen.ssh` is empty.
    pub ssh: Option<SshConfig>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("auth_host", &self.auth_host)
            .field("workspace_domain", &self.workspace_domain)
            .field("public_scheme", &self.public_scheme)
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("oidc", &self.oidc)
            .field("keys", &format_args!("{} key(s)", self.keys.len()))
            .field("session", &self.session)
            .field("workspaces", &self.workspaces)
            .field("authorization", &self.authorization)
            .field("discovery", &self.discovery)
            .field("ssh", &self.ssh)
            .finish()
    }
}

/// One configuration problem: the key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

/// Every problem found, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  - {}: {}", p.key, p.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Loads `path` (optional: environment alone may configure everything),
    /// applies the environment, resolves relative paths against the file's
    /// directory and validates.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let mut r = Reader::new(path, env);
        let cfg = gate::read(&mut r, env);
        if r.problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(r.problems))
        }
    }

    /// `<scheme>://<auth_host>[:<public_port>]`, as browsers reach it.
    pub fn auth_origin(&self) -> String {
        crate::scheme::origin(
            self.public_scheme,
            &self.auth_host.to_ascii_lowercase(),
            self.public_port,
        )
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.auth_origin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn broken_config_reports_every_problem_with_its_key() {
        let dir = std::env::temp_dir().join(format!("wg-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.yaml");
        std::fs::write(
            &f,
            "auth_host: 'https://x'\npublic_scheme: ftp\nlisten: {http: nope}\nsession: {pass_ttl: soon}\ntypo: 1\n",
        )
        .unwrap();
        let err = Config::load(Some(&f), &no_env).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "auth_host",
            "workspace_domain",
            "public_scheme",
            "listen.http",
            "oidc.issuer",
            "oidc.client_id",
            "oidc.client_secret_file",
            "keys.files",
            "session.pass_ttl",
            "workspaces.file",
            "typo",
        ] {
            assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
        }
    }

    /// A minimal valid configuration in `dir` plus `extra` YAML lines.
    fn load_with(dir: &Path, extra: &str) -> Result<Config, ConfigErrors> {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("secret"), "s").unwrap();
        std::fs::write(dir.join("key"), crate::material::generate_key()).unwrap();
        std::fs::write(dir.join("ws.yaml"), "workspaces: []\n").unwrap();
        let f = dir.join("gate.yaml");
        std::fs::write(
            &f,
            format!(
                "auth_host: a.test\nworkspace_domain: w.test\n\
oidc: {{issuer: 'https://id.test', client_id: c, client_secret_file: secret}}\n\
keys: {{files: [key]}}\nworkspaces: {{source: file, file: ws.yaml}}\n{extra}"
            ),
        )
        .unwrap();
        Config::load(Some(&f), &no_env)
    }

    /// A self-signed certificate and its key, as PEM files `<name>.crt`
    /// and `<name>.key`.
    fn self_signed(dir: &Path, name: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["gate.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    fn problem_keys(r: Result<Config, ConfigErrors>) -> Vec<String> {
        r.unwrap_err().0.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn https_listener_loads_its_certificate_and_refuses_half_setups() {
        let dir = std::env::temp_dir().join(format!("wg-cfg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        self_signed(&dir, "a");
        self_signed(&dir, "b");
        std::fs::write(dir.join("junk.crt"), "not pem\n").unwrap();

        let ok = load_with(
            &dir,
            "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: a.crt, key_file: a.key}\n",
        )
        .unwrap();
        assert_eq!(ok.listen.https, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(ok.tls.unwrap().cert, dir.join("a.crt"));
        let off = load_with(&dir, "").unwrap();
        assert_eq!((off.listen.https, off.tls), (None, None));

        for (extra, want) in [
            (
                "listen: {https: '0.0.0.0:8443'}\n",
                vec!["tls.cert_file", "tls.key_file"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: a.crt}\n",
                vec!["tls.key_file"],
            ),
            (
                "tls: {cert_file: a.crt, key_file: a.key}\n",
                vec!["listen.https"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: a.crt, key_file: b.key}\n",
                vec!["tls.key_file"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: junk.crt, key_file: a.key}\n",
                vec!["tls.cert_file"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: missing.crt, key_file: a.key}\n",
                vec!["tls.cert_file"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: a.crt, key_file: a.crt}\n",
                vec!["tls.key_file"],
            ),
            (
                "listen: {https: nope}\ntls: {cert_file: a.crt, key_file: a.key}\n",
                vec!["listen.https"],
            ),
        ] {
            assert_eq!(problem_keys(load_with(&dir, extra)), want, "{extra}");
        }
    }

    #[test]
    fn env_names_follow_the_key() {
        let kd = KEYS.iter().find(|k| k.key == "oidc.client_id").unwrap();
        assert_eq!(kd.env_name(), "WORKSPACE_GATE_OIDC_CLIENT_ID");
    }
}
