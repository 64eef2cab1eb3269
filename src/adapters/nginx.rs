//! ingress-nginx `auth-url` (nginx `auth_request`).
//!
//! The host to decide on comes from the check's own address: discovery
//! writes `auth-url: http://<gate>/check/nginx?host=$host`, and nginx
//! expands `$host` per request to the host it chose the `server` (and so
//! the upstream) by: the host of an absolute request line, else the `Host`
//! header, lower-cased, without port or trailing dot. `X-Original-URL`,
//! which the controller builds from the client's `Host` header
//! (`$http_host`), supplies the path and must name the same host; when the
//! two disagree (an absolute request line naming another host, a second
//! `Host` header) the check refuses. A check without `host`, from an
//! Ingress written before this rule, is refused too.
//!
//! Traefik's ingress-nginx provider expands `$host` the same way (from the
//! host it routes on) but sets no `X-Original-URL` and copies every client
//! header into the check, so there `X-Original-URL` is the client's: it
//! may still only name the routed host, and when it is absent the path is
//! read from `X-Forwarded-Uri`, which that provider overwrites. nginx
//! always sets exactly one `X-Original-URL`, so the fallback never applies
//! behind it. The path never grants access: it only tells reserved paths
//! (refused here) and the return address apart.
//!
//! Besides those, reads `X-Original-Method` and the client's own `Cookie`,
//! `Authorization`, `Accept` and `Upgrade` (all client headers pass
//! through). Never `X-Forwarded-Host`: the controller does not set it.
//!
//! nginx accepts only three answers: 2xx allows, 401 (which the
//! `auth-signin` annotation turns into the login redirect, whatever the
//! request) and 403; any other status becomes a 500. The body never
//! reaches the client. So 401 is kept for browser navigations; a request
//! that needs a sign-in but is no navigation gets 403, which nginx passes
//! on instead of a redirect that `fetch()` and WebSockets cannot follow.
//!
//! nginx reads the answer's head into `proxy-buffer-size` bytes (4k unless
//! the Ingress sets more) and turns a larger one into a 500. The allow
//! carries the request's own cookies back (the `Cookie` nginx sends on,
//! without the gate's), so discovery sets `proxy-buffer-size` and names
//! the same size in the `buffer` parameter of `auth-url`; an allow whose
//! head would not fit is refused with 403 and a logged reason.

use axum::extract::{Request, State};
use axum::http::HeaderName;
use axum::response::Response;

use super::Checks;
use super::{check_request, single_header_str};
use crate::core::Decision;

const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");

/// The query parameter of `auth-url` that carries nginx's `$host`.
pub(crate) const HOST_PARAM: &str = "host";

/// The query parameter of `auth-url` that carries the `proxy-buffer-size`
/// the same Ingress sets (discovery writes both): the buffer nginx reads
/// the check's answer into.
pub(crate) const BUFFER_PARAM: &str = "buffer";

/// ingress-nginx's `proxy-buffer-size` when an Ingress sets none, and the
/// budget assumed when `auth-url` names none (or names it twice).
pub(crate) const DEFAULT_BUFFER: usize = 4 * 1024;

/// What nginx's buffer holds besides the headers the adapter sets: the
/// status line, `date`, `content-length` and the blank line, with room
/// to spare.
const HEAD_OVERHEAD: usize = 128;

/// Why a check was refused before any decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// `auth-url` carries no `?host=$host` (an Ingress written before the
    /// parameter, or a controller that does not expand nginx variables).
    NoRoutedHost,
    /// No `X-Original-URL` (or more than one): not ingress-nginx's subrequest.
    NoOriginalUrl,
    /// `X-Original-URL` names another host than the one nginx routed on.
    HostMismatch,
}

impl Unreadable {
    fn label(self) -> &'static str {
        match self {
            Unreadable::NoRoutedHost => "no_routed_host",
            Unreadable::NoOriginalUrl => "no_original_url",
            Unreadable::HostMismatch => "host_mismatch",
        }
    }
}

