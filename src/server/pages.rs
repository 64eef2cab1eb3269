//! The gate's own pages, as axum responses. What they say and which
//! headers they carry is built in [`crate::answer`], the one place every
//! answer comes from.

use axum::http::HeaderMap;
use axum::response::Response;

use crate::core::Page;

/// True when the client prefers JSON over HTML.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    crate::answer::wants_json_headers(headers)
}

/// A complete response for `page`.
pub(crate) fn respond(page: Page, request_id: &str, json: bool) -> Response {
    crate::answer::page(page, request_id, json).into_http()
}

/// [`respond`] for a reader whose identity is known: the page names them
/// and offers the sign-out at `sign_out`.
pub(crate) fn respond_signed_in(
    page: Page,
    request_id: &str,
    json: bool,
    username: &str,
    sign_out: &str,
) -> Response {
    let signed_in = crate::answer::SignedIn { username, sign_out };
    crate::answer::page_signed_in(page, request_id, json, signed_in).into_http()
}

/// [`respond`] with what `settings` add to the page (the "Workspace not
/// found" page links GitLab's workspace list).
pub(crate) fn respond_in(
    settings: &crate::core::Settings,
    page: Page,
    request_id: &str,
    json: bool,
) -> Response {
    crate::answer::page_in(settings, page, request_id, json).into_http()
}
