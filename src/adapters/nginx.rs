//! ingress-nginx `auth-url` (nginx `auth_request`).
//!
//! Reads `X-Original-URL` and `X-Original-Method`, which the controller
//! sets on the subrequest, and the client's own `Cookie`, `Authorization`,
//! `Accept` and `Upgrade` (all client headers pass through). Never
//! `X-Forwarded-Host`: the controller does not set it, so it is whatever
//! the client sent.
//!
//! nginx accepts only three answers: 2xx allows, 401 (which the
//! `auth-signin` annotation turns into the login redirect) and 403; any
//! other status becomes a 500. The body never reaches the client.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{check_request, header_str};
use crate::core::{Decision, Page};
use crate::server::AppState;
use crate::server::check;

const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

pub async fn check(State(state): State<AppState>, request: Request) -> Response {
    // Borrow the headers from the request: the HeaderMap extractor would
    // copy them on every check.
    let headers = request.headers();
    let Some(original) = header_str(headers, &X_ORIGINAL_URL) else {
        tracing::warn!("nginx check without X-Original-URL; is auth-url pointing at /check/nginx?");
        return StatusCode::FORBIDDEN.into_response();
    };
    let Some((_scheme, host, path)) = split_url(original) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let method = header_str(headers, &X_ORIGINAL_METHOD).unwrap_or("GET");
    let req = check_request(headers, method, host, path);
    let decision = check::run(&state, "nginx", &req).await;
    answer(decision)
}

/// Splits `scheme://authority/path?query` without reinterpreting it.
pub fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(end);
    let path = if path.is_empty() { "/" } else { path };
    (!host.is_empty()).then_some((scheme, host, path))
}

fn answer(decision: Decision) -> Response {
    match decision {
        Decision::Allow(allow) => crate::adapters::allow_response(allow),
        Decision::SignIn { .. } | Decision::Deny(Page::SignInRequired) => {
            let mut resp = StatusCode::UNAUTHORIZED.into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"workspace-gate\""),
            );
            resp
        }
        // Everything else is a refusal; nginx knows no other status.
        Decision::Deny(_) | Decision::Bearer { .. } | Decision::Redirect { .. } => {
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn splits_original_url() {
        assert_eq!(
            split_url("https://ws-1.w.test:8443/a?b=1"),
            Some(("https", "ws-1.w.test:8443", "/a?b=1"))
        );
        assert_eq!(split_url("https://h.test"), Some(("https", "h.test", "/")));
        assert_eq!(
            split_url("https://h.test?x"),
            Some(("https", "h.test", "?x"))
        );
        assert_eq!(split_url("nope"), None);
    }
}