/// The routed host and the original path of an nginx check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub host: &'a str,
    pub path: &'a str,
}

/// What the check request says about the original request, besides the
/// routed host.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Original<'a> {
    /// `X-Original-URL`: `None` when absent, `Some(None)` when repeated.
    pub url: Option<Option<&'a str>>,
    /// `X-Forwarded-Uri`, read only when `X-Original-URL` is absent.
    pub forwarded_uri: Option<&'a str>,
}

/// Reads the host nginx routed on (the `host` query parameter, exactly
/// once) and the original path, refusing when `X-Original-URL` names
/// another host.
pub(crate) fn target<'a>(
    settings: &crate::core::Settings,
    query: Option<&'a str>,
    original: Original<'a>,
) -> Result<Target<'a>, Unreadable> {
    let routed = routed_host(query).ok_or(Unreadable::NoRoutedHost)?;
    let routed_norm = settings
        .normalize_host(routed)
        .ok_or(Unreadable::HostMismatch)?;
    let path = match original.url {
        Some(url) => {
            let (_scheme, claimed, path) =
                url.and_then(split_url).ok_or(Unreadable::NoOriginalUrl)?;
            // nginx's `$host` is lower-case, without port or trailing dot;
            // the URL's host is the client's `Host` header as sent. Both
            // must name one workspace host.
            if settings.normalize_host(claimed).as_deref() != Some(&*routed_norm) {
                return Err(Unreadable::HostMismatch);
            }
            path
        }
        None => original
            .forwarded_uri
            .filter(|p| p.starts_with('/'))
            .ok_or(Unreadable::NoOriginalUrl)?,
    };
    Ok(Target { host: routed, path })
}

/// The value of the one `host` parameter of `query`, as nginx wrote it.
/// `None` when it is missing, repeated, or was never expanded (`$host`
/// taken literally by a controller that does not know nginx variables).
/// Not percent-decoded: `$host` holds no escapes, and a decoded `%26`
/// could smuggle a second parameter.
pub(crate) fn routed_host(query: Option<&str>) -> Option<&str> {
    single_param(query, HOST_PARAM).filter(|v| !v.is_empty() && !v.starts_with('$'))
}

/// The value of the one `name` parameter of `query`; `None` when it is
/// missing or repeated.
fn single_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    let mut found = None;
    for pair in query?.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return None;
            }
            found = Some(v);
        }
    }
    found
}

/// How many bytes of answer head nginx can read: the `buffer` parameter
/// in nginx's size syntax (`32k`, `1m`, `8192`), else ingress-nginx's
/// default. A repeated or unreadable one counts as absent: a client that
/// smuggles one in through the host can only make its own answers
/// smaller.
pub(crate) fn answer_buffer(query: Option<&str>) -> usize {
    single_param(query, BUFFER_PARAM)
        .and_then(parse_size)
        .unwrap_or(DEFAULT_BUFFER)
}

/// nginx's size syntax: digits with an optional `k` or `m`, any case.
fn parse_size(v: &str) -> Option<usize> {
    let (digits, unit) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1024),
        b'm' | b'M' => (&v[..v.len() - 1], 1024 * 1024),
        _ => (v, 1),
    };
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

