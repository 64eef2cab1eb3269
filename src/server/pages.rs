//! Friendly answers: an HTML page for people, JSON for clients that ask
//! for it. Every error response is built here.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::core::Page;

/// True when the client prefers JSON over HTML.
pub fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    accept.contains("application/json") && !accept.contains("text/html")
}

fn texts(page: Page) -> (&'static str, &'static str, &'static str) {
    match page {
        Page::SignInRequired => (
            "unauthorized",
            "Sign-in required",
            "This workspace needs you to sign in. Open it in your browser to sign in, or send a personal access token as a Bearer token.",
        ),
        Page::NotAllowed => (
            "forbidden",
            "Not allowed",
            "You are signed in, but this workspace belongs to someone else. Ask its owner, or open one of your own workspaces.",
        ),
        Page::WorkspaceNotFound => (
            "workspace_not_found",
            "Workspace not found",
            "No workspace answers at this address. It may have been stopped or deleted; check the address or start the workspace again.",
        ),
        Page::SignInFailed => (
            "sign_in_failed",
            "Sign-in failed",
            "Signing in did not complete. Go back to your workspace and try again; if it keeps failing, give your administrator the reference below.",
        ),
        Page::SignedOut => (
            "signed_out",
            "Signed out",
            "You are signed out of your workspaces.",
        ),
        Page::NotFound => (
            "not_found",
            "Not found",
            "There is nothing at this address.",
        ),
        Page::Unavailable => (
            "unavailable",
            "Temporarily unavailable",
            "The sign-in service cannot reach the identity provider right now. Try again in a moment; if it persists, give your administrator the reference below.",
        ),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The body and content type of `page`.
pub fn body(page: Page, request_id: &str, json: bool) -> (&'static str, String) {
    let (code, title, text) = texts(page);
    if json {
        let v = serde_json::json!({"error": code, "message": text, "request_id": request_id});
        ("application/json", v.to_string())
    } else {
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}h1{{font-size:1.4rem}}code{{background:#eee;padding:.1rem .3rem}}</style></head>\
<body><h1>{title}</h1><p>{text}</p><p><small>Reference: <code>{id}</code></small></p></body></html>",
            id = escape(request_id)
        );
        ("text/html; charset=utf-8", html)
    }
}

/// A complete response for `page`.
pub fn respond(page: Page, request_id: &str, json: bool) -> Response {
    let (ctype, body) = body(page, request_id, json);
    let status = StatusCode::from_u16(page.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if page == Page::SignInRequired {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"workspace-gate\""),
        );
    }
    resp
}
