//! The SSH gateway (`listen.ssh`): users log in with the workspace name as
//! the SSH user and one of the owner's SSH keys (or a token as the
//! password); the gate then logs in on the workspace's own sshd and relays
//! the channels. This is the one place where workspace-gate carries
//! traffic: no HTTP controller can carry SSH.
//!
//! - [`user`]: which workspace an SSH user name names.
//! - [`keys`]: the owner's SSH keys (workspaces file, GitLab).
//! - `connection`: one user connection (authentication, channels).
//! - [`backend`]: the hop to the workspace's sshd and its host key.
//! - `relay`: channel data, requests and replies both ways.
//! - `watch`: ends a session when the workspace, its owner or the
//!   user's key or token no longer admit it, and at the idle and session
//!   limits.

pub mod backend;
mod connection;
pub mod keys;
mod relay;
pub mod user;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use russh::keys::PrivateKey;
use russh::server;
use russh::{MethodKind, MethodSet, SshId};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use backend::{BackendLogin, HostKeyPolicy};
pub use keys::OwnerKeys;

use crate::authz::Authz;
use crate::config::SshConfig;
use crate::workspaces::IndexReader;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 10_000;

/// How long a client may take to send its SSH version line.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The gateway's metrics, registered as `workspace_gate_ssh_*`.
#[derive(Default)]
pub struct SshMetrics {
    auth: Family<AuthLabels, Counter>,
    bytes: Family<DirectionLabel, Counter>,
    sessions_open: Gauge,
    backend_failures: Family<ReasonLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
    ended: Family<ReasonLabel, Counter>,
}

impl SshMetrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("workspace_gate_ssh");
        r.register(
            "auth",
            "SSH authentication attempts by method and result",
            self.auth.clone(),
        );
        r.register(
            "bytes",
            "Bytes relayed through the SSH gateway (up: towards the workspace)",
            self.bytes.clone(),
        );
        r.register(
            "sessions_open",
            "Authenticated SSH connections open",
            self.sessions_open.clone(),
        );
        r.register(
            "backend_failures",
            "Failures to connect or log in to a workspace's sshd",
            self.backend_failures.clone(),
        );
        r.register(
            "refused",
            "Channels and requests refused by policy",
            self.refused.clone(),
        );
        r.register(
            "ended",
            "SSH connections ended by the gate, by reason",
            self.ended.clone(),
        );
    }

    fn auth(&self, method: &'static str, result: &'static str) {
        self.auth
            .get_or_create(&AuthLabels { method, result })
            .inc();
    }

    fn bytes(&self, direction: &'static str) -> Counter {
        self.bytes
            .get_or_create(&DirectionLabel { direction })
            .clone()
    }

    fn opened(&self) {
        self.sessions_open.inc();
    }

    fn closed(&self) {
        self.sessions_open.dec();
    }

    fn backend_failure(&self, reason: &'static str) {
        self.backend_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    fn ended(&self, reason: &'static str) {
        self.ended.get_or_create(&ReasonLabel { reason }).inc();
    }
}

/// Everything a connection needs; one per process.
pub struct Gateway {
    pub settings: SshConfig,
    pub index: IndexReader,
    pub authz: Arc<Authz>,
    pub keys: OwnerKeys,
    pub host_keys: Arc<HostKeyPolicy>,
    pub login: BackendLogin,
    pub metrics: Arc<SshMetrics>,
    pub workspace_domain: String,
}

/// Reads a private key file (OpenSSH or PEM, no passphrase).
pub fn read_key(path: &std::path::Path) -> Result<PrivateKey, String> {
    let text = crate::files::read_text(path, crate::files::SMALL)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    russh::keys::decode_secret_key(&text, None).map_err(|e| format!("{}: {e}", path.display()))
}

/// The SSH server settings: the host keys and the methods offered.
pub fn server_config(host_keys: Vec<PrivateKey>) -> server::Config {
    server::Config {
        server_id: SshId::Standard(
            concat!("SSH-2.0-workspace-gate_", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods: MethodSet::from(
            &[
                MethodKind::PublicKey,
                MethodKind::Password,
                MethodKind::KeyboardInteractive,
            ][..],
        ),
        // Every refusal takes as long, whether the workspace exists or not;
        // the first probe (`none`) is answered at once.
        auth_rejection_time: Duration::from_millis(200),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: host_keys,
        max_auth_attempts: 10,
        // The idle limit is the gate's own (`ssh.idle_timeout`), counted on
        // channel data; keepalives find dead peers.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    }
}

/// Serves SSH on `listener` until `stop` resolves; open connections are
/// then told the gate is going away and closed.
pub async fn serve(
    listener: TcpListener,
    gate: Arc<Gateway>,
    config: Arc<server::Config>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let mut stopping = stop_rx.clone();
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p?,
            _ = until_true(&mut stopping) => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "ssh: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = until_true(&mut stopping) => break,
        };
        let _ = tcp.set_nodelay(true);
        let (gate, config, stop) = (gate.clone(), config.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let _permit = permit;
            serve_one(tcp, peer, gate, config, stop).await;
        });
        while tasks.try_join_next().is_some() {}
    }
    // Connections were told to go; give them a moment to say goodbye.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    Ok(())
}

/// Resolves once `rx` holds `true` (or its sender is gone).
async fn until_true(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn serve_one(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    gate: Arc<Gateway>,
    config: Arc<server::Config>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let conn = connection::Connection::new(gate, Some(peer));
    let authenticated = conn.authenticated();
    let running =
        match tokio::time::timeout(HELLO_TIMEOUT, server::run_stream(config, tcp, conn)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "ssh: handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "ssh: no version line in time");
                return;
            }
        };
    let handle = running.handle();
    let login_deadline = tokio::time::sleep(connection::LOGIN_GRACE);
    tokio::pin!(running, login_deadline);
    let mut logging_in = true;
    loop {
        tokio::select! {
            r = &mut running => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "ssh: connection ended with an error");
                }
                return;
            }
            _ = &mut login_deadline, if logging_in => {
                logging_in = false;
                if !authenticated.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = handle
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            "workspace-gate: login took too long".into(),
                            "en".into(),
                        )
                        .await;
                }
            }
            _ = until_true(&mut stop) => {
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "workspace-gate is restarting; connect again".into(),
                        "en".into(),
                    )
                    .await;
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut running).await;
                return;
            }
        }
    }
}

/// A new Ed25519 host key in OpenSSH format, for `ssh.host_key_files`.
pub fn generate_host_key() -> Result<String, String> {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let key = PrivateKey::from(pair);
    key.to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map(|s| s.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_host_keys_read_back_and_differ() {
        let a = generate_host_key().unwrap();
        let b = generate_host_key().unwrap();
        assert_ne!(a, b);
        let key = russh::keys::decode_secret_key(&a, None).unwrap();
        assert_eq!(key.algorithm(), russh::keys::Algorithm::Ed25519);
    }
}