pub(crate) async fn check<S: Checks>(State(state): State<S>, request: Request) -> Response {
    // Borrow the headers from the request: the HeaderMap extractor would
    // copy them on every check.
    let headers = request.headers();
    let original = Original {
        url: headers
            .contains_key(&X_ORIGINAL_URL)
            .then(|| single_header_str(headers, &X_ORIGINAL_URL)),
        forwarded_uri: single_header_str(headers, &X_FORWARDED_URI),
    };
    let buffer = answer_buffer(request.uri().query());
    let target = match target(state.settings(), request.uri().query(), original) {
        Ok(t) => t,
        Err(why) => return refuse_unreadable(&state, super::reference(headers).get(), why),
    };
    let method = match original.url {
        Some(_) => single_header_str(headers, &X_ORIGINAL_METHOD),
        None => single_header_str(headers, &X_FORWARDED_METHOD),
    }
    .unwrap_or("GET");
    let cookie = super::cookie_text(headers);
    let mut req = check_request(headers, cookie.as_deref(), method, target.host, target.path);
    // nginx never passes `Upgrade` on to the auth subrequest (it is
    // hop-by-hop), but it does pass the WebSocket handshake's own key: a
    // handshake is no navigation, even from a client that sends neither
    // `Sec-Fetch-Mode` nor a telling `Accept`.
    req.upgrade |= headers.contains_key(&SEC_WEBSOCKET_KEY);
    let reference = super::reference(headers);
    let decision = state.run("nginx", &reference, &req).await;
    answer(&state, decision, buffer, target.host, &reference)
}

fn refuse_unreadable(state: &impl Checks, request_id: &str, why: Unreadable) -> Response {
    state.metrics().check("nginx", why.label(), 0.0);
    let reason = match why {
        Unreadable::NoRoutedHost => {
            "auth-url lacks ?host=$host (an Ingress written by an earlier version; let \
             discovery rewrite it or add the parameter, see docs/install.md, \"Upgrading\")"
        }
        Unreadable::NoOriginalUrl => {
            "no single X-Original-URL; is auth-url pointing at /check/nginx from ingress-nginx?"
        }
        Unreadable::HostMismatch => {
            "the request's Host header names another host than the one nginx routed on \
             (absolute request line or repeated Host)"
        }
    };
    super::log_refusal("nginx", request_id, "", why.label(), reason);
    crate::answer::bare(403).into_http()
}

/// Splits `scheme://authority/path?query` without reinterpreting it.
pub(crate) fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(end);
    let path = if path.is_empty() { "/" } else { path };
    (!host.is_empty()).then_some((scheme, host, path))
}

fn answer(
    state: &impl Checks,
    decision: Decision,
    buffer: usize,
    host: &str,
    reference: &crate::adapters::Reference<'_>,
) -> Response {
    match decision {
        Decision::Allow(allow) => {
            let response = crate::adapters::allow_response(allow);
            // An answer head larger than the buffer is a 500 from nginx
            // ("upstream sent too big header") that says nothing here; the
            // workspace's own cookies are what makes it grow. Refused
            // instead, and said why.
            let head = head_size(&response);
            if head <= buffer {
                return response;
            }
            state.metrics().nginx_answer_too_large();
            if super::should_warn(&super::ANSWER_TOO_LARGE_WARNED) {
                tracing::warn!(
                    request_id = reference.get(),
                    host,
                    answer_bytes = head,
                    buffer_bytes = buffer,
                    "nginx check refused: the request's own cookies make the answer larger \
                     than the proxy-buffer-size the Ingress gives the check; raise \
                     proxy-buffer-size and the auth-url's buffer parameter together \
                     (discovery writes 32k), or have the workspace set fewer cookies"
                );
            }
            crate::answer::bare(403).into_http()
        }
        // nginx knows no other statuses than 401 and 403 for a refusal.
        other => crate::answer::for_nginx(&other).into_http(),
    }
}

