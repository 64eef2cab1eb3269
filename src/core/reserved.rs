//! The reserved `/.workspace-gate/` paths on workspace hosts: the start of
//! a login (which binds it to the browser), the transfer callback that
//! turns a transfer token into a pass cookie, and sign-out. Behind nginx
//! the gate serves them as routes; behind Traefik and Envoy the check
//! answers them. Both call these functions.

use super::cookies;
use super::decision::{Decision, Page};
use super::rd;
use super::request::CheckRequest;
use super::settings::{ANSWER_HEADER_BUDGET, Settings};
use crate::session::binding;
use crate::session::signed::{sign, verify};
use crate::session::{Keyring, PassClaims, SignOutClaims, TokenError, TokenKind, TransferClaims};

pub(crate) const RESERVED_PREFIX: &str = "/.workspace-gate/";
pub(crate) const START_PATH: &str = "/.workspace-gate/start";
pub(crate) const CALLBACK_PATH: &str = "/.workspace-gate/callback";
pub(crate) const SIGN_OUT_PATH: &str = "/.workspace-gate/sign_out";
/// The query of the request the hand-over page makes once it has put the
/// transfer token in its cookie.
pub(crate) const REDEEM_QUERY: &str = "redeem=1";

/// How long a sign-out chain token lives.
const SIGN_OUT_TTL: u64 = 120;
/// How long a bind cookie lives: as long as the login's state on the auth
/// host, so a login that may still complete always finds its cookie.
pub(crate) const BIND_TTL: u64 = 600;

/// Answers a reserved path seen by a check.
pub(crate) fn answer(
    keyring: &Keyring,
    settings: &Settings,
    now: u64,
    host: &str,
    req: &CheckRequest<'_>,
) -> Decision {
    let (path, query) = req.path.split_once('?').unwrap_or((req.path, ""));
    match path {
        // ingress-nginx sends every refusal it was told to sign in for
        // here with `m=<method>`: a form is not replayed through a login.
        START_PATH if query_param(query, "m").is_some_and(|m| is_form_method(&m)) => {
            Decision::Deny(Page::FormNotSent)
        }
        START_PATH => start(settings, host, query_param(query, "rd").as_deref()),
        CALLBACK_PATH => {
            if let Some(token) = query_param(query, "token") {
                return callback(keyring, settings, now, host, &token, req.cookie);
            }
            if query_param(query, "redeem").is_none() {
                return Decision::Handover {
                    cookie: settings.transfer_cookie.clone(),
                };
            }
            match req
                .cookie
                .and_then(|c| cookies::values(c, &settings.transfer_cookie).next())
            {
                Some(token) => callback(keyring, settings, now, host, token, req.cookie),
                None => Decision::Deny(Page::SignInFailed),
            }
        }
        SIGN_OUT_PATH => sign_out(
            keyring,
            settings,
            now,
            host,
            query_param(query, "chain").as_deref(),
        ),
        _ => Decision::Deny(Page::NotFound),
    }
}

/// A method a form may be sent with (not GET or HEAD, which a login may
/// replay as they were).
fn is_form_method(m: &str) -> bool {
    !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) && m != "GET" && m != "HEAD"
}

/// `<host origin>/.workspace-gate/start?rd=<url-encoded rd>`: where a
/// browser without a pass on `host` goes to sign in.
pub(crate) fn start_url(settings: &Settings, host: &str, rd: &str) -> String {
    let mut url = format!("{}{START_PATH}?rd=", settings.origin(host));
    url.extend(url::form_urlencoded::byte_serialize(rd.as_bytes()));
    url
}

/// Begins a login on `host`: sets a new bind cookie and sends the browser
/// to the auth host with the cookie's digest. `rd` must be on `host`;
/// anything else lands on the host's root.
pub(crate) fn start(settings: &Settings, host: &str, rd: Option<&str>) -> Decision {
    let target = match rd.map(|r| rd::validate(settings, r)) {
        Some(Ok(t)) if t.host == host => t,
        _ => rd::Target {
            host: host.to_string(),
            path: "/".to_string(),
        },
    };
    let (secret, b) = binding::new_binding();
    let name = binding::cookie_name(&settings.bind_cookie, &b);
    let cookie = settings.cookie(&name, &secret, BIND_TTL);
    // Shortened until the answer fits ingress-nginx's buffer, as the
    // auth host shortens its redirect to the provider.
    let mut location = String::new();
    for rd in rd::return_addresses(settings, &target) {
        location = super::decide::sign_in_url(settings, &rd);
        location.push_str("&b=");
        location.push_str(&b);
        if location.len() + cookie.len() <= ANSWER_HEADER_BUDGET {
            break;
        }
    }
    Decision::Redirect {
        location,
        set_cookies: vec![cookie],
        redeems: None,
    }
}

