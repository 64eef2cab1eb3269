//! The login pages on the auth host: `/auth/start`, `/auth/callback`,
//! `/auth/sign_out`, `/auth/signed_out`. The handlers here do the I/O and
//! build the answers; what each page decides is in its own file:
//!
//! - [`start_checks`]: navigation or not, the return address, an existing
//!   login handed over or a new one begun.
//! - [`callback_checks`]: the provider's answer, state, CSRF and return
//!   address, then code redemption and the ID token.
//! - [`sign_out_hops`]: which workspace hosts sign-out visits.

mod callback_checks;
mod sign_out_hops;
mod start_checks;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::request_id::RequestId;
use super::reserved_routes::redirect;
use super::{AppState, now, pages};
use crate::authz::Outcome;
use crate::config::TransferMethod;
use crate::core::cookies;
use crate::core::rd::{Target, return_addresses};
use crate::core::reserved::{CALLBACK_PATH, start_url};
use crate::core::settings::ANSWER_HEADER_BUDGET;
use crate::core::{Decision, Page, Settings};
use crate::oidc::{LoginStart, random_token};
use crate::session::claims::MAX_REMEMBERED_HOSTS;
use crate::session::sealed::{open, seal};
use crate::session::signed::sign;
use crate::session::{Keyring, LoginClaims, StateClaims, TokenKind, TransferClaims};
use callback_checks::{Failure, check_callback, sign_in};
use start_checks::{MAX_CSRF_SLOTS, Start, check_start, csrf_cookie_name, csrf_slots_sent};

/// How long a login may take at the provider.
const STATE_TTL: u64 = 600;
/// The CSRF cookie outlives several login attempts in several tabs.
const CSRF_TTL: u64 = 3600;

#[derive(Deserialize)]
pub(crate) struct StartQuery {
    #[serde(default)]
    rd: String,
    /// Digest of the bind cookie the workspace host set (see
    /// `session::binding`).
    #[serde(default)]
    b: String,
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
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

