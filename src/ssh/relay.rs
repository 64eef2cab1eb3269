//! Channel relays between the user's connection and the workspace's sshd:
//! data both ways, end of data, close, and for session channels the
//! requests (pty, shell, exec, subsystem, env, window size, signals) and
//! their replies, the exit status and exit signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

/// Traffic of one user connection: bytes each way and the time of the last
/// byte, for the idle limit and the connection log line.
pub(super) struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    pub(super) up: AtomicU64,
    pub(super) down: AtomicU64,
    up_total: Counter,
    down_total: Counter,
}

impl Activity {
    pub(super) fn new(up_total: Counter, down_total: Counter) -> Self {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            up_total,
            down_total,
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// From the user to the workspace.
    fn up(&self, n: usize) {
        self.up.fetch_add(n as u64, Ordering::Relaxed);
        self.up_total.inc_by(n as u64);
        self.touch();
    }

    /// From the workspace to the user.
    fn down(&self, n: usize) {
        self.down.fetch_add(n as u64, Ordering::Relaxed);
        self.down_total.inc_by(n as u64);
        self.touch();
    }

    /// When the last byte went either way (the connection's start if none).
    pub(super) fn last(&self) -> Instant {
        self.started + std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    pub(super) fn started(&self) -> Instant {
        self.started
    }
}

/// Which way a relay half carries bytes, for counting.
#[derive(Clone, Copy)]
enum Way {
    Up,
    Down,
}

/// Relays a channel that carries bytes only (forwarded ports, the agent):
/// `a` is the user's side, `b` the workspace's.
pub(super) async fn bytes<A, B>(a: Channel<A>, b: Channel<B>, activity: Arc<Activity>)
where
    A: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
    B: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    let (a_read, a_write) = a.split();
    let (b_read, b_write) = b.split();
    let up = tokio::spawn(plain(a_read, b_write, activity.clone(), Way::Up));
    plain(b_read, a_write, activity, Way::Down).await;
    let _ = up.await;
}

async fn plain<W>(
    mut from: ChannelReadHalf,
    to: ChannelWriteHalf<W>,
    activity: Arc<Activity>,
    way: Way,
) where
    W: From<(ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    while let Some(msg) = from.wait().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                count(&activity, way, data.len());
                to.data_bytes(data).await
            }
            ChannelMsg::ExtendedData { data, ext } => {
                count(&activity, way, data.len());
                to.extended_data_bytes(ext, data).await
            }
            ChannelMsg::Eof => to.eof().await,
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = to.close().await;
}

fn count(activity: &Activity, way: Way, n: usize) {
    match way {
        Way::Up => activity.up(n),
        Way::Down => activity.down(n),
    }
}

/// Relays a session channel. `user` is the user's channel, `user_conn` its
/// connection (for replies and exit signals), `ws` the channel on the
/// workspace's sshd.
pub(super) async fn session(
    user: Channel<russh::server::Msg>,
    user_conn: russh::server::Handle,
    ws: Channel<russh::client::Msg>,
    activity: Arc<Activity>,
) {
    let user_id = user.id();
    let (user_read, user_write) = user.split();
    let (ws_read, ws_write) = ws.split();
    let up = tokio::spawn(session_up(
        user_read,
        ws_write,
        user_conn.clone(),
        user_id,
        activity.clone(),
    ));
    session_down(ws_read, user_write, user_conn, user_id, activity).await;
    let _ = up.await;
}

/// User -> workspace: data and requests. Requests that want a reply are
/// sent wanting one; the workspace's reply comes back in order through
/// [`session_down`].
async fn session_up(
    mut from: ChannelReadHalf,
    to: ChannelWriteHalf<russh::client::Msg>,
    user_conn: russh::server::Handle,
    user_id: ChannelId,
    activity: Arc<Activity>,
) {
    while let Some(msg) = from.wait().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                activity.up(data.len());
                to.data_bytes(data).await
            }
            ChannelMsg::ExtendedData { data, ext } => {
                activity.up(data.len());
                to.extended_data_bytes(ext, data).await
            }
            ChannelMsg::Eof => to.eof().await,
            ChannelMsg::Close => break,
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } => {
                to.request_pty(
                    true,
                    &term,
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                    &terminal_modes,
                )
                .await
            }
            ChannelMsg::RequestShell { .. } => to.request_shell(true).await,
            ChannelMsg::Exec { command, .. } => to.exec(true, command).await,
            ChannelMsg::RequestSubsystem { name, .. } => to.request_subsystem(true, name).await,
            // OpenSSH sends `env` without wanting a reply; sshd's AcceptEnv
            // decides.
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } => to.set_env(false, variable_name, variable_value).await,
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                to.window_change(col_width, row_height, pix_width, pix_height)
                    .await
            }
            ChannelMsg::Signal { signal } => to.signal(signal).await,
            // Answered by the connection's handler (allowed or not); the
            // workspace's sshd is asked without a reply.
            ChannelMsg::AgentForward { .. } => to.agent_forward(false).await,
            ChannelMsg::RequestX11 { .. } => {
                let _ = user_conn.channel_failure(user_id).await;
                Ok(())
            }
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = to.close().await;
}

/// Workspace -> user: data, replies, exit status and signal.
async fn session_down(
    mut from: ChannelReadHalf,
    to: ChannelWriteHalf<russh::server::Msg>,
    user_conn: russh::server::Handle,
    user_id: ChannelId,
    activity: Arc<Activity>,
) {
    while let Some(msg) = from.wait().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                activity.down(data.len());
                to.data_bytes(data).await
            }
            ChannelMsg::ExtendedData { data, ext } => {
                activity.down(data.len());
                to.extended_data_bytes(ext, data).await
            }
            ChannelMsg::Eof => to.eof().await,
            ChannelMsg::Close => break,
            ChannelMsg::ExitStatus { exit_status } => to.exit_status(exit_status).await,
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                let _ = user_conn
                    .exit_signal_request(user_id, signal_name, core_dumped, error_message, lang_tag)
                    .await;
                Ok(())
            }
            ChannelMsg::Success => {
                let _ = user_conn.channel_success(user_id).await;
                Ok(())
            }
            ChannelMsg::Failure => {
                let _ = user_conn.channel_failure(user_id).await;
                Ok(())
            }
            ChannelMsg::XonXoff { client_can_do } => {
                let _ = user_conn.xon_xoff_request(user_id, client_can_do).await;
                Ok(())
            }
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = to.close().await;
}
