//! Envoy `ext_authz` in HTTP mode (`http_service` with
//! `path_prefix: /check/envoy`).
//!
//! Envoy sends the original method and `:authority`, and the original path
//! behind the prefix; only the headers in `allowed_headers` are forwarded
//! (`cookie`, `authorization`, `accept`, `upgrade`, `sec-fetch-mode` must
//! be listed). Only exactly 200 allows. `allowed_upstream_headers`
//! (`x-workspace-user`, `x-workspace-user-id`, `x-workspace-id`, `cookie`)
//! overwrite the request's; headers named in
//! `x-envoy-auth-headers-to-remove` are removed from it.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::Checks;
use super::{allow_response, check_request, single_header_str};
use crate::core::Decision;

pub(crate) const PREFIX: &str = "/check/envoy";

pub(crate) async fn check<S: Checks>(State(state): State<S>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let headers = &parts.headers;
    let full = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let path = full.strip_prefix(PREFIX).unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    // Envoy copies the `:authority` it routed on into the check request's
    // Host; a repeated Host reads as absent, which matches no workspace.
    let host = single_header_str(headers, &header::HOST).unwrap_or("");
    let cookie = super::cookie_text(headers);
    let req = check_request(
        headers,
        cookie.as_deref(),
        parts.method.as_str(),
        host,
        path,
    );
    let had_cookie = req.cookie.is_some();
    let had_authorization = req.authorization.is_some();
    let reference = super::reference(headers);
    let decision = state.run("envoy_http", &reference, &req).await;
    match decision {
        Decision::Allow(allow) => {
            // Envoy cannot clear a header through allowed_upstream_headers;
            // name the ones to drop instead.
            let mut remove = Vec::new();
            if had_cookie && allow.upstream_cookie.is_none() {
                remove.push("cookie");
            }
            if had_authorization && allow.upstream_authorization.is_none() {
                remove.push("authorization");
            }
            let mut resp = allow_response(allow);
            if !remove.is_empty()
                && let Ok(v) = HeaderValue::from_str(&remove.join(","))
            {
                resp.headers_mut()
                    .insert("x-envoy-auth-headers-to-remove", v);
            }
            resp
        }
        other => crate::answer::refusal(
            state.settings(),
            &other,
            reference.get(),
            crate::answer::wants_json_headers(headers),
        )
        .into_http(),
    }
}