/// Redeems a transfer token on `host`: sets the pass and returns to the
/// path the login started from (always on this same host). `cookie` is
/// the request's `Cookie` header, which must hold the login's bind cookie.
pub(crate) fn callback(
    keyring: &Keyring,
    settings: &Settings,
    now: u64,
    host: &str,
    token: &str,
    cookie: Option<&str>,
) -> Decision {
    match redeem(keyring, settings, now, host, token, cookie) {
        Ok((location, set_cookies, jti)) => Decision::Redirect {
            location,
            set_cookies,
            redeems: Some(jti),
        },
        Err(_) => Decision::Deny(Page::SignInFailed),
    }
}

/// Verifies a transfer token for `host` and the bind cookie in `cookie`,
/// and returns the landing URL, the cookies to set (the pass; the bind
/// and transfer cookies cleared) and the token's unique id (for replay
/// detection on this replica).
pub(crate) fn redeem(
    keyring: &Keyring,
    settings: &Settings,
    now: u64,
    host: &str,
    token: &str,
    cookie: Option<&str>,
) -> Result<(String, Vec<String>, String), TokenError> {
    let t: TransferClaims = verify(keyring, TokenKind::Transfer, token, now)?;
    if t.aud != host {
        return Err(TokenError::Audience);
    }
    let cookie = cookie.unwrap_or("");
    let bind = binding::cookie_name(&settings.bind_cookie, &t.b);
    if !cookies::values(cookie, &bind).any(|secret| binding::matches(secret, &t.b)) {
        return Err(TokenError::Unbound);
    }
    let pass = PassClaims {
        aud: t.aud,
        who: t.who,
        wid: t.wid,
        iat: now,
        exp: now + settings.pass_ttl,
    };
    let value = sign(keyring, TokenKind::Pass, &pass);
    let mut set_cookies = vec![
        settings.cookie(&settings.pass_cookie, &value, settings.pass_ttl),
        settings.clear_cookie(&bind),
    ];
    if cookies::values(cookie, &settings.transfer_cookie)
        .next()
        .is_some()
    {
        set_cookies.push(settings.clear_cookie(&settings.transfer_cookie));
    }
    // Absolute, on this host: a path can never turn into another origin.
    let path = if t.path.starts_with('/') && !t.path.starts_with("//") {
        t.path
    } else {
        "/".to_string()
    };
    Ok((
        format!("{}{}", settings.origin(host), path),
        set_cookies,
        t.jti,
    ))
}

/// Clears this host's pass and continues the sign-out chain.
pub(crate) fn sign_out(
    keyring: &Keyring,
    settings: &Settings,
    now: u64,
    host: &str,
    chain: Option<&str>,
) -> Decision {
    let clear = settings.clear_cookie(&settings.pass_cookie);
    let location = match chain {
        // Started here: the auth host ends the login and visits the others.
        None => format!("{}/auth/sign_out", settings.auth_origin()),
        Some(token) => match verify::<SignOutClaims>(keyring, TokenKind::SignOut, token, now) {
            Ok(c) => {
                let rest: Vec<String> = c.hosts.into_iter().filter(|h| h != host).collect();
                next_sign_out_hop(keyring, settings, now, rest)
            }
            Err(_) => format!("{}/auth/signed_out", settings.auth_origin()),
        },
    };
    Decision::Redirect {
        location,
        set_cookies: vec![clear],
        redeems: None,
    }
}

/// Where to go next while signing out of `hosts`.
pub(crate) fn next_sign_out_hop(
    keyring: &Keyring,
    settings: &Settings,
    now: u64,
    mut hosts: Vec<String>,
) -> String {
    hosts.retain(|h| settings.is_workspace_host(h));
    if hosts.is_empty() {
        return format!("{}/auth/signed_out", settings.auth_origin());
    }
    let first = hosts[0].clone();
    let token = sign(
        keyring,
        TokenKind::SignOut,
        &SignOutClaims {
            hosts,
            iat: now,
            exp: now + SIGN_OUT_TTL,
        },
    );
    format!("{}{SIGN_OUT_PATH}?chain={token}", settings.origin(&first))
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
