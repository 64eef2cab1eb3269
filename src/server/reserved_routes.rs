//! The reserved `/.workspace-gate/` paths served as routes, for controllers
//! that send them to the gate directly (ingress-nginx: a second Ingress
//! without auth). The logic is the core's; this file only reads the form
//! or query and writes the response.

use axum::Extension;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use serde::Deserialize;

use super::request_id::RequestId;
use super::{AppState, now, pages};
use crate::core::{CheckRequest, Decision, Page, reserved};

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
    let json = pages::wants_json(&headers);
    let Some(host) = workspace_host(&state, &headers) else {
        return pages::respond_in(&state.settings, Page::WorkspaceNotFound, &id.0, json);
    };
    let cookie = cookie_header(&headers);
    let decision = reserved::callback(
        &state.keyring,
        &state.settings,
        now(),
        &host,
        &form.token,
        cookie.as_deref(),
    );
    respond(&state, &id, json, decision)
}

/// `GET` of the login start and the transfer callback (token in the
/// query, in the hand-over cookie, or the hand-over page itself): the
/// same answers a check gives behind Traefik and Envoy.
pub(crate) async fn reserved_get(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let json = pages::wants_json(&headers);
    let Some(host) = workspace_host(&state, &headers) else {
        return pages::respond_in(&state.settings, Page::WorkspaceNotFound, &id.0, json);
    };
    let cookie = cookie_header(&headers);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let req = CheckRequest {
        method: "GET",
        host: &host,
        path,
        cookie: cookie.as_deref(),
        ..CheckRequest::default()
    };
    let decision = reserved::answer(&state.keyring, &state.settings, now(), &host, &req);
    respond(&state, &id, json, decision)
}

/// Every `Cookie` field of the request as one header value.
fn cookie_header(headers: &HeaderMap) -> Option<String> {
    let fields: Vec<_> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| crate::core::cookies::header_text(v.as_bytes()).into_owned())
        .collect();
    (!fields.is_empty()).then(|| fields.join("; "))
}

fn respond(state: &AppState, id: &RequestId, json: bool, decision: Decision) -> Response {
    match decision {
        Decision::Redirect {
            redeems: Some(jti), ..
        } if !state.first_redemption(&jti) => {
            tracing::warn!("transfer token presented twice; refusing");
            state.metrics.login("failed", "transfer_replayed");
            pages::respond(Page::SignInFailed, &id.0, json)
        }
        Decision::Redirect {
            redeems: Some(_), ..
        } => redirect(decision, StatusCode::SEE_OTHER),
        Decision::Redirect { .. } => redirect(decision, StatusCode::FOUND),
        Decision::Deny(page) => {
            if page == Page::SignInFailed {
                tracing::warn!("transfer token refused on workspace host");
                state.metrics.login("failed", "transfer_invalid");
            }
            pages::respond(page, &id.0, json)
        }
        other => crate::answer::refusal(&state.settings, &other, &id.0, json).into_http(),
    }
}

pub(crate) async fn sign_out(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(q): Query<ChainQuery>,
) -> Response {
    let Some(host) = workspace_host(&state, &headers) else {
        return pages::respond_in(
            &state.settings,
            Page::WorkspaceNotFound,
            &id.0,
            pages::wants_json(&headers),
        );
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
