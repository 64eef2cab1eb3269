//! The reserved `/.workspace-gate/` paths on workspace hosts: the transfer
//! callback that turns a transfer token into a pass cookie, and sign-out.
//! Behind nginx the gate serves them as routes; behind Traefik and Envoy the
//! check answers them. Both call these functions.

use super::decision::{Decision, Page};
use super::request::CheckRequest;
use super::settings::Settings;
use crate::session::signed::{sign, verify};
use crate::session::{Keyring, PassClaims, SignOutClaims, TokenError, TokenKind, TransferClaims};

pub(crate) const RESERVED_PREFIX: &str = "/.workspace-gate/";
pub(crate) const CALLBACK_PATH: &str = "/.workspace-gate/callback";
pub(crate) const SIGN_OUT_PATH: &str = "/.workspace-gate/sign_out";

/// How long a sign-out chain token lives.
const SIGN_OUT_TTL: u64 = 120;

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
        CALLBACK_PATH => match query_param(query, "token") {
            Some(token) => callback(keyring, settings, now, host, &token),
            None => Decision::Deny(Page::SignInFailed),
        },
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

/// Redeems a transfer token on `host`: sets the pass and returns to the
/// path the login started from (always on this same host).
pub(crate) fn callback(
    keyring: &Keyring,
    settings: &Settings,
    now: u64,
    host: &str,
    token: &str,
) -> Decision {
    match redeem(keyring, settings, now, host, token) {
        Ok((location, cookie, jti)) => Decision::Redirect {
            location,
            set_cookies: vec![cookie],
            redeems: Some(jti),
        },
        Err(_) => Decision::Deny(Page::SignInFailed),
    }
}

/// Verifies a transfer token for `host` and returns the landing URL, the
/// pass cookie and the token's unique id (for replay detection).
pub(crate) fn redeem(
    keyring: &Keyring,
    settings: &Settings,
    now: u64,
    host: &str,
    token: &str,
) -> Result<(String, String, String), TokenError> {
    let t: TransferClaims = verify(keyring, TokenKind::Transfer, token, now)?;
    if t.aud != host {
        return Err(TokenError::Audience);
    }
    let pass = PassClaims {
        aud: t.aud,
        who: t.who,
        wid: t.wid,
        iat: now,
        exp: now + settings.pass_ttl,
    };
    let value = sign(keyring, TokenKind::Pass, &pass);
    let cookie = settings.cookie(&settings.pass_cookie, &value, settings.pass_ttl);
    // Absolute, on this host: a path can never turn into another origin.
    let path = if t.path.starts_with('/') && !t.path.starts_with("//") {
        t.path
    } else {
        "/".to_string()
    };
    Ok((format!("{}{}", settings.origin(host), path), cookie, t.jti))
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
