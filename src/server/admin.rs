//! The admin port: liveness, readiness and metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Ready when checks can be answered: the workspace index is loaded (and
/// discovery's first full list, when it feeds it). The identity provider
/// is reported but not required: checks of valid passes need no provider,
/// so a provider outage during a rollout must not take every workspace
/// down. Logins meanwhile get the "Temporarily unavailable" page, and
/// `workspace_gate_oidc_ready` says so.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let index = state.index.current().loaded;
    let oidc = state.provider.is_ready().await;
    let extra = state.ready_extra.iter().all(|f| f());
    let body = format!("index: {index}\noidc: {oidc}\nextra: {extra}\n");
    if index && extra {
        (StatusCode::OK, body)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.oidc_ready(state.provider.is_ready().await);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &state.registry).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
