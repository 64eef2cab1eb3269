//! The HTTPS listener (`listen.https`): the public routes over TLS, HTTP/2
//! and HTTP/1.1 chosen by ALPN. Its certificate is re-read when the files
//! change, so a renewal needs no restart; a broken renewal keeps serving
//! the previous certificate.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::material::provider;
pub use crate::material::{TlsFileError, load};

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections still open at shutdown get this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Modification times and sizes of both files: a change in either reloads.
type Stamp = Option<[(SystemTime, u64); 2]>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some([one(cert)?, one(key)?])
}

/// Hands out the current certificate; [`ReloadingCert::watch`] replaces it.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Self, TlsFileError> {
        let first = load(&cert, &key)?;
        Ok(ReloadingCert {
            cert,
            key,
            current: RwLock::new(Arc::new(first)),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads both files; keeps the old certificate when they are broken
    /// (e.g. caught half-written) and tries again on the next change.
    pub fn reload(&self) -> Result<(), TlsFileError> {
        let fresh = Arc::new(load(&self.cert, &self.key)?);
        match self.current.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// Checks the files every `every` until `stop` completes, counting
    /// reloads in `metrics`.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        metrics: Arc<crate::metrics::Metrics>,
        stop: impl Future<Output = ()>,
    ) {
        let mut seen = stamp(&self.cert, &self.key);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            let now = stamp(&self.cert, &self.key);
            if now == seen {
                continue;
            }
            seen = now;
            match self.reload() {
                Ok(()) => {
                    metrics.tls_reload("ok");
                    tracing::info!(cert = %self.cert.display(), "tls: certificate reloaded");
                }
                Err(e) => {
                    metrics.tls_reload("failed");
                    tracing::warn!(
                        error = %e,
                        "tls: certificate files changed but cannot be used; serving the previous certificate"
                    );
                }
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
pub fn server_config(certs: Arc<ReloadingCert>) -> anyhow::Result<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// How `listen.https` treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionPolicy {
    /// A connection is asked to close (HTTP/2 GOAWAY after the requests in
    /// flight) once it is about this old, ±10 % so that clients do not
    /// reconnect in step. A controller then opens a new one, which the
    /// Service may send to another replica: without this, one long-lived
    /// HTTP/2 connection would pin all of a controller's checks to one
    /// replica however far the gate is scaled out.
    pub max_age: Duration,
}

/// `max_age` ±10 %.
fn jittered(max_age: Duration) -> Duration {
    let spread = max_age.as_millis() as u64 / 10;
    if spread == 0 {
        return max_age;
    }
    let offset = rand::random_range(0..=2 * spread);
    (max_age + Duration::from_millis(offset)).saturating_sub(Duration::from_millis(spread))
}

/// The largest header list an HTTP/2 check may carry.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Serves `router` over TLS on `listener` until `shutdown` completes, then
/// lets open connections finish (at most [`DRAIN_TIMEOUT`]). `accepted`
/// counts connections whose handshake succeeded.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    router: Router,
    policy: ConnectionPolicy,
    accepted: impl Fn() + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let mut http = Builder::new(TokioExecutor::new());
    // Controllers multiplex many checks on one connection. A check carries
    // the client's cookies: hyper's default header list limit (16 KiB)
    // would refuse a request whose workspace set 16 KB of its own, which
    // the controllers themselves accept (Envoy: 60 KiB, ingress-nginx:
    // 32 KiB over HTTP/2).
    http.http2()
        .max_concurrent_streams(1024)
        .max_header_list_size(MAX_HEADER_LIST);
    let http = Arc::new(http);
    let accepted = Arc::new(accepted);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connections as they go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "listen.https: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let http = http.clone();
        let service = TowerToHyperService::new(router.clone());
        let accepted = accepted.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "listen.https: handshake failed");
                    return;
                }
                Err(_) => return,
            };
            accepted();
            let conn = http.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let aged = tokio::time::sleep(jittered(policy.max_age));
            tokio::pin!(aged);
            let mut closing = false;
            let result = loop {
                tokio::select! {
                    r = conn.as_mut() => break r,
                    _ = &mut aged, if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    _ = stop.wait_for(|s| *s), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "listen.https: connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("listen.https: connections still open after the shutdown grace period");
    }
    Ok(())
}
