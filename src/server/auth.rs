//! The login pages on the auth host: `/auth/start`, `/auth/callback`,
//! `/auth/sign_out`, `/auth/signed_out`.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::request_id::RequestId;
use super::reserved_routes::redirect;
use super::{AppState, now, pages};
use crate::authz::Outcome;
use crate::config::TransferMethod;
use crate::core::cookies;
use crate::core::rd::{self, Target};
use crate::core::request::is_navigation;
use crate::core::reserved::{CALLBACK_PATH, next_sign_out_hop};
use crate::core::{Decision, Page};
use crate::oidc::{LoginStart, random_token};
use crate::session::claims::MAX_REMEMBERED_HOSTS;
use crate::session::sealed::{open, seal};
use crate::session::signed::sign;
use crate::session::{LoginClaims, StateClaims, TokenKind, TransferClaims};

/// How long a login may take at the provider.
const STATE_TTL: u64 = 600;
/// The CSRF cookie outlives several login attempts in several tabs.
const CSRF_TTL: u64 = 3600;

#[derive(Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    rd: String,
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

struct Ctx<'a> {
    state: &'a AppState,
    id: &'a str,
    json: bool,
}

impl<'a> Ctx<'a> {
    /// The context of a request that must address the auth host; any other
    /// host gets a 404 page (the login pages set host-only cookies).
    fn on_auth_host(
        state: &'a AppState,
        id: &'a RequestId,
        headers: &HeaderMap,
    ) -> Result<Self, Box<Response>> {
        let ctx = Ctx {
            state,
            id: &id.0,
            json: pages::wants_json(headers),
        };
        if on_auth_host(state, headers) {
            Ok(ctx)
        } else {
            Err(Box::new(ctx.page(Page::NotFound)))
        }
    }

    fn page(&self, page: Page) -> Response {
        pages::respond(page, self.id, self.json)
    }

    fn fail(&self, reason: &'static str) -> Response {
        tracing::warn!(reason, "sign-in failed");
        self.state.metrics.login("failed", reason);
        self.page(Page::SignInFailed)
    }
}

fn on_auth_host(state: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| state.settings.normalize_host(h))
        .is_some_and(|h| h == state.settings.auth_host)
}

/// Every value of the cookie `name`; pairs that are not text are skipped,
/// the rest of the header still read.
fn cookie(headers: &HeaderMap, name: &str) -> std::vec::IntoIter<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| {
            cookies::values(&cookies::header_text(v.as_bytes()), name)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .into_iter()
}

fn current_login(state: &AppState, headers: &HeaderMap) -> Option<LoginClaims> {
    let now = now();
    cookie(headers, &state.settings.login_cookie)
        .find_map(|v| open::<LoginClaims>(&state.keyring, TokenKind::Login, &v, now).ok())
}

/// The most a `Set-Cookie` or `Location` the gate sends may hold.
/// ingress-nginx reads an upstream's whole answer head into its 4 KiB
/// `proxy_buffer_size` (a larger one is a 502); this leaves room for the
/// status line and the other headers of the same answer.
pub const ANSWER_HEADER_BUDGET: usize = 3072;

/// The login cookie, kept within [`ANSWER_HEADER_BUDGET`]. What does not
/// fit is left out, least needed first: the oldest visited hosts beyond
/// the newest few (sign-out then visits fewer), the access token (a fresh
/// one is got with the refresh token when needed), the refresh token (the
/// next workspace then asks the provider again, silently while its session
/// lasts). `owner-annotation` never needs the provider's tokens, so they
/// are never kept for it.
fn login_cookie(state: &AppState, login: &LoginClaims) -> String {
    let max_age = login.exp.saturating_sub(now());
    let mut login = login.clone();
    if state.cfg.authorization.mode == crate::config::AuthzMode::OwnerAnnotation {
        login.at.clear();
        login.rt = None;
    }
    let render = |l: &LoginClaims| {
        let value = seal(&state.keyring, TokenKind::Login, l);
        state
            .settings
            .cookie(&state.settings.login_cookie, &value, max_age)
    };
    let mut cookie = render(&login);
    while cookie.len() > ANSWER_HEADER_BUDGET {
        if login.hosts.len() > 8 {
            let drop = login.hosts.len() / 2;
            login.hosts.drain(..drop);
        } else if !login.at.is_empty() {
            login.at.clear();
            // Expired: the authorizer refreshes before using it.
            login.at_exp = 1;
        } else if login.rt.is_some() {
            login.rt = None;
        } else if !login.hosts.is_empty() {
            login.hosts.remove(0);
        } else {
            break;
        }
        cookie = render(&login);
    }
    cookie
}

