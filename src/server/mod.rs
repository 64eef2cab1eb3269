//! Wiring: shared state, the public router, the admin router, listeners
//! and shutdown.

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod check;
pub(crate) mod pages;
pub(crate) mod request_id;
pub(crate) mod reserved_routes;
pub mod start;
pub mod tls;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{any, get};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;

use crate::authz::Authz;
use crate::config::Config;
use crate::connections::{Activity, Counted, Io, Limits, Supervised};
use crate::core::Settings;
use crate::metrics::Metrics;
use crate::oidc::Provider;
use crate::session::Keyring;
use crate::workspaces::IndexReader;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub cfg: Config,
    pub settings: Settings,
    pub keyring: Keyring,
    pub index: IndexReader,
    pub provider: Arc<Provider>,
    pub authz: Arc<Authz>,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    /// Transfer token ids already redeemed on this replica (60 s memory).
    pub redeemed: moka::sync::Cache<String, ()>,
    /// Extra readiness conditions (e.g. discovery's first full list).
    pub ready_extra: Vec<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AppState {
    pub fn new(
        cfg: Config,
        keyring: Keyring,
        index: IndexReader,
        provider: Arc<Provider>,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
        mut registry: Registry,
    ) -> Self {
        metrics.register(&mut registry);
        let authz = Arc::new(Authz::new(
            cfg.authorization.mode,
            http,
            &cfg.authorization.gitlab_url,
            provider.clone(),
            cfg.authorization.cache_ttl,
            metrics.clone(),
        ));
        AppState {
            inner: Arc::new(Inner {
                settings: Settings::from(&cfg),
                cfg,
                keyring,
                index,
                provider,
                authz,
                metrics,
                registry,
                redeemed: moka::sync::Cache::builder()
                    .max_capacity(1_000_000)
                    .time_to_live(Duration::from_secs(120))
                    .build(),
                ready_extra: Vec::new(),
            }),
        }
    }

    /// Remembers a transfer token id; false if it was seen before.
    pub fn first_redemption(&self, jti: &str) -> bool {
        let entry = self.redeemed.entry(jti.to_string()).or_insert(());
        entry.is_fresh()
    }

    pub async fn is_ready(&self) -> bool {
        // As /readyz: the identity provider is needed by logins only.
        self.index.current().loaded && self.ready_extra.iter().all(|f| f())
    }
}

/// The public router: login pages, reserved workspace paths, checks.
pub fn app(state: AppState) -> Router {
    // Checks run on every proxied request: they skip the access-log layer
    // (the controller logs those requests) and are counted in metrics.
    let checks = Router::new()
        .route(
            "/check/nginx",
            get(crate::adapters::nginx::check::<AppState>),
        )
        .route(
            "/check/traefik",
            get(crate::adapters::traefik::check::<AppState>),
        )
        .route(
            "/check/envoy",
            any(crate::adapters::envoy_http::check::<AppState>),
        )
        .route(
            "/check/envoy/",
            any(crate::adapters::envoy_http::check::<AppState>),
        )
        .route(
            "/check/envoy/{*rest}",
            any(crate::adapters::envoy_http::check::<AppState>),
        );
    let pages = Router::new()
        .route("/auth/start", get(auth::start))
        .route("/auth/callback", get(auth::callback))
        .route("/auth/sign_out", get(auth::sign_out).post(auth::sign_out))
        .route("/auth/signed_out", get(auth::signed_out))
        .route(
            crate::core::reserved::CALLBACK_PATH,
            get(reserved_routes::reserved_get).post(reserved_routes::callback_post),
        )
        .route(
            crate::core::reserved::START_PATH,
            get(reserved_routes::reserved_get),
        )
        .route(
            crate::core::reserved::SIGN_OUT_PATH,
            get(reserved_routes::sign_out),
        )
        .fallback(any(reserved_routes::not_found))
        .layer(axum::middleware::from_fn(request_id::layer));
    checks
        .merge(pages)
        .with_state(state)
        .layer(tower::util::MapRequestLayer::new(as_one_header_block))
}

/// Gives HTTP/2 requests the header shape the handlers read, as a gateway
/// to HTTP/1.1 would (RFC 9113, 8.2.3 and 8.3.1): a `Host` header from
/// `:authority` when there is none, and one `Cookie` header where the
/// client split its cookies into several (Go's HTTP/2 client, Traefik's
/// included, sends one per cookie). Repeated `Cookie` headers over HTTP/1.1
/// are joined the same way.
pub fn as_one_header_block<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    use axum::http::{HeaderValue, header};
    // A request that names two hosts (two Host headers, or a request line
    // or `:authority` that disagrees with Host) names none: the handlers
    // then find no workspace and refuse.
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let ambiguous = match (hosts.next(), hosts.next(), req.uri().authority()) {
        (Some(_), Some(_), _) => true,
        (Some(h), None, Some(a)) => !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()),
        _ => false,
    };
    if ambiguous {
        req.headers_mut().remove(header::HOST);
    } else if !req.headers().contains_key(header::HOST)
        && let Some(v) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    let mut cookies = req.headers().get_all(header::COOKIE).iter();
    if cookies.next().is_some() && cookies.next().is_some() {
        let mut joined = Vec::new();
        for v in req.headers().get_all(header::COOKIE) {
            if !joined.is_empty() {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(v.as_bytes());
        }
        if let Ok(v) = HeaderValue::from_bytes(&joined) {
            req.headers_mut().insert(header::COOKIE, v);
        }
    }
    req
}

