//! The hop to the workspace's own sshd: connect, check its host key, log
//! in as the backend user, and relay what the workspace's sshd opens
//! towards the user (agent and remote-forwarded channels).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use super::relay;

/// How long the TCP connect and the SSH handshake with the workspace's sshd
/// may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which host keys the workspace's sshd may present.
pub enum HostKeyPolicy {
    /// Keys from `ssh.backend_known_hosts_file`, for every workspace.
    Known(Vec<PublicKey>),
    /// The first key seen per workspace (id and Service uid), kept in
    /// memory by this replica.
    PinOnFirstUse(Mutex<HashMap<String, PublicKey>>),
}

impl HostKeyPolicy {
    /// Reads known_hosts lines: the key type and base64 key of each line;
    /// host patterns and comments are ignored, and so are marked lines
    /// (`@cert-authority`, `@revoked`): certificates are not accepted.
    pub fn known_hosts(text: &str) -> Result<HostKeyPolicy, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let parsed = (0..fields.len().saturating_sub(1)).find_map(|i| {
                PublicKey::from_openssh(&format!("{} {}", fields[i], fields[i + 1])).ok()
            });
            match parsed {
                Some(k) => keys.push(k),
                None => return Err(format!("line {}: no public key found", n + 1)),
            }
        }
        if keys.is_empty() {
            return Err("no host key in the file".into());
        }
        Ok(HostKeyPolicy::Known(keys))
    }

    /// Is `key` acceptable for the workspace pinned under `pin`?
    fn accepts(&self, pin: &str, key: &PublicKey) -> bool {
        match self {
            HostKeyPolicy::Known(keys) => keys.iter().any(|k| k.key_data() == key.key_data()),
            HostKeyPolicy::PinOnFirstUse(pins) => {
                let mut pins = pins.lock().unwrap_or_else(|p| p.into_inner());
                match pins.get(pin) {
                    Some(k) => k.key_data() == key.key_data(),
                    None => {
                        pins.insert(pin.to_string(), key.clone());
                        true
                    }
                }
            }
        }
    }
}

/// Ciphers the gate asks the workspace's sshd for, best first. The gate
/// decrypts and re-encrypts every byte it relays, so its own hop takes
/// AES-GCM first (hardware AES on the servers it runs on; about two thirds
/// of ChaCha20-Poly1305's CPU per MiB in bench/ssh.sh). The user's hop
/// follows the user's client, which chooses.
const BACKEND_CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_CTR,
];

/// How the gate logs in on the workspace's sshd.
pub struct BackendLogin {
    pub user: String,
    /// `None`: `none`, then an empty password.
    pub key: Option<Arc<PrivateKey>>,
}

/// What the workspace's sshd opens towards the user goes through this.
pub(super) struct Towards {
    /// The user's connection, once known.
    pub(super) user: OnceLock<russh::server::Handle>,
    pub(super) agent_allowed: std::sync::atomic::AtomicBool,
    pub(super) remote_forwarding: bool,
    pub(super) activity: Arc<relay::Activity>,
}

pub(super) struct BackendHandler {
    policy: Arc<HostKeyPolicy>,
    pin: String,
    key_refused: Arc<std::sync::atomic::AtomicBool>,
    towards: Arc<Towards>,
}

impl client::Handler for BackendHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let ok = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.policy.accepts(&self.pin, key),
            PublicKeyOrCertificate::Certificate(_) => false,
        };
        if !ok {
            self.key_refused
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(ok)
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let allowed = self
            .towards
            .agent_allowed
            .load(std::sync::atomic::Ordering::Relaxed);
        match self.towards.user.get().cloned() {
            Some(user) if allowed => {
                let activity = self.towards.activity.clone();
                tokio::spawn(async move {
                    let up = user.channel_open_agent().await;
                    accept_relayed(up, reply, channel, activity).await;
                });
            }
            _ => {
                reply
                    .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                    .await
            }
        }
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        match self.towards.user.get().cloned() {
            Some(user) if self.towards.remote_forwarding => {
                let (ca, oa) = (
                    connected_address.to_string(),
                    originator_address.to_string(),
                );
                let activity = self.towards.activity.clone();
                tokio::spawn(async move {
                    let up = user
                        .channel_open_forwarded_tcpip(ca, connected_port, oa, originator_port)
                        .await;
                    accept_relayed(up, reply, channel, activity).await;
                });
            }
            _ => {
                reply
                    .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                    .await
            }
        }
        Ok(())
    }
}