pub async fn start(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let ctx = match Ctx::on_auth_host(&state, &id, &headers) {
        Ok(ctx) => ctx,
        Err(not_found) => return *not_found,
    };
    // ingress-nginx sends every 401 here, fetches and WebSockets included;
    // only a top-level navigation may go on to the provider.
    let h = |n: header::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
    let navigation = is_navigation(
        "GET",
        h(header::ACCEPT),
        headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()),
        headers.contains_key(header::UPGRADE),
    );
    if !navigation {
        return ctx.page(Page::SignInRequired);
    }
    let target = match rd::validate(&state.settings, &q.rd) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(reason = %e, "refused rd");
            state.metrics.login("failed", "bad_rd");
            return ctx.page(Page::SignInFailed);
        }
    };
    if let Some(login) = current_login(&state, &headers) {
        return transfer(&ctx, login, &target, false).await;
    }
    begin_login(&ctx, &headers, &target).await
}

async fn begin_login(ctx: &Ctx<'_>, headers: &HeaderMap, target: &Target) -> Response {
    let state = ctx.state;
    let now = now();
    // One CSRF value per browser, reused so that logins started in two
    // tabs both complete.
    let csrf = cookie(headers, &state.settings.csrf_cookie)
        .find(|v| v.len() >= 22 && v.len() <= 64)
        .unwrap_or_else(|| random_token(24));
    let start = LoginStart::new();
    // The state travels in the Location to the provider: a return address
    // too long for the answer to fit ingress-nginx's buffer is shortened,
    // first without its query, then to the workspace's root.
    let mut url = String::new();
    for rd in return_addresses(&state.settings, target) {
        let sealed = seal(
            &state.keyring,
            TokenKind::State,
            &StateClaims {
                rd,
                pkce: start.pkce_verifier.clone(),
                nonce: start.nonce.clone(),
                csrf: csrf.clone(),
                iat: now,
                exp: now + STATE_TTL,
            },
        );
        url = match state.provider.authorize_url(&sealed, &start).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "cannot start login");
                state.metrics.login("failed", e.metric_label());
                return ctx.page(Page::Unavailable);
            }
        };
        if url.len() <= ANSWER_HEADER_BUDGET {
            break;
        }
        tracing::info!("return address too long for the login redirect; shortened");
    }
    state.metrics.login("started", "");
    redirect(
        Decision::Redirect {
            location: url,
            set_cookies: vec![
                state
                    .settings
                    .cookie(&state.settings.csrf_cookie, &csrf, CSRF_TTL),
            ],
            redeems: None,
        },
        StatusCode::FOUND,
    )
}

/// `target`'s URL, then without its query, then the host's root.
fn return_addresses(settings: &crate::core::Settings, target: &Target) -> Vec<String> {
    let full = target.url(settings);
    let path = target.path.split('?').next().unwrap_or("/");
    let mut out = vec![full];
    for p in [path, "/"] {
        let url = format!("{}{p}", settings.origin(&target.host));
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

pub async fn callback(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let ctx = match Ctx::on_auth_host(&state, &id, &headers) {
        Ok(ctx) => ctx,
        Err(not_found) => return *not_found,
    };
    if let Some(err) = q.error.as_deref() {
        // Only the error code is logged; descriptions may echo input.
        let code: String = err
            .chars()
            .take(64)
            .filter(|c| c.is_ascii_graphic())
            .collect();
        tracing::warn!(provider_error = %code, "provider refused the login");
        state.metrics.login("failed", "provider_error");
        return ctx.page(Page::SignInFailed);
    }
    let (Some(code), Some(raw_state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return ctx.fail("missing_code");
    };
    let now = now();
    let Ok(st) = open::<StateClaims>(&state.keyring, TokenKind::State, raw_state, now) else {
        return ctx.fail("bad_state");
    };
    let csrf_ok = cookie(&headers, &state.settings.csrf_cookie)
        .any(|v| bool::from(v.as_bytes().ct_eq(st.csrf.as_bytes())));
    if !csrf_ok {
        return ctx.fail("csrf_mismatch");
    }
    let Ok(target) = rd::validate(&state.settings, &st.rd) else {
        return ctx.fail("bad_rd");
    };
    let tokens = match state.provider.exchange(code, &st.pkce).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "code redemption failed");
            return ctx.fail("code_exchange");
        }
    };
    let Some(id_token) = tokens.id_token.as_deref() else {
        return ctx.fail("no_id_token");
    };
    let claims = match state
        .provider
        .validate_id_token(id_token, &st.nonce, now)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "ID token refused");
            return ctx.fail("id_token");
        }
    };
    let mut claims = claims;
    if !claims.contains_key(state.provider.username_claim()) {
        // Some providers put the username only into userinfo.
        if let Ok(info) = state.provider.userinfo(&tokens.access_token).await
            && info.get("sub") == claims.get("sub")
        {
            claims.extend(info);
        }
    }
    let Some(who) = state.provider.identity(&claims) else {
        // A blank or non-string subject or username: refused like any
        // other bad ID token (userinfo only adds to a validated one).
        tracing::warn!("ID token refused: blank or non-string subject or username");
        return ctx.fail("id_token");
    };
    tracing::info!(user = %who.username, "login completed");
    state.metrics.login("completed", "");
    let login = LoginClaims {
        who,
        at: tokens.access_token,
        at_exp: tokens.expires_in.map_or(0, |s| now + s),
        rt: tokens.refresh_token,
        hosts: Vec::new(),
        iat: now,
        exp: now + state.cfg.session.login_ttl.as_secs(),
    };
    transfer(&ctx, login, &target, true).await
}

