//! The reserved `/.workspace-gate/` paths served as routes, for controllers
//! that send them to the gate directly (ingress-nginx: a second Ingress
//! without auth). The logic is the core's; this file only reads the form
//! or query and writes the response.

use axum::Extension;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::request_id::RequestId;
use super::{AppState, now, pages};
use crate::core::{Decision, Page, reserved};

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub(crate) struct ChainQuery {
    #[serde(default)]
    chain: Option<String>,
}

/// The workspace host the browser addressed, or `None`.
fn workspace_host(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::HOST)?.to_str().ok()?;
    let host = state.settings.normalize_host(raw)?;
    state
        .settings
        .is_workspace_host(&host)
        .then(|| host.into_owned())
}

pub(crate) async fn callback_post(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    redeem(&state, &id, &headers, &form.token)
}

pub(crate) async fn callback_get(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(form): Query<TokenForm>,
) -> Response {
    redeem(&state, &id, &headers, &form.token)
}

fn redeem(state: &AppState, id: &RequestId, headers: &HeaderMap, token: &str) -> Response {
    let json = pages::wants_json(headers);
    let Some(host) = workspace_host(state, headers) else {
        return pages::respond(Page::WorkspaceNotFound, &id.0, json);
    };
    let decision = reserved::callback(&state.keyring, &state.settings, now(), &host, token);
    match decision {
        Decision::Redirect {
            redeems: Some(jti), ..
        } if !state.first_redemption(&jti) => {
            tracing::warn!("transfer token presented twice; refusing");
            state.metrics.login("failed", "transfer_replayed");
            pages::respond(Page::SignInFailed, &id.0, json)
        }
        Decision::Redirect { .. } => redirect(decision, StatusCode::SEE_OTHER),
        Decision::Deny(page) => {
            tracing::warn!("transfer token refused on workspace host");
            state.metrics.login("failed", "transfer_invalid");
            pages::respond(page, &id.0, json)
        }
        _ => pages::respond(Page::SignInFailed, &id.0, json),
    }
}

pub(crate) async fn sign_out(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(q): Query<ChainQuery>,
) -> Response {
    let Some(host) = workspace_host(&state, &headers) else {
        return pages::respond(Page::WorkspaceNotFound, &id.0, pages::wants_json(&headers));
    };
    let d = reserved::sign_out(
        &state.keyring,
        &state.settings,
        now(),
        &host,
        q.chain.as_deref(),
    );
    redirect(d, StatusCode::FOUND)
}

pub(crate) async fn not_found(Extension(id): Extension<RequestId>, headers: HeaderMap) -> Response {
    pages::respond(Page::NotFound, &id.0, pages::wants_json(&headers))
}

/// A redirect that sets cookies and is never cached or referred.
pub(crate) fn redirect(decision: Decision, status: StatusCode) -> Response {
    match decision {
        Decision::Redirect {
            location,
            set_cookies,
            ..
        } => crate::answer::redirect(status.as_u16(), &location, &set_cookies).into_http(),
        _ => crate::answer::bare(403).into_http(),
    }
}
