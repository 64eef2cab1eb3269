//! Traefik v3 `forwardAuth`.
//!
//! Reads `X-Forwarded-Method`, `-Host` and `-Uri`, which Traefik
//! overwrites when the middleware has `trustForwardHeader: false` (the
//! default), plus the client's own credentials. Traefik sets
//! `X-Forwarded-Host` from the host it routes the request on (Go's
//! `Request.Host`: the host of an absolute request line, else `Host`, else
//! HTTP/2's `:authority`), so the checked host is the routed host. Traefik relays any non-2xx
//! answer to the browser as is (status, `Location`, `Set-Cookie`, body), so
//! this check redirects to the login itself and answers the reserved
//! `/.workspace-gate/` paths; no extra route is needed.

use axum::extract::{Request, State};
use axum::http::HeaderName;
use axum::response::Response;

use super::Checks;
use super::{allow_response, check_request, single_header_str};
use crate::core::Decision;

const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

pub(crate) async fn check<S: Checks>(State(state): State<S>, request: Request) -> Response {
    // Borrow the headers from the request: the HeaderMap extractor would
    // copy them on every check.
    let headers = request.headers();
    // Traefik writes each of these once, from the request it routes; a
    // repeated one reads as absent, and an absent host matches no workspace.
    let one = |name: &HeaderName| single_header_str(headers, name);
    let cookie = super::cookie_text(headers);
    let req = check_request(
        headers,
        cookie.as_deref(),
        one(&X_FORWARDED_METHOD).unwrap_or(""),
        one(&X_FORWARDED_HOST).unwrap_or(""),
        one(&X_FORWARDED_URI).unwrap_or("/"),
    );
    let reference = super::reference(headers);
    let decision = state.run("traefik", &reference, &req).await;
    match decision {
        Decision::Allow(allow) => allow_response(allow),
        other => crate::answer::refusal(
            state.settings(),
            &other,
            reference.get(),
            crate::answer::wants_json_headers(headers),
        )
        .into_http(),
    }
}
