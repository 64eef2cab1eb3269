//! Wiring: shared state, the public router, the admin router, listeners
//! and shutdown.

pub mod admin;
pub mod auth;
pub mod check;
pub mod pages;
pub mod request_id;
pub mod reserved_routes;
pub mod start;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{any, get};
use prometheus_client::registry::Registry;

use crate::authz::Authz;
use crate::config::Config;
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
    pub authz: Authz,
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
        let authz = Authz::new(
            cfg.authorization.mode,
            http,
            &cfg.authorization.gitlab_url,
            provider.clone(),
            cfg.authorization.cache_ttl,
            metrics.clone(),
        );
        AppState {
            inner: Arc::new(Inner {
                settings: Settings::from_config(&cfg),
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
        self.index.current().loaded
            && self.provider.is_ready().await
            && self.ready_extra.iter().all(|f| f())
    }
}

/// The public router: login pages, reserved workspace paths, checks.
pub fn app(state: AppState) -> Router {
    // Checks run on every proxied request: they skip the access-log layer
    // (the controller logs those requests) and are counted in metrics.
    let checks = Router::new()
        .route("/check/nginx", get(crate::adapters::nginx::check))
        .route("/check/traefik", get(crate::adapters::traefik::check))
        .route("/check/envoy", any(crate::adapters::envoy_http::check))
        .route("/check/envoy/", any(crate::adapters::envoy_http::check))
        .route(
            "/check/envoy/{*rest}",
            any(crate::adapters::envoy_http::check),
        );
    let pages = Router::new()
        .route("/auth/start", get(auth::start))
        .route("/auth/callback", get(auth::callback))
        .route("/auth/sign_out", get(auth::sign_out).post(auth::sign_out))
        .route("/auth/signed_out", get(auth::signed_out))
        .route(
            crate::core::reserved::CALLBACK_PATH,
            get(reserved_routes::callback_get).post(reserved_routes::callback_post),
        )
        .route(
            crate::core::reserved::SIGN_OUT_PATH,
            get(reserved_routes::sign_out),
        )
        .fallback(any(reserved_routes::not_found))
        .layer(axum::middleware::from_fn(request_id::layer));
    checks.merge(pages).with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Answers are small and latency-bound: send them without Nagle's delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
