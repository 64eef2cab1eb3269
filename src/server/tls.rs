//! The HTTPS listener (`listen.https`): the public routes over TLS, HTTP/2
//! and HTTP/1.1 chosen by ALPN. Its certificate is re-read when the files
//! change, so a renewal needs no restart; a broken renewal keeps serving
//! the previous certificate.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::connections::Limits;
use crate::material::provider;
pub use crate::material::{TlsFileError, load};

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

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

/// `max_age` ±10 %, so that clients do not reconnect in step.
fn jittered(max_age: Duration) -> Duration {
    let spread = max_age.as_millis() as u64 / 10;
    if spread == 0 {
        return max_age;
    }
    let offset = rand::random_range(0..=2 * spread);
    (max_age + Duration::from_millis(offset)).saturating_sub(Duration::from_millis(spread))
}

/// Serves `router` over TLS on `listener` within `limits` until `shutdown`
/// completes; `limits.max_age` (±10 %) asks a connection to close once it
/// is that old (HTTP/2 GOAWAY after the requests in flight): a controller
/// then opens a new one, which the Service may send to another replica.
/// Without it, one long-lived HTTP/2 connection would pin all of a
/// controller's checks to one replica however far the gate is scaled out.
/// The handshake gets `limits.header_read`. `accepted` counts connections
/// whose handshake succeeded.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    router: Router,
    limits: Limits,
    accepted: impl Fn() + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let http = Arc::new(super::http_builder());
    let accepted = Arc::new(accepted);
    crate::connections::serve(
        "listen.https",
        listener,
        limits.grace,
        shutdown,
        |tcp, stop| {
            let acceptor = acceptor.clone();
            let http = http.clone();
            let router = router.clone();
            let accepted = accepted.clone();
            let limits = Limits {
                max_age: limits.max_age.map(jittered),
                ..limits
            };
            async move {
                let stream =
                    match tokio::time::timeout(limits.header_read, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "listen.https: handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                accepted();
                super::serve_connection(&http, stream, router, limits, stop).await;
            }
        },
    )
    .await;
    Ok(())
}