    fn fail(&self, failure: Failure) -> Response {
        let reason = failure.metric_label();
        if let Failure::ProviderError(code) = &failure {
            tracing::warn!(provider_error = %code, "provider refused the login");
        } else {
            tracing::warn!(reason, "sign-in failed");
        }
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

/// The login in the browser's login cookie, if one opens and is current.
fn current_login(
    settings: &Settings,
    keyring: &Keyring,
    headers: &HeaderMap,
    now: u64,
) -> Option<LoginClaims> {
    cookie(headers, &settings.login_cookie)
        .find_map(|v| open::<LoginClaims>(keyring, TokenKind::Login, &v, now).ok())
}

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

pub(crate) async fn start(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let ctx = match Ctx::on_auth_host(&state, &id, &headers) {
        Ok(ctx) => ctx,
        Err(not_found) => return *not_found,
    };
    match check_start(
        &state.settings,
        &state.keyring,
        &headers,
        &q.rd,
        &q.b,
        now(),
    ) {
        Start::SignInRequired => ctx.page(Page::SignInRequired),
        Start::BadRd(e) => {
            tracing::warn!(reason = %e, "refused rd");
            state.metrics.login("failed", "bad_rd");
            ctx.page(Page::SignInFailed)
        }
        Start::Bind(target) => {
            // The return address shortened as the login redirect would be.
            let location = return_addresses(&state.settings, &target)
                .into_iter()
                .map(|rd| start_url(&state.settings, &target.host, &rd))
                .find(|l| l.len() <= ANSWER_HEADER_BUDGET)
                .unwrap_or_else(|| start_url(&state.settings, &target.host, ""));
            redirect(
                Decision::Redirect {
                    location,
                    set_cookies: Vec::new(),
                    redeems: None,
                },
                StatusCode::FOUND,
            )
        }
        Start::Transfer(login, target, b) => transfer(&ctx, *login, &target, &b, false).await,
        Start::Begin(target, b) => begin_login(&ctx, &headers, &target, b).await,
    }
}

async fn begin_login(ctx: &Ctx<'_>, headers: &HeaderMap, target: &Target, b: String) -> Response {
    let state = ctx.state;
    let now = now();
    // A cookie of its own for this login (see `StateClaims::slot`).
    let csrf = random_token(24);
    let slot = random_token(6);
    let start = LoginStart::new();
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
                slot: slot.clone(),
                b: b.clone(),
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
    let mut set_cookies =
        vec![
            state
                .settings
                .cookie(&csrf_cookie_name(&state.settings, &slot), &csrf, CSRF_TTL),
        ];
    let unfinished = csrf_slots_sent(&state.settings, headers);
    if unfinished.len() >= MAX_CSRF_SLOTS {
        tracing::info!(
            unfinished = unfinished.len(),
            "too many logins under way in one browser; clearing their CSRF cookies"
        );
        set_cookies.extend(unfinished.iter().map(|n| state.settings.clear_cookie(n)));
    }
    redirect(
        Decision::Redirect {
            location: url,
            set_cookies,
            redeems: None,
        },
        StatusCode::FOUND,
    )
}

pub(crate) async fn callback(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let ctx = match Ctx::on_auth_host(&state, &id, &headers) {
        Ok(ctx) => ctx,
        Err(not_found) => return *not_found,
    };
    let now = now();
    let v = match check_callback(&state.settings, &state.keyring, &q, &headers, now) {
        Ok(v) => v,
        Err(failure) => return ctx.fail(failure),
    };
    let (who, tokens) = match sign_in(&state.provider, v.code, &v.state, now).await {
        Ok(signed_in) => signed_in,
        Err(failure) => return ctx.fail(failure),
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
    // The login's CSRF cookie has served: cleared.
    let spent = state
        .settings
        .clear_cookie(&csrf_cookie_name(&state.settings, &v.state.slot));
    with_cookie(
        transfer(&ctx, login, &v.target, &v.state.b, true).await,
        &spent,
    )
}

/// Authorizes the signed-in user for `target`'s workspace and hands the
/// browser a transfer token for exactly that host, redeemable only with
/// the bind cookie of digest `b`. Always (re)sets the login cookie, which
/// may carry refreshed tokens and the host list.
async fn transfer(
    ctx: &Ctx<'_>,
    mut login: LoginClaims,
    target: &Target,
    b: &str,
    fresh: bool,
) -> Response {
    let state = ctx.state;
    let now = now();
    let Some(ws) = state.index.current().by_host(&target.host).cloned() else {
        let mut resp =
            pages::respond_in(&state.settings, Page::WorkspaceNotFound, ctx.id, ctx.json);
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
            // Names the account and offers its sign-out (which ends this
            // login), so the user can come back as someone else.
            let page = pages::respond_signed_in(
                Page::NotAllowed,
                ctx.id,
                ctx.json,
                &login.who.username,
                "/auth/sign_out",
            );
            return with_cookie(page, &login_cookie(state, &login));
        }
        Outcome::InvalidToken if fresh => return ctx.fail(Failure::TokenRefused),
        Outcome::InvalidToken => {
            // The login outlived the provider's tokens: sign in again.
            let clear = state.settings.clear_cookie(&state.settings.login_cookie);
            let again = start_url(&state.settings, &target.host, &target.url(&state.settings));
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
            b: b.to_string(),
        },
    );
    let callback = format!("{}{CALLBACK_PATH}", state.settings.origin(&target.host));
    let set_login = login_cookie(state, &login);
    let location = match state.cfg.session.transfer {
        TransferMethod::FormPost => return with_cookie(form_post(&callback, &token), &set_login),
        TransferMethod::Query => {
            let mut location = format!("{callback}?token=");
            location.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
            location
        }
        // Never sent to a server: no controller's log holds it.
        TransferMethod::Fragment => format!("{callback}#t={token}"),
    };
    redirect(
        Decision::Redirect {
            location,
            set_cookies: vec![set_login],
            redeems: None,
        },
        StatusCode::FOUND,
    )
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

pub(crate) async fn sign_out(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    if !on_auth_host(&state, &headers) {
        return pages::respond(Page::NotFound, &id.0, pages::wants_json(&headers));
    }
    let location =
        sign_out_hops::sign_out_location(&state.settings, &state.keyring, &headers, now());
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

pub(crate) async fn signed_out(
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    pages::respond(Page::SignedOut, &id.0, pages::wants_json(&headers))
}

/// Settings, keys and requests shared by the tests of the login pages.
#[cfg(test)]
mod testing {
    use super::*;
    use crate::session::Identity;

    pub(super) const NOW: u64 = 1_800_000_000;

    pub(super) fn settings() -> Settings {
        crate::core::settings::test_settings()
    }

    pub(super) fn keyring() -> Keyring {
        Keyring::new(&[vec![1u8; 32]]).unwrap()
    }

    pub(super) fn headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        h
    }

    /// A `Cookie` header with alice's login, which expires at `exp` and
    /// has visited `hosts`.
    pub(super) fn login_cookie_with_hosts(exp: u64, hosts: &[&str]) -> String {
        let login = LoginClaims {
            who: Identity {
                user_id: "42".into(),
                username: "alice".into(),
            },
            at: "at".into(),
            at_exp: 0,
            rt: None,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            iat: NOW - 100,
            exp,
        };
        let value = seal(&keyring(), TokenKind::Login, &login);
        format!("{}={value}", settings().login_cookie)
    }

    pub(super) fn login_cookie(exp: u64) -> String {
        login_cookie_with_hosts(exp, &[])
    }
}
