//! Traefik v3 `forwardAuth`.
//!
//! Reads `X-Forwarded-Method`, `-Proto`, `-Host` and `-Uri`, which Traefik
//! overwrites when the middleware has `trustForwardHeader: false` (the
//! default), plus the client's own credentials. Traefik relays any non-2xx
//! answer to the browser as is (status, `Location`, `Set-Cookie`, body), so
//! this check redirects to the login itself and answers the reserved
//! `/.workspace-gate/` paths; no extra route is needed.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;

use super::{allow_response, relayed, relayed_response};
use crate::core::{CheckRequest, Decision};
use crate::server::{AppState, check, pages};

pub async fn check(State(state): State<AppState>, request: Request) -> Response {
    // Borrow the headers from the request: the HeaderMap extractor would
    // copy them on every check.
    let headers = request.headers();
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let req = CheckRequest {
        method: get("x-forwarded-method").unwrap_or(""),
        host: get("x-forwarded-host").unwrap_or(""),
        path: get("x-forwarded-uri").unwrap_or("/"),
        cookie: get("cookie"),
        authorization: get("authorization"),
        accept: get("accept"),
        sec_fetch_mode: get("sec-fetch-mode"),
        upgrade: headers.contains_key(header::UPGRADE),
    };
    let decision = check::run(&state, "traefik", &req).await;
    match decision {
        Decision::Allow(allow) => allow_response(allow),
        other => {
            let id = get("x-request-id").unwrap_or("-");
            match relayed(&other, id, pages::wants_json(headers)) {
                Some(r) => relayed_response(r),
                None => relayed_response(super::Relayed {
                    status: 403,
                    headers: vec![],
                    body: String::new(),
                }),
            }
        }
    }
}
