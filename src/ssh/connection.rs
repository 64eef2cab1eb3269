//! One user connection: authentication (public key, token as password,
//! keyboard-interactive), then channels relayed to the workspace's sshd,
//! watched until the user may no longer use the workspace.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use russh::keys::PublicKey;
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::sync::OnceCell;

use super::backend::{self, Backend, BackendError, Towards};
use super::relay::{self, Activity};
use super::{Gateway, user};
use crate::authz::{Outcome, owner};
use crate::session::Identity;
use crate::workspaces::Workspace;

/// How the user proved who they are; what a recheck asks again.
#[derive(Clone)]
pub(super) enum Proof {
    /// One of the owner's SSH keys.
    Key(PublicKey),
    /// A token (GitLab personal access token) given as the password or at
    /// the keyboard-interactive prompt.
    Token(Secret),
}

impl Proof {
    fn method(&self) -> &'static str {
        match self {
            Proof::Key(_) => "publickey",
            Proof::Token(_) => "token",
        }
    }
}

/// A token kept in memory for rechecks; never printed.
#[derive(Clone)]
pub(super) struct Secret(String);

impl Secret {
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Who got in, to which workspace.
#[derive(Clone)]
pub(super) struct Admitted {
    pub(super) ws: Arc<Workspace>,
    pub(super) who: Identity,
    pub(super) proof: Proof,
}

pub(super) struct Connection {
    gate: Arc<Gateway>,
    peer: Option<SocketAddr>,
    admitted: Option<Admitted>,
    /// The keyboard-interactive prompt was shown once.
    prompted: bool,
    backend: Arc<OnceCell<Result<Arc<Backend>, String>>>,
    towards: Arc<Towards>,
    activity: Arc<Activity>,
    /// Set by the supervisor when it ends the connection.
    ended: Arc<std::sync::Mutex<Option<String>>>,
    authenticated: Arc<AtomicBool>,
    /// Dropped with the connection: the supervisor stops.
    alive: tokio::sync::watch::Sender<()>,
    /// The last refused attempt (user name, method, reason), logged when a
    /// connection ends without a login.
    refused: std::sync::Mutex<Option<(String, &'static str, &'static str)>>,
}

impl Connection {
    pub(super) fn new(gate: Arc<Gateway>, peer: Option<SocketAddr>) -> Self {
        let activity = Arc::new(Activity::new(
            gate.metrics.bytes("up"),
            gate.metrics.bytes("down"),
        ));
        let towards = Arc::new(Towards {
            user: std::sync::OnceLock::new(),
            agent_allowed: AtomicBool::new(false),
            remote_forwarding: gate.settings.allow_remote_forwarding,
            activity: activity.clone(),
        });
        Connection {
            gate,
            peer,
            admitted: None,
            prompted: false,
            backend: Arc::new(OnceCell::new()),
            towards,
            activity,
            ended: Arc::default(),
            authenticated: Arc::default(),
            alive: tokio::sync::watch::channel(()).0,
            refused: std::sync::Mutex::new(None),
        }
    }

    /// Set once the user has logged in.
    pub(super) fn authenticated(&self) -> Arc<AtomicBool> {
        self.authenticated.clone()
    }

    fn methods() -> MethodSet {
        MethodSet::from(
            &[
                MethodKind::PublicKey,
                MethodKind::Password,
                MethodKind::KeyboardInteractive,
            ][..],
        )
    }