/// Authorizes the signed-in user for `target`'s workspace and hands the
/// browser a transfer token for exactly that host. Always (re)sets the
/// login cookie, which may carry refreshed tokens and the host list.
async fn transfer(ctx: &Ctx<'_>, mut login: LoginClaims, target: &Target, fresh: bool) -> Response {
    let state = ctx.state;
    let now = now();
    let Some(ws) = state.index.current().by_host(&target.host).cloned() else {
        let mut resp = ctx.page(Page::WorkspaceNotFound);
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return with_cookie(resp, &login_cookie(state, &login));
    };
    let outcome = match state.authz.login(&mut login, &ws, now).await {
        Ok((outcome, _)) => outcome,
        Err(e) => {
            tracing::error!(error = %e, "authorizer unavailable");
            return with_cookie(ctx.page(Page::Unavailable), &login_cookie(state, &login));
        }
    };
    let who = match outcome {
        Outcome::Allowed(who) => who,
        Outcome::Denied => {
            tracing::info!(user = %login.who.username, workspace = %ws.id, "not the workspace's owner");
            return with_cookie(ctx.page(Page::NotAllowed), &login_cookie(state, &login));
        }
        Outcome::InvalidToken if fresh => return ctx.fail("token_refused"),
        Outcome::InvalidToken => {
            // The login outlived the provider's tokens: sign in again.
            let clear = state.settings.clear_cookie(&state.settings.login_cookie);
            let again =
                crate::core::decide::sign_in_url(&state.settings, &target.url(&state.settings));
            return redirect(
                Decision::Redirect {
                    location: again,
                    set_cookies: vec![clear],
                    redeems: None,
                },
                StatusCode::FOUND,
            );
        }
    };
    login.hosts.retain(|h| h != &target.host);
    login.hosts.push(target.host.clone());
    if login.hosts.len() > MAX_REMEMBERED_HOSTS {
        let excess = login.hosts.len() - MAX_REMEMBERED_HOSTS;
        login.hosts.drain(..excess);
    }
    let token = sign(
        &state.keyring,
        TokenKind::Transfer,
        &TransferClaims {
            aud: target.host.clone(),
            who,
            wid: ws.id.clone(),
            path: target.path.clone(),
            iat: now,
            exp: now + state.settings.transfer_ttl,
            jti: random_token(16),
        },
    );
    let callback = format!("{}{CALLBACK_PATH}", state.settings.origin(&target.host));
    let set_login = login_cookie(state, &login);
    match state.cfg.session.transfer {
        TransferMethod::Query => {
            let mut location = format!("{callback}?token=");
            location.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
            redirect(
                Decision::Redirect {
                    location,
                    set_cookies: vec![set_login],
                    redeems: None,
                },
                StatusCode::FOUND,
            )
        }
        TransferMethod::FormPost => with_cookie(form_post(&callback, &token), &set_login),
    }
}

/// An auto-submitting form that POSTs the transfer token, so the token
/// stays out of URLs, history, access logs and Referer headers.
fn form_post(action: &str, token: &str) -> Response {
    let nonce = random_token(16);
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signing in…</title></head>\
<body><form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
<noscript><button type=\"submit\">Continue to your workspace</button></noscript></form>\
<script nonce=\"{nonce}\">document.forms[0].submit()</script></body></html>"
    );
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; form-action {}; base-uri 'none'; frame-ancestors 'none'",
        origin_of(action)
    );
    let mut resp = (StatusCode::OK, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", v);
    }
    resp
}

fn origin_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    &url[..end]
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn sign_out(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    if !on_auth_host(&state, &headers) {
        return pages::respond(Page::NotFound, &id.0, pages::wants_json(&headers));
    }
    let hosts = current_login(&state, &headers)
        .map(|l| l.hosts)
        .unwrap_or_default();
    let location = next_sign_out_hop(&state.keyring, &state.settings, now(), hosts);
    tracing::info!("signed out");
    redirect(
        Decision::Redirect {
            location,
            set_cookies: vec![state.settings.clear_cookie(&state.settings.login_cookie)],
            redeems: None,
        },
        StatusCode::FOUND,
    )
}

pub async fn signed_out(Extension(id): Extension<RequestId>, headers: HeaderMap) -> Response {
    pages::respond(Page::SignedOut, &id.0, pages::wants_json(&headers))
}
