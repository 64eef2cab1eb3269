//! Every answer a user or a controller receives that is not an allow: the
//! gate's own pages, the refusals and redirects Traefik and Envoy relay to
//! the browser, nginx's bare statuses and Envoy's gRPC denied response.
//! Built here and nowhere else, so each carries one `Content-Type`, the
//! same security headers and the same reference id whichever path served
//! it.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use envoy_types::ext_authz::v3::pb::{CheckResponse, HeaderAppendAction, HttpStatusCode};
use envoy_types::ext_authz::v3::{CheckResponseExt, DeniedHttpResponseBuilder};
use tonic::Status;

use crate::core::reserved::{CALLBACK_PATH, REDEEM_QUERY};
use crate::core::{Decision, Page, Settings};

/// A request's reference: shown on its refusal page and logged with every
/// line about it. Set by the server's request-id layer.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) String);

impl RequestId {
    /// The controller's `X-Request-ID` when it is a plain token (at most
    /// 64 letters, digits, `-` and `_`), else a new id.
    pub(crate) fn from_header(value: Option<&str>) -> RequestId {
        match value.filter(|v| is_plain_id(v)) {
            Some(v) => RequestId(v.to_string()),
            None => RequestId::fresh(),
        }
    }

    /// A new id, unique in this process and not guessable across
    /// processes: a random prefix drawn once, then a counter. No system
    /// call per request.
    pub(crate) fn fresh() -> RequestId {
        use std::sync::LazyLock;
        use std::sync::atomic::{AtomicU64, Ordering};
        static PREFIX: LazyLock<u64> = LazyLock::new(rand::random);
        static NEXT: AtomicU64 = AtomicU64::new(0);
        RequestId(format!(
            "{:016x}{:08x}",
            *PREFIX,
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

pub(crate) fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An answer as plain HTTP parts. `headers` holds no `Content-Type` twice
/// and may hold several `Set-Cookie`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

const WWW_AUTHENTICATE: &str = "Bearer realm=\"workspace-gate\"";

/// True when the client prefers JSON over HTML (`Accept`, any case).
pub(crate) fn wants_json(accept: Option<&str>) -> bool {
    let accept = accept.unwrap_or("").to_ascii_lowercase();
    accept.contains("application/json") && !accept.contains("text/html")
}

/// [`wants_json`] from a request's headers.
pub(crate) fn wants_json_headers(headers: &axum::http::HeaderMap) -> bool {
    wants_json(
        headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    )
}

fn texts(page: Page) -> (&'static str, &'static str, &'static str) {
    match page {
        Page::SignInRequired => (
            "unauthorized",
            "Sign-in required",
            "This workspace needs you to sign in: reload the page, or open it in your browser, to sign in again. Scripts and CLIs send a personal access token as a Bearer token.",
        ),
        Page::FormNotSent => (
            "form_not_sent",
            "Form not sent",
            "Your sign-in on this workspace had expired, so the form you sent was not delivered and nothing was changed. Sign in again, then open the page and send the form once more.",
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
        Page::NotReady => (
            "not_ready",
            "Starting",
            "The sign-in service is still reading the list of workspaces. Try again in a moment; if it persists, give your administrator the reference below.",
        ),
    }
}

/// The way back a page offers, as a paragraph with one link.
fn action(page: Page) -> &'static str {
    match page {
        // A workspace host's own login start: lands on its root once
        // signed in again (the page may be a fetch's, with no URL to keep).
        Page::SignInRequired | Page::FormNotSent => {
            "<p><a href=\"/.workspace-gate/start\">Sign in again</a></p>"
        }
        // A workspace host's own sign-out: clears its pass, then ends the
        // login on the auth host, so the next visit can pick another account.
        Page::NotAllowed => {
            "<p><a href=\"/.workspace-gate/sign_out\">Sign out to use another account</a></p>"
        }
        _ => "",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Who a page's reader is signed in as, and where they sign out to switch
/// to another account.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedIn<'a> {
    pub(crate) username: &'a str,
    /// A fixed path of the gate's (never taken from the request).
    pub(crate) sign_out: &'a str,
}

/// What a page knows beyond its kind: who reads it, and where GitLab
/// lists their workspaces.
#[derive(Debug, Clone, Copy, Default)]
struct Extra<'a> {
    signed_in: Option<SignedIn<'a>>,
    workspace_list: Option<&'a str>,
}

/// The body and content type of `page`.
fn body(page: Page, request_id: &str, json: bool) -> (&'static str, String) {
    body_for(page, request_id, json, Extra::default())
}

/// [`body`], naming the signed-in user and offering their sign-out, and
/// linking GitLab's workspace list, when known.
fn body_for(page: Page, request_id: &str, json: bool, extra: Extra<'_>) -> (&'static str, String) {
    let (code, title, text) = texts(page);
    if json {
        let mut v = serde_json::json!({"error": code, "message": text, "request_id": request_id});
        if let Some(s) = extra.signed_in {
            v["signed_in_as"] = s.username.into();
            v["sign_out"] = s.sign_out.into();
        }
        if let Some(list) = extra.workspace_list {
            v["workspaces"] = list.into();
        }
        ("application/json", v.to_string())
    } else {
        let action = match (extra.signed_in, extra.workspace_list) {
            (Some(s), _) => format!(
                "<p>You are signed in as <strong>{user}</strong>.</p><p><a href=\"{out}\">Sign out to use another account</a></p>",
                user = escape(s.username),
                out = escape(s.sign_out),
            ),
            (None, Some(list)) => format!(
                "<p><a href=\"{list}\">Open your workspaces in GitLab</a></p>",
                list = escape(list),
            ),
            (None, None) => action(page).to_string(),
        };
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}h1{{font-size:1.4rem}}code{{background:#eee;padding:.1rem .3rem}}</style></head>\
<body><h1>{title}</h1><p>{text}</p>{action}<p><small>Reference: <code>{id}</code></small></p></body></html>",
            id = escape(request_id),
        );
        ("text/html; charset=utf-8", html)
    }
}

/// The page for `page`, with its status, one `Content-Type`, `no-store`,
/// `nosniff`, and `WWW-Authenticate` when sign-in is required.
pub(crate) fn page(page: Page, request_id: &str, json: bool) -> Answer {
    with_body(page, body(page, request_id, json))
}

/// [`page`] for a reader whose identity is known: says who they are
/// signed in as and offers the sign-out that lets them switch accounts.
pub(crate) fn page_signed_in(
    page: Page,
    request_id: &str,
    json: bool,
    signed_in: SignedIn<'_>,
) -> Answer {
    let extra = Extra {
        signed_in: Some(signed_in),
        workspace_list: None,
    };
    with_body(page, body_for(page, request_id, json, extra))
}

/// [`page`] with what `settings` add to it: the "Workspace not found"
/// page links GitLab's workspace list.
pub(crate) fn page_in(settings: &Settings, page: Page, request_id: &str, json: bool) -> Answer {
    let extra = Extra {
        signed_in: None,
        workspace_list: settings
            .workspace_list
            .as_deref()
            .filter(|_| page == Page::WorkspaceNotFound),
    };
    with_body(page, body_for(page, request_id, json, extra))
}

fn with_body(page: Page, (ctype, body): (&'static str, String)) -> Answer {
    let mut headers = vec![
        ("content-type", ctype.to_string()),
        ("cache-control", "no-store".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
    ];
    if matches!(page, Page::SignInRequired | Page::FormNotSent) {
        headers.push(("www-authenticate", WWW_AUTHENTICATE.to_string()));
    }
    Answer {
        status: page.status(),
        headers,
        body,
    }
}

/// The hand-over page's script: the transfer token is in the fragment
/// (`#t=<token>`), which the browser never sends; it goes into `cookie`
/// for the one request that redeems it, and `location.replace` leaves no
/// history entry holding it. Reads its cookie name and next address from
/// the page's own `data-` attributes.
const HANDOVER_SCRIPT: &str = "(function(){var d=document.documentElement.dataset,\
m=/^#t=([A-Za-z0-9._~-]+)$/.exec(location.hash);\
if(!m){document.getElementById(\"message\").textContent=\"Signing in did not complete. Go back to your workspace and open it again.\";return;}\
document.cookie=d.cookie+\"=\"+m[1]+\"; Path=/; Max-Age=60; SameSite=Lax\"+(location.protocol===\"https:\"?\"; Secure\":\"\");\
location.replace(d.next);}());";

/// The hand-over page on a workspace host (`session.transfer: fragment`).
/// A 401 so that every controller relays it rather than letting the
/// request through; browsers run its script all the same.
pub(crate) fn handover(cookie: &str) -> Answer {
    use rand::RngCore;
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    let nonce: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let body = format!(
        "<!doctype html><html lang=\"en\" data-workspace-gate-handover data-cookie=\"{cookie}\" data-next=\"{CALLBACK_PATH}?{REDEEM_QUERY}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Signing in…</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}h1{{font-size:1.4rem}}</style></head>\
<body><h1>Signing in…</h1><p id=\"message\">Taking you to your workspace.</p>\
<noscript><p>Finishing the sign-in needs JavaScript. Allow it for this site and open your workspace again.</p></noscript>\
<script nonce=\"{nonce}\">{HANDOVER_SCRIPT}</script></body></html>",
        cookie = escape(cookie),
    );
    Answer {
        status: 401,
        headers: vec![
            ("content-type", "text/html; charset=utf-8".to_string()),
            ("cache-control", "no-store".to_string()),
            ("x-content-type-options", "nosniff".to_string()),
            ("referrer-policy", "no-referrer".to_string()),
            (
                "content-security-policy",
                format!(
                    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                ),
            ),
        ],
        body,
    }
}

/// A redirect (`status` 302 or 303) that sets `set_cookies`, carries no
/// body and is never cached or referred. A location that is no header
/// value (never built by the gate) gives a bare 400.
pub(crate) fn redirect(status: u16, location: &str, set_cookies: &[String]) -> Answer {
    if HeaderValue::from_str(location).is_err() {
        return bare(400);
    }
    let mut headers = vec![
        ("location", location.to_string()),
        ("cache-control", "no-store".to_string()),
        ("referrer-policy", "no-referrer".to_string()),
    ];
    headers.extend(set_cookies.iter().map(|c| ("set-cookie", c.clone())));
    Answer {
        status,
        headers,
        body: String::new(),
    }
}

/// The answer the browser should get for a decision that is not an
/// allow, for controllers that relay the gate's answer (Traefik, Envoy).
/// `None` for `Allow` (and the never-returned `Bearer`).
pub(crate) fn for_decision(
    settings: &Settings,
    decision: &Decision,
    request_id: &str,
    json: bool,
) -> Option<Answer> {
    match decision {
        Decision::Allow(_) | Decision::Bearer { .. } => None,
        Decision::SignIn { location } => Some(redirect(302, location, &[])),
        Decision::Redirect {
            location,
            set_cookies,
            ..
        } => Some(redirect(302, location, set_cookies)),
        Decision::Deny(p) => Some(page_in(settings, *p, request_id, json)),
        Decision::Handover { cookie } => Some(handover(cookie)),
    }
}

/// [`for_decision`], or a bare 403 for what has no answer of its own.
pub(crate) fn refusal(
    settings: &Settings,
    decision: &Decision,
    request_id: &str,
    json: bool,
) -> Answer {
    for_decision(settings, decision, request_id, json).unwrap_or_else(|| bare(403))
}

/// A status without body, for nginx (which shows the client none of the
/// check's body) and for requests that cannot be read.
pub(crate) fn bare(status: u16) -> Answer {
    let mut headers = vec![("cache-control", "no-store".to_string())];
    if status == 401 {
        headers.push(("www-authenticate", WWW_AUTHENTICATE.to_string()));
    }
    Answer {
        status,
        headers,
        body: String::new(),
    }
}

/// nginx accepts only 2xx, 401 and 403, and ingress-nginx's `auth-signin`
/// turns every 401 into the login redirect. So only a browser navigation
/// (the one decision that asks for the login) gets 401; a request that
/// needs a sign-in but is no navigation (`fetch()`, a WebSocket upgrade, a
/// script without a valid token) gets 403, which nginx hands to the client
/// as it is: a redirect there would end in a CORS error or a failed
/// handshake.
pub(crate) fn for_nginx(decision: &Decision) -> Answer {
    match decision {
        // A form is sent to the sign-in start too (`auth-signin` carries
        // `m=$request_method`), which then shows the form-not-sent page.
        Decision::SignIn { .. } | Decision::Deny(Page::FormNotSent) => bare(401),
        _ => bare(403),
    }
}

impl Answer {
    /// As an HTTP response: every header set once, `Set-Cookie` appended.
    pub(crate) fn into_http(self) -> axum::response::Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::FORBIDDEN);
        let mut resp = (status, self.body).into_response();
        let h = resp.headers_mut();
        // The body's own type is replaced, never added to.
        h.remove(axum::http::header::CONTENT_TYPE);
        for (name, value) in self.headers {
            let Ok(v) = HeaderValue::from_str(&value) else {
                continue;
            };
            let name = HeaderName::from_static(name);
            if name == axum::http::header::SET_COOKIE {
                h.append(name, v);
            } else {
                h.insert(name, v);
            }
        }
        resp
    }

    /// As Envoy's gRPC `denied_response`, which Envoy relays to the client.
    pub(crate) fn into_grpc_denied(self) -> CheckResponse {
        let mut denied = DeniedHttpResponseBuilder::new();
        denied.set_http_status(status_code(self.status));
        for (name, value) in self.headers {
            // Several Set-Cookie headers must stay separate.
            denied.add_header(
                name,
                value,
                Some(HeaderAppendAction::AppendIfExistsOrAdd),
                false,
            );
        }
        if !self.body.is_empty() {
            denied.set_body(self.body);
        }
        let grpc = if self.status == 401 {
            Status::unauthenticated("")
        } else {
            Status::permission_denied("")
        };
        let mut resp = CheckResponse::with_status(grpc);
        resp.set_http_response(denied);
        resp
    }
}

fn status_code(status: u16) -> HttpStatusCode {
    match status {
        200 => HttpStatusCode::Ok,
        302 => HttpStatusCode::Found,
        303 => HttpStatusCode::SeeOther,
        400 => HttpStatusCode::BadRequest,
        401 => HttpStatusCode::Unauthorized,
        404 => HttpStatusCode::NotFound,
        503 => HttpStatusCode::ServiceUnavailable,
        _ => HttpStatusCode::Forbidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let mut s = crate::core::settings::test_settings();
        s.workspace_list = Some("https://gitlab.test/-/remote_development/workspaces".into());
        s
    }

    fn header<'a>(a: &'a Answer, name: &str) -> Vec<&'a str> {
        a.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn every_page_carries_one_type_and_the_security_headers() {
        for p in [
            Page::SignInRequired,
            Page::FormNotSent,
            Page::NotAllowed,
            Page::WorkspaceNotFound,
            Page::SignInFailed,
            Page::SignedOut,
            Page::NotFound,
            Page::Unavailable,
            Page::NotReady,
        ] {
            for json in [false, true] {
                let a = page(p, "ref-1", json);
                assert_eq!(a.status, p.status());
                assert_eq!(header(&a, "content-type").len(), 1, "{p:?}");
                assert_eq!(header(&a, "x-content-type-options"), ["nosniff"]);
                assert_eq!(header(&a, "cache-control"), ["no-store"]);
                assert!(a.body.contains("ref-1"), "{p:?} {json}");
                assert_eq!(
                    header(&a, "www-authenticate").len(),
                    usize::from(matches!(p, Page::SignInRequired | Page::FormNotSent))
                );
            }
        }
        // The reference is escaped in HTML.
        assert!(
            page(Page::NotFound, "<x>", false)
                .body
                .contains("&lt;x&gt;")
        );
    }

    #[test]
    fn not_allowed_names_the_signed_in_user_escaped_and_links_the_sign_out() {
        let who = SignedIn {
            username: "<b>bob</b>",
            sign_out: "/auth/sign_out",
        };
        let a = page_signed_in(Page::NotAllowed, "r", false, who);
        assert_eq!(a.status, 403);
        assert!(a.body.contains("<strong>&lt;b&gt;bob&lt;/b&gt;</strong>"));
        assert!(!a.body.contains("<b>bob"));
        assert!(a.body.contains(r#"<a href="/auth/sign_out">"#));
        let j: serde_json::Value =
            serde_json::from_str(&page_signed_in(Page::NotAllowed, "r", true, who).body).unwrap();
        assert_eq!(j["signed_in_as"], "<b>bob</b>");
        assert_eq!(j["sign_out"], "/auth/sign_out");
        // Without a known identity the page still offers the host's sign-out.
        assert!(
            page(Page::NotAllowed, "r", false)
                .body
                .contains(r#"<a href="/.workspace-gate/sign_out">"#)
        );
    }

    #[test]
    fn workspace_not_found_links_the_gitlab_workspace_list() {
        let list = "https://gitlab.test/-/remote_development/workspaces";
        let a = page_in(&settings(), Page::WorkspaceNotFound, "r", false);
        assert!(
            a.body.contains(&format!(r#"<a href="{list}">"#)),
            "{}",
            a.body
        );
        let j: serde_json::Value =
            serde_json::from_str(&page_in(&settings(), Page::WorkspaceNotFound, "r", true).body)
                .unwrap();
        assert_eq!(j["workspaces"], list);
        // Other pages keep their own way on.
        assert!(
            !page_in(&settings(), Page::NotFound, "r", false)
                .body
                .contains(list)
        );
        let d = Decision::Deny(Page::WorkspaceNotFound);
        assert!(refusal(&settings(), &d, "r", false).body.contains(list));
    }

    #[test]
    fn json_is_chosen_by_accept_in_any_case() {
        assert!(wants_json(Some("application/json")));
        assert!(wants_json(Some("Application/JSON; q=1")));
        assert!(!wants_json(Some("text/html,application/json")));
        assert!(!wants_json(Some("*/*")));
        assert!(!wants_json(None));
    }

    #[test]
    fn decisions_map_to_their_answers() {
        let sign_in = Decision::SignIn {
            location: "https://a.test/auth/start?rd=x".into(),
        };
        let a = for_decision(&settings(), &sign_in, "-", false).unwrap();
        assert_eq!(a.status, 302);
        assert_eq!(header(&a, "location"), ["https://a.test/auth/start?rd=x"]);
        assert_eq!(header(&a, "referrer-policy"), ["no-referrer"]);
        assert_eq!(for_nginx(&sign_in).status, 401);
        // Not a navigation: no 401, which auth-signin would make a redirect.
        assert_eq!(for_nginx(&Decision::Deny(Page::SignInRequired)).status, 403);
        assert_eq!(for_nginx(&Decision::Deny(Page::NotAllowed)).status, 403);
        let r = redirect(303, "/x", &["a=1".into(), "b=2".into()]);
        assert_eq!(header(&r, "set-cookie"), ["a=1", "b=2"]);
        assert_eq!(redirect(302, "/x\n", &[]).status, 400);
        let h = for_decision(
            &settings(),
            &Decision::Handover {
                cookie: "__Host-x-transfer".into(),
            },
            "-",
            false,
        )
        .unwrap();
        // Never 2xx: Traefik and Envoy would let the request through.
        assert_eq!(h.status, 401);
        assert!(h.body.contains(r#"data-cookie="__Host-x-transfer""#));
        let csp = header(&h, "content-security-policy")[0];
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        assert!(h.body.contains(&format!(r#"<script nonce="{nonce}">"#)));
    }

    #[test]
    fn http_answers_have_one_content_type_and_every_cookie() {
        let resp = page(Page::NotAllowed, "r", true).into_http();
        let types: Vec<_> = resp
            .headers()
            .get_all(axum::http::header::CONTENT_TYPE)
            .iter()
            .collect();
        assert_eq!(types, ["application/json"]);
        let resp = redirect(302, "/x", &["a=1".into(), "b=2".into()]).into_http();
        assert_eq!(
            resp.headers()
                .get_all(axum::http::header::SET_COOKIE)
                .iter()
                .count(),
            2
        );
    }
}
