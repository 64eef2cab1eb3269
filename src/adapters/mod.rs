//! One file per controller: each turns its controller's request into a
//! [`CheckRequest`](crate::core::CheckRequest) and the core's
//! [`Decision`](crate::core::Decision) into its controller's answer.
//! No decision logic lives here.

pub(crate) mod checks;
pub mod envoy_grpc;
pub(crate) mod envoy_http;
pub mod grpc_transport;
pub(crate) mod nginx;
pub(crate) mod traefik;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub use checks::Checks;

use crate::core::Allow;

use axum::http::{HeaderMap, HeaderName, header};

use crate::core::CheckRequest;

/// Identity headers set on the upstream request, overwriting anything the
/// client sent under the same names.
pub const USER_HEADER: &str = "x-workspace-user";
pub const USER_ID_HEADER: &str = "x-workspace-user-id";
pub const WORKSPACE_ID_HEADER: &str = "x-workspace-id";

pub use crate::core::request::CLIENT_HEADERS;

/// Header names the HTTP checks read and write, parsed at compile time so
/// that no check parses a name.
pub mod names {
    use axum::http::HeaderName;

    pub const USER: HeaderName = HeaderName::from_static(super::USER_HEADER);
    pub const USER_ID: HeaderName = HeaderName::from_static(super::USER_ID_HEADER);
    pub const WORKSPACE_ID: HeaderName = HeaderName::from_static(super::WORKSPACE_ID_HEADER);
    pub const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
    pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
}

/// A header's value as text, if present and visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A header's value as text when it was sent exactly once: a repeated
/// header that names the request (its host, URL or method) is ambiguous,
/// and the check refuses rather than pick one.
pub fn single_header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// Refusals of one kind (controller and decision) logged per window;
/// the rest are counted and the count reported on the next window's first
/// line, so the first refusal of a kind is never dropped and a flood
/// cannot fill the log.
const REFUSALS_PER_WINDOW: u32 = 20;
const REFUSAL_WINDOW_SECS: u64 = 10;

struct Window {
    start: u64,
    logged: u32,
    suppressed: u64,
}

type Kind = (&'static str, &'static str);

static REFUSALS: std::sync::LazyLock<Mutex<HashMap<Kind, Window>>> =
    std::sync::LazyLock::new(Default::default);

/// Whether to log a refusal of `kind` at `now`, and how many of its kind
/// went unlogged in the window before.
fn admit(windows: &mut HashMap<Kind, Window>, kind: Kind, now: u64) -> Option<u64> {
    let w = windows.entry(kind).or_insert(Window {
        start: now,
        logged: 0,
        suppressed: 0,
    });
    let mut carried = 0;
    if now >= w.start + REFUSAL_WINDOW_SECS {
        carried = w.suppressed;
        *w = Window {
            start: now,
            logged: 0,
            suppressed: 0,
        };
    }
    if w.logged >= REFUSALS_PER_WINDOW {
        w.suppressed += 1;
        return None;
    }
    w.logged += 1;
    Some(carried)
}

/// Logs a refused check: its reference (the id its page shows), the
/// controller, the host as the controller gave it, the decision (the
/// check metric's label) and why. Never a token, a cookie or a query.
pub(crate) fn log_refusal(
    controller: &'static str,
    request_id: &str,
    host: &str,
    decision: &'static str,
    reason: &'static str,
) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let admitted = {
        let mut windows = REFUSALS.lock().unwrap_or_else(|e| e.into_inner());
        admit(&mut windows, (controller, decision), now)
    };
    let Some(suppressed) = admitted else { return };
    // Only as many characters of the host as a host can have.
    let host: String = host.chars().take(253).collect();
    match decision {
        "unauthorized" | "unknown_host" | "not_found" | "signed_out" => tracing::info!(
            request_id,
            controller,
            host,
            decision,
            reason,
            suppressed,
            "check refused"
        ),
        _ => tracing::warn!(
            request_id,
            controller,
            host,
            decision,
            reason,
            suppressed,
            "check refused"
        ),
    }
}

/// When the nginx answer-too-large warning was last logged (seconds
/// since the epoch; 0: never).
pub(crate) static ANSWER_TOO_LARGE_WARNED: AtomicU64 = AtomicU64::new(0);

/// True the first time, then at most every ten seconds: for a warning
/// that carries fields of its own.
pub(crate) fn should_warn(last: &AtomicU64) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let prev = last.load(Ordering::Relaxed);
    (prev == 0 || now >= prev + 10)
        && last
            .compare_exchange(prev, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Why the core refused, in words for the log.
pub(crate) fn refusal_reason(page: crate::core::Page) -> &'static str {
    use crate::core::Page;
    match page {
        Page::SignInRequired => "no valid pass or credential for this host",
        Page::FormNotSent => "a form was sent without a valid pass for this host",
        Page::NotAllowed => "the user may not use this workspace",
        Page::WorkspaceNotFound => "no workspace has this host",
        Page::SignInFailed => "the transfer token is invalid, expired or used",
        Page::SignedOut => "signed out",
        Page::NotFound => "no such reserved path",
        Page::Unavailable => "the authorizer is unavailable",
        Page::NotReady => "the workspace index is not loaded yet",
    }
}

/// A check's reference, made only when asked for: the controller's
/// `X-Request-ID` when it sent a plain one (borrowed, nothing copied), else
/// a new id drawn the first time a refusal needs one. An allowed check
/// reads neither, so it costs no allocation.
#[derive(Debug)]
pub struct Reference<'a> {
    sent: Option<&'a str>,
    made: std::sync::OnceLock<String>,
}