/// The HTTP/1.1 and HTTP/2 server of the public and admin listeners.
pub(crate) fn http_builder() -> Builder<TokioExecutor> {
    let mut http = Builder::new(TokioExecutor::new());
    // Controllers multiplex many checks on one connection. A check carries
    // the client's cookies: hyper's default header list limit (16 KiB)
    // would refuse a request whose workspace set 16 KB of its own, which
    // the controllers themselves accept (Envoy: 60 KiB, ingress-nginx:
    // 32 KiB over HTTP/2).
    http.http2()
        .max_concurrent_streams(1024)
        .max_header_list_size(MAX_HEADER_LIST);
    http
}

/// The largest header list an HTTP/2 request may carry.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Serves `router` on one connection (plain or TLS) within `limits`.
pub(crate) async fn serve_connection<T>(
    http: &Builder<TokioExecutor>,
    stream: T,
    router: Router,
    limits: Limits,
    stop: crate::connections::Stop,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(true);
    let conn = http.serve_connection_with_upgrades(
        TokioIo::new(Io::new(stream, activity.clone())),
        Counted::new(TowerToHyperService::new(router), activity.clone()),
    );
    if let Err(e) = Supervised::new(conn, activity, limits, stop).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Serves `router` on `listener` (`key` names it in logs) within `limits`
/// until `shutdown` completes; returns once its connections have closed.
pub async fn serve(
    key: &'static str,
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let http = std::sync::Arc::new(http_builder());
    // Every route made a `Route` once, here; each connection then gets a
    // clone of that router. (Serving the router as it comes would turn its
    // handlers into routes again on every request.)
    let router: Router = router.with_state(());
    crate::connections::serve(key, listener, limits.grace, shutdown, |tcp, stop| {
        let http = http.clone();
        let router = router.clone();
        async move { serve_connection(&http, tcp, router, limits, stop).await }
    })
    .await;
    Ok(())
}

/// The timeouts of `listen.*` (`max_age` for `listen.https` only).
pub fn limits(cfg: &crate::config::Listen, max_age: Option<Duration>) -> Limits {
    Limits {
        header_read: cfg.header_read_timeout,
        idle: cfg.idle_timeout,
        grace: cfg.shutdown_grace,
        max_age,
    }
}

/// The core's settings are built here, where configuration meets the core,
/// so that neither imports the other.
impl From<&Config> for Settings {
    fn from(cfg: &Config) -> Self {
        let mut settings = Settings::new(
            &cfg.auth_host,
            &cfg.workspace_domain,
            cfg.public_scheme,
            cfg.public_port,
            cfg.session.pass_ttl.as_secs(),
            cfg.session.transfer_ttl.as_secs(),
        );
        let gitlab = &cfg.authorization.gitlab_url;
        if !gitlab.is_empty() {
            settings.workspace_list = Some(format!("{gitlab}/-/remote_development/workspaces"));
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::as_one_header_block;
    use axum::http::{Request, header};

    #[test]
    fn http2_requests_get_a_host_and_one_cookie_header() {
        let req = Request::get("https://ws-1.workspaces.test:8443/x")
            .header(header::COOKIE, "a=1")
            .header(header::COOKIE, "b=2")
            .header(header::COOKIE, "c=3")
            .body(())
            .unwrap();
        let req = as_one_header_block(req);
        assert_eq!(req.headers()[header::HOST], "ws-1.workspaces.test:8443");
        let cookies: Vec<_> = req.headers().get_all(header::COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; b=2; c=3"]);

        // A Host header that agrees with the authority is left alone, as
        // is one Cookie.
        let req = Request::get("https://ws-1.workspaces.test/x")
            .header(header::HOST, "WS-1.workspaces.test")
            .header(header::COOKIE, "a=1; b=2")
            .body(())
            .unwrap();
        let req = as_one_header_block(req);
        assert_eq!(req.headers()[header::HOST], "WS-1.workspaces.test");
        assert_eq!(req.headers()[header::COOKIE], "a=1; b=2");
        let req = as_one_header_block(
            Request::get("/x")
                .header(header::HOST, "ws-1.workspaces.test")
                .body(())
                .unwrap(),
        );
        assert_eq!(req.headers()[header::HOST], "ws-1.workspaces.test");

        // Origin-form without a Host stays without one.
        let req = as_one_header_block(Request::get("/x").body(()).unwrap());
        assert!(!req.headers().contains_key(header::HOST));
    }

    #[test]
    fn a_request_naming_two_hosts_names_none() {
        // `:authority` (or an absolute request line) against Host.
        let req = Request::get("https://ws-2.workspaces.test/x")
            .header(header::HOST, "ws-1.workspaces.test")
            .body(())
            .unwrap();
        assert!(
            !as_one_header_block(req)
                .headers()
                .contains_key(header::HOST)
        );
        // Two Host headers.
        let req = Request::get("/x")
            .header(header::HOST, "ws-1.workspaces.test")
            .header(header::HOST, "ws-2.workspaces.test")
            .body(())
            .unwrap();
        assert!(
            !as_one_header_block(req)
                .headers()
                .contains_key(header::HOST)
        );
    }
}
