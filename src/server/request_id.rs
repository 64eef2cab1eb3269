//! Request ids and access logs. The id comes from the controller's
//! `X-Request-ID` when it is a plain token, otherwise a new one; it is the
//! reference shown on error pages. Logs carry the path without its query:
//! queries carry codes, states and transfer tokens.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub(crate) use crate::answer::RequestId;

pub(crate) async fn layer(mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok());
    let id = RequestId::from_header(header).0;
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let _enter = span.enter();
    tracing::info!(
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