/// The size of `response`'s head as nginx reads it, over-estimated by a
/// little for what the HTTP server adds.
fn head_size(response: &Response) -> usize {
    HEAD_OVERHEAD
        + response
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::{
        DEFAULT_BUFFER, Original, Target, Unreadable, answer_buffer, routed_host, split_url, target,
    };
    use crate::core::Settings;
    use crate::scheme::Scheme;

    fn settings() -> Settings {
        Settings::new("w.test", "w.test", Scheme::Https, Some(8443), 3600, 60)
    }

    #[test]
    fn routed_host_is_one_expanded_parameter() {
        assert_eq!(routed_host(Some("host=ws-1.w.test")), Some("ws-1.w.test"));
        assert_eq!(
            routed_host(Some("a=1&host=ws-1.w.test")),
            Some("ws-1.w.test")
        );
        assert_eq!(routed_host(None), None);
        assert_eq!(routed_host(Some("")), None);
        assert_eq!(routed_host(Some("host=")), None);
        // Not expanded: a controller that does not know nginx variables.
        assert_eq!(routed_host(Some("host=$host")), None);
        // Twice: one of them came from somewhere else.
        assert_eq!(routed_host(Some("host=ws-1.w.test&host=ws-2.w.test")), None);
    }

    fn url(u: &str) -> Original<'_> {
        Original {
            url: Some(Some(u)),
            forwarded_uri: None,
        }
    }

    #[test]
    fn original_url_must_name_the_routed_host() {
        let s = settings();
        let ok = |q: &'static str, u: &'static str| target(&s, Some(q), url(u));
        assert_eq!(
            ok("host=ws-1.w.test", "https://ws-1.w.test:8443/a?b=1"),
            Ok(Target {
                host: "ws-1.w.test",
                path: "/a?b=1"
            })
        );
        // Upper case and a trailing dot in Host name the same host.
        assert!(ok("host=ws-1.w.test", "https://WS-1.w.test./x").is_ok());
        // An absolute request line routed to ws-2 with `Host: ws-1`.
        assert_eq!(
            ok("host=ws-2.w.test", "https://ws-1.w.test/secret"),
            Err(Unreadable::HostMismatch)
        );
        // Two Host headers, joined by a comma.
        assert_eq!(
            ok("host=ws-1.w.test", "https://ws-1.w.test,ws-2.w.test/"),
            Err(Unreadable::HostMismatch)
        );
        // A routed host that is no DNS name.
        assert_eq!(
            ok("host=ws-1.w.test%26x", "https://ws-1.w.test%26x/"),
            Err(Unreadable::HostMismatch)
        );
        // A port other than the public one.
        assert_eq!(
            ok("host=ws-1.w.test", "https://ws-1.w.test:9999/"),
            Err(Unreadable::HostMismatch)
        );
        assert_eq!(
            target(&s, None, url("https://ws-1.w.test/")),
            Err(Unreadable::NoRoutedHost)
        );
    }

    #[test]
    fn without_original_url_the_forwarded_uri_gives_the_path() {
        let s = settings();
        let q = Some("host=ws-1.w.test");
        let fwd = |uri: Option<&'static str>| Original {
            url: None,
            forwarded_uri: uri,
        };
        assert_eq!(
            target(&s, q, fwd(Some("/x?y=1"))),
            Ok(Target {
                host: "ws-1.w.test",
                path: "/x?y=1"
            })
        );
        assert_eq!(target(&s, q, fwd(None)), Err(Unreadable::NoOriginalUrl));
        assert_eq!(
            target(&s, q, fwd(Some("https://ws-2.w.test/"))),
            Err(Unreadable::NoOriginalUrl)
        );
        // A repeated X-Original-URL is refused, never skipped.
        let repeated = Original {
            url: Some(None),
            forwarded_uri: Some("/x"),
        };
        assert_eq!(target(&s, q, repeated), Err(Unreadable::NoOriginalUrl));
    }

    #[test]
    fn the_answer_buffer_is_one_size_parameter_or_the_default() {
        assert_eq!(answer_buffer(Some("host=h&buffer=32k")), 32 * 1024);
        assert_eq!(answer_buffer(Some("buffer=1M&host=h")), 1024 * 1024);
        assert_eq!(answer_buffer(Some("buffer=8192")), 8192);
        for q in [
            None,
            Some("host=h"),
            Some("buffer="),
            Some("buffer=k"),
            Some("buffer=32kb"),
            Some("buffer=-1"),
            Some("buffer=99999999999m"),
            // Twice: the larger one may have come from the client.
            Some("buffer=32k&buffer=1m"),
        ] {
            assert_eq!(answer_buffer(q), DEFAULT_BUFFER, "{q:?}");
        }
    }

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
