//! `decide()`: one request, one answer, no I/O.

use base64::Engine;

use super::cookies;
use super::decision::{Allow, Decision, Page};
use super::request::CheckRequest;
use super::reserved::{self, RESERVED_PREFIX};
use super::settings::Settings;
use crate::session::signed::{sign, verify_pass};
use crate::session::{Keyring, PassClaims, TokenKind};
use crate::workspaces::Snapshot;

/// Decides about one request to a workspace host.
///
/// No I/O. The keyring remembers the passes it has verified (see
/// [`crate::session::memo`]), which makes a repeated pass cheaper to check
/// and never changes an answer.
pub fn decide(
    snapshot: &Snapshot,
    keyring: &Keyring,
    settings: &Settings,
    now: u64,
    req: &CheckRequest<'_>,
) -> Decision {
    let Some(host) = settings.normalize_host(req.host) else {
        return Decision::Deny(Page::WorkspaceNotFound);
    };
    if req.path.starts_with(RESERVED_PREFIX) {
        return reserved::answer(keyring, settings, now, &host, req);
    }
    // Before the first complete list, "not found" would be a guess.
    if !snapshot.loaded {
        return Decision::Deny(Page::NotReady);
    }
    let Some(workspace) = snapshot.by_host(&host) else {
        return Decision::Deny(Page::WorkspaceNotFound);
    };
    let cookie = req.cookie.unwrap_or("");
    let upstream_cookie = || {
        req.cookie
            .and_then(|c| cookies::strip_prefixed(c, settings.cookie_prefix))
    };
    for value in cookies::values(cookie, &settings.pass_cookie) {
        let Ok(pass) = verify_pass(keyring, value, now) else {
            continue;
        };
        if pass.aud != *host {
            continue;
        }
        // The workspace must still be the one the pass was issued for, with
        // the same owner when the source knows it.
        let owner_ok = workspace
            .owner
            .as_ref()
            .is_none_or(|o| o.id == pass.who.user_id);
        if pass.wid != workspace.id || !owner_ok {
            return Decision::Deny(Page::NotAllowed);
        }
        return Decision::Allow(Allow {
            who: pass.who.clone(),
            workspace: workspace.clone(),
            upstream_cookie: upstream_cookie(),
            upstream_authorization: req.authorization.map(str::to_string),
            renewed_pass: renewal(keyring, settings, now, &pass),
        });
    }
    if let Some(token) = req.authorization.and_then(credential) {
        return Decision::Bearer {
            token,
            workspace: workspace.clone(),
            upstream_cookie: upstream_cookie(),
        };
    }
    if req.is_navigation() {
        let rd = format!("{}{}", settings.origin(&host), req.path);
        return Decision::SignIn {
            location: reserved::start_url(settings, &host, &rd),
        };
    }
    if req.is_form_submission() {
        // Never sent through a login: a redirect would replay it as a GET
        // without its fields.
        return Decision::Deny(Page::FormNotSent);
    }
    Decision::Deny(Page::SignInRequired)
}

/// A new pass for the same host, identity and workspace when `pass` is
/// past half its lifetime; `None` before that (most checks). Signed once
/// per remembered pass (see `VerifiedPass::renewed`).
fn renewal(
    keyring: &Keyring,
    settings: &Settings,
    now: u64,
    pass: &crate::session::VerifiedPass,
) -> Option<std::sync::Arc<str>> {
    let half = settings.pass_ttl / 2;
    if settings.pass_ttl == 0 || now < pass.iat.saturating_add(half) {
        return None;
    }
    let cookie = pass.renewed.get_or_init(|| {
        let claims = PassClaims {
            aud: pass.aud.clone(),
            who: (*pass.who).clone(),
            wid: pass.wid.clone(),
            iat: now,
            exp: now + settings.pass_ttl,
        };
        let value = sign(keyring, TokenKind::Pass, &claims);
        settings
            .cookie(&settings.pass_cookie, &value, settings.pass_ttl)
            .into()
    });
    Some(cookie.clone())
}

/// `<auth origin>/auth/start?rd=<url-encoded rd>`; the login start on
/// the workspace host ([`reserved::start_url`]) adds the bind digest.
pub fn sign_in_url(settings: &Settings, rd: &str) -> String {
    let mut url = format!("{}/auth/start?rd=", settings.auth_origin());
    url.extend(url::form_urlencoded::byte_serialize(rd.as_bytes()));
    url
}

/// The token in `Authorization: Bearer <t>` or `Basic base64(<any>:<t>)`.
pub fn credential(header: &str) -> Option<String> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (_, password) = text.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_string());
    }
    None
}