    fn reject() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(Self::methods()),
            partial_success: false,
        }
    }

    /// Counts an authentication result; remembers a refusal for the log.
    fn outcome(&self, user: &str, method: &'static str, result: &'static str) {
        self.gate.metrics.auth(method, result);
        if result != "allowed"
            && let Ok(mut last) = self.refused.lock()
        {
            let user: String = user.chars().take(64).collect();
            *last = Some((user, method, result));
        }
    }

    /// The workspace the user name names, with an SSH side.
    fn workspace(&self, user: &str) -> Result<Arc<Workspace>, String> {
        let snap = self.gate.index.current();
        let ws = user::resolve(user, &snap, &self.gate.workspace_domain).map_err(|e| {
            self.outcome(user, "none", e.metric_label());
            e.to_string()
        })?;
        if ws.ssh.is_none() {
            self.outcome(user, "none", "no_ssh");
            return Err(format!("workspace {} has no SSH port", ws.name));
        }
        Ok(ws)
    }

    async fn try_key(&mut self, user: &str, key: &PublicKey, verified: bool) -> Auth {
        let Ok(ws) = self.workspace(user) else {
            return Self::reject();
        };
        match self.gate.keys.holds(&ws, key).await {
            Ok(true) => {}
            Ok(false) => {
                // Counted at the offer: a client never signs with a key
                // the server did not accept when offered.
                self.outcome(user, "publickey", "denied");
                return Self::reject();
            }
            Err(e) => {
                tracing::warn!(workspace = %ws.name, error = %e, "ssh: cannot read the owner's keys");
                self.outcome(user, "publickey", "error");
                return Self::reject();
            }
        }
        if !verified {
            return Auth::Accept;
        }
        let Some(o) = &ws.owner else {
            return Self::reject();
        };
        let who = Identity {
            user_id: o.id.clone(),
            username: o.username.clone(),
        };
        match owner::check_identity(&who, &ws) {
            Outcome::Allowed(who) => {
                self.outcome(user, "publickey", "allowed");
                self.admitted = Some(Admitted {
                    ws,
                    who,
                    proof: Proof::Key(key.clone()),
                });
                Auth::Accept
            }
            _ => {
                self.outcome(user, "publickey", "denied");
                Self::reject()
            }
        }
    }

    async fn try_token(&mut self, user: &str, token: &str, method: &'static str) -> Auth {
        let Ok(ws) = self.workspace(user) else {
            return Self::reject();
        };
        if token.is_empty() {
            self.outcome(user, method, "invalid_token");
            return Self::reject();
        }
        match self.gate.authz.bearer(token, &ws).await {
            Ok(Outcome::Allowed(who)) => {
                self.outcome(user, method, "allowed");
                self.admitted = Some(Admitted {
                    ws,
                    who,
                    proof: Proof::Token(Secret(token.to_string())),
                });
                Auth::Accept
            }
            Ok(Outcome::Denied) => {
                self.outcome(user, method, "denied");
                Self::reject()
            }
            Ok(Outcome::InvalidToken) => {
                self.outcome(user, method, "invalid_token");
                Self::reject()
            }
            Err(e) => {
                tracing::warn!(workspace = %ws.name, error = %e, "ssh: authorization failed");
                self.outcome(user, method, "error");
                Self::reject()
            }
        }
    }

    /// What the keyboard-interactive prompt says: which workspace, which
    /// user, and how to get in without typing a token.
    fn instructions(&self, user: &str) -> String {
        let target = match self.workspace(user) {
            Ok(ws) => {
                let owner = ws
                    .owner
                    .as_ref()
                    .map(|o| {
                        if o.username.is_empty() {
                            format!("user id {}", o.id)
                        } else {
                            format!("{} (user id {})", o.username, o.id)
                        }
                    })
                    .unwrap_or_else(|| "its owner".into());
                format!(
                    "Workspace {} belongs to {owner}. None of the keys your SSH client offered \
                     is one of that user's SSH keys.",
                    ws.name
                )
            }
            Err(why) => format!("{why}."),
        };
        format!(
            "{target}\nAdd your public key in GitLab under Preferences > SSH Keys \
             (or the workspaces file), then connect again; or enter a personal access \
             token with the read_api scope below."
        )
    }

    async fn backend(&self) -> Result<Arc<Backend>, String> {
        let Some(a) = &self.admitted else {
            return Err("not logged in".into());
        };
        let (gate, ws, towards) = (self.gate.clone(), a.ws.clone(), self.towards.clone());
        self.backend
            .get_or_init(|| async move {
                let Some(ssh) = &ws.ssh else {
                    return Err(format!("workspace {} has no SSH port", ws.name));
                };
                let pin = format!(
                    "{}/{}/{}",
                    ws.namespace,
                    ws.id,
                    ws.service.as_ref().map(|s| s.uid.as_str()).unwrap_or("")
                );
                match backend::connect(
                    &ssh.backend,
                    pin,
                    gate.host_keys.clone(),
                    &gate.login,
                    towards,
                )
                .await
                {
                    Ok(b) => Ok(Arc::new(b)),
                    Err(e) => {
                        gate.metrics.backend_failure(e.metric_label());
                        tracing::warn!(workspace = %ws.name, error = %e, "ssh: workspace sshd unusable");
                        Err(message(&ws, &e))
                    }
                }
            })
            .await
            .clone()
    }
}

fn message(ws: &Workspace, e: &BackendError) -> String {
    format!("workspace-gate: workspace {}: {e}\r\n", ws.name)
}

/// Local forwarding reaches the workspace itself only.
fn is_workspace_local(host: &str) -> bool {
    matches!(
        host.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "::1" | "[::1]" | "0.0.0.0"
    )
}