impl<'a> Reference<'a> {
    pub fn new(sent: Option<&'a str>) -> Reference<'a> {
        Reference {
            sent: sent.filter(|v| crate::answer::is_plain_id(v)),
            made: std::sync::OnceLock::new(),
        }
    }

    pub fn get(&self) -> &str {
        match self.sent {
            Some(v) => v,
            None => self
                .made
                .get_or_init(|| crate::answer::RequestId::fresh().0),
        }
    }
}

/// The reference of a check: the controller's `X-Request-ID` when it sent
/// a plain one (ingress-nginx and Envoy do), else a new id. It is logged
/// with a refusal and shown on its page.
pub(crate) fn reference(headers: &HeaderMap) -> Reference<'_> {
    Reference::new(single_header_str(headers, &names::X_REQUEST_ID))
}

/// The `Cookie` header as text, without pairs that are not (see
/// [`crate::core::cookies::header_text`]). `as_one_header_block` has joined
/// repeated `Cookie` headers into one before any handler runs.
pub fn cookie_text(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    headers
        .get(header::COOKIE)
        .map(|v| crate::core::cookies::header_text(v.as_bytes()))
}

/// A [`CheckRequest`] for what the controller says about the request
/// (method, host, path) plus the client's own credentials and hints, which
/// every controller passes through unchanged. `cookie` is
/// [`cookie_text`]'s, kept by the caller.
pub fn check_request<'a>(
    headers: &'a HeaderMap,
    cookie: Option<&'a str>,
    method: &'a str,
    host: &'a str,
    path: &'a str,
) -> CheckRequest<'a> {
    CheckRequest {
        method,
        host,
        path,
        cookie,
        authorization: header_str(headers, &header::AUTHORIZATION),
        accept: header_str(headers, &header::ACCEPT),
        sec_fetch_mode: header_str(headers, &names::SEC_FETCH_MODE),
        upgrade: headers.contains_key(header::UPGRADE),
    }
}

/// The identity headers of an allowed request, as (name, value) pairs.
/// Values are made header-safe by percent-encoding anything outside
/// visible ASCII.
pub fn identity_headers(allow: &Allow) -> [(HeaderName, Cow<'_, str>); 3] {
    [
        (names::USER, header_safe(&allow.who.username)),
        (names::USER_ID, header_safe(&allow.who.user_id)),
        (names::WORKSPACE_ID, header_safe(&allow.workspace.id)),
    ]
}

fn header_safe(v: &str) -> Cow<'_, str> {
    if v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%') {
        return Cow::Borrowed(v);
    }
    // Non-ASCII and control bytes (and `%` itself) percent-encoded.
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    Cow::Owned(percent_encoding::utf8_percent_encode(v, SET).to_string())
}

/// An axum 200 carrying the upstream headers of an allow, for the HTTP
/// checks whose controller copies listed response headers onto the
/// upstream request (nginx, Traefik, Envoy HTTP mode).
pub fn allow_response(allow: crate::core::Allow) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let mut h = HeaderMap::with_capacity(5);
    for (name, value) in identity_headers(&allow) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    // The controller replaces the request's Cookie/Authorization with what
    // we send and clears them when we send nothing.
    // From bytes: the app's cookies may hold UTF-8 beyond ASCII.
    if let Some(c) = allow
        .upstream_cookie
        .and_then(|c| HeaderValue::from_bytes(c.as_bytes()).ok())
    {
        h.insert(header::COOKIE, c);
    }
    if let Some(a) = allow
        .upstream_authorization
        .and_then(|a| HeaderValue::from_str(&a).ok())
    {
        h.insert(header::AUTHORIZATION, a);
    }
    // For the browser, not the workspace: the controller relays it on the
    // workspace's answer.
    if let Some(c) = allow
        .renewed_pass
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        h.insert(header::SET_COOKIE, c);
    }
    (StatusCode::OK, h).into_response()
}

/// Serves Envoy's ext_authz gRPC API on `listener` within `limits`.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    state: impl Checks,
    limits: crate::connections::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    grpc_transport::serve(
        listener,
        tonic::service::Routes::new(envoy_grpc::Service::new(state)),
        limits,
        shutdown,
    )
    .await
}

#[cfg(test)]
mod refusal_log_tests {
    use super::*;

    #[test]
    fn the_first_of_each_kind_is_logged_and_a_flood_is_counted() {
        let mut w = HashMap::new();
        let a = ("traefik", "forbidden");
        let b = ("nginx", "forbidden");
        let admitted: Vec<_> = (0..25).map(|_| admit(&mut w, a, 100)).collect();
        assert!(admitted[..20].iter().all(|x| *x == Some(0)));
        assert!(admitted[20..].iter().all(Option::is_none));
        // Another kind in the same second is not crowded out.
        assert_eq!(admit(&mut w, b, 100), Some(0));
        // The next window's first line says how many went unlogged.
        assert_eq!(admit(&mut w, a, 109), None);
        assert_eq!(admit(&mut w, a, 110), Some(6));
        assert_eq!(admit(&mut w, a, 111), Some(0));
    }
}

#[cfg(test)]
mod reference_tests {
    use super::Reference;

    #[test]
    fn a_sent_id_is_borrowed_and_a_made_one_is_made_once() {
        let sent = String::from("rid-1");
        let r = Reference::new(Some(&sent));
        assert!(std::ptr::eq(r.get(), sent.as_str()));
        for bad in [None, Some(""), Some("a b"), Some(&*"x".repeat(65))] {
            let r = Reference::new(bad);
            let first = r.get().to_string();
            assert_eq!(first.len(), 24, "{bad:?}");
            assert_eq!(r.get(), first, "the same id for the log and the page");
        }
        assert_ne!(Reference::new(None).get(), Reference::new(None).get());
    }
}