/// Answers a channel the workspace opened towards the user: accepted and
/// relayed when the user's side opened, refused when it did not.
async fn accept_relayed(
    up: Result<russh::Channel<russh::server::Msg>, russh::Error>,
    reply: client::ChannelOpenHandle,
    channel: russh::Channel<client::Msg>,
    activity: Arc<relay::Activity>,
) {
    match up {
        Ok(up) => {
            reply.accept().await;
            relay::bytes(up, channel, activity).await;
        }
        Err(_) => reply.reject(russh::ChannelOpenFailure::ConnectFailed).await,
    }
}

/// A logged-in connection to a workspace's sshd.
pub(super) struct Backend {
    pub(super) handle: client::Handle<BackendHandler>,
}

/// Why the workspace's sshd cannot be used; the text is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("the workspace's sshd at {0} cannot be reached: {1}")]
    Connect(String, String),
    #[error("the workspace's sshd at {0} did not answer in time")]
    Timeout(String),
    #[error(
        "the workspace's sshd at {0} presented a host key other than the one it had before \
         (or than ssh.backend_known_hosts_file lists); the gate does not connect"
    )]
    HostKey(String),
    #[error("the workspace's sshd at {0}: {1}")]
    Ssh(String, String),
    #[error("the workspace's sshd at {0} refused the gate's login as {1}")]
    Login(String, String),
}

impl BackendError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            BackendError::Connect(..) => "connect",
            BackendError::Timeout(_) => "timeout",
            BackendError::HostKey(_) => "host_key",
            BackendError::Ssh(..) => "ssh",
            BackendError::Login(..) => "login",
        }
    }
}

/// Connects to `addr` and logs in.
pub(super) async fn connect(
    addr: &str,
    pin: String,
    policy: Arc<HostKeyPolicy>,
    login: &BackendLogin,
    towards: Arc<Towards>,
) -> Result<Backend, BackendError> {
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| BackendError::Connect(addr.to_string(), e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let key_refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler = BackendHandler {
            policy,
            pin,
            key_refused: key_refused.clone(),
            towards,
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            preferred: russh::Preferred {
                cipher: std::borrow::Cow::Borrowed(BACKEND_CIPHERS),
                ..Default::default()
            },
            ..Default::default()
        });
        let mut handle = client::connect_stream(config, tcp, handler)
            .await
            .map_err(|e| {
                if key_refused.load(std::sync::atomic::Ordering::Relaxed) {
                    BackendError::HostKey(addr.to_string())
                } else {
                    BackendError::Ssh(addr.to_string(), e.to_string())
                }
            })?;
        let ssh = |e: russh::Error| BackendError::Ssh(addr.to_string(), e.to_string());
        let ok = match &login.key {
            Some(key) => {
                let hash = handle.best_supported_rsa_hash().await.map_err(ssh)?;
                handle
                    .authenticate_publickey(
                        login.user.clone(),
                        PrivateKeyWithHashAlg::new(key.clone(), hash.flatten()),
                    )
                    .await
                    .map_err(ssh)?
                    .success()
            }
            None => {
                handle
                    .authenticate_none(login.user.clone())
                    .await
                    .map_err(ssh)?
                    .success()
                    || handle
                        .authenticate_password(login.user.clone(), "")
                        .await
                        .map_err(ssh)?
                        .success()
            }
        };
        if !ok {
            return Err(BackendError::Login(addr.to_string(), login.user.clone()));
        }
        Ok(Backend { handle })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(BackendError::Timeout(addr.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHAnU/SWCWDeSSqx/qWNDbjRT3h8uhRVyYVEZxeJChiL";
    const B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBhDDB8AoNHxhxJsUc03SwTvNhaVGkU9gJYzJHdYTRWt";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn the_first_key_is_pinned_per_workspace() {
        let p = HostKeyPolicy::PinOnFirstUse(Mutex::default());
        assert!(p.accepts("1/uid-a", &key(A)));
        assert!(p.accepts("1/uid-a", &key(A)));
        assert!(!p.accepts("1/uid-a", &key(B)));
        // A replaced Service (new uid) is a new workspace.
        assert!(p.accepts("1/uid-b", &key(B)));
    }

    #[test]
    fn known_hosts_lines_give_their_keys_and_junk_is_an_error() {
        let text = format!("# comment\n\n[ws]:60022,10.0.0.1 {A}\n@cert-authority * {B} x\n");
        let p = HostKeyPolicy::known_hosts(&text).unwrap();
        assert!(p.accepts("any", &key(A)));
        assert!(!p.accepts("other", &key(B)));
        let HostKeyPolicy::Known(keys) = &p else {
            panic!("known hosts give a fixed list")
        };
        assert_eq!(keys.len(), 1);
        assert!(HostKeyPolicy::known_hosts("host not-a-key\n").is_err());
        assert!(HostKeyPolicy::known_hosts("# only comments\n").is_err());
    }
}