impl server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        let _ = self.workspace(user);
        Ok(Self::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.try_key(user, offer.public_key, false).await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.try_key(user, key.public_key, true).await)
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.try_token(user, password, "token").await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let answer = response.and_then(|mut r| r.next().map(|b| b.to_vec()));
        match answer {
            Some(token) if self.prompted => {
                let token = String::from_utf8_lossy(&token).trim().to_string();
                Ok(self.try_token(user, &token, "token").await)
            }
            _ if self.prompted => Ok(Self::reject()),
            _ => {
                self.prompted = true;
                Ok(Auth::Partial {
                    name: Cow::Borrowed("workspace-gate"),
                    instructions: Cow::Owned(self.instructions(user)),
                    prompts: Cow::Owned(vec![(
                        Cow::Borrowed("Personal access token (empty to give up): "),
                        false,
                    )]),
                })
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let Some(a) = self.admitted.clone() else {
            return Err(russh::Error::NotAuthenticated);
        };
        let handle = session.handle();
        let _ = self.towards.user.set(handle.clone());
        self.authenticated.store(true, Ordering::Relaxed);
        self.gate.metrics.opened();
        tokio::spawn(super::watch::supervise(
            self.gate.clone(),
            a,
            handle,
            self.activity.clone(),
            self.ended.clone(),
            self.alive.subscribe(),
        ));
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let user_conn = session.handle();
        let activity = self.activity.clone();
        let first = self.backend().await;
        tokio::spawn(async move {
            match first {
                Ok(b) => match b.handle.channel_open_session().await {
                    Ok(ws_channel) => {
                        reply.accept().await;
                        relay::session(channel, user_conn, ws_channel, activity).await;
                    }
                    Err(e) => {
                        reply
                            .reject(ChannelOpenFailure::Other {
                                code: 2,
                                reason: format!("the workspace's sshd refused a session: {e}"),
                            })
                            .await
                    }
                },
                Err(text) => {
                    // Accepted so the message reaches the user's terminal.
                    reply.accept().await;
                    let _ = channel.extended_data_bytes(1, text.into_bytes()).await;
                    let _ = channel.exit_status(255).await;
                    let _ = channel.eof().await;
                    let _ = channel.close().await;
                }
            }
        });
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !is_workspace_local(host_to_connect) {
            self.gate.metrics.refused("direct_tcpip_host");
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 1,
                    reason: format!(
                        "workspace-gate forwards to the workspace itself only (localhost), not {host_to_connect}"
                    ),
                })
                .await;
            return Ok(());
        }
        let backend = self.backend().await;
        let (host, orig) = (host_to_connect.to_string(), originator_address.to_string());
        let activity = self.activity.clone();
        tokio::spawn(async move {
            let Ok(b) = backend else {
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return;
            };
            match b
                .handle
                .channel_open_direct_tcpip(host, port_to_connect, orig, originator_port)
                .await
            {
                Ok(ws_channel) => {
                    reply.accept().await;
                    relay::bytes(channel, ws_channel, activity).await;
                }
                Err(_) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
            }
        });
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let allowed = self.gate.settings.allow_agent_forwarding;
        if allowed {
            self.towards.agent_allowed.store(true, Ordering::Relaxed);
        } else {
            self.gate.metrics.refused("agent_forwarding");
        }
        Ok(allowed)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if !self.gate.settings.allow_remote_forwarding {
            self.gate.metrics.refused("remote_forwarding");
            return Ok(false);
        }
        let Ok(b) = self.backend().await else {
            return Ok(false);
        };
        match b.handle.tcpip_forward(address.to_string(), *port).await {
            Ok(p) => {
                if *port == 0 {
                    *port = p;
                }
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if !self.gate.settings.allow_remote_forwarding {
            return Ok(false);
        }
        let Ok(b) = self.backend().await else {
            return Ok(false);
        };
        Ok(b.handle
            .cancel_tcpip_forward(address.to_string(), port)
            .await
            .is_ok())
    }
}

impl Drop for Connection {
    /// The connection log line, and the open-sessions gauge.
    fn drop(&mut self) {
        if let Some(Ok(b)) = self.backend.get().cloned() {
            tokio::spawn(async move {
                let _ = b
                    .handle
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            });
        }
        let logged_in = self.towards.user.get().is_some();
        let (Some(a), true) = (&self.admitted, logged_in) else {
            // One line per connection that never logged in: which
            // workspace it asked for and why it was refused.
            if let Some((user, method, reason)) = self.refused.lock().ok().and_then(|l| l.clone()) {
                tracing::info!(peer = ?self.peer, user = %user, method, reason, "ssh login refused");
            }
            return;
        };
        self.gate.metrics.closed();
        let duration = self.activity.started().elapsed();
        let ended = self
            .ended
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
            .unwrap_or_else(|| "closed".into());
        tracing::info!(
            peer = ?self.peer,
            user = %a.who.username,
            user_id = %a.who.user_id,
            workspace = %a.ws.name,
            workspace_id = %a.ws.id,
            namespace = %a.ws.namespace,
            method = a.proof.method(),
            duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            bytes_up = self.activity.up.load(Ordering::Relaxed),
            bytes_down = self.activity.down.load(Ordering::Relaxed),
            ended = %ended,
            "ssh connection"
        );
    }
}

/// How long an unauthenticated connection may take to log in.
pub(super) const LOGIN_GRACE: Duration = Duration::from_secs(60);
