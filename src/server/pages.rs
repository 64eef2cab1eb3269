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
